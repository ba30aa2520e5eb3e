package migrate

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/migrate/migratetest"
	"github.com/raftkv/raftkv/node/nodetest"
)

// writeDump writes recs as a dump file and returns its file: URL.
func writeDump(t testing.TB, name string, recs []Record) string {
	t.Helper()
	var buf []byte
	for _, r := range recs {
		buf = appendLine(buf, r)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return "file:" + path
}

// TestOversizeRecordsFail sends records raftkv can never store: they are
// reported and counted as failed, everything else is copied. The target
// cluster runs with a 100-byte key limit, stricter than the client knows,
// so one key is refused by the server and isolated from its batch.
func TestOversizeRecordsFail(t *testing.T) {
	c := nodetest.NewCluster(t, 3, func(cfg *nodetest.NodeConfig) { cfg.Limits.MaxKeyBytes = 100 })
	recs := dataset(300, false)
	bad := []Record{
		{Key: bytes.Repeat([]byte("k"), 5000), Value: []byte("v")},    // over the default 4 KiB
		{Key: []byte("big-value"), Value: make([]byte, 2<<20)},        // over 1 MiB
		{Key: []byte{}, Value: []byte("v")},                           // empty
		{Key: bytes.Repeat([]byte("s"), 200), Value: []byte("v")},     // over this server's 100
		{Key: []byte("ok/empty-value"), Value: []byte{}},              // fine
		{Key: []byte{0xc3, 0x28, 0xff}, Value: []byte{0, 0, 0, 0xff}}, // fine: not UTF-8
	}
	all := append(append(recs[:150:150], bad...), recs[150:]...)
	cfg := config(writeDump(t, "bad.jsonl", all), raftkvURL(c))
	cfg.Verify = false
	cfg.Batch = 64
	sum := run(t, cfg)
	if sum.Failed != 4 || sum.Copied != int64(len(all)-4) || sum.OK() {
		t.Fatalf("copied %d, failed %d %v; want %d copied and 4 failed", sum.Copied, sum.Failed, sum.FailedKeys, len(all)-4)
	}
	reasons := ""
	for _, n := range sum.FailedKeys {
		reasons += n.Reason + "\n"
	}
	for _, want := range []string{"key is 5000 bytes", "value is 2097152 bytes", "empty key", "refused by the server", "limit is 100"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("failure reasons do not mention %q:\n%s", want, reasons)
		}
	}
	got := readAll(t, raftkvURL(c), "", nil)
	if len(got) != len(all)-4 {
		t.Errorf("cluster holds %d keys, want %d", len(got), len(all)-4)
	}
}

// deadURL returns an address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUnreachable checks that an unreachable side fails the migration with
// a clear error before anything is written: no file, no table, no
// checkpoint.
func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	dump := writeDump(t, "d.jsonl", dataset(10, false))
	dead := deadAddr(t)
	tests := []struct {
		name, from, to, want string
	}{
		{"raftkv target", dump, "raftkv://" + dead, "target raftkv://" + dead + ": unreachable"},
		{"raftkv source", "raftkv://" + dead, "file:" + filepath.Join(dir, "out.jsonl"), "source raftkv://" + dead + ": unreachable"},
		{"postgres target", dump, "postgres://postgres@" + dead + "/x?sslmode=disable", "unreachable"},
		{"redis source", "redis://" + dead + "/0", "sqlite:" + filepath.Join(dir, "out.db"), "source redis://" + dead + "/0: unreachable"},
		{"missing sqlite source", "sqlite:" + filepath.Join(dir, "none.db"), "file:" + filepath.Join(dir, "out2.jsonl"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(tt.from, tt.to)
			cfg.RequestTimeout = 2 * time.Second
			cfg.Checkpoint = filepath.Join(dir, tt.name+".ck")
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			m, err := New(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			sum, err := m.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("migrate %s -> %s = %v, want an error containing %q", tt.from, tt.to, err, tt.want)
			}
			if sum != nil {
				t.Errorf("summary %+v for a migration that never started", sum)
			}
			for _, p := range []string{cfg.Checkpoint, filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "out.db"), filepath.Join(dir, "out2.jsonl")} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after a failed start (%v): something was written", p, err)
				}
			}
		})
	}
}

// TestWrongTables points the migration at tables without the expected
// columns, or without a unique key: it refuses before writing.
func TestWrongTables(t *testing.T) {
	dump := writeDump(t, "d.jsonl", dataset(10, false))

	t.Run("postgres", func(t *testing.T) {
		pg := migratetest.Postgres(t)
		conn, err := pgx.Connect(t.Context(), pg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for _, q := range []string{
			`CREATE TABLE wrong (id int PRIMARY KEY, data bytea)`,
			`CREATE TABLE nokey (key bytea, value bytea, updated_at timestamptz)`,
			`CREATE TABLE badtype (key bytea PRIMARY KEY, value int, updated_at timestamptz)`,
		} {
			if _, err := conn.Exec(t.Context(), q); err != nil {
				t.Fatal(err)
			}
		}
		with := func(table string) string { return strings.Replace(pg, "?", "?table="+table+"&", 1) }
		for _, tt := range []struct{ from, to, want string }{
			{with("wrong"), dump + ".out", `table "wrong" has no column "key"`},
			{dump, with("wrong"), `table "wrong" has no column "key"`},
			{dump, with("nokey"), "is not unique"},
			{dump, with("badtype"), "value has type int4"},
			{with("missing"), dump + ".out", "does not exist"},
		} {
			_, err := runErr(t, config(tt.from, tt.to))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("migrate %s -> %s = %v, want %q", tt.from, tt.to, err, tt.want)
			}
		}
		var n int
		if err := conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM wrong) + (SELECT count(*) FROM nokey)`).Scan(&n); err != nil || n != 0 {
			t.Errorf("rows written into refused tables: %d, %v", n, err)
		}
	})

	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "w.db")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range []string{
			`CREATE TABLE wrong (id INTEGER PRIMARY KEY, data BLOB)`,
			`CREATE TABLE nokey (key BLOB, value BLOB, updated_at TEXT)`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		lite := func(table string) string { return fmt.Sprintf("sqlite:%s?table=%s", path, table) }
		for _, tt := range []struct{ from, to, want string }{
			{lite("wrong"), dump + ".out", `table "wrong" has no column "key"`},
			{dump, lite("wrong"), `has no column "key"`},
			{dump, lite("nokey"), "is not unique"},
			{lite("missing"), dump + ".out", "does not exist"},
		} {
			_, err := runErr(t, config(tt.from, tt.to))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("migrate %s -> %s = %v, want %q", tt.from, tt.to, err, tt.want)
			}
		}
	})
}

// TestSameClusterOverlap refuses a copy onto an overlapping range of the
// same cluster, and allows a rename to a disjoint prefix.
func TestSameClusterOverlap(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	recs := dataset(300, false)
	seedRaftkv(t, c.Client(), recs)
	url := raftkvURL(c)
	cfg := config(url, "raftkv://"+c.GRPCAddr(1))
	cfg.Prefix = []byte("k/")
	if _, err := runErr(t, cfg); err == nil || !strings.Contains(err.Error(), "same cluster") {
		t.Errorf("copy of k/ onto itself = %v, want a same-cluster refusal", err)
	}
	cfg.Rename, cfg.RenameFrom, cfg.RenameTo = true, []byte("k/"), []byte("k/x/")
	if _, err := runErr(t, cfg); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("rename k/ to k/x/ in the same cluster = %v, want an overlap refusal", err)
	}
	cfg.RenameTo = []byte("copy/")
	sum := run(t, cfg)
	wantVerified(t, sum, int64(len(readAll(t, url, "k/", nil))))
}

// TestOnlyIfChanged writes records twice, the second time as a resumed
// migration's replay window does: keys that already hold the value are
// not written again (their version stays 1), changed ones are.
func TestOnlyIfChanged(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	tgt, err := OpenTarget(t.Context(), raftkvURL(c), TargetOptions{RequestTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	recs := dataset(500, false)
	for _, mode := range []Mode{Overwrite, SkipExisting} {
		prefix := fmt.Sprintf("%v/", mode)
		var rs []Record
		for _, r := range recs {
			rs = append(rs, Record{Key: append([]byte(prefix), r.Key...), Value: r.Value})
		}
		if _, err := tgt.Write(t.Context(), rs[:400], WriteOptions{Mode: mode}); err != nil {
			t.Fatal(err)
		}
		rs[7].Value = []byte("changed")
		outs, err := tgt.Write(t.Context(), rs, WriteOptions{Mode: mode, OnlyIfChanged: true})
		if err != nil {
			t.Fatal(err)
		}
		cli := c.Client()
		resp, err := cli.Range(t.Context(), &kvpb.RangeRequest{Key: []byte(prefix), Prefix: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetKvs()) != len(rs) {
			t.Fatalf("%v: %d keys, want %d", mode, len(resp.GetKvs()), len(rs))
		}
		for _, kv := range resp.GetKvs() {
			want := int64(1)
			if bytes.Equal(kv.GetKey(), rs[7].Key) && mode == Overwrite {
				want = 2
			}
			if kv.GetVersion() != want {
				t.Errorf("%v: %s has version %d, want %d", mode, KeyString(kv.GetKey()), kv.GetVersion(), want)
			}
		}
		for i, o := range outs {
			want := Copied
			if i == 7 && mode == SkipExisting {
				want = Skipped
			}
			if o.Status != want {
				t.Errorf("%v: outcome %d = %+v, want status %d", mode, i, o, want)
			}
		}
	}
}

// TestMalformedLineIntoRaftkv imports a dump whose line 2500 is broken into
// a cluster in batches of 1000: exactly lines 1-2499 are in the cluster
// afterwards, and the error names line 2500.
func TestMalformedLineIntoRaftkv(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	recs := dataset(4000, false)
	var buf []byte
	for i, r := range recs {
		if i == 2499 {
			buf = append(buf, `{"key":"aw==","value":"dg==","colour":"red"}`+"\n"...)
			continue
		}
		buf = appendLine(buf, r)
	}
	path := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config("file:"+path, raftkvURL(c))
	cfg.Verify = false
	_, err := runErr(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "line 2500") || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("import = %v, want an error naming line 2500 and the unknown field", err)
	}
	sameRecords(t, "cluster after the bad line", recs[:2499], "", readAll(t, raftkvURL(c), "", nil))
}
