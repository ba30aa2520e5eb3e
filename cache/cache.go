package cache

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"
)

// DefaultMaxBytes is the default bound of a cache: 64 MiB.
const DefaultMaxBytes = 64 << 20

// MinMaxBytes is the smallest non-zero MaxBytes New accepts.
const MinMaxBytes = 1 << 10

// Config is the plain-value configuration of a Cache.
type Config struct {
	// MaxBytes bounds the memory the cache accounts for: keys, values, the
	// estimated per-entry bookkeeping and the remembered keys of the
	// scan-resistance policy. Zero disables the cache (New returns nil).
	MaxBytes int64
	// TTL, when positive, expires every entry that long after it was filled
	// or updated. Coherence never depends on it: the FSM keeps entries
	// current. It only bounds how long an entry may sit unused.
	TTL time.Duration
}

// DefaultConfig returns a 64 MiB cache without TTL.
func DefaultConfig() Config {
	return Config{MaxBytes: DefaultMaxBytes}
}

// Validate reports whether c can be used by New.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBytes < 0 || (c.MaxBytes > 0 && c.MaxBytes < MinMaxBytes) {
		errs = append(errs, fmt.Errorf("cache: max bytes %d must be 0 (disabled) or at least %d", c.MaxBytes, MinMaxBytes))
	}
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("cache: ttl %s must not be negative", c.TTL))
	}
	return errors.Join(errs...)
}

// Deps are a Cache's collaborators.
type Deps struct {
	// Now is the clock for TTLs; nil means time.Now.
	Now func() time.Time
}

// Entry is a cached read result: the key's value and revisions, or, with
// Found false, the fact that the key does not exist.
type Entry struct {
	// Found is false for a cached "key does not exist".
	Found bool
	// Value is shared with the cache: callers must not modify it.
	Value []byte
	// CreateRevision, ModRevision and Version are the key's metadata.
	CreateRevision, ModRevision, Version int64
	// ExpireAtUnixMs is the key's replicated expiry (0: none). The cache
	// does not act on it: the key is deleted, and the entry invalidated,
	// by the expiry delete going through the log.
	ExpireAtUnixMs int64
}

// Stats counts what a Cache did since New. It is a plain value so that a
// metrics exporter can read it without knowing the cache.
type Stats struct {
	// Hits and Misses count Get calls.
	Hits, Misses uint64
	// Evictions counts entries dropped to stay within MaxBytes.
	Evictions uint64
	// Expired counts entries dropped because their TTL passed.
	Expired uint64
	// Stale counts entries a Get found superseded by a later write (range
	// deletes are applied lazily, on the next Get of each key).
	Stale uint64
	// Invalidated counts entries dropped or updated in place by writes.
	Invalidated uint64
	// Fills counts entries installed by Fill and FillShared.
	Fills uint64
	// FillsRejected counts fills refused because a write to the key was
	// recorded after the fill's read, the state was replaced by a snapshot
	// since, or the entry was too large.
	FillsRejected uint64
	// Bytes is the memory accounted for now, Entries the number of entries.
	Bytes   int64
	Entries int64
	// MaxBytes is the configured bound.
	MaxBytes int64
}

// Cache is a bounded, scan-resistant (2Q) read cache of single keys, kept
// coherent with the store by the FSM: see DESIGN.md for the rules. A nil
// *Cache is not usable; a disabled cache is simply not built.
//
// Every method is safe for concurrent use. The FSM calls Invalidate,
// Update, InvalidateRange and Purge on its goroutine, in raft index order;
// readers call Get, Epoch and Fill from any goroutine.
type Cache struct {
	cfg   Config
	now   func() time.Time
	mu    sync.Mutex
	q     *twoQ
	fence *fence
	epoch uint64
	stats Stats
}

// New builds a cache, or returns nil when cfg.MaxBytes is zero. Until the
// first Purge it knows nothing about writes, so it accepts fills read at any
// index: call Purge with the applied index of the store it fronts before
// using it (the FSM does, when it opens its store).
func New(cfg Config, deps Deps) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBytes == 0 {
		return nil, nil
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	c := &Cache{
		cfg:   cfg,
		now:   now,
		q:     newTwoQ(cfg.MaxBytes),
		fence: newFence(fenceSlots(cfg.MaxBytes)),
	}
	c.stats.MaxBytes = cfg.MaxBytes
	return c, nil
}

// fenceSlots sizes the write-index table: one slot per KiB of cache,
// rounded to a power of two, between 1024 and 65536 slots (8 KiB to
// 512 KiB). More slots mean fewer keys sharing one, so fewer needless misses
// after a write to a neighbour; the table is not counted in MaxBytes.
func fenceSlots(maxBytes int64) int {
	n := min(max(maxBytes>>10, 1024), 1<<16)
	return 1 << (63 - bits.LeadingZeros64(uint64(n)))
}

// Get returns key's cached entry. With trustShared false, entries that came
// from the shared tier (FillShared) are treated as absent: linearizable
// reads use only what this node read from its own store.
//
// The caller must have loaded the FSM's applied index (or waited for a read
// index) before calling Get: the entry returned is the key's state at that
// index or later.
func (c *Cache) Get(key []byte, trustShared bool) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.q.peek(string(key))
	if !ok || (it.shared && !trustShared) {
		c.stats.Misses++
		return Entry{}, false
	}
	if it.expires != 0 && c.now().UnixNano() >= it.expires {
		c.q.remove(it)
		c.stats.Expired++
		c.stats.Misses++
		return Entry{}, false
	}
	through, ok := c.fence.check(key, it.validAt)
	if !ok {
		c.q.remove(it)
		c.stats.Stale++
		c.stats.Misses++
		return Entry{}, false
	}
	it.validAt = through
	c.q.touch(it)
	c.stats.Hits++
	return it.entry, true
}

// Epoch returns the cache's epoch, which Purge advances. A reader takes it
// before reading the store and passes it to Fill, so that a value read from
// a store a snapshot has since replaced is never installed.
func (c *Cache) Epoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// Fill offers e, read from this node's store in a transaction at applied
// index readAt, after Epoch returned epoch. It is installed unless a write
// to key after readAt has been recorded, Purge ran since epoch, e is larger
// than a quarter of MaxBytes, or a fresher entry is already cached. It
// reports whether e was installed.
func (c *Cache) Fill(key []byte, e Entry, readAt, epoch uint64) bool {
	return c.fill(key, e, readAt, epoch, false)
}

// FillShared is Fill for an entry from the shared tier that the caller
// checked: its value is key's state through index validThrough, and its
// ModRevision is at or below this node's applied index. Only Get with
// trustShared returns it.
func (c *Cache) FillShared(key []byte, e Entry, validThrough, epoch uint64) bool {
	return c.fill(key, e, validThrough, epoch, true)
}

func (c *Cache) fill(key []byte, e Entry, readAt, epoch uint64, shared bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		c.stats.FillsRejected++
		return false
	}
	through, ok := c.fence.check(key, readAt)
	k := string(key)
	size := itemSize(k, e)
	if !ok || size > c.q.maxItem() {
		c.stats.FillsRejected++
		return false
	}
	if old, ok := c.q.peek(k); ok {
		_, current := c.fence.check(key, old.validAt)
		switch {
		case !current:
			// Superseded: replace it.
		case old.shared != shared:
			// A local entry beats a shared one whatever their indexes:
			// linearizable reads may use only local entries.
			if !old.shared {
				return false
			}
		case old.validAt >= through:
			// What is cached is at least as fresh: keep it.
			return false
		}
	}
	c.q.add(&item{key: k, entry: e, size: size, validAt: through, expires: c.expiry(), shared: shared})
	c.stats.Fills++
	return true
}

// Fresh reports whether no write to key after index validThrough has been
// recorded: a value that was key's state at validThrough is still its state
// at this node's applied index, provided the value's ModRevision is at or
// below that index. The shared tier uses it to vet what it fetched.
func (c *Cache) Fresh(key []byte, validThrough uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.fence.check(key, validThrough)
	return ok
}

// Invalidate records that the log entry at index rev wrote key, and drops
// key's entry unless it already reflects rev.
func (c *Cache) Invalidate(key []byte, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fence.key(key, rev)
	if it, ok := c.q.peek(string(key)); ok && it.validAt < rev {
		c.q.remove(it)
		c.stats.Invalidated++
	}
}

// Update records that the log entry at index rev wrote e to key. If key is
// cached, its entry becomes e in place (keeping its position, so a hot key
// stays hot under writes); an absent key is not added.
func (c *Cache) Update(key []byte, e Entry, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fence.key(key, rev)
	it, ok := c.q.peek(string(key))
	if !ok || it.validAt >= rev {
		return
	}
	c.stats.Invalidated++
	size := itemSize(it.key, e)
	if size > c.q.maxItem() {
		c.q.remove(it)
		return
	}
	it.entry, it.validAt, it.expires, it.shared = e, rev, c.expiry(), false
	c.q.resize(it, size)
}

// InvalidateRange records that the log entry at index rev deleted keys in
// [start, end) (an empty end means no upper bound). Cached entries in the
// range are dropped lazily, when Get next finds them.
func (c *Cache) InvalidateRange(start, end []byte, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fence.span(start, end, rev)
}

// Purge drops every entry and advances the epoch: the store was replaced by
// a snapshot whose applied index is rev.
func (c *Cache) Purge(rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.q.purge()
	c.fence.reset(rev)
	c.epoch++
}

// Stats returns the counters and current size.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncStats()
	return c.stats
}

func (c *Cache) syncStats() {
	c.stats.Bytes = c.q.bytes()
	c.stats.Entries = int64(c.q.len())
	c.stats.Evictions = c.q.evictions
}

func (c *Cache) expiry() int64 {
	if c.cfg.TTL <= 0 {
		return 0
	}
	return c.now().Add(c.cfg.TTL).UnixNano()
}
