// Package bench is the root of a separate Go module that measures raftkv
// side by side with etcd. It is a module of its own so that raftkv itself
// never depends on etcd: the main module's go.mod must not change when this
// one does. See cmd/sidebyside and docs/bench.md.
package bench
