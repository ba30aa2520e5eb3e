package nodetest

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// faultNet is the raft peer network of an in-process cluster. Every raft
// connection is dialed and accepted through it, so it can cut a node off:
// a partitioned node's connections are closed and new ones refused, in both
// directions.
type faultNet struct {
	mu      sync.Mutex
	blocked map[string]bool              // raft addr -> partitioned
	conns   map[string]map[net.Conn]bool // raft addr -> live conns touching it
}

func newFaultNet() *faultNet {
	return &faultNet{blocked: map[string]bool{}, conns: map[string]map[net.Conn]bool{}}
}

func (f *faultNet) track(addrs []string, c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, net: f, addrs: addrs}
	for _, a := range addrs {
		if f.conns[a] == nil {
			f.conns[a] = map[net.Conn]bool{}
		}
		f.conns[a][tc] = true
	}
	return tc
}

// dialer returns the raft dial function of the node at self.
func (f *faultNet) dialer(self string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		f.mu.Lock()
		blocked := f.blocked[self] || f.blocked[addr]
		f.mu.Unlock()
		if blocked {
			return nil, fmt.Errorf("nodetest: %s -> %s partitioned", self, addr)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.blocked[self] || f.blocked[addr] {
			c.Close()
			return nil, fmt.Errorf("nodetest: %s -> %s partitioned", self, addr)
		}
		return f.track([]string{self, addr}, c), nil
	}
}

// listener wraps the raft listener of the node at self.
func (f *faultNet) listener(self string, ln net.Listener) net.Listener {
	return &faultListener{Listener: ln, net: f, self: self}
}

func (f *faultNet) setBlocked(addr string, blocked bool) {
	f.mu.Lock()
	f.blocked[addr] = blocked
	var toClose []net.Conn
	if blocked {
		for c := range f.conns[addr] {
			toClose = append(toClose, c)
		}
	}
	f.mu.Unlock()
	for _, c := range toClose {
		c.Close()
	}
}

type faultListener struct {
	net.Listener
	net  *faultNet
	self string
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.net.mu.Lock()
		if l.net.blocked[l.self] {
			l.net.mu.Unlock()
			c.Close()
			continue
		}
		tc := l.net.track([]string{l.self}, c)
		l.net.mu.Unlock()
		return tc, nil
	}
}

type trackedConn struct {
	net.Conn
	net   *faultNet
	addrs []string
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.net.mu.Lock()
		for _, a := range c.addrs {
			delete(c.net.conns[a], c)
		}
		c.net.mu.Unlock()
	})
	return c.Conn.Close()
}
