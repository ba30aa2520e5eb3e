package migrate

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		line    string
		want    Record
		wantErr string
	}{
		{"plain", `{"key":"aGVsbG8=","value":"d29ybGQ="}`, Record{Key: []byte("hello"), Value: []byte("world")}, ""},
		{"empty value", `{"key":"aw==","value":""}`, Record{Key: []byte("k"), Value: []byte{}}, ""},
		{"binary", `{"key":"/wA=","value":"AAH/"}`, Record{Key: []byte{0xff, 0}, Value: []byte{0, 1, 0xff}}, ""},
		{"expire_at", `{"key":"aw==","value":"","expire_at":"2026-01-02T04:04:05.250Z"}`,
			Record{Key: []byte("k"), Value: []byte{}, ExpireAt: now.Add(time.Hour + 250*time.Millisecond)}, ""},
		{"ttl", `{"key":"aw==","value":"","ttl":1.5}`, Record{Key: []byte("k"), Value: []byte{}, ExpireAt: now.Add(1500 * time.Millisecond)}, ""},
		{"no key", `{"value":""}`, Record{}, `no "key"`},
		{"no value", `{"key":"aw=="}`, Record{}, `no "value"`},
		{"bad base64", `{"key":"a!==","value":""}`, Record{}, "key is not base64"},
		{"bad value base64", `{"key":"aw==","value":"%%"}`, Record{}, "value is not base64"},
		{"unknown field", `{"key":"aw==","value":"","kye":1}`, Record{}, "unknown field"},
		{"not json", `key=value`, Record{}, "not a JSON object"},
		{"two values", `{"key":"aw==","value":""} {}`, Record{}, "more than one JSON value"},
		{"both expiries", `{"key":"aw==","value":"","ttl":1,"expire_at":"2026-01-02T04:04:05Z"}`, Record{}, "both"},
		{"bad time", `{"key":"aw==","value":"","expire_at":"tomorrow"}`, Record{}, "RFC 3339"},
		{"negative ttl", `{"key":"aw==","value":"","ttl":-1}`, Record{}, "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLine([]byte(tt.line), now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseLine(%s) error = %v, want one containing %q", tt.line, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseLine(%s) = %v, want success", tt.line, err)
			}
			if !bytes.Equal(got.Key, tt.want.Key) || !bytes.Equal(got.Value, tt.want.Value) || !got.ExpireAt.Equal(tt.want.ExpireAt) {
				t.Errorf("parseLine(%s) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

func TestAppendLineRoundTrip(t *testing.T) {
	exp := time.Date(2027, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	for _, r := range []Record{
		{Key: []byte("k"), Value: []byte{}},
		{Key: []byte{0xff, 0xfe, 0, '\n', '"'}, Value: bytes.Repeat([]byte{0, 1, 2}, 1000)},
		{Key: []byte("ttl"), Value: []byte("v"), ExpireAt: exp},
	} {
		line := appendLine(nil, r)
		if bytes.Count(line, []byte{'\n'}) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("appendLine(%q) = %q, want exactly one line", r.Key, line)
		}
		got, err := parseLine(bytes.TrimSpace(line), time.Now())
		if err != nil {
			t.Fatalf("parseLine(appendLine(%q)) = %v", r.Key, err)
		}
		if !bytes.Equal(got.Key, r.Key) || !bytes.Equal(got.Value, r.Value) || !got.ExpireAt.Equal(r.ExpireAt) {
			t.Errorf("round trip of %q gave %+v", r.Key, got)
		}
	}
}

// TestFileResume writes a gzip dump in three runs that each stop after a
// checkpoint plus some unsynced records, as a killed migration would, and
// checks the result reads back as exactly the records, once each.
func TestFileResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl.gz")
	recs := dataset(3000, false)
	ctx := context.Background()
	pos := ""
	for run, part := range [][]Record{recs[:1000], recs[1000:2000], recs[2000:]} {
		tgt, err := openFileTarget(path, TargetOptions{Resume: pos})
		if err != nil {
			t.Fatalf("run %d: open: %v", run, err)
		}
		if err := tgt.Prepare(ctx); err != nil {
			t.Fatalf("run %d: prepare: %v", run, err)
		}
		if _, err := tgt.Write(ctx, part, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if pos, err = tgt.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if run == 2 {
			if err := tgt.Close(); err != nil {
				t.Fatal(err)
			}
			break
		}
		// Records written after the checkpoint, then a "kill": the next
		// run must cut them off.
		if _, err := tgt.Write(ctx, recs[:50], WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		tgt.bw.Flush()
		tgt.f.Close()
	}
	got := readAll(t, "file:"+path, "", nil)
	sameRecords(t, "resumed gzip dump", recs, "", got)

	// The file is a valid multi-member gzip stream.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, zr); err != nil || n == 0 {
		t.Fatalf("gunzip: %d bytes, %v", n, err)
	}
}

func TestFileTargetRefusesToClobber(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exists.jsonl")
	if err := os.WriteFile(path, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openFileTarget(path, TargetOptions{}); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("open existing file = %v, want an error pointing at --overwrite", err)
	}
	if _, err := openFileTarget(path, TargetOptions{Replace: true}); err != nil {
		t.Errorf("open existing file with Replace = %v, want success", err)
	}
}

// TestMalformedLine imports a dump whose line 2500 is broken in batches of
// 1000: lines 1-2499 are written (batch 3 only up to the bad line), the
// error names line 2500, nothing after it is written, and a checkpoint
// lets the import continue from line 2500 once it is fixed.
func TestMalformedLine(t *testing.T) {
	dir := t.TempDir()
	recs := dataset(4000, false)
	var buf []byte
	for i, r := range recs {
		if i == 2499 {
			buf = append(buf, `{"key":"not base64!","value":""}`+"\n"...)
			continue
		}
		buf = appendLine(buf, r)
	}
	dump := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(dump, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	cfg := config("file:"+dump, "file:"+out)
	cfg.Verify = false
	cfg.Checkpoint = filepath.Join(dir, "ck.json")
	sum, err := runErr(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "line 2500") {
		t.Fatalf("import of a dump with a bad line 2500 = %v, want an error naming line 2500", err)
	}
	if sum == nil || sum.Copied != 2499 {
		t.Fatalf("summary %+v, want 2499 copied", sum)
	}
	sameRecords(t, "written before the bad line", recs[:2499], "", readAll(t, "file:"+out, "", nil))

	// Fix the line and resume: exactly the rest is added.
	fixed := bytes.Replace(buf, []byte(`{"key":"not base64!","value":""}`+"\n"), appendLine(nil, recs[2499]), 1)
	if err := os.WriteFile(dump, fixed, 0o644); err != nil {
		t.Fatal(err)
	}
	sum = run(t, cfg)
	if sum.Copied != 4000 || !sum.Resumed {
		t.Errorf("resumed import copied %d (resumed %v), want 4000 in total", sum.Copied, sum.Resumed)
	}
	sameRecords(t, "after the resumed import", recs, "", readAll(t, "file:"+out, "", nil))
}

func TestFileSourceMissing(t *testing.T) {
	_, err := OpenSource(context.Background(), "file:"+filepath.Join(t.TempDir(), "nope.jsonl"), SourceOptions{})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open a missing dump = %v, want a not-exist error", err)
	}
}
