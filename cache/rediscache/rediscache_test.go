package rediscache_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftkv/raftkv/cache"
	"github.com/raftkv/raftkv/cache/rediscache"
	"github.com/raftkv/raftkv/cache/rediscache/redistest"
)

const ns = "test-cluster"

func newTier(t *testing.T, url string, mutate ...func(*rediscache.Config)) *rediscache.Tier {
	t.Helper()
	cfg := rediscache.DefaultConfig()
	cfg.URL = url
	cfg.Timeout = 500 * time.Millisecond // a loaded CI machine, not a remote Redis
	for _, m := range mutate {
		m(&cfg)
	}
	tier, err := rediscache.New(cfg, rediscache.Deps{Namespace: func() string { return ns }})
	if err != nil {
		t.Fatalf("rediscache.New: got error %v, want nil", err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier
}

func wait(t *testing.T, tier *rediscache.Tier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tier.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func entry(v string, mod int64) cache.Entry {
	return cache.Entry{Found: true, Value: []byte(v), ModRevision: mod, CreateRevision: 1, Version: 3}
}

// get returns the value Redis holds for key ("" on a miss) and its upto.
func get(t *testing.T, tier *rediscache.Tier, key string) (string, uint64) {
	t.Helper()
	e, upto, ok := tier.Get(context.Background(), []byte(key))
	if !ok {
		return "", 0
	}
	return string(e.Value), upto
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*rediscache.Config)
		wantErr bool
	}{
		{"disabled", func(c *rediscache.Config) {}, false},
		{"url", func(c *rediscache.Config) { c.URL = "redis://127.0.0.1:6379/2" }, false},
		{"bad scheme", func(c *rediscache.Config) { c.URL = "http://127.0.0.1:6379" }, true},
		{"bad db", func(c *rediscache.Config) { c.URL = "redis://127.0.0.1:6379/x" }, true},
		{"zero ttl", func(c *rediscache.Config) { c.URL = "redis://127.0.0.1:6379"; c.TTL = 0 }, true},
		{"zero timeout", func(c *rediscache.Config) { c.URL = "redis://127.0.0.1:6379"; c.Timeout = 0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := rediscache.DefaultConfig()
			tt.mutate(&cfg)
			if err := cfg.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate(%+v) = %v, want error: %v", cfg, err, tt.wantErr)
			}
		})
	}
}

// TestGuard drives the revision guard and invalidation through a real
// redis-server, one table row per scenario.
func TestGuard(t *testing.T) {
	srv := redistest.Start(t)
	type step struct {
		fill       string // value to fill ("" = no fill)
		upto       uint64 // fill's validThrough
		invalidate uint64 // write index to invalidate (0 = none)
	}
	tests := []struct {
		name     string
		steps    []step
		want     string // value Get returns, "" for a miss
		wantUpto uint64
	}{
		{"fill then get", []step{{fill: "a", upto: 10}}, "a", 10},
		{"newer fill replaces older", []step{{fill: "a", upto: 10}, {fill: "b", upto: 11}}, "b", 11},
		{"stale fill cannot overwrite a newer one", []step{{fill: "new", upto: 20}, {fill: "old", upto: 10}}, "new", 20},
		{"same index does not overwrite", []step{{fill: "first", upto: 10}, {fill: "second", upto: 10}}, "first", 10},
		{"invalidation drops an older entry", []step{{fill: "a", upto: 10}, {invalidate: 11}}, "", 0},
		{"invalidation keeps an entry read after it", []step{{fill: "a", upto: 12}, {invalidate: 11}}, "a", 12},
		{"tombstone refuses a fill read before the write", []step{{invalidate: 11}, {fill: "old", upto: 10}}, "", 0},
		{"tombstone accepts a fill read at the write", []step{{invalidate: 11}, {fill: "new", upto: 11}}, "new", 11},
		{"slow fill after invalidation", []step{{fill: "a", upto: 10}, {invalidate: 11}, {fill: "a", upto: 10}}, "", 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tier := newTier(t, srv.URL)
			key := fmt.Sprintf("guard/%d", i)
			for _, s := range tt.steps {
				if s.fill != "" {
					tier.Fill([]byte(key), entry(s.fill, int64(min(s.upto, 5))), s.upto)
				}
				if s.invalidate != 0 {
					tier.Invalidate([]byte(key), s.invalidate)
				}
				wait(t, tier) // one step at a time: order is what the row tests
			}
			got, upto := get(t, tier, key)
			if got != tt.want || upto != tt.wantUpto {
				t.Fatalf("Get(%s) = %q through %d, want %q through %d", key, got, upto, tt.want, tt.wantUpto)
			}
			if st := tier.Stats(context.Background()); st.Errors != 0 {
				t.Fatalf("stats = %+v, want no errors", st)
			}
		})
	}
}

func TestInvalidateRange(t *testing.T) {
	srv := redistest.Start(t)
	tier := newTier(t, srv.URL)
	for _, k := range []string{"a", "b", "b2", "c", "d"} {
		tier.Fill([]byte(k), entry(k, 3), 10)
	}
	// Another cluster's key in the same range must not be touched.
	cfg := rediscache.DefaultConfig()
	cfg.URL, cfg.Timeout = srv.URL, 500*time.Millisecond
	other, err := rediscache.New(cfg, rediscache.Deps{Namespace: func() string { return "other-cluster" }})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.Fill([]byte("c"), entry("theirs", 3), 10)
	wait(t, other)
	wait(t, tier)
	tier.InvalidateRange([]byte("b"), []byte("d"), 11)
	tier.InvalidateRange([]byte("zz"), nil, 12) // to the end, nothing there
	wait(t, tier)
	for k, want := range map[string]string{"a": "a", "b": "", "b2": "", "c": "", "d": "d"} {
		if got, _ := get(t, tier, k); got != want {
			t.Errorf("after InvalidateRange(b, d): Get(%s) = %q, want %q", k, got, want)
		}
	}
	if got, _ := get(t, other, "c"); got != "theirs" {
		t.Errorf("another namespace's key after InvalidateRange: Get = %q, want theirs", got)
	}
}

func TestNamespaces(t *testing.T) {
	srv := redistest.Start(t)
	var id atomic.Value
	id.Store("")
	cfg := rediscache.DefaultConfig()
	cfg.URL = srv.URL
	cfg.Timeout = 500 * time.Millisecond
	tier, err := rediscache.New(cfg, rediscache.Deps{Namespace: func() string { return id.Load().(string) }})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	tier.Fill([]byte("k"), entry("v", 1), 1) // no namespace yet: ignored
	wait(t, tier)
	if got, _ := get(t, tier, "k"); got != "" {
		t.Fatalf("Get without a namespace = %q, want a miss", got)
	}
	id.Store("one")
	tier.Fill([]byte("k"), entry("v1", 1), 1)
	wait(t, tier)
	id.Store("two")
	if got, _ := get(t, tier, "k"); got != "" {
		t.Fatalf("Get in namespace two = %q, want a miss (v1 is namespace one's)", got)
	}
	id.Store("one")
	if got, _ := get(t, tier, "k"); got != "v1" {
		t.Fatalf("Get in namespace one = %q, want v1", got)
	}
}

// TestLayoutAndTTL reads what the tier wrote with a plain client, as another
// service would: the hash fields and the TTL.
func TestLayoutAndTTL(t *testing.T) {
	srv := redistest.Start(t)
	tier := newTier(t, srv.URL, func(c *rediscache.Config) { c.TTL = time.Hour })
	tier.Fill([]byte("user/1"), cache.Entry{Found: true, Value: []byte("alice"), ModRevision: 7, CreateRevision: 2, Version: 4}, 9)
	tier.Fill([]byte("missing"), cache.Entry{}, 9) // not-found entries are not stored
	tier.Invalidate([]byte("gone"), 12)
	wait(t, tier)

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	h, err := rdb.HGetAll(ctx, rediscache.Key(ns, []byte("user/1"))).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"upto": "9", "value": "alice", "mod": "7", "create": "2", "ver": "4"}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("hash raftkv:%s:user/1 = %v, want %v", ns, h, want)
	}
	ttl, err := rdb.PTTL(ctx, rediscache.Key(ns, []byte("user/1"))).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("PTTL = %s, %v; want just under 1h", ttl, err)
	}
	if n, _ := rdb.Exists(ctx, rediscache.Key(ns, []byte("missing"))).Result(); n != 0 {
		t.Errorf("a not-found entry was stored in Redis")
	}
	if h, _ := rdb.HGetAll(ctx, rediscache.Key(ns, []byte("gone"))).Result(); fmt.Sprint(h) != "map[upto:11]" {
		t.Errorf("tombstone = %v, want map[upto:11]", h)
	}
}

// TestTTLExpiry lets a real entry expire.
func TestTTLExpiry(t *testing.T) {
	srv := redistest.Start(t)
	tier := newTier(t, srv.URL, func(c *rediscache.Config) { c.TTL = 50 * time.Millisecond })
	tier.Fill([]byte("k"), entry("v", 1), 1)
	wait(t, tier)
	filled := time.Now()
	if got, _ := get(t, tier, "k"); got != "v" {
		// Only possible if the machine stalled for the whole TTL.
		t.Logf("entry already expired %s after the fill", time.Since(filled))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := get(t, tier, "k"); got == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry with a 50ms TTL still there after 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	if since := time.Since(filled); since < 40*time.Millisecond {
		t.Fatalf("entry gone %s after the fill, before its 50ms TTL", since)
	}
}

// TestRedisKilled: after a crash of Redis every call returns promptly, reads
// miss, errors are counted, writes are dropped, nothing blocks.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	tier := newTier(t, srv.URL, func(c *rediscache.Config) {
		c.Timeout = 200 * time.Millisecond
		c.Backoff = time.Hour // stay down once down: the test checks the skip path
	})
	tier.Fill([]byte("k"), entry("v", 1), 1)
	wait(t, tier)
	if got, _ := get(t, tier, "k"); got != "v" {
		t.Fatalf("Get before the kill = %q, want v", got)
	}
	srv.Kill()

	start := time.Now()
	if got, _ := get(t, tier, "k"); got != "" {
		t.Fatalf("Get after the kill = %q, want a miss", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Get after the kill took %s, want it bounded by the timeout", d)
	}
	st := tier.Stats(context.Background())
	if st.Errors == 0 {
		t.Fatalf("stats after a failed Get = %+v, want errors counted", st)
	}
	for i := 0; i < 10_000; i++ { // more than the queue: must not block
		tier.Fill([]byte("k"), entry("v", 1), uint64(i+2))
		tier.Invalidate([]byte("k"), uint64(i+2))
	}
	wait(t, tier)
	if got, _ := get(t, tier, "k"); got != "" {
		t.Fatalf("Get in backoff = %q, want a miss", got)
	}
	st = tier.Stats(context.Background())
	if st.Dropped == 0 || st.UsedMemory != -1 {
		t.Fatalf("stats in backoff = %+v, want dropped writes and unknown memory", st)
	}
}
