// Package nodetest runs real raftkv nodes inside one test process: real
// raft, real raft-boltdb and bbolt files in t.TempDir(), real gRPC on
// 127.0.0.1, with short raft timeouts. Tests of every package reuse it.
//
// Listeners are bound by the harness on 127.0.0.1:0 and handed to the node,
// so there is no pick-then-bind race. Raft peer connections go through a
// fault layer that Partition and Heal control. Imported only by tests.
package nodetest
