package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/node/nodetest"
)

// TestPutsCoalesce holds the leader's coalescing slots while Puts queue up
// (sent to the leader and forwarded by a follower), then frees one: the
// queued Puts commit as one log entry and share its revision, except a
// second Put of the same key, which waits for the next entry. Every Put
// gets its own response and every key its own value.
func TestPutsCoalesce(t *testing.T) {
	c := nodetest.NewCluster(t, 3, func(cfg *nodetest.NodeConfig) { cfg.CoalesceInflight = 2 })
	leader := c.Leader()
	ln := c.Members[leader].Node
	slots := ln.CoalescerSlots()
	for i := 0; i < cap(slots); i++ {
		slots <- struct{}{}
	}
	released := false
	defer func() {
		if !released {
			<-slots
		}
		<-slots
	}()

	clients := []*client.Client{c.Client(leader), c.Client(c.Followers()[0])}
	const distinct = 20
	type result struct {
		key, val string
		rev      int64
		err      error
	}
	results := make(chan result, distinct+2)
	var wg sync.WaitGroup
	send := func(i int, k, v string) {
		defer wg.Done()
		resp, err := clients[i%2].Put(ctxT(t, 20*time.Second), &kvpb.PutRequest{Key: []byte(k), Value: []byte(v)})
		results <- result{key: k, val: v, rev: resp.GetHeader().GetRevision(), err: err}
	}
	wg.Add(distinct + 1)
	for i := 0; i < distinct; i++ {
		go send(i, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d", i))
	}
	go send(0, "dup", "first")
	// The coalescer holds one Put while it waits for a slot; the rest wait
	// in the queue. The second "dup" goes in last, so it is the repeat.
	c.Eventually("puts queued", func() error {
		if got := ln.CoalescerQueued(); got != distinct {
			return fmt.Errorf("%d puts queued, want %d", got, distinct)
		}
		return nil
	})
	wg.Add(1)
	go send(1, "dup", "second")
	c.Eventually("repeat queued", func() error {
		if got := ln.CoalescerQueued(); got != distinct+1 {
			return fmt.Errorf("%d puts queued, want %d", got, distinct+1)
		}
		return nil
	})
	<-slots
	released = true
	wg.Wait()
	close(results)

	revs := map[int64]int{}
	var dupRevs []int64
	byKey := map[string]result{}
	for r := range results {
		if r.err != nil {
			t.Fatalf("put %s: %v", r.key, r.err)
		}
		revs[r.rev]++
		if r.key == "dup" {
			dupRevs = append(dupRevs, r.rev)
		}
		if prev, ok := byKey[r.key]; !ok || r.rev > prev.rev {
			byKey[r.key] = r
		}
	}
	if len(revs) != 2 || len(dupRevs) != 2 || dupRevs[0] == dupRevs[1] {
		t.Fatalf("revisions %v (dup at %v): want the %d first puts at one revision and the repeated key at another", revs, dupRevs, distinct+1)
	}
	for rev, n := range revs {
		if n != distinct+1 && n != 1 {
			t.Errorf("%d puts at revision %d: want %d or 1", n, rev, distinct+1)
		}
	}
	if byKey["dup"].val != "second" {
		t.Errorf("dup's latest revision %d holds %q; the queue order says \"second\"", byKey["dup"].rev, byKey["dup"].val)
	}
	cl := c.Client(leader)
	for k, r := range byKey {
		resp, err := cl.Get(ctxT(t, 10*time.Second), &kvpb.GetRequest{Key: []byte(k)})
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		kv := resp.GetKv()
		if string(kv.GetValue()) != r.val || kv.GetModRevision() != r.rev {
			t.Errorf("get %s = %q at mod_revision %d, want %q at %d", k, kv.GetValue(), kv.GetModRevision(), r.val, r.rev)
		}
	}
}

// TestCoalescedPutsAcrossLeaderIsolation keeps 32 writers busy while the
// leader is cut off and a new one takes over, so batches of Puts are in
// flight when leadership is lost. Afterwards every acknowledged Put is on
// every node with its value, no key appears that was never written, and
// the nodes converge. Batches that lost their leader must report their
// Puts as failed or unknown, never as done.
func TestCoalescedPutsAcrossLeaderIsolation(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	old := c.Leader()
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		tried = map[string]bool{}
	)
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		cl := c.Client(w % 3)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w/%02d/%05d", w, n)
				mu.Lock()
				tried[k] = true
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := cl.Put(ctx, &kvpb.PutRequest{Key: []byte(k), Value: []byte("v" + k)})
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = true
					mu.Unlock()
				}
			}
		}()
	}
	waitAcked := func(n int) {
		c.Eventually(fmt.Sprintf("%d acknowledged puts", n), func() error {
			if got := ackedCount(); got < n {
				return fmt.Errorf("%d acknowledged", got)
			}
			return nil
		})
	}

	waitAcked(300)
	// The writers must really share entries, or this tests nothing new.
	ms := scrape(t, c, old)["raftkv_raft_coalesced_puts"].GetMetric()
	if len(ms) != 1 {
		t.Fatalf("leader exports %d raftkv_raft_coalesced_puts series, want 1", len(ms))
	}
	h := ms[0].GetHistogram()
	if h.GetSampleSum() <= float64(h.GetSampleCount()) {
		t.Fatalf("leader proposed %v puts in %d entries: no batch of more than one", h.GetSampleSum(), h.GetSampleCount())
	}
	c.Partition(old)
	var next int
	c.Eventually("a new leader among the others", func() error {
		for i, m := range c.Members {
			if i != old && m.Node.IsLeader() {
				next = i
				return nil
			}
		}
		return fmt.Errorf("no leader among the connected members")
	})
	waitAcked(ackedCount() + 300)
	c.Heal(old)
	c.Eventually("the old leader follows", func() error {
		if _, id := c.Members[old].Node.Raft().LeaderWithID(); string(id) != c.Members[next].ID {
			return fmt.Errorf("%s follows %q, want %s", c.Members[old].ID, id, c.Members[next].ID)
		}
		return nil
	})
	waitAcked(ackedCount() + 300)
	close(stop)
	wg.Wait()
	c.WaitForConvergence()

	for i := range c.Members {
		resp, err := c.Client(i).Range(ctxT(t, 10*time.Second), &kvpb.RangeRequest{Key: []byte("w/"), Prefix: true,
			Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
		if err != nil {
			t.Fatalf("range on %s: %v", c.Members[i].ID, err)
		}
		have := map[string]bool{}
		for _, kv := range resp.GetKvs() {
			k := string(kv.GetKey())
			have[k] = true
			if string(kv.GetValue()) != "v"+k {
				t.Errorf("%s: %s = %q, want %q", c.Members[i].ID, k, kv.GetValue(), "v"+k)
			}
			if !tried[k] {
				t.Errorf("%s: %s was never written", c.Members[i].ID, k)
			}
		}
		lost := 0
		for k := range acked {
			if !have[k] {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%s lacks %d of %d acknowledged puts", c.Members[i].ID, lost, len(acked))
		}
	}
	t.Logf("%d puts acknowledged of %d tried", len(acked), len(tried))
}
