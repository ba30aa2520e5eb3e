package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/cache/rediscache/redistest"
	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
	"github.com/raftkv/raftkv/node/nodetest"
)

// redisStats returns member i's redis tier stats.
func redisStats(t testing.TB, c *nodetest.Cluster, i int) *kvpb.CacheTierStats {
	t.Helper()
	st, err := c.Members[i].Node.Status(context.Background())
	if err != nil {
		t.Fatalf("Status(%d): %v", i, err)
	}
	for _, tier := range st.GetCache() {
		if tier.GetTier() == "redis" {
			return tier
		}
	}
	t.Fatalf("Status(%d): no redis tier in %v", i, st.GetCache())
	return nil
}

// ensureClusterID gives the cluster an id (the Redis namespace) if the
// leader has not yet: the first SetClusterID applied wins.
func ensureClusterID(t testing.TB, c *nodetest.Cluster) {
	t.Helper()
	b, err := fsm.EncodeCommand(&fsmpb.Command{Op: &fsmpb.Command_SetClusterId{SetClusterId: &fsmpb.SetClusterID{Id: "cache-test"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := c.Members[c.Leader()].Node.Raft().Apply(b, 10*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("apply SetClusterID: %v", err)
	}
	c.WaitForApplied(f.Index())
}

// redisKey finds the Redis key of a raftkv key, whatever the cluster id.
func redisKey(t testing.TB, rdb *redis.Client, key string) string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "raftkv:*:"+key).Result()
	if err != nil || len(keys) > 1 {
		t.Fatalf("KEYS raftkv:*:%s = %v, %v; want at most one", key, keys, err)
	}
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// TestCacheRedis runs the Redis tier behind a real 3-node cluster: fills
// from serializable reads, hits on other nodes, invalidation by the leader
// on write, the revision guard against a stale writer, node-side vetting of
// a value planted behind raft's back, the TTL, and Redis being killed.
func TestCacheRedis(t *testing.T) {
	srv := redistest.Start(t)
	c := nodetest.NewCluster(t, 3, func(cfg *nodetest.NodeConfig) {
		cfg.CacheRedis.URL = srv.URL
		cfg.CacheRedis.TTL = time.Minute
		cfg.CacheRedis.Timeout = time.Second // loaded CI machine
		cfg.CacheRedis.Backoff = 100 * time.Millisecond
	})
	ensureClusterID(t, c)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	leader := c.Leader()
	other := (leader + 1) % 3
	third := (leader + 2) % 3
	leaderCl, otherCl, thirdCl := c.Client(leader), c.Client(other), c.Client(third)

	// waitRedis polls until the Redis hash of key satisfies cond.
	waitRedis := func(what, key string, cond func(h map[string]string) bool) map[string]string {
		t.Helper()
		var h map[string]string
		c.Eventually(what, func() error {
			rk := redisKey(t, rdb, key)
			if rk == "" {
				return fmt.Errorf("no redis key for %s yet", key)
			}
			var err error
			if h, err = rdb.HGetAll(ctx, rk).Result(); err != nil {
				return err
			}
			if !cond(h) {
				return fmt.Errorf("redis %s = %v", rk, h)
			}
			return nil
		})
		return h
	}

	// A serializable read on one node fills Redis.
	rev1 := mustPut(t, leaderCl, "k", "v1")
	c.WaitForApplied(uint64(rev1))
	mustGet(t, otherCl, "k", ser, false)
	waitRedis("fill from a serializable read", "k", func(h map[string]string) bool { return h["value"] == "v1" })
	rk := redisKey(t, rdb, "k")
	if !strings.HasPrefix(rk, "raftkv:") {
		t.Fatalf("redis key %q, want the raftkv:<cluster id>: prefix", rk)
	}
	if ttl, err := rdb.PTTL(ctx, rk).Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL(%s) = %s, %v; want at most the 1m --cache-redis-ttl", rk, ttl, err)
	}

	// A third node, whose own cache is cold, is served from Redis.
	before := redisStats(t, c, third).GetHits()
	if got := mustGet(t, thirdCl, "k", ser, false); string(got.GetKv().GetValue()) != "v1" {
		t.Fatalf("Get on node %d = %v, want v1", third, got)
	}
	if got := redisStats(t, c, third).GetHits(); got != before+1 {
		t.Fatalf("node %d redis hits %d -> %d, want +1", third, before, got)
	}
	// Linearizable reads never use Redis: a fresh key read linearizably
	// on a cold node reads its store.
	before = redisStats(t, c, third).GetHits()
	mustGet(t, thirdCl, "k", lin, false) // served by the local cache or the store, never Redis
	if got := redisStats(t, c, third).GetHits(); got != before {
		t.Fatalf("a linearizable Get used Redis: hits %d -> %d", before, got)
	}

	// A write: the leader turns the entry into a tombstone.
	rev2 := mustPut(t, leaderCl, "k", "v2")
	h := waitRedis("invalidation on write", "k", func(h map[string]string) bool { return h["value"] == "" })
	if want := fmt.Sprint(rev2 - 1); h["upto"] != want {
		t.Fatalf("tombstone = %v, want upto %s", h, want)
	}
	// The revision guard: a slow reader that read v1 before the write
	// cannot put it back.
	res, err := rdb.Eval(ctx, `
local cur = redis.call('HGET', KEYS[1], 'upto')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
return 1`, []string{rk}, rev1).Int()
	if err != nil || res != 0 {
		t.Fatalf("guard check for a fill read at %d: %d, %v; want refused (0)", rev1, res, err)
	}
	c.WaitForApplied(uint64(rev2))
	for i := 0; i < 3; i++ {
		got := mustGet(t, c.Client(i), "k", ser, false)
		if string(got.GetKv().GetValue()) != "v2" {
			t.Fatalf("serializable Get on node %d after the write = %q, want v2", i, got.GetKv().GetValue())
		}
	}

	// A stale value planted behind raft's back (a buggy external writer)
	// is not trusted: the node knows the key was written after it.
	rev3 := mustPut(t, leaderCl, "planted", "new")
	c.WaitForApplied(uint64(rev3))
	nsKey := strings.TrimSuffix(rk, ":k") + ":planted"
	if err := rdb.HSet(ctx, nsKey, "upto", rev3-1, "value", "stale", "mod", 1, "create", 1, "ver", 1).Err(); err != nil {
		t.Fatal(err)
	}
	before = redisStats(t, c, third).GetRejected()
	if got := mustGet(t, thirdCl, "planted", ser, false); string(got.GetKv().GetValue()) != "new" {
		t.Fatalf("Get(planted) = %q, want new (the planted value predates a write this node applied)", got.GetKv().GetValue())
	}
	if got := redisStats(t, c, third).GetRejected(); got <= before {
		t.Fatalf("redis rejected %d -> %d, want the planted entry counted", before, got)
	}

	// Redis dies: every read and write still succeeds, errors are counted.
	srv.Kill()
	for i := 0; i < 3; i++ {
		rev := mustPut(t, c.Client(i), fmt.Sprintf("after/%d", i), "x")
		c.WaitForApplied(uint64(rev))
		for j := 0; j < 3; j++ {
			for _, cons := range []kvpb.Consistency{ser, lin} {
				for _, key := range []string{"k", "planted", fmt.Sprintf("after/%d", i), "missing"} {
					mustGet(t, c.Client(j), key, cons, false)
				}
			}
		}
	}
	var errs uint64
	for i := 0; i < 3; i++ {
		errs += redisStats(t, c, i).GetErrors()
	}
	if errs == 0 {
		t.Fatalf("no redis errors counted after Redis was killed")
	}
}
