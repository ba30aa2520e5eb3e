package transport

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/raftkv/raftkv/api/kvpb"
)

func fmtInvalid(msg string) error { return fmt.Errorf("%w: %s", ErrInvalidArgument, msg) }

// Peers keeps one long-lived gRPC connection per peer address, used to
// forward requests to the leader. Connections are created on first use and
// reused by every request, so forwarding costs no dial.
type Peers struct {
	opts  []grpc.DialOption
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewPeers returns an empty pool. opts are extra dial options (the seam for
// TLS credentials); without transport credentials the pool dials plaintext.
func NewPeers(opts ...grpc.DialOption) *Peers {
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
	}
	return &Peers{opts: append(base, opts...), conns: make(map[string]*grpc.ClientConn)}
}

func (p *Peers) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to peer %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// KV returns a KV client for the peer at addr.
func (p *Peers) KV(addr string) (kvpb.KVClient, error) {
	c, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	return kvpb.NewKVClient(c), nil
}

// Admin returns an Admin client for the peer at addr.
func (p *Peers) Admin(addr string) (kvpb.AdminClient, error) {
	c, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	return kvpb.NewAdminClient(c), nil
}

// Internal returns an Internal client for the peer at addr.
func (p *Peers) Internal(addr string) (kvpb.InternalClient, error) {
	c, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	return kvpb.NewInternalClient(c), nil
}

// Close closes every connection.
func (p *Peers) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for addr, c := range p.conns {
		if err := c.Close(); err != nil && first == nil {
			first = fmt.Errorf("close peer %s: %w", addr, err)
		}
		delete(p.conns, addr)
	}
	return first
}
