package node_test

import (
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
