package backup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/backup"
)

func TestDir(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "backups")
	d, err := backup.OpenDir(path, "node1")
	if err != nil {
		t.Fatalf("OpenDir: got error %v, want nil", err)
	}
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	for _, id := range []string{"b-2", "b-1"} {
		if err := d.Put(ctx, id, write("data of "+id)); err != nil {
			t.Fatalf("Put(%s): got error %v, want nil", id, err)
		}
	}
	if err := d.Put(ctx, "b-1", write("again")); err == nil {
		t.Errorf("Put of an existing id: got nil error, want one")
	}
	// A failed write leaves nothing behind.
	boom := errors.New("boom")
	if err := d.Put(ctx, "b-3", func(w io.Writer) error { _, _ = io.WriteString(w, "half"); return boom }); !errors.Is(err, boom) {
		t.Errorf("Put with a failing writer: got %v, want it to wrap boom", err)
	}
	// Another node's temp file in a shared dir is neither listed nor
	// removed; ours (from a "crash") is removed by OpenDir.
	for _, name := range []string{".tmp-node2-123", ".tmp-node1-456", "README"} {
		if err := os.WriteFile(filepath.Join(path, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: got error %v, want nil", err)
	}
	var ids []string
	for _, e := range list {
		ids = append(ids, e.ID)
		if e.Size != int64(len("data of "+e.ID)) || time.Since(e.ModTime) > time.Hour {
			t.Errorf("entry %s: size %d modtime %v", e.ID, e.Size, e.ModTime)
		}
	}
	if got := strings.Join(ids, ","); got != "b-1,b-2" {
		t.Errorf("List: got ids %s, want b-1,b-2", got)
	}
	if _, err := backup.OpenDir(path, "node1"); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := os.Stat(filepath.Join(path, ".tmp-node1-456")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenDir left this node's temp file behind (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(path, ".tmp-node2-123")); err != nil {
		t.Errorf("OpenDir removed another node's temp file: %v", err)
	}

	rc, size, err := d.Open(ctx, "b-2")
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "data of b-2" || size != int64(len(b)) {
		t.Errorf("Open: got %q size %d", b, size)
	}
	if _, _, err := d.Open(ctx, "nope"); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("Open of a missing id: got %v, want ErrNotFound", err)
	}
	if err := d.Delete(ctx, "b-2"); err != nil {
		t.Errorf("Delete: got error %v, want nil", err)
	}
	if err := d.Delete(ctx, "b-2"); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("second Delete: got %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", "sp ace", strings.Repeat("x", 129)} {
		if _, _, err := d.Open(ctx, bad); !errors.Is(err, backup.ErrInvalidID) {
			t.Errorf("Open(%q): got %v, want ErrInvalidID", bad, err)
		}
	}
}

func TestNewID(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	id := backup.NewID(at, 77)
	if !strings.HasPrefix(id, "20250102T020405Z-77-") || len(id) != len("20250102T020405Z-77-abcd") {
		t.Errorf("NewID: got %q, want 20250102T020405Z-77-XXXX", id)
	}
	if err := backup.ValidateID(id); err != nil {
		t.Errorf("NewID made an invalid id: %v", err)
	}
	if backup.NewID(at, 77) == id {
		t.Errorf("two NewID of the same second and index are equal")
	}
}

func TestSeed(t *testing.T) {
	src := newFSM(t)
	populate(t, src, "cluster-a", 300)
	file, m := makeBackup(t, snapshot(t, src), backup.Info{RaftIndex: 999, RaftTerm: 7})
	servers := []raft.Server{
		{Suffrage: raft.Voter, ID: "n1", Address: "127.0.0.1:7002"},
		{Suffrage: raft.Voter, ID: "n2", Address: "127.0.0.1:7012"},
	}
	dataDir := filepath.Join(t.TempDir(), "n1")
	got, err := backup.Seed(bytes.NewReader(file), backup.SeedConfig{DataDir: dataDir, NodeID: "n1", Servers: servers})
	if err != nil {
		t.Fatalf("Seed: got error %v, want nil", err)
	}
	if got != m {
		t.Errorf("Seed manifest: got %+v, want %+v", got, m)
	}
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(dataDir, "raft"), 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	metas, err := snaps.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("seeded snapshots: got %d (err %v), want 1", len(metas), err)
	}
	meta := metas[0]
	if meta.Index != m.AppliedIndex || meta.Term != 1 || meta.ConfigurationIndex != m.AppliedIndex || len(meta.Configuration.Servers) != 2 {
		t.Errorf("seeded snapshot: index %d term %d conf index %d servers %v; want %d 1 %d (2 servers)",
			meta.Index, meta.Term, meta.ConfigurationIndex, meta.Configuration.Servers, m.AppliedIndex, m.AppliedIndex)
	}
	_, rc, err := snaps.Open(meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	dst := newFSM(t)
	if err := dst.Restore(rc); err != nil {
		t.Fatalf("restore the seeded snapshot: got error %v, want nil", err)
	}
	_, want, _ := src.Hash()
	if _, h, _ := dst.Hash(); !bytes.Equal(h, want) {
		t.Errorf("seeded snapshot restores to another state than the source's")
	}

	// A used data dir is refused.
	if _, err := backup.Seed(bytes.NewReader(file), backup.SeedConfig{DataDir: dataDir, NodeID: "n1", Servers: servers}); !errors.Is(err, backup.ErrDataDirInUse) {
		t.Errorf("Seed into a seeded dir: got %v, want ErrDataDirInUse", err)
	}
	// A corrupt backup leaves nothing behind.
	bad := bytes.Clone(file)
	bad[len(bad)-10] ^= 1
	fresh := filepath.Join(t.TempDir(), "n2")
	if _, err := backup.Seed(bytes.NewReader(bad), backup.SeedConfig{DataDir: fresh, NodeID: "n2", Servers: servers}); !errors.Is(err, backup.ErrCorrupt) {
		t.Errorf("Seed of a corrupt backup: got %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Seed left %s behind (stat: %v)", fresh, err)
	}
	// The node must be in the configuration.
	if _, err := backup.Seed(bytes.NewReader(file), backup.SeedConfig{DataDir: fresh, NodeID: "n9", Servers: servers}); err == nil || !strings.Contains(err.Error(), "not one of the 2 servers") {
		t.Errorf("Seed for a node outside the cluster: got %v", err)
	}
}
