// Package cache is raftkv's in-process read cache: single-key read results
// (value and revisions, or "not found"), bounded by bytes, evicted with the
// scan-resistant 2Q policy on top of golang-lru's simplelru lists, with an
// optional TTL.
//
// It owns:
//   - the byte accounting and the eviction policy (twoq.go);
//   - the coherence rule (fence.go): every entry carries the raft index it
//     was read at, the cache remembers (conservatively) the index of the last
//     write to every key, and an entry is served only while no write to its
//     key after its read index has been recorded. Fills that lost a race with
//     a write are refused, and entries superseded by a write are never
//     served, whatever the interleaving;
//   - its counters (Stats), kept as a plain struct for a metrics exporter.
//
// It must never:
//   - know about raft, the FSM, the store or the API: it is told about writes
//     (Invalidate, Update, InvalidateRange, Purge) by the FSM through node,
//     which adapts fsm.Invalidator to it;
//   - import anything but the standard library and golang-lru;
//   - block on I/O: the shared Redis tier lives in cache/rediscache.
//
// See DESIGN.md for why it is built this way and the proof sketch of the
// coherence rule.
package cache
