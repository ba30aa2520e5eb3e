package fsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/raftkv/raftkv/store"
)

// The store's durability policy (docs/write-path.md, "FSM durability").
//
// The raft log is the durable record of every acknowledged write: an entry
// is fsynced into raft.db on a quorum before it commits, and raft's
// snapshots are fsynced before the log behind them is compacted. So the
// store does not need to fsync each applied batch for safety, only for a
// fast restart. With Config.SyncInterval > 0 the FSM commits batches
// without fsync and syncs the store file at most once per interval, which
// takes two fdatasyncs per batch off the path of every write.
//
// A process crash (kill -9) loses nothing that way: committed pages are in
// the kernel's page cache. A power loss may, and worse, bbolt without fsync
// gives no ordering between its data and meta pages, so the file could come
// back torn in a way bbolt cannot detect. Hence the marker: before the first
// unsynced commit the FSM creates Dir/store.unsynced and makes it durable;
// after a successful sync it removes it. New treats a store found next to
// the marker as untrustworthy and throws it away: the node then rebuilds it
// from raft's newest snapshot (node.catchUpFromSnapshot) and raft replays
// the log after it, exactly as for a lost store. A store without the marker
// was fully synced when it was last written.
const unsyncedMarker = "store.unsynced"

// markerPath is the marker's path for the FSM in dir.
func markerPath(dir string) string { return filepath.Join(dir, unsyncedMarker) }

// discardUnsyncedStore removes the store file in dir if the unsynced marker
// says it may be torn, then the marker. It reports whether it did.
func discardUnsyncedStore(dir string) (bool, error) {
	marker := markerPath(dir)
	if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("fsm: stat %q: %w", marker, err)
	}
	// The store first, made durable, then the marker: a crash in between
	// leaves the marker, and the next start removes nothing twice.
	if err := os.Remove(filepath.Join(dir, storeFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("fsm: remove unsynced store: %w", err)
	}
	if err := store.SyncDir(dir); err != nil {
		return false, err
	}
	if err := os.Remove(marker); err != nil {
		return false, fmt.Errorf("fsm: remove %q: %w", marker, err)
	}
	return true, store.SyncDir(dir)
}

// markUnsynced makes sure the marker exists and is durable before the
// caller commits without fsync. Callers hold f.syncMu.
func (f *FSM) markUnsynced() error {
	if f.unsynced || f.cfg.SyncInterval <= 0 {
		return nil
	}
	marker := markerPath(f.cfg.Dir)
	m, err := os.OpenFile(marker, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("fsm: create %q: %w", marker, err)
	}
	err = m.Sync()
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsm: sync %q: %w", marker, err)
	}
	if err := store.SyncDir(f.cfg.Dir); err != nil {
		return err
	}
	f.unsynced = true
	return nil
}

// syncStore fsyncs the store file and removes the marker. Callers hold
// f.mu (read or write) and f.syncMu, so no batch commits in between.
func (f *FSM) syncStore() error {
	if !f.unsynced {
		return nil
	}
	if err := f.st.Sync(); err != nil {
		return fmt.Errorf("fsm: %w", err)
	}
	if err := os.Remove(markerPath(f.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fsm: remove unsynced marker: %w", err)
	}
	if err := store.SyncDir(f.cfg.Dir); err != nil {
		return err
	}
	f.unsynced = false
	return nil
}

// Sync makes every applied batch durable in the store file now. The FSM
// calls it every Config.SyncInterval and on Close; it is exported for tests
// and for callers that want a durable store at a known point.
func (f *FSM) Sync() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed.Load() {
		return ErrClosed
	}
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	return f.syncStore()
}

// syncLoop syncs the store every interval until stop is closed. A failed
// sync is logged and retried on the next tick: the marker stays, so a
// crash meanwhile still leads to a rebuild, never to trusting a torn file.
func (f *FSM) syncLoop(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := f.Sync(); err != nil && !errors.Is(err, ErrClosed) {
				f.logger.Warn("periodic store sync failed; will retry", "err", err)
			}
		}
	}
}
