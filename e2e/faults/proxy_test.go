package faults

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// linkMode is what a link does with the bytes it carries.
type linkMode int

const (
	// modePass forwards bytes, subject to the link's delay and drop.
	modePass linkMode = iota
	// modeBlackhole accepts connections and holds them, forwarding nothing
	// in either direction: what a firewall that drops every packet looks
	// like to TCP. Bytes already read are held, not discarded, and delivered
	// in order after the link heals, as TCP retransmission would; an end
	// that gives up in the meantime closes its connection.
	modeBlackhole
)

// linkFaults is the fault state of one directed link.
type linkFaults struct {
	mode linkMode
	// delay and jitter: every chunk is delivered delay ± jitter (uniform)
	// after it was read, in order.
	delay, jitter time.Duration
	// drop is the probability that a chunk is "lost". See (*link).due.
	drop float64
}

func (f linkFaults) String() string {
	switch {
	case f.mode == modeBlackhole:
		return "blackhole"
	case f.delay == 0 && f.jitter == 0 && f.drop == 0:
		return "pass"
	}
	return fmt.Sprintf("delay %v±%v drop %.0f%%", f.delay, f.jitter, f.drop*100)
}

const (
	// proxyChunk is the largest read the proxy forwards as one chunk.
	proxyChunk = 32 << 10
	// tcpRTO is the retransmission timeout a dropped chunk costs: Linux's
	// minimum RTO.
	tcpRTO = 200 * time.Millisecond
	// resetShare is the fraction of drops that also reset the connection.
	resetShare = 0.05
)

// link is an in-test TCP proxy for one directed raft link A->B: A dials
// link.addr() instead of B's raft address (raftkvd --raft-peer-override),
// and the link connects to B. Raft's NetworkTransport sends A's requests and
// B's responses over connections A dials, so a link carries one direction of
// RPCs; B->A is a separate link. Faults apply to both byte directions of the
// link's connections: cutting A->B cuts A's RPCs to B and their answers,
// while B's RPCs to A (on the B->A link) keep flowing.
//
// What a "dropped packet" means here: TCP never loses bytes, it retransmits
// them after a retransmission timeout, and everything sent behind the lost
// segment waits for it (head-of-line blocking). So with probability drop a
// chunk is delivered one RTO (200 ms) late, doubling for each further loss
// of the same chunk (exponential backoff); chunks behind it are held until
// it is delivered, so a loss delays the stream once rather than adding up
// forever. A small share of drops (resetShare) also resets the connection,
// as a TCP stack does when retransmissions give up or a middlebox drops
// state; raft then redials.
type link struct {
	name   string // "n1->n2"
	target string // B's raft address
	ln     net.Listener
	logger *slog.Logger

	mu     sync.Mutex
	faults linkFaults
	// changed is closed and replaced whenever faults change, waking pumps
	// that hold data for a blackholed link.
	changed chan struct{}
	conns   map[*proxyConn]struct{}
	closed  bool
	rng     *rand.Rand
	stats   linkStats
	wg      sync.WaitGroup
}

// linkStats counts what a link did, for the scenario log.
type linkStats struct {
	conns, chunks, drops, resets int
}

// newLink starts a proxy on 127.0.0.1:0 forwarding to target.
func newLink(name, target string, seed uint64, logger *slog.Logger) (*link, error) {
	ln, err := listenFresh()
	if err != nil {
		return nil, fmt.Errorf("listen for link %s: %w", name, err)
	}
	l := &link{
		name: name, target: target, ln: ln, logger: logger.With("link", name),
		changed: make(chan struct{}),
		conns:   map[*proxyConn]struct{}{},
		rng:     rand.New(rand.NewPCG(seed, 0x6c696e6b)),
	}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

func (l *link) addr() string { return l.ln.Addr().String() }

// set changes the link's faults; it applies to live connections at once.
func (l *link) set(f linkFaults) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.faults != f {
		l.logger.Debug("link faults", "from", l.faults.String(), "to", f.String())
	}
	l.faults = f
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *link) get() linkFaults {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.faults
}

// close stops accepting, closes every connection and waits for the pumps.
func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*proxyConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	_ = l.ln.Close()
	for _, c := range conns {
		c.close()
	}
	l.wg.Wait()
}

func (l *link) accept() {
	defer l.wg.Done()
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return // listener closed
		}
		l.wg.Add(1)
		go l.serve(in)
	}
}

// serve connects one accepted connection to the target and pumps both ways.
func (l *link) serve(in net.Conn) {
	defer l.wg.Done()
	// A blackholed link accepts and holds, so the dialer sees a connection
	// that never answers; the target is dialed only once bytes may flow.
	if !l.waitPass() {
		in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", l.target, 2*time.Second)
	if err != nil {
		// The target is down: close, as a refused connection would look
		// through a real network path.
		in.Close()
		return
	}
	pc := &proxyConn{in: in, out: out, done: make(chan struct{})}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		pc.close()
		return
	}
	l.conns[pc] = struct{}{}
	l.stats.conns++
	l.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pump(pc, in, out) }()
	go func() { defer wg.Done(); l.pump(pc, out, in) }()
	wg.Wait()
	pc.close()
	l.mu.Lock()
	delete(l.conns, pc)
	l.mu.Unlock()
}

// waitPass blocks while the link is blackholed, holding the accepted
// connection unread. It returns false if the link closed. A dialer that
// gave up meanwhile is noticed after the heal: its side reads EOF.
func (l *link) waitPass() bool {
	for {
		l.mu.Lock()
		mode, closed, changed := l.faults.mode, l.closed, l.changed
		l.mu.Unlock()
		if closed {
			return false
		}
		if mode != modeBlackhole {
			return true
		}
		<-changed
	}
}

// chunk is bytes read from one side, due for delivery at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pump copies src to dst through the link's faults: a reader goroutine
// stamps each chunk with its delivery time, this goroutine delivers chunks
// in order when they are due and the link is not blackholed.
func (l *link) pump(pc *proxyConn, src, dst net.Conn) {
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		var last time.Time
		for {
			buf := make([]byte, proxyChunk)
			n, err := src.Read(buf)
			if n > 0 {
				due, reset := l.due(last)
				last = due
				if reset {
					pc.close()
					return
				}
				q <- chunk{b: buf[:n], due: due}
			}
			if err != nil {
				return
			}
		}
	}()
	defer pc.close()
	for c := range q {
		if d := time.Until(c.due); d > 0 {
			// Delivering late is the fault being injected, not a wait for
			// a condition.
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-pc.done:
				t.Stop()
				return
			}
		}
		if !l.holdWhileBlackholed(pc) {
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

// due returns when a chunk read now is delivered, given the previous
// chunk's delivery time (delivery stays in order), and whether the
// connection is reset instead.
func (l *link) due(prev time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.faults
	l.stats.chunks++
	d := f.delay
	if f.jitter > 0 {
		d += time.Duration(l.rng.Int64N(int64(2*f.jitter))) - f.jitter
	}
	if f.drop > 0 {
		rto := tcpRTO
		for l.rng.Float64() < f.drop {
			l.stats.drops++
			if l.rng.Float64() < resetShare {
				l.stats.resets++
				return time.Time{}, true
			}
			d += rto
			rto *= 2
		}
	}
	due := time.Now().Add(max(d, 0))
	if due.Before(prev) {
		due = prev
	}
	return due, false
}

// holdWhileBlackholed blocks while the link is blackholed; false means the
// connection or link closed meanwhile.
func (l *link) holdWhileBlackholed(pc *proxyConn) bool {
	for {
		l.mu.Lock()
		mode, closed, changed := l.faults.mode, l.closed, l.changed
		l.mu.Unlock()
		if closed {
			return false
		}
		if mode != modeBlackhole {
			return true
		}
		select {
		case <-changed:
		case <-pc.done:
			return false
		}
	}
}

func (l *link) statsSnapshot() linkStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// proxyConn is one proxied connection: the accepted side and the dialed
// side, closed together.
type proxyConn struct {
	in, out net.Conn
	once    sync.Once
	done    chan struct{}
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
		close(pc.done)
		pc.in.Close()
		pc.out.Close()
	})
}

var (
	usedAddrsMu sync.Mutex
	usedAddrs   = map[string]bool{}
)

// listenFresh listens on a 127.0.0.1 port that no earlier call in this test
// process got, and records it. Node addresses are picked by listening and
// closing (freeAddr), so without this a proxy could be given the port a
// node is about to bind.
func listenFresh() (net.Listener, error) {
	usedAddrsMu.Lock()
	defer usedAddrsMu.Unlock()
	var rejected []net.Listener
	defer func() {
		for _, ln := range rejected {
			ln.Close()
		}
	}()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		if addr := ln.Addr().String(); !usedAddrs[addr] {
			usedAddrs[addr] = true
			return ln, nil
		}
		// Held open until a fresh port is found, so the kernel can't
		// hand this one out again meanwhile.
		rejected = append(rejected, ln)
	}
}
