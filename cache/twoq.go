package cache

import (
	"math"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Cost model. These are estimates of the heap an entry really holds, so
// that MaxBytes bounds memory, not just payload: the item struct (112 B
// size class), the list element simplelru keeps per key (80 B) and a map
// slot with its share of a map that grows by doubling (~48 B), plus
// rounding of the key and value allocations. BenchmarkCacheMemory checks the
// estimate against the Go heap.
const (
	entryOverhead = 256
	ghostOverhead = 128
)

// Shares of MaxBytes, as in the 2Q paper (Johnson & Shasha, VLDB '94) and
// golang-lru's TwoQueueCache: a quarter for keys seen once (A1in), the rest
// for keys seen again (Am), and a small budget to remember the keys recently
// evicted from A1in (A1out, "ghosts": keys only, no values).
const (
	recentShare = 0.25
	ghostShare  = 0.125
)

// item is one cached key. Items are owned by the twoQ and mutated only under
// the Cache's lock.
type item struct {
	key     string
	entry   Entry
	size    int64
	validAt uint64 // the entry is the key's state as of this raft index
	expires int64  // unix nanoseconds; 0 = never
	shared  bool   // came from the shared (Redis) tier, not this node's store
}

func itemSize(key string, e Entry) int64 {
	return int64(len(key)) + int64(len(e.Value)) + entryOverhead
}

// twoQ is a 2Q cache bounded by bytes, built from three golang-lru simplelru
// lists. simplelru bounds by count only, so every list gets an unbounded
// count and twoQ evicts by bytes itself. Not safe for concurrent use.
//
// A key enters the recent queue on its first fill. A hit there, or a fill of
// a key the ghost list remembers, moves it to the frequent queue. Eviction
// takes from the recent queue while it holds more than its share (its keys
// go to the ghost list), otherwise from the frequent queue, so a scan of
// keys read once can only ever flush the recent quarter.
type twoQ struct {
	max, recentMax, ghostMax int64

	recent   *simplelru.LRU[string, *item]
	frequent *simplelru.LRU[string, *item]
	ghost    *simplelru.LRU[string, int64] // key -> its ghost cost

	recentBytes, frequentBytes, ghostBytes int64
	evictions                              uint64
}

func newTwoQ(max int64) *twoQ {
	q := &twoQ{
		max:       max,
		recentMax: int64(float64(max) * recentShare),
		ghostMax:  int64(float64(max) * ghostShare),
	}
	// NewLRU fails only for a size <= 0.
	q.recent, _ = simplelru.NewLRU[string, *item](math.MaxInt, nil)
	q.frequent, _ = simplelru.NewLRU[string, *item](math.MaxInt, nil)
	q.ghost, _ = simplelru.NewLRU[string, int64](math.MaxInt, nil)
	return q
}

// maxItem is the largest item the queue accepts: one that fits in the
// recent share, so a single fill can never flush the frequent queue.
func (q *twoQ) maxItem() int64 { return q.recentMax }

// bytes is what the bound applies to: both queues and the ghosts.
func (q *twoQ) bytes() int64 { return q.recentBytes + q.frequentBytes + q.ghostBytes }

func (q *twoQ) len() int { return q.recent.Len() + q.frequent.Len() }

// peek returns key's item without changing its position.
func (q *twoQ) peek(key string) (*item, bool) {
	if it, ok := q.frequent.Peek(key); ok {
		return it, true
	}
	return q.recent.Peek(key)
}

// touch records a hit on it: a frequent item moves to the front, a recent
// one is promoted to the frequent queue.
func (q *twoQ) touch(it *item) {
	if _, ok := q.frequent.Get(it.key); ok {
		return
	}
	if q.recent.Remove(it.key) {
		q.recentBytes -= it.size
		q.frequent.Add(it.key, it)
		q.frequentBytes += it.size
		q.evict()
	}
}

// add inserts it, replacing an item with the same key, then evicts down to
// the bound. The caller has checked it.size <= maxItem.
func (q *twoQ) add(it *item) {
	switch old, ok := q.frequent.Peek(it.key); {
	case ok:
		q.frequentBytes += it.size - old.size
		q.frequent.Add(it.key, it)
	default:
		if old, ok := q.recent.Peek(it.key); ok {
			// Filled again while in the recent queue: a second use.
			q.recent.Remove(it.key)
			q.recentBytes -= old.size
			q.frequent.Add(it.key, it)
			q.frequentBytes += it.size
		} else if cost, ok := q.ghost.Peek(it.key); ok {
			// Evicted from the recent queue and wanted again soon after.
			q.ghost.Remove(it.key)
			q.ghostBytes -= cost
			q.frequent.Add(it.key, it)
			q.frequentBytes += it.size
		} else {
			q.recent.Add(it.key, it)
			q.recentBytes += it.size
		}
	}
	q.evict()
}

// resize updates the accounting after it's entry changed in place.
func (q *twoQ) resize(it *item, size int64) {
	if _, ok := q.frequent.Peek(it.key); ok {
		q.frequentBytes += size - it.size
	} else {
		q.recentBytes += size - it.size
	}
	it.size = size
	q.evict()
}

// remove drops key's item (not its ghost).
func (q *twoQ) remove(it *item) {
	if q.frequent.Remove(it.key) {
		q.frequentBytes -= it.size
		return
	}
	if q.recent.Remove(it.key) {
		q.recentBytes -= it.size
	}
}

func (q *twoQ) purge() {
	q.recent.Purge()
	q.frequent.Purge()
	q.ghost.Purge()
	q.recentBytes, q.frequentBytes, q.ghostBytes = 0, 0, 0
}

// evict brings bytes() down to max and the ghosts down to their share.
// Each round removes an item or a ghost, and an item costs more than the
// ghost it leaves, so the loop ends.
func (q *twoQ) evict() {
	for q.bytes() > q.max || q.ghostBytes > q.ghostMax {
		switch {
		case q.ghostBytes > q.ghostMax || q.len() == 0:
			_, cost, ok := q.ghost.RemoveOldest()
			if !ok {
				return // unreachable: bytes() > 0 means something is left
			}
			q.ghostBytes -= cost
		case q.recentBytes > q.recentMax || q.frequent.Len() == 0:
			key, it, _ := q.recent.RemoveOldest()
			q.recentBytes -= it.size
			q.evictions++
			cost := int64(len(key)) + ghostOverhead
			q.ghost.Add(key, cost)
			q.ghostBytes += cost
		default:
			_, it, _ := q.frequent.RemoveOldest()
			q.frequentBytes -= it.size
			q.evictions++
		}
	}
}
