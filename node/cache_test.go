package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/node/nodetest"
)

const (
	lin = kvpb.Consistency_CONSISTENCY_LINEARIZABLE
	ser = kvpb.Consistency_CONSISTENCY_SERIALIZABLE
)

func ctx10s(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// localStats returns member i's local cache tier stats.
func localStats(t testing.TB, c *nodetest.Cluster, i int) *kvpb.CacheTierStats {
	t.Helper()
	st, err := c.Members[i].Node.Status(context.Background())
	if err != nil {
		t.Fatalf("Status(%d): %v", i, err)
	}
	for _, tier := range st.GetCache() {
		if tier.GetTier() == "local" {
			return tier
		}
	}
	t.Fatalf("Status(%d): no local cache tier in %v", i, st.GetCache())
	return nil
}

func mustGet(t testing.TB, cl *client.Client, key string, cons kvpb.Consistency, noCache bool) *kvpb.GetResponse {
	t.Helper()
	resp, err := cl.Get(ctx10s(t), &kvpb.GetRequest{Key: []byte(key), Consistency: cons, NoCache: noCache})
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return resp
}

func mustPut(t testing.TB, cl *client.Client, key, value string) int64 {
	t.Helper()
	resp, err := cl.Put(ctx10s(t), &kvpb.PutRequest{Key: []byte(key), Value: []byte(value)})
	if err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
	return resp.GetHeader().GetRevision()
}

// TestCacheCoherentOnEveryNode: after each kind of write, every node's
// cached answer is the new one, for linearizable and (once applied there)
// serializable reads, and a cached read is really served from the cache.
func TestCacheCoherentOnEveryNode(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	cl := c.Client()
	clients := []*client.Client{c.Client(0), c.Client(1), c.Client(2)}
	// value reads key from every node at both levels, twice (the second
	// from the cache), and checks all agree on want ("" = not found).
	value := func(step, key, want string, rev int64) {
		t.Helper()
		c.WaitForApplied(uint64(rev))
		for i, ncl := range clients {
			for _, cons := range []kvpb.Consistency{lin, ser} {
				for pass := 0; pass < 2; pass++ {
					resp := mustGet(t, ncl, key, cons, false)
					got := ""
					if resp.GetFound() {
						got = string(resp.GetKv().GetValue())
					}
					if got != want {
						t.Fatalf("%s: node %d %v pass %d: Get(%s) = %q, want %q", step, i, cons, pass, key, got, want)
					}
				}
			}
		}
	}
	rev := mustPut(t, cl, "a", "1")
	value("put", "a", "1", rev)
	before := localStats(t, c, 0).GetHits()
	mustGet(t, clients[0], "a", ser, false)
	if got := localStats(t, c, 0).GetHits(); got != before+1 {
		t.Fatalf("a second serializable Get on node 0: cache hits %d -> %d, want +1", before, got)
	}
	mustGet(t, clients[0], "a", ser, true)
	if got := localStats(t, c, 0).GetHits(); got != before+1 {
		t.Fatalf("a no_cache Get on node 0: cache hits %d -> %d, want unchanged", before+1, got)
	}

	rev = mustPut(t, cl, "a", "2")
	value("overwrite", "a", "2", rev)

	resp, err := cl.Txn(ctx10s(t), &kvpb.TxnRequest{
		Compare: []*kvpb.Compare{{Key: []byte("a"), Result: kvpb.Compare_EQUAL, Target: kvpb.Compare_VALUE, TargetUnion: &kvpb.Compare_Value{Value: []byte("2")}}},
		Success: []*kvpb.RequestOp{
			{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: []byte("a"), Value: []byte("x")}}},
			{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: []byte("a"), Value: []byte("3")}}},
		},
	})
	if err != nil || !resp.GetSucceeded() {
		t.Fatalf("Txn: %v, succeeded %v", err, resp.GetSucceeded())
	}
	value("txn writing the key twice", "a", "3", resp.GetHeader().GetRevision())

	d, err := cl.Delete(ctx10s(t), &kvpb.DeleteRequest{Key: []byte("a")})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	value("delete", "a", "", d.GetHeader().GetRevision())
	rev = mustPut(t, cl, "a", "4")
	value("recreate", "a", "4", rev)

	mustPut(t, cl, "p/1", "x")
	rev = mustPut(t, cl, "p/2", "y")
	value("prefix put", "p/1", "x", rev)
	value("prefix put", "p/2", "y", rev)
	d, err = cl.Delete(ctx10s(t), &kvpb.DeleteRequest{Key: []byte("p/"), Prefix: true})
	if err != nil || d.GetDeleted() != 2 {
		t.Fatalf("Delete prefix: %v, deleted %d", err, d.GetDeleted())
	}
	value("prefix delete", "p/1", "", d.GetHeader().GetRevision())
	value("prefix delete", "p/2", "", d.GetHeader().GetRevision())
	value("prefix delete leaves others", "a", "4", d.GetHeader().GetRevision())

	// A single-key Range is served like Get; keys_only and count_only shape
	// the answer the same way the store does.
	rr, err := clients[1].Range(ctx10s(t), &kvpb.RangeRequest{Key: []byte("a"), Consistency: ser, KeysOnly: true})
	if err != nil || rr.GetCount() != 1 || len(rr.GetKvs()) != 1 || rr.GetKvs()[0].GetValue() != nil || string(rr.GetKvs()[0].GetKey()) != "a" {
		t.Fatalf("Range(a, keys_only) = %v, %v; want the key without its value", rr, err)
	}
	rr, err = clients[1].Range(ctx10s(t), &kvpb.RangeRequest{Key: []byte("a"), Consistency: ser, CountOnly: true})
	if err != nil || rr.GetCount() != 1 || len(rr.GetKvs()) != 0 {
		t.Fatalf("Range(a, count_only) = %v, %v; want count 1 and no kvs", rr, err)
	}
}

// TestCacheConcurrentMonotonic races writers and readers on a few hot keys
// through a real 3-node cluster with the cache on, and a cache small enough
// to evict. Every reader checks that the revisions it sees for a key never
// go backwards, and a linearizable read never returns an older revision
// than one already acknowledged to any writer before the read started.
func TestCacheConcurrentMonotonic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	const (
		hotKeys  = 4
		writers  = 4
		readers  = 8
		duration = 4 * time.Second
	)
	c := nodetest.NewCluster(t, 3, func(cfg *nodetest.NodeConfig) {
		cfg.Cache.MaxBytes = 16 << 10 // hot keys plus cold churn: evictions happen
		// Production raft timings: the harness's short ones make a leader
		// on a loaded machine (race detector, 2 cores) step down, which
		// tests nothing about the cache.
		def := nodetest.ProductionTimings()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, cfg.CommitTimeout =
			def.HeartbeatTimeout, def.ElectionTimeout, def.LeaderLeaseTimeout, def.CommitTimeout
	})
	leaderCl := c.Client()
	var acked [hotKeys]atomic.Int64 // highest acknowledged mod revision per key
	hot := func(k int) []byte { return fmt.Appendf(nil, "hot/%d", k) }
	var initRev int64
	for k := 0; k < hotKeys; k++ {
		initRev = mustPut(t, leaderCl, string(hot(k)), "init")
		acked[k].Store(initRev)
	}
	// Serializable readers on followers must not start before the keys
	// exist there; from then on no hot key is ever deleted.
	c.WaitForApplied(uint64(initRev))

	deadline := time.Now().Add(duration)
	var (
		wg       sync.WaitGroup
		failures = make(chan string, 16)
		reads    atomic.Int64
		writes   atomic.Int64
	)
	fail := func(format string, args ...any) {
		select {
		case failures <- fmt.Sprintf(format, args...):
		default:
		}
	}
	raise := func(k int, rev int64) {
		for {
			cur := acked[k].Load()
			if rev <= cur || acked[k].CompareAndSwap(cur, rev) {
				return
			}
		}
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cl := c.Client(w % 3) // followers forward
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; time.Now().Before(deadline); i++ {
				k := rng.IntN(hotKeys)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var rev int64
				var err error
				switch rng.IntN(10) {
				case 0: // a Txn writing the key twice
					var resp *kvpb.TxnResponse
					resp, err = cl.Txn(ctx, &kvpb.TxnRequest{Success: []*kvpb.RequestOp{
						{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: hot(k), Value: []byte("intermediate")}}},
						{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: hot(k), Value: fmt.Appendf(nil, "w%d-%d", w, i)}}},
					}})
					rev = resp.GetHeader().GetRevision()
				case 1: // churn and range deletes on cold keys, to exercise eviction and fences
					_, err = cl.Put(ctx, &kvpb.PutRequest{Key: fmt.Appendf(nil, "cold/%d/%d", w, i%50), Value: make([]byte, 512)})
					if err == nil && i%20 == 0 {
						_, err = cl.Delete(ctx, &kvpb.DeleteRequest{Key: fmt.Appendf(nil, "cold/%d/", w), Prefix: true})
					}
				default:
					var resp *kvpb.PutResponse
					resp, err = cl.Put(ctx, &kvpb.PutRequest{Key: hot(k), Value: fmt.Appendf(nil, "w%d-%d", w, i)})
					rev = resp.GetHeader().GetRevision()
				}
				cancel()
				if errors.Is(err, client.ErrOutcomeUnknown) {
					continue // may or may not be applied: not acknowledged
				}
				if err != nil {
					fail("writer %d: %v", w, err)
					return
				}
				writes.Add(1)
				if rev > 0 {
					raise(k, rev)
				}
			}
		}(w)
	}
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			// Even readers are linearizable through any node; odd ones are
			// serializable and pinned to one node (serializable reads are
			// only monotonic per node).
			cons, cl := lin, c.Client()
			if r%2 == 1 {
				cons, cl = ser, c.Client(r%3)
			}
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			var seen [hotKeys]int64
			for time.Now().Before(deadline) {
				k := rng.IntN(hotKeys)
				floor := acked[k].Load()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var key []byte
				if rng.IntN(8) == 0 {
					key = fmt.Appendf(nil, "cold/%d/%d", rng.IntN(writers), rng.IntN(50))
				} else {
					key = hot(k)
				}
				resp, err := cl.Get(ctx, &kvpb.GetRequest{Key: key, Consistency: cons})
				cancel()
				if err != nil {
					fail("reader %d (%v): Get(%s): %v", r, cons, key, err)
					return
				}
				reads.Add(1)
				if key[0] == 'c' {
					continue
				}
				if !resp.GetFound() {
					fail("reader %d (%v): hot key %d not found", r, cons, k)
					return
				}
				kv := resp.GetKv()
				if string(kv.GetValue()) == "intermediate" {
					fail("reader %d (%v): key %d: saw a Txn's intermediate value at revision %d", r, cons, k, kv.GetModRevision())
					return
				}
				if mod := kv.GetModRevision(); mod < seen[k] {
					fail("reader %d (%v): key %d went back from revision %d to %d", r, cons, k, seen[k], mod)
					return
				} else {
					seen[k] = mod
				}
				if cons == lin && kv.GetModRevision() < floor {
					fail("reader %d: linearizable Get of key %d returned revision %d, but %d was acknowledged before the read started",
						r, k, kv.GetModRevision(), floor)
					return
				}
			}
		}(r)
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	var hits, misses, evictions uint64
	for i := range c.Members {
		s := localStats(t, c, i)
		hits, misses, evictions = hits+s.GetHits(), misses+s.GetMisses(), evictions+s.GetEvictions()
		if s.GetBytes() > s.GetMaxBytes() {
			t.Errorf("node %d: cache bytes %d over the bound %d", i, s.GetBytes(), s.GetMaxBytes())
		}
	}
	t.Logf("%d reads, %d writes in %s; cache hits %d, misses %d, evictions %d", reads.Load(), writes.Load(), duration, hits, misses, evictions)
	if hits == 0 {
		t.Errorf("no cache hits: the test exercised nothing")
	}
}

// TestCacheOff: with --cache-size 0 there is no cache tier and reads work.
func TestCacheOff(t *testing.T) {
	c := nodetest.NewCluster(t, 1, func(cfg *nodetest.NodeConfig) { cfg.Cache.MaxBytes = 0 })
	cl := c.Client()
	mustPut(t, cl, "k", "v")
	if got := mustGet(t, cl, "k", ser, false); string(got.GetKv().GetValue()) != "v" {
		t.Fatalf("Get = %v, want v", got)
	}
	st, err := c.Members[0].Node.Status(context.Background())
	if err != nil || len(st.GetCache()) != 0 {
		t.Fatalf("Status().Cache = %v, %v; want no tiers", st.GetCache(), err)
	}
}
