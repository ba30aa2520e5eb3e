// Package faults is raftkv's fault-injection correctness suite: three real
// raftkvd processes with a TCP proxy on every directed raft link, crashes
// (SIGKILL), pauses (SIGSTOP), partitions, delay and loss, and failpoints at
// persistence boundaries, under a recorded client workload whose history is
// checked for linearizability with porcupine, plus a durability set, state
// hash convergence and clean shutdown. See docs/faults.md.
//
// The suite carries the build tag e2e and runs in `make test` and alone in
// `make test-faults`. The checker and the proxy have untagged unit tests, so
// a checker that accepts everything can't make the suite pass.
package faults
