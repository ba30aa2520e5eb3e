package backup_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftkv/raftkv/backup"
)

var update = flag.Bool("update", false, "rewrite testdata/v1 and the fuzz seed corpus (only while format version 1 is the current one)")

const goldenV1 = "testdata/v1/small.rkvbak"

// goldenV1Manifest is the manifest of testdata/v1/small.rkvbak.
//
// NB: written by format version 1 and never to be edited: it proves that
// version 1 backups verify and restore forever. A new format version adds a
// new directory.
var goldenV1Manifest = backup.Manifest{
	FormatVersion:    1,
	ID:               "20251125T224512Z-42-abcd",
	ClusterID:        "golden-cluster",
	NodeID:           "node1",
	RaftIndex:        30,
	RaftTerm:         2,
	AppliedIndex:     25,
	Created:          time.Date(2025, 11, 25, 22, 45, 12, 0, time.UTC),
	Trigger:          "scheduled",
	KeyCount:         21,
	MemberCount:      2,
	UncompressedSize: 1170,
	CompressedSize:   419,
	Compression:      "gzip",
	PayloadFormat:    "raftkv-fsm-snapshot",
	PayloadVersion:   2,
	SHA256:           "4757b74a2bb408c1e2f3b8dc8671fba581cc9793d48f98038b4d7a084ff7d461",
	RaftkvVersion:    "0.2.0",
}

func writeGoldenV1(t *testing.T) {
	f := newFSM(t)
	populate(t, f, "golden-cluster", 20)
	file, m := makeBackup(t, snapshot(t, f), backup.Info{
		ID: goldenV1Manifest.ID, NodeID: "node1", RaftIndex: 30, RaftTerm: 2,
		Trigger: backup.TriggerScheduled, RaftkvVersion: "0.2.0",
	})
	if err := os.MkdirAll(filepath.Dir(goldenV1), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenV1, file, 0o644); err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join("testdata", "fuzz", "FuzzReader")
	if err := os.MkdirAll(corpus, 0o755); err != nil {
		t.Fatal(err)
	}
	_, payloadAt := split(t, file)
	flipped := bytes.Clone(file)
	flipped[payloadAt+10] ^= 1
	seeds := map[string][]byte{
		"golden-v1":       file,
		"empty":           {},
		"magic-only":      []byte("RKVBACK\x00"),
		"truncated":       file[:len(file)/2],
		"flipped-payload": flipped,
		"manifest-only":   file[:payloadAt],
		"not-a-backup":    []byte("PK\x03\x04 this is a zip file, not a backup"),
	}
	for name, b := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(corpus, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("rewrote %s (manifest %+v) and the fuzz seed corpus", goldenV1, m)
}

// TestGoldenV1 checks that a format version 1 backup verifies, forever, with
// the same manifest, and restores to the state it was taken from.
func TestGoldenV1(t *testing.T) {
	if *update {
		writeGoldenV1(t)
	}
	file, err := os.ReadFile(goldenV1)
	if err != nil {
		t.Fatalf("read golden file: got error %v, want nil", err)
	}
	r, err := backup.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("NewReader: got error %v, want nil", err)
	}
	if got, want := r.Manifest(), goldenV1Manifest; got != want {
		t.Errorf("manifest:\n got %+v\nwant %+v", got, want)
	}
	var stream bytes.Buffer
	if err := r.Extract(&stream); err != nil {
		t.Fatalf("Extract: got error %v, want nil", err)
	}
	dst := newFSM(t)
	if err := dst.Restore(readCloser(stream.Bytes())); err != nil {
		t.Fatalf("restore the golden payload: got error %v, want nil", err)
	}
	kv, ok, err := dst.Get([]byte("key/00000"))
	if err != nil || !ok || string(kv.Value) != "overwritten" {
		t.Errorf("key/00000 after restore: got %q (found %v, err %v), want %q", kv.Value, ok, err, "overwritten")
	}
	if got := dst.ClusterID(); got != "golden-cluster" {
		t.Errorf("cluster id after restore: got %q, want golden-cluster", got)
	}
	if got := dst.Stats().KeyCount; got != 21 {
		t.Errorf("keys after restore: got %d, want 21", got)
	}
}

// FuzzReader: reading arbitrary bytes as a backup never panics, fails only
// with the package's sentinels, and whatever verifies has a consistent
// manifest.
func FuzzReader(f *testing.F) {
	if b, err := os.ReadFile(goldenV1); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := backup.NewReader(bytes.NewReader(b))
		if err == nil {
			var out bytes.Buffer
			err = r.Extract(&out)
			if err == nil {
				m := r.Manifest()
				if int64(out.Len()) != m.UncompressedSize || m.FileSize() != int64(len(b)) {
					t.Fatalf("verified backup: extracted %d bytes, file %d bytes; manifest says %d and %d",
						out.Len(), len(b), m.UncompressedSize, m.FileSize())
				}
				return
			}
		}
		if !errors.Is(err, backup.ErrNotBackup) && !errors.Is(err, backup.ErrCorrupt) && !errors.Is(err, backup.ErrUnsupportedVersion) {
			t.Fatalf("got error %v, want one wrapping ErrNotBackup, ErrCorrupt or ErrUnsupportedVersion", err)
		}
	})
}
