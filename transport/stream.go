package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// DialFunc opens a connection to a raft peer. Tests replace it to inject
// faults; production uses a net.Dialer.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// StreamConfig configures the raft peer port.
type StreamConfig struct {
	// Advertise is the address peers use to reach this node; defaults to the
	// listener's address.
	Advertise net.Addr
	// TLS, when set, wraps both accepted and dialed connections (the seam for
	// mTLS; nil means plain TCP).
	TLS *tls.Config
	// Dial overrides how peers are dialed; nil means a plain net.Dialer.
	Dial DialFunc
}

// StreamLayer implements raft.StreamLayer over a listener this package owns,
// so raft.NetworkTransport carries raft's own protocol on --raft-addr.
type StreamLayer struct {
	net.Listener
	advertise net.Addr
	tls       *tls.Config
	dial      DialFunc
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewStreamLayer wraps ln. The StreamLayer owns ln from now on: closing the
// raft transport closes it.
func NewStreamLayer(ln net.Listener, cfg StreamConfig) (*StreamLayer, error) {
	adv := cfg.Advertise
	if adv == nil {
		adv = ln.Addr()
	}
	if tcp, ok := adv.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft advertise address %s is unspecified: set an address peers can reach", adv)
	}
	dial := cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	return &StreamLayer{Listener: ln, advertise: adv, tls: cfg.TLS, dial: dial}, nil
}

// Addr returns the advertised address, which raft hands to peers.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Dial implements raft.StreamLayer.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := s.dial(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("dial raft peer %s: %w", address, err)
	}
	if s.tls == nil {
		return conn, nil
	}
	tconn := tls.Client(conn, s.tls)
	if err := tconn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake with raft peer %s: %w", address, err)
	}
	return tconn, nil
}
