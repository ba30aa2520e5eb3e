// Package client is the Go client library of raftkv. raftkvctl (cmd/ctl)
// and every test that talks to a cluster use it.
//
// It owns the client side of the wire: one gRPC connection per endpoint,
// leader discovery, and the retry policy. Methods take and return the
// api/kvpb messages unchanged, so the library adds no second data model.
//
// # Retry policy
//
// Every method runs inside the caller's ctx and never outlives it: pass a
// deadline, because a cluster without a leader is otherwise retried until
// the ctx ends. Retries wait an exponential backoff with jitter
// (Config.RetryBackoff); a redirect to a newly hinted leader is tried at
// once, but never twice in a row.
//
//   - NOT_LEADER and NO_LEADER (kvpb.Reason*) mean nothing was proposed, so
//     every request retries them. NOT_LEADER goes to the hinted leader
//     address (kvpb.MetadataLeaderAddr), which joins the endpoint pool when
//     it is new; without a hint, and for NO_LEADER, the next endpoint is
//     tried.
//   - Reads (Get, Range, MemberList) also retry any codes.Unavailable on the
//     next endpoint: a read changes nothing, so repeating it is harmless.
//   - Writes (Put, Delete, Txn) retry a transport failure only when the
//     request provably never left this process (the connection could not be
//     established). A write that fails with OUTCOME_UNKNOWN, DeadlineExceeded,
//     Canceled or a connection that broke in flight may have been applied: it
//     is returned at once wrapping ErrOutcomeUnknown and is never retried,
//     because writes carry no request id the server could de-duplicate yet
//     (STYLE.md §2).
//   - Any other error (InvalidArgument, ResourceExhausted, ...) is returned
//     at once.
//
// The client is sticky: reads start at the last endpoint that answered and
// writes at the last endpoint that accepted a write or was hinted as leader.
//
// # What it must never do
//
// It must never retry a write whose outcome is unknown, decide on retries
// from error text except for the one documented grpc-go gap (neverSent), or
// import server packages (transport, node, fsm): clients depend on api/kvpb
// only. For that reason ErrOutcomeUnknown is defined here rather than
// re-exported from transport; it is also a wider condition, since it covers
// failures only the client observes (its own deadline, a broken connection).
//
// Config.DialOptions departs from STYLE.md §8 (Config holds plain values):
// it is the seam for transport credentials and interceptors, as in etcd's
// clientv3.Config, and it is only read by New.
package client
