package fsm_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/fsm"
)

const marker = "store.unsynced"

func markerExists(t *testing.T, dir string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, marker))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat marker: %v", err)
	}
	return err == nil
}

func openFSM(t *testing.T, dir string, interval time.Duration) *fsm.FSM {
	t.Helper()
	f, err := fsm.New(fsm.Config{Dir: dir, SyncInterval: interval}, fsm.Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("fsm.New: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestUnsyncedMarkerLifecycle: with deferred syncs, the marker exists
// exactly while the store holds commits that were not fsynced.
func TestUnsyncedMarkerLifecycle(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		// markerAfterApply: whether an apply leaves the marker behind.
		markerAfterApply bool
	}{
		{"fsync every batch", 0, false},
		{"deferred sync", time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := openFSM(t, dir, tt.interval)
			if markerExists(t, dir) {
				t.Fatal("marker exists before any apply")
			}
			apply(t, f, 1, putCmd("a", "1"))
			if got := markerExists(t, dir); got != tt.markerAfterApply {
				t.Fatalf("marker after apply: got %v, want %v", got, tt.markerAfterApply)
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if markerExists(t, dir) {
				t.Fatal("marker exists after Sync")
			}
			apply(t, f, 2, putCmd("b", "2"))
			if err := f.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if markerExists(t, dir) {
				t.Fatal("marker exists after a clean Close")
			}
			g := openFSM(t, dir, tt.interval)
			if got := g.AppliedIndex(); got != 2 {
				t.Fatalf("reopened after clean close: applied %d, want 2 (store kept)", got)
			}
		})
	}
}

// TestUnsyncedStoreIsDiscarded: a store found next to the marker (the node
// crashed with unsynced commits) is never trusted: New starts from an empty
// store, which the node then rebuilds from raft's snapshot and log.
func TestUnsyncedStoreIsDiscarded(t *testing.T) {
	dir := t.TempDir()
	f := openFSM(t, dir, time.Hour)
	for i := uint64(1); i <= 10; i++ {
		apply(t, f, i, putCmd(fmt.Sprintf("k%d", i), "v"))
	}
	if !markerExists(t, dir) {
		t.Fatal("no marker after unsynced applies")
	}
	// Simulate the crash: copy the files as they are now, marker and all,
	// as a kill -9 would leave them.
	crashed := t.TempDir()
	for _, name := range []string{"store.db", marker} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(crashed, name), b, 0o600); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	g := openFSM(t, crashed, time.Hour)
	if got := g.AppliedIndex(); got != 0 {
		t.Fatalf("store next to the marker: applied %d, want 0 (discarded)", got)
	}
	if _, found, err := g.Get([]byte("k1")); err != nil || found {
		t.Fatalf("Get(k1) on a discarded store: found=%v err=%v, want not found", found, err)
	}
	if markerExists(t, crashed) {
		t.Fatal("marker left after discarding the store")
	}
}

// TestSyncConcurrentWithApply runs the periodic sync against a stream of
// applies (for the race detector) and checks every batch is in the store.
func TestSyncConcurrentWithApply(t *testing.T) {
	dir := t.TempDir()
	f := openFSM(t, dir, time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if err := f.Sync(); err != nil {
				t.Errorf("Sync: %v", err)
				return
			}
		}
	}()
	const n = 200
	for i := uint64(1); i <= n; i++ {
		apply(t, f, i, putCmd(fmt.Sprintf("k%d", i), "v"))
	}
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	g := openFSM(t, dir, 0)
	if got := g.AppliedIndex(); got != n {
		t.Fatalf("after close and reopen: applied %d, want %d", got, n)
	}
}
