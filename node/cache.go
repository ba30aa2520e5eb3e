package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/cache"
	"github.com/raftkv/raftkv/cache/rediscache"
	"github.com/raftkv/raftkv/fsm"
)

// readCache wires the read cache tiers into the node: it is the FSM's
// Invalidator (keeping the local tier coherent on every node and sending
// Redis invalidations from the leader only), and it serves reads (readKey).
// See cache/DESIGN.md.
type readCache struct {
	logger *slog.Logger
	local  *cache.Cache     // never nil: no readCache without a local tier
	redis  *rediscache.Tier // nil without --cache-redis
	raft   atomic.Pointer[raft.Raft]
	fsm    atomic.Pointer[fsm.FSM]

	// clusterID caches the replicated cluster id once known (it is the
	// Redis namespace); Purge clears it, as a restore may change it.
	clusterID atomic.Pointer[string]
	// redisReadsFrom suspends Redis reads until this time (unix nanos)
	// after a restore replaced this node's state; see Purge.
	redisReadsFrom atomic.Int64
	// redisRejected counts Redis hits this node did not trust.
	redisRejected atomic.Uint64
}

var _ fsm.Invalidator = (*readCache)(nil)

// newReadCache builds the tiers Config asks for, or returns nil when the
// local cache is off.
func newReadCache(cfg Config, logger *slog.Logger) (*readCache, error) {
	local, err := cache.New(cfg.Cache, cache.Deps{})
	if err != nil {
		return nil, fmt.Errorf("read cache: %w", err)
	}
	if local == nil {
		return nil, nil
	}
	rc := &readCache{logger: logger.With("component", "cache"), local: local}
	rc.redis, err = rediscache.New(cfg.CacheRedis, rediscache.Deps{Logger: logger, Namespace: rc.namespace})
	if err != nil {
		return nil, fmt.Errorf("redis cache: %w", err)
	}
	return rc, nil
}

// setFSM and setRaft hand the cache the FSM (for the cluster id) and raft
// (for leadership) once they exist. Until setRaft, Purge calls come from
// opening the store or catching it up from raft's own snapshot, and no
// Redis invalidation is sent. Both do nothing on a nil readCache (cache
// off).
func (rc *readCache) setFSM(f *fsm.FSM) {
	if rc != nil {
		rc.fsm.Store(f)
	}
}

func (rc *readCache) setRaft(r *raft.Raft) {
	if rc != nil {
		rc.raft.Store(r)
	}
}

func (rc *readCache) close() error {
	if rc == nil || rc.redis == nil {
		return nil
	}
	return rc.redis.Close()
}

// namespace is the Redis key prefix: the replicated cluster id, "" (Redis
// off) until the cluster has one.
func (rc *readCache) namespace() string {
	if id := rc.clusterID.Load(); id != nil {
		return *id
	}
	f := rc.fsm.Load()
	if f == nil {
		return ""
	}
	id := f.ClusterID()
	if id != "" {
		rc.clusterID.Store(&id)
	}
	return id
}

func (rc *readCache) leader() bool {
	r := rc.raft.Load()
	return r != nil && r.State() == raft.Leader
}

// Invalidate implements fsm.Invalidator: a single Put updates a cached key
// in place, anything else drops it. The leader also invalidates Redis, so
// each committed write reaches Redis once, not once per node.
func (rc *readCache) Invalidate(key []byte, rev uint64, kv *fsm.KeyValue) {
	if kv != nil {
		rc.local.Update(key, entryOf(*kv, true), rev)
	} else {
		rc.local.Invalidate(key, rev)
	}
	if rc.redis != nil && rc.leader() {
		rc.redis.Invalidate(key, rev)
	}
}

// InvalidateRange implements fsm.Invalidator.
func (rc *readCache) InvalidateRange(start, end []byte, rev uint64) {
	rc.local.InvalidateRange(start, end, rev)
	if rc.redis != nil && rc.leader() {
		rc.redis.InvalidateRange(start, end, rev)
	}
}

// Purge implements fsm.Invalidator. After a restore (not the open at
// start) this node also stops reading Redis for one Redis TTL: an online
// restore of a backup rewrites history, so raft indexes no longer order
// everything Redis holds, and every entry written before it has expired
// after one TTL (cache/DESIGN.md, "Restore").
func (rc *readCache) Purge(rev uint64) {
	rc.local.Purge(rev)
	rc.clusterID.Store(nil)
	if rc.redis != nil && rc.raft.Load() != nil {
		rc.redisReadsFrom.Store(time.Now().Add(rc.redisTTL()).UnixNano())
	}
}

func (rc *readCache) redisTTL() time.Duration { return rc.redis.TTL() }

// readKey reads one key for a read at the given consistency whose barrier
// has passed (the caller loaded applied, the FSM's applied index, after
// it). Linearizable reads may use only the local tier and only entries this
// node read from its own store; serializable reads may also use Redis,
// after vetting what it returns. noCache reads the store and fills nothing.
func (n *Node) readKey(ctx context.Context, key []byte, serializable, noCache bool, applied uint64) (fsm.KeyValue, bool, error) {
	rc := n.cache
	if rc == nil || noCache {
		return n.fsm.Get(key)
	}
	if e, ok := rc.local.Get(key, serializable); ok {
		return kvOf(key, e), e.Found, nil
	}
	epoch := rc.local.Epoch()
	useRedis := serializable && rc.redis != nil && time.Now().UnixNano() >= rc.redisReadsFrom.Load()
	if useRedis {
		if e, upto, ok := rc.redis.Get(ctx, key); ok {
			// Trust it only if it is this node's state at applied: its
			// write is one this node has applied, and no later write to
			// the key up to applied has been recorded here.
			if e.ModRevision <= int64(applied) && rc.local.Fresh(key, upto) {
				rc.local.FillShared(key, e, upto, epoch)
				return kvOf(key, e), true, nil
			}
			rc.redisRejected.Add(1)
		}
	}
	kv, found, idx, err := n.fsm.GetIndexed(key)
	if err != nil {
		return fsm.KeyValue{}, false, err
	}
	e := entryOf(kv, found)
	rc.local.Fill(key, e, idx, epoch)
	// The shared Redis tier's entry format has no expiry field: keys with
	// an expiry are served from the local tier or the store only.
	if useRedis && found && kv.ExpireAtUnixMs == 0 {
		rc.redis.Fill(key, e, idx)
	}
	return kv, found, nil
}

func entryOf(kv fsm.KeyValue, found bool) cache.Entry {
	if !found {
		return cache.Entry{}
	}
	return cache.Entry{Found: true, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, ExpireAtUnixMs: kv.ExpireAtUnixMs}
}

func kvOf(key []byte, e cache.Entry) fsm.KeyValue {
	if !e.Found {
		return fsm.KeyValue{}
	}
	return fsm.KeyValue{Key: key, Value: e.Value, CreateRevision: e.CreateRevision, ModRevision: e.ModRevision, Version: e.Version, ExpireAtUnixMs: e.ExpireAtUnixMs}
}

// singleKeyRange reports whether r reads exactly one key, so the cache can
// serve it.
func singleKeyRange(r *kvpb.RangeRequest) bool {
	return len(r.GetRangeEnd()) == 0 && !r.GetPrefix()
}

// rangeOfOne builds the Range answer for one key, as fsm.Range would.
func rangeOfOne(r *kvpb.RangeRequest, kv fsm.KeyValue, found bool) fsm.RangeResult {
	if !found {
		return fsm.RangeResult{}
	}
	res := fsm.RangeResult{Count: 1}
	if !r.GetCountOnly() {
		if r.GetKeysOnly() {
			kv.Value = nil
		}
		res.KVs = []fsm.KeyValue{kv}
	}
	return res
}

// cacheStatus reports each tier for Status.
func (n *Node) cacheStatus(ctx context.Context) []*kvpb.CacheTierStats {
	rc := n.cache
	if rc == nil {
		return nil
	}
	s := rc.local.Stats()
	out := []*kvpb.CacheTierStats{{
		Tier:          "local",
		Hits:          s.Hits,
		Misses:        s.Misses,
		Evictions:     s.Evictions,
		Bytes:         s.Bytes,
		MaxBytes:      s.MaxBytes,
		Entries:       s.Entries,
		Fills:         s.Fills,
		Rejected:      s.FillsRejected + s.Stale,
		Invalidations: s.Invalidated,
		Expired:       s.Expired,
	}}
	if rc.redis != nil {
		r := rc.redis.Stats(ctx)
		out = append(out, &kvpb.CacheTierStats{
			Tier:          "redis",
			Hits:          r.Hits - min(r.Hits, rc.redisRejected.Load()),
			Misses:        r.Misses + rc.redisRejected.Load(),
			Bytes:         r.UsedMemory,
			Entries:       r.Keys,
			Errors:        r.Errors,
			Fills:         r.Fills,
			Rejected:      r.Refused + rc.redisRejected.Load() + r.Dropped,
			Invalidations: r.Invalidations,
		})
	}
	return out
}
