package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

func clusterIDCmd(id string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetClusterId{SetClusterId: &fsmpb.SetClusterID{Id: id}}}
}

func TestSetClusterIDFirstWins(t *testing.T) {
	f := newFSM(t, "", nil)
	if got := f.ClusterID(); got != "" {
		t.Fatalf("ClusterID of a new FSM: got %q, want empty", got)
	}
	if r := apply(t, f, 1, clusterIDCmd("first")); r.Err != nil {
		t.Fatalf("SetClusterID: got Result.Err %v, want nil", r.Err)
	}
	if r := apply(t, f, 2, clusterIDCmd("second")); r.Err != nil {
		t.Fatalf("second SetClusterID: got Result.Err %v, want nil (a no-op)", r.Err)
	}
	if got := f.ClusterID(); got != "first" {
		t.Errorf("ClusterID after two SetClusterID: got %q, want %q", got, "first")
	}
	if got := f.AppliedIndex(); got != 2 {
		t.Errorf("AppliedIndex: got %d, want 2", got)
	}
}

func TestSetClusterIDInvalid(t *testing.T) {
	for _, tt := range []struct{ name, id string }{
		{"empty", ""},
		{"too long", strings.Repeat("x", fsm.MaxClusterIDLen+1)},
		{"space", "a b"},
		{"control byte", "a\nb"},
		{"non-ascii", "clüster"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t, "", nil)
			r := apply(t, f, 1, clusterIDCmd(tt.id))
			if !errors.Is(r.Err, fsm.ErrInvalidClusterID) {
				t.Fatalf("SetClusterID(%q): got Result.Err %v, want ErrInvalidClusterID", tt.id, r.Err)
			}
			if got := f.ClusterID(); got != "" {
				t.Errorf("ClusterID after a rejected SetClusterID: got %q, want empty", got)
			}
		})
	}
}

func TestSnapshotCarriesClusterID(t *testing.T) {
	src := newFSM(t, "", nil)
	populate(t, src)
	idx0, sum0 := mustHash(t, src)
	apply(t, src, idx0+1, clusterIDCmd("c-1"))
	idx, sum := mustHash(t, src)
	if bytes.Equal(sum0, sum) {
		t.Errorf("Hash did not change when the cluster id was set")
	}
	data := snapshotBytes(t, src)
	// Without any expiry the snapshot is written in version 2, as v0.2.0
	// wrote it.
	if v := binary.BigEndian.Uint32(data[8:12]); v != 2 {
		t.Fatalf("snapshot version: got %d, want 2 (no expiries)", v)
	}
	dst := newFSM(t, "", nil)
	apply(t, dst, 1, clusterIDCmd("other"))
	if err := dst.Restore(readCloser(data)); err != nil {
		t.Fatalf("Restore: got error %v, want nil", err)
	}
	if got := dst.ClusterID(); got != "c-1" {
		t.Errorf("ClusterID after restore: got %q, want %q (restore replaces the whole state)", got, "c-1")
	}
	if idx2, sum2 := mustHash(t, dst); idx2 != idx || !bytes.Equal(sum, sum2) {
		t.Errorf("Hash after restore: got index %d (sums equal %v), want %d (equal)", idx2, bytes.Equal(sum, sum2), idx)
	}
}

// withVersionAndChecksum sets the header version of a snapshot stream and
// recomputes its trailer checksum, so only the version differs.
func withVersionAndChecksum(b []byte, v uint32) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[8:12], v)
	sum := sha256.Sum256(b[:len(b)-32])
	copy(b[len(b)-32:], sum[:])
	return b
}

func TestRestoreVersion1Snapshot(t *testing.T) {
	src := newFSM(t, "", nil)
	populate(t, src) // no cluster id: the stream is a valid v1 stream once relabelled
	idx, sum := mustHash(t, src)
	v1 := withVersionAndChecksum(snapshotBytes(t, src), 1)
	dst := newFSM(t, "", nil)
	if err := dst.Restore(readCloser(v1)); err != nil {
		t.Fatalf("Restore of a version 1 snapshot: got error %v, want nil", err)
	}
	if idx2, sum2 := mustHash(t, dst); idx2 != idx || !bytes.Equal(sum, sum2) {
		t.Errorf("Hash after v1 restore: got index %d (sums equal %v), want %d (equal)", idx2, bytes.Equal(sum, sum2), idx)
	}

	// A cluster id record is not valid in version 1.
	apply(t, src, idx+1, clusterIDCmd("c-1"))
	bad := withVersionAndChecksum(snapshotBytes(t, src), 1)
	if err := newFSM(t, "", nil).Restore(readCloser(bad)); !errors.Is(err, fsm.ErrBadSnapshot) {
		t.Errorf("Restore of a v1 snapshot with a cluster id record: got %v, want ErrBadSnapshot", err)
	}
}

func TestRewriteClusterID(t *testing.T) {
	src := newFSM(t, "", nil)
	populate(t, src)
	idx, _ := mustHash(t, src)
	apply(t, src, idx+1, clusterIDCmd("theirs"))
	data := snapshotBytes(t, src)

	var out bytes.Buffer
	info, err := fsm.RewriteClusterID(&out, bytes.NewReader(data), "ours")
	if err != nil {
		t.Fatalf("RewriteClusterID: got error %v, want nil", err)
	}
	if info.ClusterID != "theirs" || info.Index != idx+1 {
		t.Errorf("RewriteClusterID info: got cluster id %q index %d, want %q %d", info.ClusterID, info.Index, "theirs", idx+1)
	}
	dst := newFSM(t, "", nil)
	if err := dst.Restore(readCloser(out.Bytes())); err != nil {
		t.Fatalf("Restore of rewritten snapshot: got error %v, want nil", err)
	}
	if got := dst.ClusterID(); got != "ours" {
		t.Errorf("ClusterID after restoring the rewritten snapshot: got %q, want %q", got, "ours")
	}
	// Everything else is the same: set the source's id to ours and compare.
	ref := newFSM(t, "", nil)
	populate(t, ref)
	apply(t, ref, idx+1, clusterIDCmd("ours"))
	_, want := mustHash(t, ref)
	if _, got := mustHash(t, dst); !bytes.Equal(got, want) {
		t.Errorf("rewritten snapshot differs in more than the cluster id")
	}

	// A stream without an id gets one.
	plain := newFSM(t, "", nil)
	populate(t, plain)
	out.Reset()
	if _, err := fsm.RewriteClusterID(&out, bytes.NewReader(snapshotBytes(t, plain)), "ours"); err != nil {
		t.Fatalf("RewriteClusterID without an id: got error %v, want nil", err)
	}
	dst2 := newFSM(t, "", nil)
	if err := dst2.Restore(readCloser(out.Bytes())); err != nil || dst2.ClusterID() != "ours" {
		t.Errorf("restore of a stream that gained an id: err %v, cluster id %q, want nil, %q", err, dst2.ClusterID(), "ours")
	}

	// Corrupt input is reported.
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	if _, err := fsm.RewriteClusterID(&out, bytes.NewReader(bad), "ours"); !errors.Is(err, fsm.ErrBadSnapshot) {
		t.Errorf("RewriteClusterID of a corrupt stream: got %v, want ErrBadSnapshot", err)
	}
	if _, err := fsm.RewriteClusterID(&out, bytes.NewReader(data), ""); !errors.Is(err, fsm.ErrInvalidClusterID) {
		t.Errorf("RewriteClusterID to an empty id: got %v, want ErrInvalidClusterID", err)
	}
}

// goldenV020 are the commands v0.2.0 added.
//
// NB: as goldenV010: never edit this table or testdata/v0.2.0.
var goldenV020 = []goldenCommand{
	{"set_cluster_id", clusterIDCmd("6f1c2d3e4a5b6c7d")},
}

func TestGoldenV020(t *testing.T) {
	const dir = "testdata/v0.2.0"
	if *update {
		writeGoldenCommands(t, dir, goldenV020)
	}
	checkGoldenCommands(t, newFSM(t, "", nil), dir, goldenV020)
}
