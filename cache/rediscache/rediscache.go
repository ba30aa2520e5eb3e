package rediscache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftkv/raftkv/cache"
)

// Config is the plain-value configuration of the Redis tier.
type Config struct {
	// URL is redis://[user:password@]host:port/db (or rediss:// for TLS).
	// Empty disables the tier (New returns nil).
	URL string
	// TTL is how long an entry (or a tombstone) lives in Redis.
	TTL time.Duration
	// Timeout bounds every Redis call, so a slow or unreachable Redis costs
	// a read at most this much before it is answered from the store.
	Timeout time.Duration
	// Backoff is how long the tier is skipped after a Redis error; reads go
	// straight to the store meanwhile.
	Backoff time.Duration
	// QueueSize bounds the writes (fills and invalidations) waiting for the
	// background writer; beyond it they are dropped and counted.
	QueueSize int
}

// DefaultConfig returns a disabled tier with the defaults the flags use: a
// 5 minute TTL, 50 ms per call, 1 s backoff, 4096 queued writes.
func DefaultConfig() Config {
	return Config{TTL: 5 * time.Minute, Timeout: 50 * time.Millisecond, Backoff: time.Second, QueueSize: 4096}
}

// Validate reports whether c can be used by New.
func (c Config) Validate() error {
	if c.URL == "" {
		return nil
	}
	var errs []error
	if _, err := redis.ParseURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("rediscache: url: %w", err))
	}
	if c.TTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("rediscache: ttl %s must be at least 1ms", c.TTL))
	}
	if c.Timeout <= 0 || c.Backoff < 0 || c.QueueSize <= 0 {
		errs = append(errs, errors.New("rediscache: timeout and queue size must be positive, backoff not negative"))
	}
	return errors.Join(errs...)
}

// Deps are the tier's collaborators.
type Deps struct {
	// Logger receives connectivity changes; nil discards them.
	Logger *slog.Logger
	// Namespace returns the cluster id that prefixes every key, or "" while
	// it is not known yet; the tier does nothing until it is.
	Namespace func() string
}

// Stats counts what the tier did since New.
type Stats struct {
	// Hits and Misses count Get calls (a Get skipped during backoff is a
	// miss).
	Hits, Misses uint64
	// Errors counts failed Redis calls.
	Errors uint64
	// Fills counts entries written, Refused fills the revision guard
	// refused because Redis held something fresher.
	Fills, Refused uint64
	// Invalidations counts keys and ranges invalidated.
	Invalidations uint64
	// Dropped counts writes dropped because the queue was full or Redis was
	// in backoff.
	Dropped uint64
	// UsedMemory and Keys are the server's used_memory and the database's
	// DBSIZE (whole instance and database, not only this cluster's keys), or
	// -1 when they could not be read.
	UsedMemory, Keys int64
}

// Tier is the shared Redis cache tier. Reads are synchronous and bounded by
// Config.Timeout; writes go through a bounded queue to one background
// writer, so the FSM goroutine and readers never wait for Redis. Every
// method is safe for concurrent use.
type Tier struct {
	cfg    Config
	logger *slog.Logger
	ns     func() string
	rdb    *redis.Client

	queue     chan op
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	downUntil atomic.Int64 // unix nanoseconds; Redis is skipped before it
	down      atomic.Bool  // in backoff; for logging transitions once

	hits, misses, errs, fills, refused, invs, dropped atomic.Uint64
}

// op is one queued write.
type op struct {
	kind      opKind
	key       []byte
	end       []byte
	entry     cache.Entry
	rev       uint64 // validThrough of a fill, index of an invalidation
	namespace string
	barrier   chan struct{} // opBarrier: closed when reached
}

type opKind uint8

const (
	opFill opKind = iota + 1
	opInvalidate
	opInvalidateRange
	opBarrier
)

// Field names of a Redis entry, a hash: upto is the raft index the entry is
// known current through; value, mod, create and ver are the key-value. A
// tombstone has only upto: a write at upto+1 made older values stale.
//
// NB: other services may read these hashes; changing the names breaks them.
const (
	fieldUpto   = "upto"
	fieldValue  = "value"
	fieldMod    = "mod"
	fieldCreate = "create"
	fieldVer    = "ver"
)

// fillScript writes an entry unless Redis already holds one (or a
// tombstone) known current through the same or a later index: a reader that
// read an older state can never overwrite a newer one.
//
// KEYS[1] key; ARGV upto, value, mod, create, ver, ttl ms.
var fillScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'upto')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'upto', ARGV[1], 'value', ARGV[2], 'mod', ARGV[3], 'create', ARGV[4], 'ver', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
`)

// invalidateScript replaces an entry older than a write with a tombstone
// that refuses fills read before it. An entry read at or after the write
// already reflects it and stays.
//
// KEYS[1] key; ARGV write index, write index - 1, ttl ms.
var invalidateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'upto')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'upto', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// New connects lazily (go-redis dials on first use) and starts the
// background writer. It returns nil when cfg.URL is empty.
func New(cfg Config, deps Deps) (*Tier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, nil
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("rediscache: url: %w", err)
	}
	opts.DialTimeout = cfg.Timeout
	opts.ReadTimeout = cfg.Timeout
	opts.WriteTimeout = cfg.Timeout
	opts.MaxRetries = -1 // fail fast: the store is the fallback
	opts.DisableIdentity = true
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ns := deps.Namespace
	if ns == nil {
		ns = func() string { return "" }
	}
	t := &Tier{
		cfg:    cfg,
		logger: logger.With("component", "rediscache"),
		ns:     ns,
		rdb:    redis.NewClient(opts),
		queue:  make(chan op, cfg.QueueSize),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go t.run()
	return t, nil
}

// TTL returns the configured entry TTL.
func (t *Tier) TTL() time.Duration { return t.cfg.TTL }

// Close stops the writer (dropping queued writes) and closes the client.
func (t *Tier) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.done
		err = t.rdb.Close()
	})
	return err
}

// Key returns the Redis key of key in namespace ns.
//
// NB: other services may read these keys; the layout is part of the
// contract: "raftkv:" + cluster id + ":" + the raw key bytes.
func Key(ns string, key []byte) string {
	return "raftkv:" + ns + ":" + string(key)
}

// Get fetches key. ok is false on a miss, a tombstone, an error, in
// backoff, or while the namespace is unknown. A hit is key's state through
// index validThrough as the node that wrote it saw it; the caller must
// check it against its own state before use (cache.Cache.Fresh and the
// entry's ModRevision), because Redis is outside the raft log.
func (t *Tier) Get(ctx context.Context, key []byte) (e cache.Entry, validThrough uint64, ok bool) {
	ns := t.ns()
	if ns == "" || !t.up() {
		t.misses.Add(1)
		return cache.Entry{}, 0, false
	}
	cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	vals, err := t.rdb.HMGet(cctx, Key(ns, key), fieldUpto, fieldValue, fieldMod, fieldCreate, fieldVer).Result()
	if err != nil {
		if ctx.Err() == nil {
			t.failed(err) // not the caller giving up: Redis failed
		}
		t.misses.Add(1)
		return cache.Entry{}, 0, false
	}
	t.ok()
	e, validThrough, ok = decode(vals)
	if !ok {
		t.misses.Add(1)
		return cache.Entry{}, 0, false
	}
	t.hits.Add(1)
	return e, validThrough, true
}

// decode turns HMGET's answer into an entry; a tombstone, a missing key or
// a malformed hash (another writer's) is a miss.
func decode(vals []any) (cache.Entry, uint64, bool) {
	if len(vals) != 5 {
		return cache.Entry{}, 0, false
	}
	str := func(v any) (string, bool) { s, ok := v.(string); return s, ok }
	upto, ok1 := str(vals[0])
	value, ok2 := str(vals[1])
	mod, ok3 := str(vals[2])
	create, ok4 := str(vals[3])
	ver, ok5 := str(vals[4])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return cache.Entry{}, 0, false
	}
	u, err1 := strconv.ParseUint(upto, 10, 64)
	m, err2 := strconv.ParseInt(mod, 10, 64)
	c, err3 := strconv.ParseInt(create, 10, 64)
	v, err4 := strconv.ParseInt(ver, 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil || m <= 0 || uint64(m) > u {
		return cache.Entry{}, 0, false
	}
	return cache.Entry{Found: true, Value: []byte(value), ModRevision: m, CreateRevision: c, Version: v}, u, true
}

// Fill queues writing e, key's state through index validThrough read from
// this node's store. Only existing keys are stored; a not-found entry is
// ignored. Redis keeps whichever write is known current through the later
// index.
func (t *Tier) Fill(key []byte, e cache.Entry, validThrough uint64) {
	if !e.Found {
		return
	}
	t.enqueue(op{kind: opFill, key: bytes.Clone(key), entry: e, rev: validThrough})
}

// Invalidate queues replacing key's entry with a tombstone if it is older
// than the write at index rev. Call it once per committed write, on one
// node (the leader).
func (t *Tier) Invalidate(key []byte, rev uint64) {
	t.enqueue(op{kind: opInvalidate, key: key, rev: rev})
}

// InvalidateRange queues tombstoning every cached key of the namespace in
// [start, end) (empty end: no upper bound) that is older than rev. It scans
// the namespace, so it costs O(keys cached in Redis) on the writer.
func (t *Tier) InvalidateRange(start, end []byte, rev uint64) {
	t.enqueue(op{kind: opInvalidateRange, key: start, end: end, rev: rev})
}

// Wait returns once every write queued before it was done (or dropped),
// or when ctx ends. Tests use it instead of sleeping.
func (t *Tier) Wait(ctx context.Context) error {
	b := op{kind: opBarrier, barrier: make(chan struct{})}
	select {
	case t.queue <- b:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.done:
		return errors.New("rediscache: closed")
	}
	select {
	case <-b.barrier:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.done:
		return errors.New("rediscache: closed")
	}
}

func (t *Tier) enqueue(o op) {
	o.namespace = t.ns()
	if o.namespace == "" {
		return
	}
	if !t.up() {
		t.dropped.Add(1)
		return
	}
	select {
	case t.queue <- o:
	default:
		t.dropped.Add(1)
	}
}

// run is the background writer.
func (t *Tier) run() {
	defer close(t.done)
	for {
		select {
		case <-t.stop:
			return
		case o := <-t.queue:
			if o.kind == opBarrier {
				close(o.barrier)
				continue
			}
			if !t.up() {
				t.dropped.Add(1)
				continue
			}
			t.do(o)
		}
	}
}

func (t *Tier) do(o op) {
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.Timeout)
	defer cancel()
	ttl := strconv.FormatInt(t.cfg.TTL.Milliseconds(), 10)
	k := Key(o.namespace, o.key)
	var err error
	switch o.kind {
	case opFill:
		var n int64
		n, err = fillScript.Run(ctx, t.rdb, []string{k},
			o.rev, o.entry.Value, o.entry.ModRevision, o.entry.CreateRevision, o.entry.Version, ttl).Int64()
		if err == nil && n == 1 {
			t.fills.Add(1)
		} else if err == nil {
			t.refused.Add(1)
		}
	case opInvalidate:
		err = t.invalidate(ctx, k, o.rev, ttl)
	case opInvalidateRange:
		// A scan may take longer than one call's timeout.
		sctx, scancel := context.WithTimeout(context.Background(), 100*t.cfg.Timeout)
		err = t.invalidateRange(sctx, o, ttl)
		scancel()
	}
	if err != nil {
		t.failed(err)
		return
	}
	t.ok()
}

func (t *Tier) invalidate(ctx context.Context, k string, rev uint64, ttl string) error {
	if err := invalidateScript.Run(ctx, t.rdb, []string{k}, rev, rev-1, ttl).Err(); err != nil {
		return err
	}
	t.invs.Add(1)
	return nil
}

func (t *Tier) invalidateRange(ctx context.Context, o op, ttl string) error {
	prefix := Key(o.namespace, nil)
	iter := t.rdb.Scan(ctx, 0, globEscape(prefix)+"*", 512).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		userKey := []byte(strings.TrimPrefix(k, prefix))
		if bytes.Compare(userKey, o.key) < 0 || (len(o.end) > 0 && bytes.Compare(userKey, o.end) >= 0) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		err := t.invalidate(cctx, k, o.rev, ttl)
		cancel()
		if err != nil {
			return err
		}
	}
	return iter.Err()
}

// globEscape escapes Redis glob metacharacters.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// up reports whether Redis may be used now (not in backoff).
func (t *Tier) up() bool {
	until := t.downUntil.Load()
	return until == 0 || time.Now().UnixNano() >= until
}

func (t *Tier) failed(err error) {
	t.errs.Add(1)
	t.downUntil.Store(time.Now().Add(t.cfg.Backoff).UnixNano())
	if !t.down.Swap(true) {
		t.logger.Warn("redis cache unavailable; reads use the store", "err", err, "backoff", t.cfg.Backoff)
	}
}

func (t *Tier) ok() {
	if t.down.Swap(false) {
		t.downUntil.Store(0)
		t.logger.Info("redis cache available again")
	}
}

// Stats returns the counters, and asks Redis for its memory and key count
// (bounded by ctx and Config.Timeout; -1 when that fails).
func (t *Tier) Stats(ctx context.Context) Stats {
	s := Stats{
		Hits: t.hits.Load(), Misses: t.misses.Load(), Errors: t.errs.Load(),
		Fills: t.fills.Load(), Refused: t.refused.Load(), Invalidations: t.invs.Load(),
		Dropped: t.dropped.Load(), UsedMemory: -1, Keys: -1,
	}
	if !t.up() {
		return s
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	if n, err := t.rdb.DBSize(ctx).Result(); err == nil {
		s.Keys = n
	}
	if info, err := t.rdb.Info(ctx, "memory").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				s.UsedMemory, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return s
}
