package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/raftkv/raftkv/api/kvpb"
)

var (
	// ErrOutcomeUnknown means a write may or may not have been applied: it
	// failed with reason OUTCOME_UNKNOWN, hit its deadline or was canceled,
	// or its connection broke after the request was sent. The client never
	// retries such a write; the caller must read the key to find out.
	ErrOutcomeUnknown = errors.New("write outcome unknown")
	// ErrClosed is returned by calls on a Client after Close.
	ErrClosed = errors.New("client closed")
)

// Client is a raftkv client. It is safe for concurrent use. Create it with
// New and release its connections with Close.
type Client struct {
	cfg      Config
	dialOpts []grpc.DialOption

	mu     sync.Mutex
	closed bool
	pool   []string                    // endpoints in try order; learned leaders are appended
	conns  map[string]*grpc.ClientConn // one per endpoint, including Status-only ones
	sticky string                      // last endpoint that answered, "" if none
	leader string                      // last endpoint that took a write or was hinted as leader
}

// New validates cfg and returns a Client. Connections are established
// lazily, on the first request to each endpoint, so New does no I/O.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid client config: %w", err)
	}
	bo := backoff.DefaultConfig
	bo.BaseDelay = cfg.RetryBackoff.Initial
	bo.MaxDelay = cfg.RetryBackoff.Max
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A failed connection is retried on grpc's own backoff; keep it as
		// short as ours, or a restarted node stays skipped for up to grpc's
		// default two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: cfg.DialTimeout}),
	}
	c := &Client{
		cfg:      cfg,
		dialOpts: append(opts, cfg.DialOptions...),
		pool:     slices.Clone(cfg.Endpoints),
		conns:    make(map[string]*grpc.ClientConn),
	}
	c.cfg.Endpoints = slices.Clone(cfg.Endpoints)
	c.cfg.DialOptions = slices.Clone(cfg.DialOptions)
	// grpc.NewClient does no I/O, but it rejects a malformed target: find
	// that out now rather than on the first request.
	for _, ep := range c.pool {
		if _, err := c.connLocked(ep); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Close closes every connection. Calls in flight fail; later calls return
// ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for ep, cc := range c.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", ep, err))
		}
	}
	return errors.Join(errs...)
}

// Endpoints returns the current endpoint pool: the configured endpoints
// followed by any leader address learned from a NOT_LEADER hint.
func (c *Client) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.pool)
}

// Get reads one key. A missing key is not an error: the response has
// Found false.
func (c *Client) Get(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	return invoke(ctx, c, "get", false, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.GetResponse, error) {
		return kvpb.NewKVClient(cc).Get(ctx, req)
	})
}

// Range reads a key, a prefix or a key range.
func (c *Client) Range(ctx context.Context, req *kvpb.RangeRequest) (*kvpb.RangeResponse, error) {
	return invoke(ctx, c, "range", false, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.RangeResponse, error) {
		return kvpb.NewKVClient(cc).Range(ctx, req)
	})
}

// Put writes one key. An error that wraps ErrOutcomeUnknown means the put
// may have been applied.
func (c *Client) Put(ctx context.Context, req *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	return invoke(ctx, c, "put", true, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.PutResponse, error) {
		return kvpb.NewKVClient(cc).Put(ctx, req)
	})
}

// Delete deletes a key, a prefix or a key range. An error that wraps
// ErrOutcomeUnknown means the delete may have been applied.
func (c *Client) Delete(ctx context.Context, req *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error) {
	return invoke(ctx, c, "delete", true, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.DeleteResponse, error) {
		return kvpb.NewKVClient(cc).Delete(ctx, req)
	})
}

// Txn runs a transaction. It is treated as a write even when both branches
// only read. An error that wraps ErrOutcomeUnknown means the transaction may
// have been applied.
func (c *Client) Txn(ctx context.Context, req *kvpb.TxnRequest) (*kvpb.TxnResponse, error) {
	return invoke(ctx, c, "txn", true, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.TxnResponse, error) {
		return kvpb.NewKVClient(cc).Txn(ctx, req)
	})
}

// MemberList returns the raft configuration as seen by any reachable node.
func (c *Client) MemberList(ctx context.Context) (*kvpb.MemberListResponse, error) {
	return invoke(ctx, c, "member list", false, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.MemberListResponse, error) {
		return kvpb.NewAdminClient(cc).MemberList(ctx, &kvpb.MemberListRequest{})
	})
}

// Status asks one specific node for its status, with a single try: it is a
// probe of that node, so it neither retries nor moves to another endpoint.
// endpoint need not be in the pool and is not added to it.
func (c *Client) Status(ctx context.Context, endpoint string) (*kvpb.StatusResponse, error) {
	cc, err := c.conn(endpoint)
	if err != nil {
		return nil, err
	}
	resp, err := kvpb.NewAdminClient(cc).Status(ctx, &kvpb.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", endpoint, err)
	}
	return resp, nil
}

// StateHash asks one specific node for the hash of its replicated state, with
// a single try, like Status. The store is read whole, so this is for
// consistency checks, not for polling loops.
func (c *Client) StateHash(ctx context.Context, endpoint string) (*kvpb.StateHashResponse, error) {
	cc, err := c.conn(endpoint)
	if err != nil {
		return nil, err
	}
	resp, err := kvpb.NewAdminClient(cc).StateHash(ctx, &kvpb.StateHashRequest{})
	if err != nil {
		return nil, fmt.Errorf("state hash %s: %w", endpoint, err)
	}
	return resp, nil
}

// conn returns the connection to ep, creating it on first use.
func (c *Client) conn(ep string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connLocked(ep)
}

func (c *Client) connLocked(ep string) (*grpc.ClientConn, error) {
	if c.closed {
		return nil, ErrClosed
	}
	if cc, ok := c.conns[ep]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(ep, c.dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", ep, err)
	}
	c.conns[ep] = cc
	return cc, nil
}

// first returns the endpoint a request starts at.
func (c *Client) first(write bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case write && c.leader != "":
		return c.leader
	case c.sticky != "":
		return c.sticky
	case c.leader != "":
		return c.leader
	}
	return c.pool[0]
}

// succeeded records that ep answered a request.
func (c *Client) succeeded(ep string, write bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sticky = ep
	if write {
		c.leader = ep
	}
}

// learnLeader records a leader hint, adding addr to the pool if it is new.
func (c *Client) learnLeader(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.pool, addr) {
		c.pool = append(c.pool, addr)
	}
	c.leader = addr
}

// failed forgets ep as sticky endpoint and leader, and returns the endpoint
// after it in the pool.
func (c *Client) failed(ep string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sticky == ep {
		c.sticky = ""
	}
	if c.leader == ep {
		c.leader = ""
	}
	i := slices.Index(c.pool, ep)
	return c.pool[(i+1)%len(c.pool)] // i == -1 (unknown ep) starts over at pool[0]
}
