// Package kvpb is the public wire schema of raftkv: the KV and Admin gRPC
// services clients use and the Internal service nodes use among themselves.
// kv.pb.go and kv_grpc.pb.go are generated from kv.proto by
// scripts/genproto.sh; errors.go holds the hand-written wire vocabulary
// (error reasons and metadata keys) shared by servers and clients.
package kvpb

//go:generate ../../scripts/genproto.sh
