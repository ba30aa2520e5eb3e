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
		if c := sum.Consistency; c == nil || !c.Exact || c.Modified != 0 || c.Model != "snapshot" || c.StartRevision == 0 {
			t.Errorf("export of an idle cluster: consistency %+v, want an exact snapshot with nothing modified", c)
		}
		if !strings.Contains(sum.Verification.Note, "point-in-time cut") {
			t.Errorf("verification note %q does not state that the check reads its own cut", sum.Verification.Note)
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

		// raftkv keeps TTLs: the default --ttl keep copies them.
		cfg := config(src, bURL)
		cfg.Rename, cfg.RenameTo = true, []byte("redis/")
		start := time.Now()
		sum := run(t, cfg)
		wantVerified(t, sum, roundTripKeys)
		if sum.TTLDropped != 0 {
			t.Errorf("ttl_dropped = %d, want 0: raftkv stores TTLs", sum.TTLDropped)
		}
		if sum.Skipped != int64(len(others)) {
			t.Errorf("skipped %d, want the %d keys that are not strings", sum.Skipped, len(others))
		}
		for _, n := range sum.SkippedKeys {
			if !strings.HasPrefix(string(n.Key), "other/") || !strings.Contains(n.Reason, "not a string") {
				t.Errorf("skipped key %s (%s), want only the non-string other/ keys", KeyString(n.Key), n.Reason)
			}
		}
		got := readAll(t, bURL, "redis/", nil)
		sameRecords(t, "redis/ in the new cluster", recs, "redis/", got)
		if n := wantRaftkvTTLs(t, src, got, "redis/", start); n != ttls {
			t.Errorf("%d keys have an expiry in raftkv, want the %d that had a TTL in Redis", n, ttls)
		}

		// The raftkv source emits expiries: a copy inside raftkv keeps them.
		cfg = config(bURL, bURL)
		cfg.Prefix = []byte("redis/")
		cfg.Rename, cfg.RenameFrom, cfg.RenameTo = true, []byte("redis/"), []byte("again/")
		wantVerified(t, run(t, cfg), roundTripKeys)
		again := readAll(t, bURL, "again/", nil)
		for i := range got {
			a, b := got[i].ExpireAt, again[i].ExpireAt
			if a.IsZero() != b.IsZero() || b.Sub(a).Abs() > time.Minute {
				t.Fatalf("%s: expiry %v in the source cluster, %v in the copy", KeyString(again[i].Key), a, b)
			}
		}
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

// wantRaftkvTTLs checks that every raftkv record in got (keys with
// prefix added) expires when its Redis original does, within a minute (the
// copy's own duration), and returns how many have an expiry.
func wantRaftkvTTLs(t testing.TB, srcURL string, got []Record, prefix string, start time.Time) int {
	t.Helper()
	opt, err := redis.ParseURL(srcURL)
	if err != nil {
		t.Fatal(err)
	}
	src := redis.NewClient(opt)
	defer src.Close()
	n := 0
	for i, r := range got {
		if !r.ExpireAt.IsZero() {
			n++
		}
		if i%37 != 0 {
			continue
		}
		pttl, err := src.PTTL(t.Context(), strings.TrimPrefix(string(r.Key), prefix)).Result()
		if err != nil {
			t.Fatalf("pttl %s: %v", KeyString(r.Key), err)
		}
		if (pttl < 0) != r.ExpireAt.IsZero() {
			t.Fatalf("%s: redis PTTL %v, raftkv expiry %v", KeyString(r.Key), pttl, r.ExpireAt)
		}
		if pttl >= 0 {
			want := time.Now().Add(pttl)
			if d := r.ExpireAt.Sub(want); d < -time.Minute-time.Since(start) || d > time.Minute {
				t.Errorf("%s: raftkv expires at %v, redis in %v (at about %v)", KeyString(r.Key), r.ExpireAt, pttl, want)
			}
		}
	}
	return n
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
