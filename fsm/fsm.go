package fsm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/fsm/fsmpb"
	"github.com/raftkv/raftkv/store"
)

// storeFile is the name of the store file inside Config.Dir.
const storeFile = "store.db"

// restorePattern names the temporary files Restore builds; New removes
// leftovers from a crash.
const restorePattern = storeFile + ".restore-*"

// ErrClosed is returned by reads on a closed FSM.
var ErrClosed = errors.New("fsm: closed")

// Config is the FSM's plain-value configuration.
type Config struct {
	// Dir holds the store file (Dir/store.db) and temporary restore files.
	// It is created if missing. Required.
	Dir string
	// SyncInterval, when positive, commits applied batches without fsync
	// and syncs the store file at most this often (and on Close), guarded
	// by the unsynced marker described in durability.go. Zero fsyncs every
	// batch.
	SyncInterval time.Duration
	// CommitDelay, when positive and SyncInterval is too, lets applied
	// batches share one store commit for up to this long (store.Stage);
	// any read of the store commits them first. Zero commits every batch.
	CommitDelay time.Duration
}

// DefaultConfig returns the default Config. Dir has no sensible default and
// must be set by the caller.
func DefaultConfig() Config {
	return Config{}
}

// Validate reports whether c can be used by New.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("fsm: config: Dir is required")
	}
	if c.SyncInterval < 0 || c.CommitDelay < 0 {
		return fmt.Errorf("fsm: config: SyncInterval %v and CommitDelay %v must not be negative", c.SyncInterval, c.CommitDelay)
	}
	return nil
}

// Invalidator is the read cache as seen by the FSM (package cache implements
// it; the FSM does not import it).
//
// The FSM calls it on the raft FSM goroutine, after the store transaction
// that changed the keys has committed and before WaitApplied waiters for
// that index are woken, so a reader that waited for index N never finds a
// value older than N that the cache failed to drop. Calls may run
// concurrently with the cache's own readers. Implementations must be quick
// and must not call back into the FSM.
//
// Every call carries the raft index of the entry that made the change, in
// index order, so the cache can refuse a fill read before it (see
// cache/DESIGN.md). Slices passed in belong to the decoded entry and are
// never modified afterwards; an implementation may keep them.
type Invalidator interface {
	// Invalidate records that the entry at index rev wrote key. kv is the
	// key's new state when the entry was a single Put, so the cache may
	// update a cached key in place; it is nil for deletes and for every key
	// a Txn wrote (a Txn may write one key several times, and only its final
	// state may ever be visible). A key may be reported more than once for
	// one index.
	Invalidate(key []byte, rev uint64, kv *KeyValue)
	// InvalidateRange records that the entry at index rev deleted every key
	// in [start, end). A nil end means no upper bound.
	InvalidateRange(start, end []byte, rev uint64)
	// Purge drops everything: the store was replaced by (or opened at) a
	// state whose applied index is rev. The FSM calls it when it opens its
	// store and after Restore, with the FSM's write lock held.
	Purge(rev uint64)
}

// Deps are the FSM's collaborators.
type Deps struct {
	// Logger receives lifecycle messages and anomalies; nil discards them.
	Logger *slog.Logger
	// Invalidator is the read cache to keep coherent; nil means no cache.
	Invalidator Invalidator
}

// KeyValue is one key with its value and revisions (a revision is the raft
// log index of a write).
type KeyValue = store.KeyValue

// RangeResult is the answer to a Range: the key-values (at most limit of
// them), whether limit cut the result short, and the number of keys in the
// range regardless of limit.
type RangeResult = store.RangeResult

// Stats is a point-in-time summary of the FSM.
type Stats struct {
	// AppliedIndex is the raft index of the last applied entry.
	AppliedIndex uint64
	// KeyCount is the number of keys.
	KeyCount int64
	// SizeBytes is the size of the data in the store file (see
	// store.Stats.SizeBytes).
	SizeBytes int64
}

// FSM is raftkv's replicated state machine: it implements raft.BatchingFSM
// over a store.Store and serves local reads.
//
// Apply, ApplyBatch, Snapshot and Restore are called by raft on its FSM
// goroutine, never concurrently with each other. Reads (Get, Range,
// Members, Stats, Hash, AppliedIndex, WaitApplied) may be called from any
// goroutine at any time.
type FSM struct {
	cfg    Config
	logger *slog.Logger
	inv    Invalidator

	// mu guards st against being swapped by Restore or closed by Close
	// while in use: users of st hold it for reading, Restore and Close for
	// writing.
	mu     sync.RWMutex
	st     *store.Store
	closed atomic.Bool

	applied atomic.Uint64
	waitMu  sync.Mutex
	waitCh  chan struct{} // closed and replaced whenever applied changes

	bg       sync.WaitGroup // closers of stores replaced by Restore
	restores atomic.Uint64  // snapshots restored since New

	// syncMu orders unsynced commits against syncs of the store file;
	// unsynced says the marker exists (durability.go). stopSync ends the
	// periodic sync loop, syncDone says it ended.
	syncMu   sync.Mutex
	unsynced bool
	stopSync chan struct{}
	stopOnce sync.Once
	syncDone chan struct{}
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New opens (or creates) the FSM's store in cfg.Dir. An existing store keeps
// its data and applied index, so raft replays only entries after it.
func New(cfg Config, deps Deps) (*FSM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "fsm")

	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("fsm: create dir %q: %w", cfg.Dir, err)
	}
	// A crash during Restore leaves its temporary file behind; the swap
	// never happened, so it is garbage.
	leftovers, _ := filepath.Glob(filepath.Join(cfg.Dir, restorePattern))
	for _, p := range leftovers {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("fsm: remove leftover restore file %q: %w", p, err)
		}
		logger.Warn("removed leftover restore file from an interrupted restore", "path", p)
	}

	discarded, err := discardUnsyncedStore(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if discarded {
		logger.Warn("store was not synced before the last stop (crash or power loss): discarded it; it is rebuilt from the raft snapshot and log", "dir", cfg.Dir)
	}
	st, err := store.Open(filepath.Join(cfg.Dir, storeFile), cfg.storeOptions())
	if err != nil {
		return nil, fmt.Errorf("fsm: %w", err)
	}
	f := &FSM{
		cfg:    cfg,
		logger: logger,
		inv:    deps.Invalidator,
		st:     st,
		waitCh: make(chan struct{}),
	}
	idx, term := st.Applied()
	f.applied.Store(idx)
	if f.inv != nil {
		// The cache knows nothing about writes before the store's index.
		f.inv.Purge(idx)
	}
	logger.Info("fsm opened", "raft_index", idx, "term", term, "path", st.Path(), "sync_interval", cfg.SyncInterval)
	if cfg.SyncInterval > 0 {
		f.stopSync, f.syncDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(f.syncDone)
			f.syncLoop(cfg.SyncInterval, f.stopSync)
		}()
	}
	return f, nil
}

// storeOptions opens the store without fsync per commit when the FSM syncs
// it on its own schedule, and only then lets batches share a commit: with
// SyncInterval zero every batch is meant to be durable when applied.
func (c Config) storeOptions() store.Options {
	if c.SyncInterval <= 0 {
		return store.Options{}
	}
	return store.Options{NoSync: true, CommitDelay: c.CommitDelay}
}

// Close closes the store. It blocks until every snapshot taken from this FSM
// has been released, so call it after raft has shut down. Reads after Close
// return ErrClosed and WaitApplied waiters return ErrClosed. Closing twice
// returns nil.
func (f *FSM) Close() error {
	if f.stopSync != nil {
		f.stopOnce.Do(func() { close(f.stopSync) })
		<-f.syncDone
	}
	f.mu.Lock()
	if f.closed.Swap(true) {
		f.mu.Unlock()
		return nil
	}
	// A clean stop leaves a synced store and no marker, so the next start
	// keeps the store instead of rebuilding it.
	f.syncMu.Lock()
	err := f.syncStore()
	f.syncMu.Unlock()
	if cerr := f.st.Close(); err == nil {
		err = cerr
	}
	f.mu.Unlock()
	f.notify()
	f.bg.Wait()
	if err != nil {
		return fmt.Errorf("fsm: close: %w", err)
	}
	return nil
}

// view runs fn in a read transaction of the current store.
func (f *FSM) view(fn func(*store.ReadTx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed.Load() {
		return ErrClosed
	}
	return f.st.View(fn)
}

// Get returns the key-value at key and whether it exists, as of the last
// applied entry on this node (a serializable read).
func (f *FSM) Get(key []byte) (KeyValue, bool, error) {
	var kv KeyValue
	var ok bool
	err := f.view(func(tx *store.ReadTx) (err error) {
		kv, ok, err = tx.Get(key)
		return err
	})
	if err != nil {
		return KeyValue{}, false, fmt.Errorf("fsm: get: %w", err)
	}
	return kv, ok, nil
}

// GetIndexed is Get that also returns the applied index of the store
// transaction it read in: the result is key's state exactly at that index.
// The read cache needs it to tag what it caches (cache/DESIGN.md).
func (f *FSM) GetIndexed(key []byte) (kv KeyValue, found bool, index uint64, err error) {
	err = f.view(func(tx *store.ReadTx) (err error) {
		if index, _, err = tx.Applied(); err != nil {
			return err
		}
		kv, found, err = tx.Get(key)
		return err
	})
	if err != nil {
		return KeyValue{}, false, 0, fmt.Errorf("fsm: get: %w", err)
	}
	return kv, found, index, nil
}

// Range reads r as of the last applied entry on this node. An empty
// range_end reads the single key; a range_end of "\x00" reads from key to
// the end of the keyspace (see PrefixEnd); otherwise it reads
// [key, range_end). A limit of zero or less means no limit. Count is the
// number of keys in the range regardless of limit; keys_only omits values;
// count_only returns only Count.
func (f *FSM) Range(r *fsmpb.Range) (RangeResult, error) {
	var res RangeResult
	err := f.view(func(tx *store.ReadTx) (err error) {
		res, err = doRange(tx, r)
		return err
	})
	if err != nil {
		return RangeResult{}, fmt.Errorf("fsm: range: %w", err)
	}
	return res, nil
}

// rangeReader is what doRange needs; both store transaction types have it.
type rangeReader interface {
	Get(key []byte) (store.KeyValue, bool, error)
	Range(start, end []byte, opts store.RangeOptions) (store.RangeResult, error)
}

func doRange(tx rangeReader, r *fsmpb.Range) (RangeResult, error) {
	start, end, single := bounds(r.GetKey(), r.GetRangeEnd())
	if !single {
		return tx.Range(start, end, store.RangeOptions{
			Limit:     r.GetLimit(),
			KeysOnly:  r.GetKeysOnly(),
			CountOnly: r.GetCountOnly(),
			CountRest: r.GetCountRest(),
		})
	}
	kv, ok, err := tx.Get(start)
	if err != nil || !ok {
		return RangeResult{}, err
	}
	res := RangeResult{Count: 1}
	if !r.GetCountOnly() {
		if r.GetKeysOnly() {
			kv.Value = nil
		}
		res.KVs = []KeyValue{kv}
	}
	return res, nil
}

// AppliedIndex returns the raft index of the last entry applied (or
// restored) on this node.
func (f *FSM) AppliedIndex() uint64 {
	return f.applied.Load()
}

// WaitApplied returns nil once the applied index is at least index, or an
// error wrapping ctx.Err() when ctx is done first, or ErrClosed when the FSM
// is closed. Waiting costs one channel receive per apply.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		// Load the channel before the index: notify stores the index before
		// closing the channel, so a change between the two loads still wakes
		// us.
		f.waitMu.Lock()
		ch := f.waitCh
		f.waitMu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		if f.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fsm: wait for applied index %d (at %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

// notify wakes every WaitApplied waiter.
func (f *FSM) notify() {
	f.waitMu.Lock()
	close(f.waitCh)
	f.waitCh = make(chan struct{})
	f.waitMu.Unlock()
}

// Members returns the member address book (node id -> gRPC address) built
// by SetMember commands. It returns nil if the store cannot be read (the FSM
// is closed); that is logged unless the FSM is closed.
func (f *FSM) Members() map[string]string {
	var m map[string]string
	err := f.view(func(tx *store.ReadTx) (err error) {
		m, err = tx.Members()
		return err
	})
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			f.logger.Warn("read members", "err", err)
		}
		return nil
	}
	return m
}

// Stats returns the applied index, key count and store size. If the store
// cannot be read (the FSM is closed), only AppliedIndex is set; that is
// logged unless the FSM is closed.
func (f *FSM) Stats() Stats {
	s := Stats{AppliedIndex: f.applied.Load()}
	var st store.Stats
	err := f.view(func(tx *store.ReadTx) (err error) {
		st.KeyCount, err = tx.KeyCount()
		st.SizeBytes = tx.Size()
		return err
	})
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			f.logger.Warn("read stats", "err", err)
		}
		return s
	}
	s.KeyCount, s.SizeBytes = st.KeyCount, st.SizeBytes
	return s
}

// Hash returns a SHA-256 over the whole replicated state, in one read
// transaction, and the applied index it reflects: every member record, then
// every kv record (key, value, create and mod revision, version) in key
// order, encoded as in a snapshot. Two nodes at the same index must return
// the same sum; it is meant for tests and consistency checks, and reads the
// whole store.
func (f *FSM) Hash() (index uint64, sum []byte, err error) {
	sh, err := f.StateHash()
	return sh.Index, sh.Sum, err
}

// StateHash is the result of FSM.StateHash.
type StateHash struct {
	// Index is the applied index the hash reflects.
	Index uint64
	// Sum is the SHA-256 described at Hash.
	Sum []byte
	// KeyCount is the number of keys at Index.
	KeyCount int64
}

// StateHash is Hash plus the number of keys, all from one read transaction.
func (f *FSM) StateHash() (StateHash, error) {
	var sh StateHash
	h := sha256.New()
	err := f.view(func(tx *store.ReadTx) error {
		var err error
		if sh.Index, _, err = tx.Applied(); err != nil {
			return err
		}
		return writeRecords(tx, func(rec []byte) error {
			if rec[4] == recordKV || rec[4] == recordKVExpiry {
				sh.KeyCount++
			}
			_, _ = h.Write(rec)
			return nil
		})
	})
	if err != nil {
		return StateHash{}, fmt.Errorf("fsm: hash: %w", err)
	}
	sh.Sum = h.Sum(nil)
	return sh, nil
}
