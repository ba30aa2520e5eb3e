// Package fsm is raftkv's replicated state machine: it implements
// raft.BatchingFSM over the local store and serves local reads.
//
// It owns:
//   - the log entry format: EnvelopeV1 plus an fsmpb.Command
//     (EncodeCommand, DecodeCommand), and the golden files proving old entries
//     still decode (testdata/);
//   - apply semantics: revisions are raft indexes, etcd-style versions,
//     DeleteRange and prefix ranges (PrefixEnd), and Txn compares and ops;
//   - idempotent replay: the applied index commits with the data, and
//     entries at or below it are skipped;
//   - the snapshot stream format, Snapshot/Persist and verified Restore;
//   - cache coherence: it tells its Invalidator about every changed key
//     after the commit and before the applied index is published.
//
// It must never:
//   - skip, or turn into an error, an entry it cannot decode or an op it
//     does not know: that is a panic, because replicas would diverge;
//   - depend on anything but the entry and the current state when applying
//     (no clocks, randomness, map order, or local configuration);
//   - import the API schema (api/kvpb), the cache, transport or node;
//   - log on the hot path except anomalies, or log user values.
//
// See DESIGN.md for why it is built this way.
package fsm
