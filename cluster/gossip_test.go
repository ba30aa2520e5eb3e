package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testGossip(t *testing.T, id string, key []byte, join ...string) *gossip {
	t.Helper()
	cfg := DefaultConfig()
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.GossipProfile = "local"
	cfg.Key = key
	logs := &syncBuffer{}
	g, err := newGossip(cfg, Meta{ID: id, GRPCAddr: "127.0.0.1:1", RaftAddr: id + ":2", Version: "test", Boot: NewBootID()},
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("start gossip %s: %v", id, err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.joinLoop(stop, join, Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond})
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		_ = g.shutdown()
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", id, logs.String())
		}
	})
	return g
}

// waitMembers waits until g sees exactly want (name=status, sorted).
func waitMembers(t *testing.T, g *gossip, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ch := g.changes()
		var got []string
		for _, m := range g.memberList() {
			got = append(got, fmt.Sprintf("%s=%s", m.Name, m.Status))
		}
		if strings.Join(got, ",") == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("members = %s, want %s", strings.Join(got, ","), want)
		case <-ch:
		}
	}
}

func TestGossipJoinLeaveAndKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a := testGossip(t, "a", key)
	b := testGossip(t, "b", key, a.addr())
	waitMembers(t, a, "a=alive,b=alive")
	waitMembers(t, b, "a=alive,b=alive")

	// Wrong key: the joiner keeps retrying and never gets in; the cluster
	// never sees it.
	wrong := testGossip(t, "w", bytes.Repeat([]byte{8}, 32), a.addr())
	noKey := testGossip(t, "x", nil, b.addr())
	c := testGossip(t, "c", key, b.addr())
	waitMembers(t, a, "a=alive,b=alive,c=alive")
	waitMembers(t, wrong, "w=alive")
	waitMembers(t, noKey, "x=alive")

	// A graceful leave is "left", not "failed".
	c.metaLeaving(t)
	if err := c.leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "a=alive,b=alive,c=left")
	waitMembers(t, wrong, "w=alive")
}

func (g *gossip) metaLeaving(t *testing.T) {
	t.Helper()
	if err := g.updateMeta(Meta{ID: "c", GRPCAddr: "127.0.0.1:1", RaftAddr: "c:2", Version: "test", Boot: "x", Leaving: true}); err != nil {
		t.Fatal(err)
	}
}

func TestGossipRestartedEmpty(t *testing.T) {
	a := testGossip(t, "a", nil)
	b := testGossip(t, "b", nil, a.addr())
	waitMembers(t, a, "a=alive,b=alive")
	// b restarts (new boot) without raft state: a marks it.
	if err := b.updateMeta(Meta{ID: "b", GRPCAddr: "127.0.0.1:1", RaftAddr: "b:2", Boot: "second", Fresh: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ch := a.changes()
		ms := a.memberList()
		if len(ms) == 2 && ms[1].RestartedEmpty {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("a never marked b restarted-empty: %+v", ms)
		case <-ch:
		}
	}
	a.clearRestartedEmpty("b")
	if a.memberList()[1].RestartedEmpty {
		t.Fatal("clearRestartedEmpty left the mark")
	}
}

func TestMemberlistLogLevels(t *testing.T) {
	var buf bytes.Buffer
	l := newMemberlistLogger(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l.Printf("[DEBUG] memberlist: chatter")
	l.Printf("[WARN] memberlist: something odd")
	l.Printf("[ERR] memberlist: broken")
	out := buf.String()
	if strings.Contains(out, "chatter") {
		t.Errorf("debug line logged at info level:\n%s", out)
	}
	if !strings.Contains(out, `level=WARN msg="something odd"`) || !strings.Contains(out, `level=ERROR msg=broken`) {
		t.Errorf("warn/error lines missing or at the wrong level:\n%s", out)
	}
}
