package loadgen

import "context"

// Consistency selects how a Get is served.
type Consistency int

const (
	// Linearizable reads reflect every write acknowledged before they
	// started (raftkv: ReadIndex; etcd: the default quorum read).
	Linearizable Consistency = iota
	// Serializable reads are served from the contacted node's local state
	// and may be stale.
	Serializable
)

// String returns "linearizable" or "serializable".
func (c Consistency) String() string {
	if c == Serializable {
		return "serializable"
	}
	return "linearizable"
}

// Target is one connection to the store under test.
//
// Run dials Options.Conns targets and shares each among the clients
// assigned to it, so every method may be called concurrently from several
// goroutines. Each call gets a ctx with a deadline (Options.OpTimeout) and
// must return when it expires. Methods must not retry: an error is counted
// and the client goes on with its next operation. Run calls Close once,
// after every client has stopped.
type Target interface {
	// Put writes value under key.
	Put(ctx context.Context, key, value []byte) error
	// Get reads key with the given consistency. A missing key is not an
	// error.
	Get(ctx context.Context, key []byte, c Consistency) error
	// Txn is a compare-and-put in one transaction: if key's modification
	// revision is below the largest int64 (always true, but the server must
	// read the key and evaluate the compare), put value under key;
	// otherwise read key. A false compare is not an error.
	Txn(ctx context.Context, key, value []byte) error
	// Ping makes the cheapest call the server answers without touching its
	// store (for gRPC servers, the standard health check), so a run of
	// pings measures the RPC stack alone.
	Ping(ctx context.Context) error
	// Close releases the connection.
	Close() error
}

// Dialer opens connection number conn (0 <= conn < Options.Conns). A
// Dialer may place connections on different servers by conn.
type Dialer func(ctx context.Context, conn int) (Target, error)

// ErrorKinder is implemented by Targets that can name the kind of an error
// their methods returned (a gRPC status code, say). Result.ErrorsByKind is
// keyed by it; without it Run uses "deadline_exceeded", "canceled" or
// "other".
type ErrorKinder interface {
	ErrorKind(err error) string
}
