package backup_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

func TestRoundTrip(t *testing.T) {
	src := newFSM(t)
	idx := populate(t, src, "cluster-a", 500)
	stream := snapshot(t, src)
	file, m := makeBackup(t, stream, backup.Info{NodeID: "n1", RaftIndex: idx + 3, RaftTerm: 2, RaftkvVersion: "test"})

	stats := src.Stats()
	want := backup.Manifest{
		FormatVersion: 1, ID: "20251125T224512Z-42-abcd", ClusterID: "cluster-a", NodeID: "n1",
		RaftIndex: idx + 3, RaftTerm: 2, AppliedIndex: idx, Created: testCreated, Trigger: backup.TriggerManual,
		KeyCount: uint64(stats.KeyCount), MemberCount: 2, UncompressedSize: int64(len(stream)),
		CompressedSize: m.CompressedSize, Compression: "gzip", PayloadFormat: backup.PayloadFormat,
		PayloadVersion: fsm2(), SHA256: m.SHA256, RaftkvVersion: "test",
	}
	if m != want {
		t.Errorf("manifest:\n got %+v\nwant %+v", m, want)
	}
	if m.CompressedSize >= m.UncompressedSize {
		t.Errorf("compressed size %d not below uncompressed %d for repetitive data", m.CompressedSize, m.UncompressedSize)
	}

	r, err := backup.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("NewReader: got error %v, want nil", err)
	}
	if r.Manifest() != m {
		t.Errorf("NewReader manifest differs from Prepare's:\n got %+v\nwant %+v", r.Manifest(), m)
	}
	var out bytes.Buffer
	if err := r.Extract(&out); err != nil {
		t.Fatalf("Extract: got error %v, want nil", err)
	}
	if !bytes.Equal(out.Bytes(), stream) {
		t.Fatalf("Extract gave %d bytes that differ from the %d-byte snapshot stream", out.Len(), len(stream))
	}
	// The extracted stream restores to the same state.
	dst := newFSM(t)
	if err := dst.Restore(readCloser(out.Bytes())); err != nil {
		t.Fatalf("Restore of the extracted stream: got error %v, want nil", err)
	}
	_, want1, _ := src.Hash()
	if _, got, _ := dst.Hash(); !bytes.Equal(got, want1) {
		t.Errorf("restored state hash differs from the source's")
	}
	if err := r.Verify(); err == nil {
		t.Errorf("second read of the payload: got nil error, want one")
	}
}

// fsm2 is the snapshot version the fsm package writes today.
func fsm2() uint32 { return 2 }

// TestDecoderAgreesWithFSM: backup's own snapshot decoder counts what fsm
// wrote, for every shape of state, and reads v1 streams.
func TestDecoderAgreesWithFSM(t *testing.T) {
	for _, tt := range []struct {
		name string
		cid  string
		n    int
	}{{"empty with id", "c", 0}, {"no cluster id", "", 10}, {"many", "c-2", 3000}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			idx := populate(t, f, tt.cid, tt.n)
			_, m := makeBackup(t, snapshot(t, f), backup.Info{})
			if m.KeyCount != uint64(f.Stats().KeyCount) || m.AppliedIndex != idx || m.ClusterID != tt.cid || m.MemberCount != 2 {
				t.Errorf("manifest keys %d index %d cluster %q members %d, want %d %d %q 2",
					m.KeyCount, m.AppliedIndex, m.ClusterID, m.MemberCount, f.Stats().KeyCount, idx, tt.cid)
			}
		})
	}
	t.Run("version 3 stream with expiries", func(t *testing.T) {
		f := newFSM(t)
		idx := populate(t, f, "c", 20)
		for i := range 5 {
			idx = applyAll(t, f, idx+1, &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{
				Key: []byte(fmt.Sprintf("ttl/%d", i)), Value: []byte("v"), ExpireAtUnixMs: 1767225600000 + int64(i)}}}) - 1
		}
		_, m := makeBackup(t, snapshot(t, f), backup.Info{})
		if m.PayloadVersion != 3 || m.KeyCount != uint64(f.Stats().KeyCount) || m.AppliedIndex != idx {
			t.Errorf("manifest payload version %d keys %d index %d, want 3 %d %d", m.PayloadVersion, m.KeyCount, m.AppliedIndex, f.Stats().KeyCount, idx)
		}
	})
	t.Run("version 1 stream", func(t *testing.T) {
		f := newFSM(t)
		populate(t, f, "", 5)
		s := snapshot(t, f)
		binary.BigEndian.PutUint32(s[8:12], 1)
		sum := sha256.Sum256(s[:len(s)-32])
		copy(s[len(s)-32:], sum[:])
		file, m := makeBackup(t, s, backup.Info{})
		if m.PayloadVersion != 1 {
			t.Errorf("payload version: got %d, want 1", m.PayloadVersion)
		}
		if _, err := backup.NewReader(bytes.NewReader(file)); err != nil {
			t.Errorf("NewReader of a v1-payload backup: %v", err)
		}
	})
}

func TestPrepareRejectsBadSnapshots(t *testing.T) {
	f := newFSM(t)
	populate(t, f, "c", 50)
	good := snapshot(t, f)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	for _, tt := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, backup.ErrCorrupt},
		{"flipped byte", flipped, backup.ErrCorrupt},
		{"truncated", good[:len(good)-1], backup.ErrCorrupt},
		{"trailing data", append(bytes.Clone(good), 0), backup.ErrCorrupt},
		{"not a snapshot", []byte(strings.Repeat("hello ", 20)), backup.ErrCorrupt},
		{"newer snapshot version", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint32(b[8:12], 4)
			return b
		}(), backup.ErrUnsupportedVersion},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := backup.Prepare(bytes.NewReader(tt.data), backup.Info{ID: "x"}, dir, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Prepare: got error %v, want one wrapping %v", err, tt.want)
			}
			if des, _ := os.ReadDir(dir); len(des) != 0 {
				t.Errorf("Prepare left %d files behind", len(des))
			}
		})
	}
	if _, err := backup.Prepare(bytes.NewReader(good), backup.Info{ID: "../x"}, t.TempDir(), nil); !errors.Is(err, backup.ErrInvalidID) {
		t.Errorf("Prepare with id ../x: got %v, want ErrInvalidID", err)
	}
}

// TestCorruptionDetected: every kind of damage is reported with the right
// sentinel and a message that says what is wrong.
func TestCorruptionDetected(t *testing.T) {
	f := newFSM(t)
	populate(t, f, "cluster-a", 2000)
	good, m := makeBackup(t, snapshot(t, f), backup.Info{})
	mb, payloadAt := split(t, good)
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x01
		return b
	}
	withVersion := func(v uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[8:12], v)
		return b
	}
	manifestDigit := 16 + bytes.Index(mb, []byte(`"key_count": `)) + len(`"key_count": `)

	tests := []struct {
		name    string
		data    []byte
		want    error
		message string
		header  bool // NewReader itself fails
	}{
		{"empty file", nil, backup.ErrNotBackup, "empty file", true},
		{"not a backup", []byte("#!/bin/sh\necho this is a shell script, not a backup\n"), backup.ErrNotBackup, "does not start with", true},
		{"flipped magic", flip(0), backup.ErrNotBackup, "does not start with", true},
		{"newer format version", withVersion(2), backup.ErrUnsupportedVersion, "format version 2", true},
		{"format version 0", withVersion(0), backup.ErrUnsupportedVersion, "format version 0", true},
		{"truncated in header", good[:10], backup.ErrCorrupt, "truncated header", true},
		{"truncated in manifest", good[:100], backup.ErrCorrupt, "truncated manifest", true},
		{"flipped manifest length", flip(14), backup.ErrCorrupt, "manifest", true},
		{"flipped byte in manifest", flip(manifestDigit), backup.ErrCorrupt, "manifest checksum mismatch", true},
		{"flipped manifest checksum", flip(payloadAt - 1), backup.ErrCorrupt, "manifest checksum mismatch", true},
		{"truncated after manifest", good[:payloadAt], backup.ErrCorrupt, "truncated", false},
		{"truncated mid payload", good[:payloadAt+int(m.CompressedSize)/2], backup.ErrCorrupt, "truncated", false},
		{"missing last byte", good[:len(good)-1], backup.ErrCorrupt, "truncated", false},
		{"flipped first payload byte", flip(payloadAt), backup.ErrCorrupt, "payload sha256", false},
		{"flipped payload byte", flip(payloadAt + int(m.CompressedSize)/2), backup.ErrCorrupt, "payload sha256", false},
		{"flipped last payload byte", flip(len(good) - 1), backup.ErrCorrupt, "payload sha256", false},
		{"trailing garbage", append(bytes.Clone(good), '\n'), backup.ErrCorrupt, "data after the payload", false},
		{"manifest with another key count", resign(t, good, func(m map[string]any) { m["key_count"] = 7 }), backup.ErrCorrupt, "holds 2001 keys, the manifest says 7", false},
		{"manifest with another cluster id", resign(t, good, func(m map[string]any) { m["cluster_id"] = "cluster-b" }), backup.ErrCorrupt, "payload is of cluster", false},
		{"manifest with another applied index", resign(t, good, func(m map[string]any) { m["applied_index"] = 1; m["raft_index"] = 1 }), backup.ErrCorrupt, "applied index", false},
		{"manifest with a bigger payload", resign(t, good, func(m map[string]any) { m["compressed_size"] = m["compressed_size"].(float64) + 10 }), backup.ErrCorrupt, "truncated", false},
		{"manifest with a smaller payload", resign(t, good, func(m map[string]any) { m["compressed_size"] = m["compressed_size"].(float64) - 10 }), backup.ErrCorrupt, "payload sha256", false},
		{"manifest with another sha256", resign(t, good, func(m map[string]any) { m["sha256"] = strings.Repeat("0", 64) }), backup.ErrCorrupt, "payload sha256", false},
		{"manifest with a newer payload version", resign(t, good, func(m map[string]any) { m["payload_version"] = 9 }), backup.ErrUnsupportedVersion, "payload snapshot version 9", true},
		{"manifest with zstd", resign(t, good, func(m map[string]any) { m["compression"] = "zstd" }), backup.ErrUnsupportedVersion, `compression "zstd"`, true},
		{"manifest that is not JSON", func() []byte {
			b := resign(t, good, func(map[string]any) {})
			return resign2(b, []byte("{not json"))
		}(), backup.ErrCorrupt, "decode manifest", true},
		{"manifest with a path as id", resign(t, good, func(m map[string]any) { m["id"] = "../../etc/passwd" }), backup.ErrCorrupt, "invalid backup id", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := backup.NewReader(bytes.NewReader(tt.data))
			if tt.header {
				if err == nil {
					t.Fatalf("NewReader: got nil error, want one wrapping %v", tt.want)
				}
			} else {
				if err != nil {
					t.Fatalf("NewReader: got error %v, want nil (the damage is in the payload)", err)
				}
				err = r.Verify()
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("got error %v, want one wrapping %v and containing %q", err, tt.want, tt.message)
			}
			// The checksum-only check catches all the same damage, except
			// what only decoding sees (a re-signed manifest that lies about
			// the content).
			if r, err := backup.NewReader(bytes.NewReader(tt.data)); err == nil {
				err := r.VerifyChecksum()
				lie := strings.HasPrefix(tt.name, "manifest with another") && !strings.Contains(tt.name, "sha256")
				if lie != (err == nil) {
					t.Errorf("VerifyChecksum: got error %v (manifest lies about the content: %v)", err, lie)
				}
			}
		})
	}
	r, _ := backup.NewReader(bytes.NewReader(good))
	if err := r.VerifyChecksum(); err != nil {
		t.Errorf("VerifyChecksum of a good backup: got %v, want nil", err)
	}
}

// resign2 replaces the manifest bytes of a backup file by raw, with a valid
// checksum.
func resign2(file, raw []byte) []byte {
	ml := int(binary.BigEndian.Uint32(file[12:16]))
	out := append([]byte(nil), file[:12]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(raw)))
	out = append(out, raw...)
	sum := sha256.Sum256(raw)
	out = append(out, sum[:]...)
	return append(out, file[16+ml+32:]...)
}

func TestCheckCluster(t *testing.T) {
	m := backup.Manifest{ID: "b1", ClusterID: "a"}
	for _, tt := range []struct {
		cluster string
		force   bool
		ok      bool
	}{{"a", false, true}, {"b", false, false}, {"b", true, true}, {"", false, true}} {
		err := backup.CheckCluster(m, tt.cluster, tt.force)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, backup.ErrClusterMismatch)) {
			t.Errorf("CheckCluster(backup of a, cluster %q, force %v): got %v, want ok=%v", tt.cluster, tt.force, err, tt.ok)
		}
	}
	err := backup.CheckCluster(m, "b", false)
	if want := "backup b1 is of cluster a, this cluster is b; use --force"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CheckCluster message: got %v, want it to contain %q", err, want)
	}
	if err := backup.CheckCluster(backup.Manifest{ID: "b2"}, "b", false); err != nil {
		t.Errorf("CheckCluster of a backup without a cluster id: got %v, want nil", err)
	}
}

func TestVerifyFile(t *testing.T) {
	f := newFSM(t)
	populate(t, f, "c", 10)
	good, m := makeBackup(t, snapshot(t, f), backup.Info{})
	p := filepath.Join(t.TempDir(), "b.rkvbak")
	if err := os.WriteFile(p, good, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := backup.VerifyFile(p)
	if err != nil || got != m {
		t.Fatalf("VerifyFile: got %+v, %v; want the manifest, nil", got, err)
	}
	if m.FileSize() != int64(len(good)) {
		t.Errorf("FileSize: got %d, want %d", m.FileSize(), len(good))
	}
	if _, err := backup.VerifyFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VerifyFile of a missing file: got %v, want ErrNotExist", err)
	}
}
