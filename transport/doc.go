// Package transport owns every byte raftkv nodes exchange over the network.
//
// It has two halves:
//
//   - The raft peer port: StreamLayer carries hashicorp/raft's
//     NetworkTransport over TCP (optionally TLS) on --raft-addr. Raft's own
//     protocol is not rewritten; transport only owns the sockets, so TLS and
//     test fault injection can wrap them.
//   - The gRPC port (--grpc-addr): the KV, Admin and Internal services.
//     Server validates requests against Limits, keeps the caller's deadline
//     (adding a default when there is none), calls the consumer-declared KV,
//     Admin and Internal interfaces (implemented by package node), and maps
//     the returned error to a gRPC status exactly once (see errors.go).
//     Peers dials other nodes for leader forwarding. The same port serves
//     the standard gRPC health service (the KV service's status is the
//     node's readiness, set through SetServing), server reflection, and
//     per-method request metrics (observe.go).
//
// transport owns the client-visible error vocabulary (ErrNoLeader,
// NotLeaderError, ErrOutcomeUnknown, ErrInvalidArgument): node returns these
// and transport maps them.
//
// transport must never import node, fsm or the store: it knows requests and
// errors, not how they are served.
package transport
