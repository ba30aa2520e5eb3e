// Package loadgen is the load generator behind `raftkvctl bench` and the
// raftkv-versus-etcd harness in bench/: it drives any store that implements
// the small Target interface with a fixed number of client goroutines over a
// fixed number of connections, paces them when asked, and records every
// operation's latency in an HDR histogram.
//
// It owns the workload (which keys, which values, reads or writes, how
// fast, for how long) and the statistics, and nothing else: it never dials
// a server itself (a Dialer does), never retries (an error is counted by
// kind and the client moves on, because a bench measures the server), and
// imports no code of this module, so the bench module can drive etcd with
// exactly the same code.
//
// # Fairness
//
// Both systems are measured by the same loop: one op per client at a time
// (closed loop) or, with Options.Rate, a shared schedule of start times
// (open loop, latency counted from the scheduled start so a stalled server
// is not hidden by the client waiting for it: no coordinated omission).
// Keys are fixed-size and derived from an index; values are random bytes of
// a fixed size, drawn from a per-client pool so generating them costs
// almost nothing.
package loadgen
