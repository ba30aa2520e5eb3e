// Package node is the composition root of a raftkv server: it builds the
// raft log and stable store (raft-boltdb), the snapshot store, the FSM and
// its local store, the read cache (package cache, and cache/rediscache when
// configured; the FSM reaches them through node's fsm.Invalidator adapter),
// the raft peer transport and the gRPC and HTTP servers, and it owns the
// write path and the read path (see docs/write-path.md and
// cache/DESIGN.md). It also owns what operators see of a node: readiness
// (ready.go: /readyz and the gRPC health status), Prometheus metrics
// (metrics.go, observed at the seams node owns: the log store and FSM as
// raft sees them, the write path; see docs/metrics.md), and the routing of
// raft's hclog output into the node's slog logger (raftlog.go).
//
// node is the one place that wires a node: cmd/node and the test harness in
// node/nodetest both call New, so production and tests cannot drift apart.
// Nothing imports node except those two.
package node
