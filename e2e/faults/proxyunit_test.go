package faults

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func newTestLink(t *testing.T) *link {
	t.Helper()
	l, err := newLink("a->b", echoServer(t), 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("newLink: %v", err)
	}
	t.Cleanup(l.close)
	return l
}

// roundTrip writes msg through the link and reads the echo, returning how
// long it took.
func roundTrip(t *testing.T, c net.Conn, msg []byte, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	_ = c.SetDeadline(start.Add(timeout))
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return 0, err
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo through link = %q, want %q", got, msg)
	}
	return time.Since(start), nil
}

func TestLinkPassDelayBlackhole(t *testing.T) {
	l := newTestLink(t)
	c, err := net.Dial("tcp", l.addr())
	if err != nil {
		t.Fatalf("dial link: %v", err)
	}
	defer c.Close()
	if _, err := roundTrip(t, c, []byte("hello"), 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}

	l.set(linkFaults{delay: 100 * time.Millisecond})
	// Each direction is delayed: a round trip takes at least 2x.
	if d, err := roundTrip(t, c, []byte("slow"), 2*time.Second); err != nil || d < 200*time.Millisecond {
		t.Fatalf("delay 100ms: round trip %v, %v; want >= 200ms", d, err)
	}

	l.set(linkFaults{mode: modeBlackhole})
	if _, err := roundTrip(t, c, []byte("held"), 300*time.Millisecond); err == nil {
		t.Fatal("blackhole: round trip succeeded, want a timeout")
	}
	// Held bytes are delivered after the heal, in order.
	l.set(linkFaults{})
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after heal: read %q, %v; want the held bytes", got, err)
	}

	// A connection dialed while blackholed is accepted and held.
	l.set(linkFaults{mode: modeBlackhole})
	c2, err := net.Dial("tcp", l.addr())
	if err != nil {
		t.Fatalf("dial blackholed link: %v (want accepted)", err)
	}
	defer c2.Close()
	if _, err := roundTrip(t, c2, []byte("x"), 300*time.Millisecond); err == nil {
		t.Fatal("new conn on blackholed link answered")
	}
	l.set(linkFaults{})
	_ = c2.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c2, got[:1]); err != nil || got[0] != 'x' {
		t.Fatalf("held new conn after heal: read %q, %v", got[:1], err)
	}
}

func TestLinkDropKeepsOrder(t *testing.T) {
	l := newTestLink(t)
	l.set(linkFaults{drop: 0.3})
	// Without resets a lossy link delivers every byte, in order, late.
	// Resets are part of the model, so redial when one happens.
	var stream bytes.Buffer
	for i := range 100 {
		stream.WriteByte(byte(i))
	}
	for attempt := 0; ; attempt++ {
		c, err := net.Dial("tcp", l.addr())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		ok := true
		for i := 0; i < stream.Len() && ok; i += 20 {
			if _, err := roundTrip(t, c, stream.Bytes()[i:i+20], 10*time.Second); err != nil {
				ok = false
			}
		}
		c.Close()
		if ok {
			break
		}
		if attempt > 20 {
			t.Fatal("every attempt was reset")
		}
	}
	if st := l.statsSnapshot(); st.drops == 0 {
		t.Fatalf("stats %+v: want some drops at 30%%", st)
	}
}
