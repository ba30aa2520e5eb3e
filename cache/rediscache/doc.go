// Package rediscache is raftkv's optional shared cache tier in Redis: a
// second level behind each node's in-process cache, and a place where other
// services can read raftkv's hot keys.
//
// It owns:
//   - the Redis layout: one hash per key under "raftkv:<cluster id>:<key>"
//     with the fields upto, value, mod, create and ver (see Key and the
//     field constants), and tombstones holding only upto;
//   - the revision guard: two small Lua scripts write an entry, or a
//     tombstone, only if Redis holds nothing known current through the same
//     or a later raft index, so a slow writer cannot overwrite a newer value;
//   - staying out of the way: every call is bounded by Config.Timeout, a
//     failure puts the tier in backoff (reads go to the store, a counter
//     records it), and writes go through a bounded queue to one background
//     goroutine, so neither the FSM nor a reader ever waits for Redis.
//
// It must never:
//   - decide whether a value may be served: Redis is outside the raft log
//     and shared with other writers, so node vets every hit against its own
//     state (cache.Cache.Fresh, the entry's mod revision) and linearizable
//     reads never use this tier at all;
//   - import anything of raftkv but package cache (for its Entry type).
//
// See cache/DESIGN.md for the rules and why they are safe.
package rediscache
