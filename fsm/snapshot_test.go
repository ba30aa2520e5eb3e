package fsm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// populate applies a varied state: members, binary keys, empty values,
// overwrites and deletes.
func populate(t testing.TB, f *fsm.FSM) {
	t.Helper()
	cmds := []*fsmpb.Command{
		memberCmd("n1", "10.0.0.1:9000"),
		memberCmd("n2", "10.0.0.2:9000"),
		putCmd("a", "1"),
		putCmd("\x00", "zero"),
		putCmd("\xff\xff", ""),
		putCmd("a", "2"),
		putCmd("b/1", strings.Repeat("x", 5000)),
		putCmd("b/2", "y"),
		delCmd("b/2", "", false),
		memberCmd("n1", "10.0.0.9:9000"),
	}
	for i := 0; i < 300; i++ {
		cmds = append(cmds, putCmd(fmt.Sprintf("bulk/%04d", i), fmt.Sprintf("value-%d", i)))
	}
	for i, c := range cmds {
		if r := apply(t, f, uint64(i+1), c); r.Err != nil {
			t.Fatalf("populate step %d: got Result.Err %v, want nil", i+1, r.Err)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := newFSM(t, "", nil)
	populate(t, src)
	idx, sum := mustHash(t, src)
	data := snapshotBytes(t, src)

	inv := &recordingInvalidator{}
	dst := newFSM(t, "", inv)
	apply(t, dst, 1, putCmd("stale", "data")) // must disappear
	inv.take()
	if err := dst.Restore(readCloser(data)); err != nil {
		t.Fatalf("Restore: got error %v, want nil", err)
	}
	if idx2, sum2 := mustHash(t, dst); idx2 != idx || !bytes.Equal(sum, sum2) {
		t.Errorf("Hash after restore: got index %d (sums equal %v), want %d (equal)", idx2, bytes.Equal(sum, sum2), idx)
	}
	if got := dst.AppliedIndex(); got != idx {
		t.Errorf("AppliedIndex after restore: got %d, want %d", got, idx)
	}
	if got, want := fmt.Sprint(dst.Members()), fmt.Sprint(src.Members()); got != want {
		t.Errorf("Members after restore: got %s, want %s", got, want)
	}
	if got, want := dst.Stats().KeyCount, src.Stats().KeyCount; got != want {
		t.Errorf("KeyCount after restore: got %d, want %d", got, want)
	}
	if _, ok, _ := dst.Get([]byte("stale")); ok {
		t.Errorf("key from before the restore survived it")
	}
	if calls, _ := inv.take(); fmt.Sprint(calls) != fmt.Sprintf("[purge@%d]", idx) {
		t.Errorf("invalidations on restore: got %q, want [purge@%d]", calls, idx)
	}
	// Entries the snapshot covers are skipped; new ones apply on top.
	apply(t, dst, idx, putCmd("a", "REPLAYED"))
	r := apply(t, dst, idx+1, putPrevCmd("a", "3"))
	if got := fmtResult(r); got != fmt.Sprintf(`idx=%d put(prev={"a"="2" c3 m6 v2})`, idx+1) {
		t.Errorf("apply after restore: got %s", got)
	}
	// The restored store survives a reopen.
	dir := t.TempDir()
	f3 := newFSM(t, dir, nil)
	if err := f3.Restore(readCloser(data)); err != nil {
		t.Fatalf("Restore: got error %v, want nil", err)
	}
	_ = f3.Close()
	f4 := newFSM(t, dir, nil)
	if idx2, sum2 := mustHash(t, f4); idx2 != idx || !bytes.Equal(sum, sum2) {
		t.Errorf("Hash after restore and reopen: got index %d (sums equal %v), want %d (equal)", idx2, bytes.Equal(sum, sum2), idx)
	}
	assertNoTempFiles(t, dir)
}

func TestSnapshotIsPointInTime(t *testing.T) {
	src := newFSM(t, "", nil)
	populate(t, src)
	idx, sum := mustHash(t, src)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: got error %v, want nil", err)
	}
	// Apply keeps going while the snapshot waits to be persisted.
	apply(t, src, idx+1, putCmd("a", "later"))
	apply(t, src, idx+2, delCmd("\x00", "\x00", false))
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: got error %v, want nil", err)
	}
	snap.Release()
	snap.Release() // idempotent

	dst := newFSM(t, "", nil)
	if err := dst.Restore(readCloser(sink.Bytes())); err != nil {
		t.Fatalf("Restore: got error %v, want nil", err)
	}
	if idx2, sum2 := mustHash(t, dst); idx2 != idx || !bytes.Equal(sum, sum2) {
		t.Errorf("restored state: got index %d (sums equal %v), want the state at snapshot time, index %d", idx2, bytes.Equal(sum, sum2), idx)
	}
}

func TestPersistCancelsOnError(t *testing.T) {
	f := newFSM(t, "", nil)
	populate(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: got error %v, want nil", err)
	}
	defer snap.Release()
	sink := &memSink{failAfter: 1000}
	if err := snap.Persist(sink); err == nil {
		t.Fatalf("Persist into a failing sink: got nil error, want one")
	}
	if !sink.canceled || sink.closed {
		t.Errorf("failing sink: (canceled, closed) = (%v, %v), want (true, false)", sink.canceled, sink.closed)
	}
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	src := newFSM(t, "", nil)
	populate(t, src)
	good := snapshotBytes(t, src)
	const headerLen = 28
	trailerAt := len(good) - 32 - 8 - 4

	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x40
		return b
	}
	withVersion := func(v uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[8:12], v)
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"flipped magic", flip(0)},
		{"unknown version", withVersion(fsm.SnapshotVersion + 1)},
		{"version 0", withVersion(0)},
		{"flipped applied index", flip(15)},
		{"flipped first record length", flip(headerLen + 3)},
		{"flipped byte in a record", flip(len(good) / 2)},
		{"flipped record count", flip(trailerAt + 4 + 7)},
		{"flipped checksum", flip(len(good) - 1)},
		{"truncated in header", good[:headerLen-1]},
		{"truncated after header", good[:headerLen]},
		{"truncated mid record", good[:len(good)/2]},
		{"truncated before trailer", good[:trailerAt]},
		{"truncated before checksum", good[:len(good)-32]},
		{"missing last byte", good[:len(good)-1]},
		{"trailing garbage", append(bytes.Clone(good), 0)},
		{"not a snapshot", []byte("hello, this is not a snapshot at all, just some text")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFSM(t, dir, nil)
			apply(t, f, 1, putCmd("keep", "me"))
			idx, sum := mustHash(t, f)

			err := f.Restore(readCloser(tt.data))
			if !errors.Is(err, fsm.ErrBadSnapshot) {
				t.Fatalf("Restore: got error %v, want one wrapping ErrBadSnapshot", err)
			}
			if idx2, sum2 := mustHash(t, f); idx2 != idx || !bytes.Equal(sum, sum2) || f.AppliedIndex() != idx {
				t.Errorf("failed restore changed state: index %d -> %d, hash changed %v", idx, idx2, !bytes.Equal(sum, sum2))
			}
			assertNoTempFiles(t, dir)
			// Still writable.
			apply(t, f, 2, putCmd("after", "1"))
		})
	}
}

// TestRestoreWithOpenSnapshot: raft may still be persisting a snapshot of
// the old state when a Restore arrives. Restore must not wait for it (raft's
// snapshot goroutine can be waiting on the goroutine that waits for
// Restore), and the old snapshot must still stream the old state.
func TestRestoreWithOpenSnapshot(t *testing.T) {
	f := newFSM(t, "", nil)
	apply(t, f, 1, putCmd("old", "state"))
	oldIdx, oldSum := mustHash(t, f)
	pending, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: got error %v, want nil", err)
	}

	other := newFSM(t, "", nil)
	populate(t, other)
	if err := f.Restore(readCloser(snapshotBytes(t, other))); err != nil {
		t.Fatalf("Restore with a snapshot open: got error %v, want nil", err)
	}

	var sink memSink
	if err := pending.Persist(&sink); err != nil {
		t.Fatalf("Persist of the pre-restore snapshot: got error %v, want nil", err)
	}
	pending.Release()
	check := newFSM(t, "", nil)
	if err := check.Restore(readCloser(sink.Bytes())); err != nil {
		t.Fatalf("Restore of the pre-restore snapshot: got error %v, want nil", err)
	}
	if idx, sum := mustHash(t, check); idx != oldIdx || !bytes.Equal(sum, oldSum) {
		t.Errorf("pre-restore snapshot: got index %d (sums equal %v), want the old state at %d", idx, bytes.Equal(sum, oldSum), oldIdx)
	}
	if err := f.Close(); err != nil { // waits for the old store's closer
		t.Errorf("Close: got error %v, want nil", err)
	}
}

func TestClosedFSM(t *testing.T) {
	f := newFSM(t, "", nil)
	_ = f.Close()
	if _, err := f.Snapshot(); !errors.Is(err, fsm.ErrClosed) {
		t.Errorf("Snapshot: got %v, want ErrClosed", err)
	}
	if err := f.Restore(readCloser(nil)); !errors.Is(err, fsm.ErrClosed) {
		t.Errorf("Restore: got %v, want ErrClosed", err)
	}
	if _, err := f.Range(&fsmpb.Range{Key: []byte("a")}); !errors.Is(err, fsm.ErrClosed) {
		t.Errorf("Range: got %v, want ErrClosed", err)
	}
	if _, _, err := f.Hash(); !errors.Is(err, fsm.ErrClosed) {
		t.Errorf("Hash: got %v, want ErrClosed", err)
	}
	if m := f.Members(); m != nil {
		t.Errorf("Members: got %v, want nil", m)
	}
}

func TestNewRemovesLeftoverRestoreFiles(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, "store.db.restore-123")
	if err := os.WriteFile(left, []byte("half a restore"), 0o600); err != nil {
		t.Fatal(err)
	}
	newFSM(t, dir, nil)
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover restore file: got stat error %v, want it removed", err)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(dir, "store.db.restore-*"))
	if len(left) != 0 {
		t.Errorf("temporary restore files left behind: %q", left)
	}
}
