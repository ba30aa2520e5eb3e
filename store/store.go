package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is the store format this binary writes and the only one it
// opens.
//
// NB: persisted in every store file. Bump it only together with a migration;
// an unknown version is refused by Open rather than misread.
const FormatVersion uint64 = 1

const (
	// DefaultInitialMmapSize is the mmap size used when Options.InitialMmapSize
	// is zero: 1 GiB.
	//
	// bbolt must remap the file when it grows past the mapped size, and a
	// remap waits for every open read transaction to finish. A raft snapshot
	// holds one read transaction for the whole time it streams the store to
	// disk or to a follower, so with a small map every write that grows the
	// file would stall behind that snapshot. Mapping 1 GiB up front only
	// reserves address space (the file itself grows with the data on Unix),
	// so a writer remaps, and can block on a long read, only once the data
	// outgrows it. One visible side effect: bbolt then extends the file in
	// 16 MiB steps, so even an empty store is a 16 MiB (sparse) file.
	DefaultInitialMmapSize = 1 << 30

	// DefaultLockTimeout is the lock wait used when Options.LockTimeout is
	// zero.
	DefaultLockTimeout = 10 * time.Second

	// MaxKeySize is the largest key, in bytes, that Put accepts.
	//
	// NB: the FSM rejects larger keys deterministically with this limit, so
	// changing it changes replicated apply results.
	MaxKeySize = bolt.MaxKeySize

	// MaxValueSize is the largest value, in bytes, that Put accepts: bbolt's
	// limit minus the record header.
	//
	// NB: as MaxKeySize, this is part of deterministic apply behaviour.
	MaxValueSize = bolt.MaxValueSize - recordHeaderLen
)

var (
	// ErrCorrupt means the file or a record in it is not a valid store.
	ErrCorrupt = errors.New("store: corrupt")
	// ErrUnknownFormat means the file was written with a store format version
	// this binary does not know (usually by a newer release).
	ErrUnknownFormat = errors.New("store: unknown format version")
	// ErrClosed is returned by operations on a closed Store.
	ErrClosed = errors.New("store: closed")
	// ErrKeyRequired is returned when putting an empty key.
	ErrKeyRequired = errors.New("store: key required")
	// ErrKeyTooLarge is returned when putting a key longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("store: key too large")
	// ErrValueTooLarge is returned when putting a value longer than
	// MaxValueSize.
	ErrValueTooLarge = errors.New("store: value too large")
)

var (
	bucketKV      = []byte("kv")
	bucketMeta    = []byte("meta")
	bucketMembers = []byte("members")
	// bucketExpireAt (key -> expiry u64) and bucketExpiry (expiry u64 |
	// key -> empty) hold key TTLs. Added after v0.2.0 and created on the
	// first put with an expiry: a store without them is valid and has no
	// expiries, so no format version bump is needed.
	bucketExpireAt = []byte("expire_at")
	bucketExpiry   = []byte("expiry")

	metaFormatVersion = []byte("format_version")
	metaAppliedIndex  = []byte("applied_index")
	metaAppliedTerm   = []byte("applied_term")
	metaKeyCount      = []byte("key_count")
	// metaClusterID holds the replicated cluster id (a string); absent
	// until the first leader set one. Added after v0.1.0: an absent key is
	// valid and means "no id yet", so no format version bump is needed.
	metaClusterID = []byte("cluster_id")
)

// Options tunes Open. The zero value is the production default.
type Options struct {
	// InitialMmapSize is the initial size, in bytes, of the memory map.
	// Zero means DefaultInitialMmapSize; see it for why the default is large.
	// A negative value maps only what the file needs.
	InitialMmapSize int
	// NoSync skips fsync on commit. A crash may then lose or corrupt
	// committed transactions, so it is only for scratch files that are
	// synced explicitly (see Store.Sync) and for tests. Keep it false.
	NoSync bool
	// LockTimeout bounds how long Open waits for another process to release
	// the file lock. Zero means DefaultLockTimeout; negative waits forever.
	LockTimeout time.Duration
	// CommitDelay, when positive, is how long Store.Stage may keep its
	// transaction open before committing it (stage.go). Zero makes Stage
	// commit every call, like Update.
	CommitDelay time.Duration
}

// Stats is a point-in-time summary of a Store.
type Stats struct {
	// KeyCount is the number of keys in the kv bucket.
	KeyCount int64
	// SizeBytes is the size of the data in the store file: its highest page in
	// use times the page size. The file itself may be larger, as bbolt
	// preallocates it (sparsely) in steps.
	SizeBytes int64
}

// committed is the state of the last committed write, cached so Applied
// needs no transaction.
type committed struct {
	index, term uint64
}

// Store is an open store file. All methods are safe for concurrent use.
// Write transactions are serialized; read transactions run concurrently with
// each other and with the writer.
type Store struct {
	db      *bolt.DB
	writeMu sync.Mutex // serializes Update so the applied cache is updated in commit order
	state   atomic.Pointer[committed]
	closed  atomic.Bool

	pathMu sync.Mutex
	path   string

	commitDelay time.Duration
	stagedTx
}

// Open opens the store file at path, creating it (with FormatVersion) if it
// does not exist. The directory must exist.
//
// A file that is not a valid store returns an error wrapping ErrCorrupt, and
// one written with another format version an error wrapping
// ErrUnknownFormat. Open never panics on a bad file: bbolt panics on some
// corruptions, and Open converts those into ErrCorrupt too.
func Open(path string, opts Options) (s *Store, err error) {
	mmapSize := opts.InitialMmapSize
	switch {
	case mmapSize == 0:
		mmapSize = DefaultInitialMmapSize
	case mmapSize < 0:
		mmapSize = 0
	}
	lockTimeout := opts.LockTimeout
	switch {
	case lockTimeout == 0:
		lockTimeout = DefaultLockTimeout
	case lockTimeout < 0:
		lockTimeout = 0 // bbolt: wait forever
	}

	// bbolt panics, or faults reading past its map, on some corrupt files.
	// Turn faults into panics for this goroutine, and remember the file bbolt
	// opens so a recovered panic can still release the descriptor and its
	// lock. (The mapping of a file that panicked bbolt is not reachable and
	// leaks; that only happens for corrupt files.)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var file *os.File
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			} else if file != nil {
				_ = file.Close()
			}
			s, err = nil, fmt.Errorf("open store %q: %w: bbolt panicked: %v", path, ErrCorrupt, r)
		}
	}()

	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         lockTimeout,
		InitialMmapSize: mmapSize,
		NoSync:          opts.NoSync,
		FreelistType:    bolt.FreelistMapType,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	if err != nil {
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
			errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrInvalidMapping) {
			return nil, fmt.Errorf("open store %q: %w: %w", path, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}

	st, err := initOrCheck(db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	s = &Store{db: db, path: path, commitDelay: opts.CommitDelay}
	s.state.Store(st)
	return s, nil
}

// initOrCheck creates the buckets of a fresh file, or checks the format of
// an existing one, and returns its committed state.
func initOrCheck(db *bolt.DB) (*committed, error) {
	var fresh bool
	err := db.View(func(tx *bolt.Tx) error {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error {
			empty = false
			return nil
		})
		fresh = empty
		return nil
	})
	if err != nil {
		return nil, err
	}
	if fresh {
		err := db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketKV, bucketMeta, bucketMembers} {
				if _, err := tx.CreateBucket(name); err != nil {
					return fmt.Errorf("create bucket %q: %w", name, err)
				}
			}
			meta := tx.Bucket(bucketMeta)
			for _, kv := range []struct {
				k []byte
				v uint64
			}{
				{metaFormatVersion, FormatVersion},
				{metaAppliedIndex, 0},
				{metaAppliedTerm, 0},
				{metaKeyCount, 0},
			} {
				if err := meta.Put(kv.k, u64(kv.v)); err != nil {
					return fmt.Errorf("init meta %q: %w", kv.k, err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("initialize: %w", err)
		}
	}

	var st committed
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: no %q bucket (not a raftkv store)", ErrCorrupt, bucketMeta)
		}
		v := meta.Get(metaFormatVersion)
		if len(v) != 8 {
			return fmt.Errorf("%w: missing or malformed format version", ErrCorrupt)
		}
		if fv := binary.BigEndian.Uint64(v); fv != FormatVersion {
			return fmt.Errorf("%w: file has version %d, this binary knows %d", ErrUnknownFormat, fv, FormatVersion)
		}
		r, err := newReader(tx)
		if err != nil {
			return err
		}
		if st.index, st.term, err = r.applied(); err != nil {
			return err
		}
		_, err = r.committedKeyCount()
		return err
	})
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Path returns the current path of the store file.
func (s *Store) Path() string {
	s.pathMu.Lock()
	defer s.pathMu.Unlock()
	return s.path
}

// Applied returns the raft index and term of the last SetApplied, committed
// or staged, from memory. It is (0, 0) for a fresh store.
func (s *Store) Applied() (index, term uint64) {
	st := s.state.Load()
	return st.index, st.term
}

// Update runs fn in a write transaction and commits it if fn returns nil.
// If fn returns an error, or panics, nothing fn did is committed; fn's error
// is returned unchanged. A commit failure is returned wrapped.
//
// The WriteTx is valid only inside fn. Update calls are serialized.
func (s *Store) Update(fn func(*WriteTx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.commitStagedLocked(); err != nil {
		return err
	}

	var w *WriteTx
	var fnErr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		r, err := newReader(tx)
		if err != nil {
			return err
		}
		w = &WriteTx{reader: r}
		if fnErr = fn(w); fnErr != nil {
			return fnErr
		}
		return w.flush()
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return ErrClosed
		}
		return fmt.Errorf("store: commit: %w", err)
	}
	if w.appliedSet {
		s.state.Store(&committed{index: w.index, term: w.term})
	}
	return nil
}

// View runs fn in a read transaction. The ReadTx is valid only inside fn;
// the KeyValues read through it are copies and stay valid after it.
func (s *Store) View(fn func(*ReadTx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.commitStaged(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		r, err := newReader(tx)
		if err != nil {
			return err
		}
		return fn(&ReadTx{reader: r})
	})
}

// BeginRead starts a long-lived read transaction: a consistent snapshot of
// the store that writers do not disturb. The caller must call
// ReadTx.Rollback when done; until then Close blocks, and the pages the
// snapshot sees cannot be reused, so the file may grow.
func (s *Store) BeginRead() (*ReadTx, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := s.commitStaged(); err != nil {
		return nil, err
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("store: begin read: %w", err)
	}
	r, err := newReader(tx)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	return &ReadTx{reader: r, owned: true}, nil
}

// Stats returns the key count and data size, read in one transaction.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.View(func(tx *ReadTx) error {
		n, err := tx.KeyCount()
		st = Stats{KeyCount: n, SizeBytes: tx.Size()}
		return err
	})
	return st, err
}

// Sync commits staged writes and flushes the file to stable storage. It is
// only needed for a store opened with Options.NoSync.
func (s *Store) Sync() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.commitStaged(); err != nil {
		return err
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("store: sync %q: %w", s.Path(), err)
	}
	return nil
}

// Rename atomically moves the open store file to newPath, replacing any file
// there, and fsyncs newPath's directory so the rename survives a crash. The
// store stays open and usable: bbolt works through its open descriptor, so
// this relies on Unix rename semantics.
//
// WARNING: a file replaced at newPath is gone; a Store still open on it keeps
// working on the unlinked file until closed.
func (s *Store) Rename(newPath string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.pathMu.Lock()
	defer s.pathMu.Unlock()
	if err := os.Rename(s.path, newPath); err != nil {
		return fmt.Errorf("store: rename %q to %q: %w", s.path, newPath, err)
	}
	s.path = newPath
	if err := SyncDir(filepath.Dir(newPath)); err != nil {
		return fmt.Errorf("store: rename %q: %w", newPath, err)
	}
	return nil
}

// Close commits staged writes and closes the store. It blocks until every
// read transaction from BeginRead has been rolled back. Closing a closed
// store returns nil; a failed commit of staged writes is returned after the
// file is closed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.writeMu.Lock()
	stagedErr := s.commitStagedLocked()
	s.writeMu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %q: %w", s.Path(), err)
	}
	return stagedErr
}

// SyncDir fsyncs a directory, making renames, creations and removals in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %q: %w", dir, err)
	}
	return nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
