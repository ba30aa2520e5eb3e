package migrate

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	mod := func(f func(*Config)) Config {
		c := DefaultConfig()
		c.From, c.To = "file:a", "file:b"
		f(&c)
		c.Normalize()
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", mod(func(*Config) {}), ""},
		{"no source", mod(func(c *Config) { c.From = " " }), "no source"},
		{"no target", mod(func(c *Config) { c.To = "" }), "no target"},
		{"zero batch", mod(func(c *Config) { c.Batch = 0 }), "batch 0"},
		{"negative rate", mod(func(c *Config) { c.Rate = -1 }), "rate"},
		{"rename outside prefix", mod(func(c *Config) {
			c.Prefix, c.Rename, c.RenameFrom = []byte("a/"), true, []byte("b/")
		}), "does not start with the renamed prefix"},
		{"rename sets prefix", mod(func(c *Config) { c.Rename, c.RenameFrom = true, []byte("b/") }), ""},
		{"dry run with checkpoint", mod(func(c *Config) { c.DryRun, c.Checkpoint = true, "ck" }), "dry run"},
		{"no request timeout", mod(func(c *Config) { c.RequestTimeout = 0 }), "request timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNormalizeRateShrinksBatch(t *testing.T) {
	c := DefaultConfig()
	c.Rate = 100
	c.Normalize()
	if c.Batch != 25 {
		t.Errorf("batch with --rate 100 = %d, want 25 (a quarter second)", c.Batch)
	}
	if c.ReplayWindow < 2*c.Batch {
		t.Errorf("replay window %d below two batches of %d", c.ReplayWindow, c.Batch)
	}
}

func TestRename(t *testing.T) {
	c := Config{Rename: true, RenameFrom: []byte("old/"), RenameTo: []byte("new/x/")}
	if got := c.rename([]byte("old/k")); string(got) != "new/x/k" {
		t.Errorf("rename(old/k) = %q, want new/x/k", got)
	}
	c = Config{Rename: true, RenameFrom: nil, RenameTo: []byte("pg/")}
	if got := c.rename([]byte{0xff}); !bytes.Equal(got, []byte("pg/\xff")) {
		t.Errorf("rename with an empty OLD = %q, want pg/\\xff", got)
	}
	if got := (Config{Prefix: []byte("a")}).targetPrefix(); string(got) != "a" {
		t.Errorf("target prefix without rename = %q, want a", got)
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte{0xff, 0xff}, nil},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := prefixEnd(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("prefixEnd(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestChunksRespectServerLimits(t *testing.T) {
	var recs []Record
	for i := range 1000 {
		recs = append(recs, Record{Key: []byte{byte(i >> 8), byte(i)}, Value: make([]byte, 100)})
	}
	big := Record{Key: []byte("big"), Value: make([]byte, raftkvMaxValue)}
	recs = append(recs[:500], append([]Record{big, big}, recs[500:]...)...)
	for _, mode := range []Mode{Overwrite, SkipExisting} {
		total := 0
		for _, c := range chunks(recs, mode) {
			size := 0
			for _, r := range c {
				size += opCost(r, mode)
			}
			if len(c) > raftkvMaxTxnOps || (len(c) > 1 && size > raftkvMaxRequest-requestMargin) {
				t.Errorf("%v: chunk of %d records, %d bytes, over the limits", mode, len(c), size)
			}
			total += len(c)
		}
		if total != len(recs) {
			t.Errorf("%v: chunks hold %d records, want %d", mode, total, len(recs))
		}
	}
}

func TestSplitScheme(t *testing.T) {
	tests := []struct{ in, kind, rest, err string }{
		{"raftkv://a:1,b:2", "raftkv", "a:1,b:2", ""},
		{"raftkv://", "raftkv", "", ""},
		{"file:dump.jsonl", "file", "dump.jsonl", ""},
		{"file:///abs/d.gz", "file", "/abs/d.gz", ""},
		{"postgres://u@h/db?table=t", "postgres", "//u@h/db?table=t", ""},
		{"postgresql://h/db", "postgres", "//h/db", ""},
		{"sqlite:x.db?table=t", "sqlite", "x.db?table=t", ""},
		{"redis://h:1/2", "redis", "//h:1/2", ""},
		{"raftkv:a:1", "", "", "want raftkv://"},
		{"mysql://h/db", "", "", "unsupported scheme"},
		{"dump.jsonl", "", "", "not a URL"},
	}
	for _, tt := range tests {
		kind, rest, err := splitScheme(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("splitScheme(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || kind != tt.kind || rest != tt.rest {
			t.Errorf("splitScheme(%q) = %q, %q, %v; want %q, %q", tt.in, kind, rest, err, tt.kind, tt.rest)
		}
	}
	if got := Redact("postgres://u:secret@h/db"); strings.Contains(got, "secret") {
		t.Errorf("Redact kept the password: %s", got)
	}
}

func TestGlobEscape(t *testing.T) {
	if got := globEscape([]byte(`a*b?[c]\`)); got != `a\*b\?\[c\]\\` {
		t.Errorf("globEscape = %q", got)
	}
}

func TestCompare(t *testing.T) {
	d := func(k, v string) digest { return digest{key: []byte(k), sum: sha256.Sum256([]byte(v))} }
	src := &sliceStream{all: []digest{d("a", "1"), d("b", "2"), d("c", "3"), d("e", "5")}}
	tgt := &sliceStream{all: []digest{d("a", "1"), d("c", "x"), d("d", "4"), d("e", "5")}}
	v, err := compare(src, tgt, 10, func() {})
	if err != nil {
		t.Fatal(err)
	}
	want := []Difference{{[]byte("b"), DiffMissing}, {[]byte("c"), DiffValue}, {[]byte("d"), DiffExtra}}
	if v.Match || v.Differences != 3 || v.SourceKeys != 4 || v.TargetKeys != 4 || len(v.FirstDifferences) != 3 {
		t.Fatalf("compare = %+v, want 3 differences of 4 keys each", v)
	}
	for i, w := range want {
		if g := v.FirstDifferences[i]; !bytes.Equal(g.Key, w.Key) || g.Kind != w.Kind {
			t.Errorf("difference %d = %s %s, want %s %s", i, g.Key, g.Kind, w.Key, w.Kind)
		}
	}
	same := func() digestStream { return &sliceStream{all: []digest{d("a", "1"), d("b", "")}} }
	v, err = compare(same(), same(), 10, func() {})
	if err != nil || !v.Match || v.SourceHash != v.TargetHash {
		t.Errorf("compare of equal streams = %+v, %v; want a match", v, err)
	}
}
