// Package e2e drives real raftkvd processes, started by scripts/cluster.sh,
// through raftkvctl and the gRPC API. Its tests carry the build tag e2e and
// run in `make test` after `make build`; RAFTKV_BIN names the directory
// holding the binaries. The membership tests (membership_test.go) start
// their processes themselves, since they need random start orders, nodes
// that come and go under new ids, and per-node flags.
package e2e
