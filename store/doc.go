// Package store is raftkv's persistent local state: the key-value data, the
// raft applied index it reflects, and the member address book, in one bbolt
// file.
//
// It owns the on-disk layout of that file (buckets, record encoding, the
// store format version) and the transactional bookkeeping that must commit
// together with the data: the applied index and term, and the key count.
// Every write goes through [Store.Update] or [Store.Stage] (which lets
// several writes share one commit, and commits before anything reads), so
// the data and the applied index it corresponds to always commit together;
// that is what lets the FSM replay raft entries idempotently after a
// restart.
//
// It must never know about raft, protobuf or the cache: it stores what it is
// told and computes nothing (revisions and versions are chosen by package
// fsm). It never logs. [Open] never panics on a bad file: a corrupt or
// foreign file is reported as an error wrapping [ErrCorrupt] or
// [ErrUnknownFormat]. bbolt checksums only its meta pages, so damage to a data
// page can pass Open unnoticed and surface (possibly as a bbolt panic) when
// that page is read; detecting that is the job of snapshots' checksums and
// FSM.Hash comparisons between replicas, not of this package.
//
// Layout (NB: persisted; changing any of it requires a new [FormatVersion]
// and an upgrade path):
//
//	bucket "kv":      key -> create_revision u64 | mod_revision u64 | version u64 | value
//	                  (fixed 8-byte big-endian integers, then the value bytes)
//	bucket "meta":    "format_version", "applied_index", "applied_term", "key_count" -> u64 big-endian;
//	                  "cluster_id" -> the cluster id string (absent until set)
//	bucket "members": member id -> address string
//	bucket "expire_at": key -> expiry u64 (ms since the Unix epoch); only keys with an expiry
//	bucket "expiry":    expiry u64 | key -> empty (the expiry index, in expiry order)
//	                  (both absent until the first key with an expiry; both are written in the
//	                  same transaction as the kv record, so they always agree with it)
package store
