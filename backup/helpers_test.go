package backup_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// newFSM returns an empty FSM in a temp dir, closed at the end of the test.
func newFSM(t testing.TB) *fsm.FSM {
	t.Helper()
	f, err := fsm.New(fsm.Config{Dir: t.TempDir()}, fsm.Deps{})
	if err != nil {
		t.Fatalf("fsm.New: got error %v, want nil", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// applyAll applies cmds at indexes from+0, from+1, ... and returns the next
// free index.
func applyAll(t testing.TB, f *fsm.FSM, from uint64, cmds ...*fsmpb.Command) uint64 {
	t.Helper()
	logs := make([]*raft.Log, 0, len(cmds))
	for _, c := range cmds {
		b, err := fsm.EncodeCommand(c)
		if err != nil {
			t.Fatalf("EncodeCommand: %v", err)
		}
		logs = append(logs, &raft.Log{Index: from, Term: 2, Type: raft.LogCommand, Data: b})
		from++
	}
	// One batch, one store transaction: fast enough for thousands of keys.
	for i, r := range f.ApplyBatch(logs) {
		if err := r.(*fsm.Result).Err; err != nil {
			t.Fatalf("apply %d: got Result.Err %v, want nil", logs[i].Index, err)
		}
	}
	return from
}

func put(k, v string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Key: []byte(k), Value: []byte(v)}}}
}

func member(id, addr string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetMember{SetMember: &fsmpb.SetMember{Id: id, GrpcAddr: addr}}}
}

func clusterID(id string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetClusterId{SetClusterId: &fsmpb.SetClusterID{Id: id}}}
}

// populate fills f with a cluster id, two members and n keys (plus an
// overwrite and a binary key) and returns the applied index.
func populate(t testing.TB, f *fsm.FSM, cid string, n int) uint64 {
	t.Helper()
	cmds := []*fsmpb.Command{member("n1", "127.0.0.1:7001"), member("n2", "127.0.0.1:7011")}
	if cid != "" {
		cmds = append(cmds, clusterID(cid))
	}
	for i := 0; i < n; i++ {
		cmds = append(cmds, put(fmt.Sprintf("key/%05d", i), fmt.Sprintf("value-%d", i)))
	}
	cmds = append(cmds, put("key/00000", "overwritten"), put("\x00\xff", ""))
	return applyAll(t, f, 1, cmds...) - 1
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// snapshot returns f's FSM snapshot stream.
func snapshot(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: got error %v, want nil", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: got error %v, want nil", err)
	}
	return sink.Bytes()
}

var testCreated = time.Date(2025, 11, 25, 22, 45, 12, 0, time.UTC)

// makeBackup turns an FSM snapshot stream into a complete backup file.
func makeBackup(t testing.TB, stream []byte, info backup.Info) ([]byte, backup.Manifest) {
	t.Helper()
	if info.ID == "" {
		info.ID = "20251125T224512Z-42-abcd"
	}
	if info.Created.IsZero() {
		info.Created = testCreated
	}
	p, err := backup.Prepare(bytes.NewReader(stream), info, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("Prepare: got error %v, want nil", err)
	}
	defer p.Close()
	var buf bytes.Buffer
	n, err := p.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: got error %v, want nil", err)
	}
	if n != p.Size() || int64(buf.Len()) != p.Size() {
		t.Fatalf("WriteTo wrote %d bytes (buffer %d), Size says %d", n, buf.Len(), p.Size())
	}
	return buf.Bytes(), p.Manifest()
}

// split returns the manifest JSON of a backup file and the offset of its
// payload.
func split(t testing.TB, file []byte) (manifest []byte, payloadAt int) {
	t.Helper()
	ml := int(binary.BigEndian.Uint32(file[12:16]))
	return file[16 : 16+ml], 16 + ml + 32
}

// resign replaces the manifest of a backup file by edit(manifest) and
// re-computes the manifest checksum, so only what edit changed differs.
func resign(t testing.TB, file []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	mb, at := split(t, file)
	var m map[string]any
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	nb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), file[:12]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(nb)))
	out = append(out, nb...)
	sum := sha256.Sum256(nb)
	out = append(out, sum[:]...)
	return append(out, file[at:]...)
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
