package migrate

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftkv/raftkv/cache/rediscache/redistest"
	"github.com/raftkv/raftkv/migrate/migratetest"
)

// TestRoundTrips moves 100k records (5k under the race detector) with binary values, empty values,
// non-UTF-8 keys and 1 MiB values through every backend and back into
// raftkv, each leg verified by --verify and by reading both ends.
func TestRoundTrips(t *testing.T) {
	recs := dataset(roundTripKeys, true)
	a := newCluster(t)
	seedRaftkv(t, a.Client(), recs)
	b := newCluster(t) // the "new raftkv" every leg copies into
	aURL, bURL := raftkvURL(a), raftkvURL(b)
	dir := t.TempDir()

	t.Run("raftkv-file-raftkv", func(t *testing.T) {
		dump := "file:" + filepath.Join(dir, "dump.jsonl.gz")
		sum := run(t, config(aURL, dump))
		wantVerified(t, sum, roundTripKeys)
		if c := sum.Consistency; c == nil || !c.Exact || c.Modified != 0 {
			t.Errorf("export of an idle cluster: consistency %+v, want exact with nothing modified", c)
		}
		if !strings.Contains(sum.Verification.Note, "linearizable read of its own") {
			t.Errorf("verification note %q does not state the per-page limitation", sum.Verification.Note)
		}
		wantVerified(t, run(t, config(dump, bURL)), roundTripKeys)
		sameRecords(t, "new cluster", recs, "", readAll(t, bURL, "", nil))

		// A dry run with --verify compares the clusters without copying.
		cfg := config(aURL, bURL)
		cfg.DryRun = true
		sum = run(t, cfg)
		if v := sum.Verification; v == nil || !v.Match || v.SourceKeys != roundTripKeys {
			t.Fatalf("verify A against B: %+v, want a match of %d keys", v, roundTripKeys)
		}
	})

	t.Run("raftkv-postgres-raftkv", func(t *testing.T) {
		pg := migratetest.Postgres(t) // default table data_store, created by the migration
		wantVerified(t, run(t, config(aURL, pg)), roundTripKeys)
		cfg := config(pg, bURL)
		cfg.Rename, cfg.RenameTo = true, []byte("pg/")
		wantVerified(t, run(t, cfg), roundTripKeys)
		sameRecords(t, "pg/ in the new cluster", recs, "pg/", readAll(t, bURL, "pg/", nil))
	})

	t.Run("sqlite-raftkv", func(t *testing.T) {
		lite := "sqlite:" + filepath.Join(dir, "kv.db") + "?table=kv"
		wantVerified(t, run(t, config(aURL, lite)), roundTripKeys)
		cfg := config(lite, bURL)
		cfg.Rename, cfg.RenameTo = true, []byte("sqlite/")
		wantVerified(t, run(t, cfg), roundTripKeys)
		sameRecords(t, "sqlite/ in the new cluster", recs, "sqlite/", readAll(t, bURL, "sqlite/", nil))
	})

	t.Run("redis-raftkv", func(t *testing.T) {
		src := redistest.Start(t).URL
		ttls, others := seedRedis(t, src, recs)

		// raftkv has no TTLs: by default a key with one fails, loudly.
		cfg := config(src, bURL)
		cfg.Prefix = []byte("k/0000")
		cfg.Rename, cfg.RenameFrom, cfg.RenameTo = true, []byte("k/"), []byte("redis-keep/")
		cfg.Verify = false
		sum := run(t, cfg)
		if sum.Failed == 0 || sum.OK() || !strings.Contains(sum.FailedKeys[0].Reason, "--ttl drop") {
			t.Errorf("redis keys with TTLs into raftkv with --ttl keep: failed %d %v, want failures that point at --ttl", sum.Failed, sum.FailedKeys)
		}

		cfg = config(src, bURL)
		cfg.Rename, cfg.RenameTo, cfg.TTL = true, []byte("redis/"), TTLDrop
		sum = run(t, cfg)
		wantVerified(t, sum, roundTripKeys)
		if sum.TTLDropped != int64(ttls) {
			t.Errorf("ttl_dropped = %d, want %d", sum.TTLDropped, ttls)
		}
		if sum.Skipped != int64(len(others)) {
			t.Errorf("skipped %d, want the %d keys that are not strings", sum.Skipped, len(others))
		}
		for _, n := range sum.SkippedKeys {
			if !strings.HasPrefix(string(n.Key), "other/") || !strings.Contains(n.Reason, "not a string") {
				t.Errorf("skipped key %s (%s), want only the non-string other/ keys", KeyString(n.Key), n.Reason)
			}
		}
		sameRecords(t, "redis/ in the new cluster", recs, "redis/", readAll(t, bURL, "redis/", nil))
	})

	t.Run("redis-file-redis keeps TTLs", func(t *testing.T) {
		src := redistest.Start(t).URL
		seedRedis(t, src, recs)
		dump := "file:" + filepath.Join(dir, "redis.jsonl")
		wantVerified(t, run(t, config(src, dump)), roundTripKeys)
		dst := redistest.Start(t).URL
		wantVerified(t, run(t, config(dump, dst)), roundTripKeys)
		wantSameTTLs(t, src, dst, recs)
	})
}

// seedRedis writes recs as strings, every tenth with a TTL of an hour, and
// 30 keys of other types; it returns the number of TTLs and the others.
func seedRedis(t testing.TB, rawURL string, recs []Record) (ttls int, others []string) {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := t.Context()
	pipe := c.Pipeline()
	for i, r := range recs {
		var ttl time.Duration
		if i%10 == 0 {
			ttl = time.Hour + time.Duration(i)*time.Millisecond
			ttls++
		}
		pipe.Set(ctx, string(r.Key), r.Value, ttl)
		if pipe.Len() >= 1000 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatalf("seed redis: %v", err)
			}
		}
	}
	for i := range 10 {
		others = append(others, fmt.Sprintf("other/hash%d", i), fmt.Sprintf("other/list%d", i), fmt.Sprintf("other/set%d", i))
		pipe.HSet(ctx, fmt.Sprintf("other/hash%d", i), "f", "v")
		pipe.RPush(ctx, fmt.Sprintf("other/list%d", i), "a", "b")
		pipe.SAdd(ctx, fmt.Sprintf("other/set%d", i), "m")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("seed redis: %v", err)
	}
	return ttls, others
}

// wantSameTTLs checks that dst holds recs with the TTLs src has, give or
// take the time the round trip took.
func wantSameTTLs(t testing.TB, srcURL, dstURL string, recs []Record) {
	t.Helper()
	connect := func(u string) *redis.Client {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		return redis.NewClient(opt)
	}
	src, dst := connect(srcURL), connect(dstURL)
	defer src.Close()
	defer dst.Close()
	ctx := t.Context()
	withTTL := 0
	for i := 0; i < len(recs); i += 37 {
		k := string(recs[i].Key)
		a, err1 := src.PTTL(ctx, k).Result()
		b, err2 := dst.PTTL(ctx, k).Result()
		v, err3 := dst.Get(ctx, k).Bytes()
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("read %s: %v %v %v", KeyString(recs[i].Key), err1, err2, err3)
		}
		if !bytes.Equal(v, recs[i].Value) {
			t.Fatalf("%s: value differs after the round trip", KeyString(recs[i].Key))
		}
		if (a < 0) != (b < 0) {
			t.Fatalf("%s: TTL %v in the source, %v in the copy", KeyString(recs[i].Key), a, b)
		}
		if a >= 0 {
			withTTL++
			if d := a - b; d < -time.Second || d > time.Minute {
				t.Errorf("%s: TTL %v in the source, %v in the copy", KeyString(recs[i].Key), a, b)
			}
		}
	}
	if withTTL == 0 {
		t.Fatal("no sampled key had a TTL: the check checked nothing")
	}
}
