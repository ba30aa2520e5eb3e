// Package kvtarget is the raftkv side of package loadgen: a loadgen.Target
// that calls the generated kvpb stubs over one gRPC connection, with no
// retries, no leader tracking and no forwarding logic of its own, so a
// bench measures the server and not the client library. It also finds the
// leader among a list of endpoints, which benches target by default.
package kvtarget
