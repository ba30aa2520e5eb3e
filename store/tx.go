package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// recordHeaderLen is the size of the fixed part of a kv record:
// create_revision, mod_revision and version, 8 bytes each.
const recordHeaderLen = 24

// KeyValue is one key with its value and revisions. Slices returned by the
// store are copies and may be kept and modified by the caller.
type KeyValue struct {
	// Key is the key.
	Key []byte
	// Value is the value; nil for keys-only reads.
	Value []byte
	// CreateRevision is the revision (raft index) that created the key.
	CreateRevision int64
	// ModRevision is the revision of the key's last write.
	ModRevision int64
	// Version counts writes since the key was created: 1 after creation.
	Version int64
	// ExpireAtUnixMs is when the key expires, in milliseconds since the
	// Unix epoch, or 0 for never. The store only records it and keeps the
	// expiry index in step; it never deletes anything by itself.
	ExpireAtUnixMs int64
}

// Expired is one entry of the expiry index: a key and its expiry time.
type Expired struct {
	// Key is the key.
	Key []byte
	// ExpireAtUnixMs is the key's recorded expiry time.
	ExpireAtUnixMs int64
}

// RangeOptions shapes a Range read.
type RangeOptions struct {
	// Limit caps the number of key-values returned; zero or negative means
	// no limit. It does not cap RangeResult.Count.
	Limit int64
	// KeysOnly returns keys and revisions without values.
	KeysOnly bool
	// CountOnly returns only RangeResult.Count, with no key-values.
	CountOnly bool
	// CountRest keeps walking the range after Limit is reached, so that
	// RangeResult.Count is the size of the whole range. Without it a
	// limited Range stops at the first key past the limit: paging through
	// n keys then costs O(n) instead of O(n²).
	CountRest bool
}

// RangeResult is the answer to a Range read.
type RangeResult struct {
	// KVs are the key-values in ascending key order, at most Limit of them.
	KVs []KeyValue
	// More is true when Limit left keys of the range out of KVs.
	More bool
	// Count is the number of keys in the range, regardless of Limit. With
	// a Limit and without CountRest, it counts only the keys up to and
	// including the first one left out, so a paging reader does not walk
	// the rest of the range on every page (see RangeOptions.CountRest).
	Count int64
}

// reader implements the read methods shared by ReadTx and WriteTx.
type reader struct {
	tx      *bolt.Tx
	kv      *bolt.Bucket
	meta    *bolt.Bucket
	members *bolt.Bucket
	// expireAt (key -> expiry) and expiry (expiry | key -> nil) are nil
	// in a store that never held a key with an expiry; a WriteTx creates
	// them on first use.
	expireAt *bolt.Bucket
	expiry   *bolt.Bucket
	// keyDelta is the key count change made by a WriteTx so far.
	keyDelta int64
}

func newReader(tx *bolt.Tx) (reader, error) {
	r := reader{
		tx:      tx,
		kv:      tx.Bucket(bucketKV),
		meta:    tx.Bucket(bucketMeta),
		members: tx.Bucket(bucketMembers),
		// Absent in stores from before TTLs: read as "no expiries".
		expireAt: tx.Bucket(bucketExpireAt),
		expiry:   tx.Bucket(bucketExpiry),
	}
	if r.kv == nil || r.meta == nil || r.members == nil {
		return reader{}, fmt.Errorf("%w: missing bucket (not a raftkv store)", ErrCorrupt)
	}
	return r, nil
}

// Get returns the key-value stored at key and whether it exists.
func (r *reader) Get(key []byte) (KeyValue, bool, error) {
	if len(key) == 0 {
		return KeyValue{}, false, nil
	}
	raw := r.kv.Get(key)
	if raw == nil {
		return KeyValue{}, false, nil
	}
	kv, err := r.decode(key, raw, true)
	return kv, err == nil, err
}

// Range reads the keys in [start, end) in ascending order. An empty start
// means the first key; an empty (nil or zero-length) end means no upper
// bound. If end <= start the range is empty.
func (r *reader) Range(start, end []byte, opts RangeOptions) (RangeResult, error) {
	var res RangeResult
	if len(end) > 0 && bytes.Compare(end, start) <= 0 {
		return res, nil
	}
	if opts.CountOnly && len(start) == 0 && len(end) == 0 {
		n, err := r.KeyCount()
		return RangeResult{Count: n}, err
	}
	c := r.kv.Cursor()
	for k, v := c.Seek(start); k != nil; k, v = c.Next() {
		if len(end) > 0 && bytes.Compare(k, end) >= 0 {
			break
		}
		res.Count++
		if opts.CountOnly {
			continue
		}
		if opts.Limit > 0 && int64(len(res.KVs)) >= opts.Limit {
			res.More = true
			if !opts.CountRest {
				break
			}
			continue
		}
		kv, err := r.decode(k, v, !opts.KeysOnly)
		if err != nil {
			return RangeResult{}, err
		}
		res.KVs = append(res.KVs, kv)
	}
	return res, nil
}

// ForEach calls fn for every key in [start, end) in ascending order, with
// the same bounds as Range, and stops at the first error fn returns, which
// ForEach returns unchanged. It streams: nothing is accumulated.
func (r *reader) ForEach(start, end []byte, fn func(KeyValue) error) error {
	if len(end) > 0 && bytes.Compare(end, start) <= 0 {
		return nil
	}
	c := r.kv.Cursor()
	for k, v := c.Seek(start); k != nil; k, v = c.Next() {
		if len(end) > 0 && bytes.Compare(k, end) >= 0 {
			break
		}
		kv, err := r.decode(k, v, true)
		if err != nil {
			return err
		}
		if err := fn(kv); err != nil {
			return err
		}
	}
	return nil
}

// decode decodes a kv record and adds the key's expiry.
func (r *reader) decode(key, raw []byte, withValue bool) (KeyValue, error) {
	kv, err := decodeRecord(key, raw, withValue)
	if err != nil {
		return kv, err
	}
	kv.ExpireAtUnixMs, err = r.expireAtOf(key)
	return kv, err
}

// expireAtOf returns key's recorded expiry, 0 when it has none.
func (r *reader) expireAtOf(key []byte) (int64, error) {
	if r.expireAt == nil {
		return 0, nil
	}
	v := r.expireAt.Get(key)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: expiry of key %q has %d bytes, want 8", ErrCorrupt, key, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// ExpiredBefore returns, in expiry order, up to limit keys of the expiry
// index whose expiry is at or before atUnixMs (limit <= 0 means all). It
// reads only the index, never the clock.
func (r *reader) ExpiredBefore(atUnixMs int64, limit int) ([]Expired, error) {
	if r.expiry == nil || atUnixMs <= 0 {
		return nil, nil
	}
	var out []Expired
	c := r.expiry.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) <= 8 {
			return nil, fmt.Errorf("%w: expiry index entry of %d bytes", ErrCorrupt, len(k))
		}
		at := int64(binary.BigEndian.Uint64(k[:8]))
		if at > atUnixMs || (limit > 0 && len(out) >= limit) {
			break
		}
		out = append(out, Expired{Key: bytes.Clone(k[8:]), ExpireAtUnixMs: at})
	}
	return out, nil
}

// ExpiryCount returns the number of entries in the expiry index and in the
// per-key expiry bucket; they are equal in a consistent store.
func (r *reader) ExpiryCount() (index, perKey int) {
	if r.expiry != nil {
		index = r.expiry.Stats().KeyN
	}
	if r.expireAt != nil {
		perKey = r.expireAt.Stats().KeyN
	}
	return index, perKey
}

// Members returns a copy of the member address book: member id -> address.
func (r *reader) Members() (map[string]string, error) {
	m := make(map[string]string)
	err := r.members.ForEach(func(k, v []byte) error {
		m[string(k)] = string(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read members: %w", err)
	}
	return m, nil
}

// ClusterID returns the replicated cluster id, or "" if none has been set.
func (r *reader) ClusterID() string {
	return string(r.meta.Get(metaClusterID))
}

// KeyCount returns the number of keys, from the transactionally maintained
// counter rather than a scan. In a WriteTx it includes the transaction's own
// writes.
func (r *reader) KeyCount() (int64, error) {
	n, err := r.committedKeyCount()
	return n + r.keyDelta, err
}

// Size returns the size in bytes of the data in the store file as seen by
// this transaction (highest page in use times the page size).
func (r *reader) Size() int64 { return r.tx.Size() }

func (r *reader) applied() (index, term uint64, err error) {
	if index, err = r.metaU64(metaAppliedIndex); err != nil {
		return 0, 0, err
	}
	if term, err = r.metaU64(metaAppliedTerm); err != nil {
		return 0, 0, err
	}
	return index, term, nil
}

func (r *reader) committedKeyCount() (int64, error) {
	n, err := r.metaU64(metaKeyCount)
	return int64(n), err
}

func (r *reader) metaU64(key []byte) (uint64, error) {
	v := r.meta.Get(key)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: meta %q has %d bytes, want 8", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// ReadTx is a read-only view of the store at one point in time. One from
// View is valid only inside the View callback; one from Store.BeginRead is
// valid until Rollback. It is not safe for concurrent use.
type ReadTx struct {
	reader
	owned bool
}

// Applied returns the raft index and term the view reflects.
func (t *ReadTx) Applied() (index, term uint64, err error) { return t.applied() }

// Rollback ends a read transaction started with Store.BeginRead. It must be
// called exactly once; calling it on a ReadTx from View is a no-op.
func (t *ReadTx) Rollback() error {
	if !t.owned {
		return nil
	}
	t.owned = false
	if err := t.tx.Rollback(); err != nil {
		return fmt.Errorf("store: rollback read: %w", err)
	}
	return nil
}

// WriteTx is a read-write transaction, valid only inside Store.Update or
// Store.Stage. Reads
// through it see its own earlier writes. It is not safe for concurrent use.
type WriteTx struct {
	reader
	appliedSet bool
	index      uint64
	term       uint64
}

// Applied returns the raft index and term as this transaction would commit
// them: the last SetApplied, else the committed values.
func (t *WriteTx) Applied() (index, term uint64, err error) {
	if t.appliedSet {
		return t.index, t.term, nil
	}
	return t.applied()
}

// Put stores kv under kv.Key, replacing any existing record. The caller
// chooses the revisions, version and expiry; the store does not compute
// them. kv.ExpireAtUnixMs replaces any earlier expiry of the key (0 clears
// it), and the expiry index follows in the same transaction.
func (t *WriteTx) Put(kv KeyValue) error {
	switch {
	case len(kv.Key) == 0:
		return ErrKeyRequired
	case len(kv.Key) > MaxKeySize:
		return fmt.Errorf("%w: %d bytes, max %d", ErrKeyTooLarge, len(kv.Key), MaxKeySize)
	case len(kv.Value) > MaxValueSize:
		return fmt.Errorf("%w: %d bytes, max %d", ErrValueTooLarge, len(kv.Value), MaxValueSize)
	case kv.ExpireAtUnixMs < 0:
		return fmt.Errorf("store: put: negative expiry %d", kv.ExpireAtUnixMs)
	}
	existed := t.kv.Get(kv.Key) != nil
	if err := t.kv.Put(kv.Key, encodeRecord(kv)); err != nil {
		return fmt.Errorf("store: put: %w", err)
	}
	if !existed {
		t.keyDelta++
	}
	return t.setExpiry(kv.Key, kv.ExpireAtUnixMs)
}

// setExpiry records key's expiry (0 removes it) in the per-key bucket and
// the index, in this transaction, so the two never disagree with the data.
func (t *WriteTx) setExpiry(key []byte, at int64) error {
	old, err := t.expireAtOf(key)
	if err != nil {
		return err
	}
	if old == at {
		return nil
	}
	if old != 0 {
		if err := t.expiry.Delete(expiryIndexKey(old, key)); err != nil {
			return fmt.Errorf("store: expiry index: %w", err)
		}
		if at == 0 {
			if err := t.expireAt.Delete(key); err != nil {
				return fmt.Errorf("store: expiry: %w", err)
			}
			return nil
		}
	}
	if t.expiry == nil {
		if t.expiry, err = t.tx.CreateBucketIfNotExists(bucketExpiry); err != nil {
			return fmt.Errorf("store: create expiry index: %w", err)
		}
		if t.expireAt, err = t.tx.CreateBucketIfNotExists(bucketExpireAt); err != nil {
			return fmt.Errorf("store: create expiry bucket: %w", err)
		}
	}
	if err := t.expiry.Put(expiryIndexKey(at, key), nil); err != nil {
		return fmt.Errorf("store: expiry index: %w", err)
	}
	if err := t.expireAt.Put(key, u64(uint64(at))); err != nil {
		return fmt.Errorf("store: expiry: %w", err)
	}
	return nil
}

// expiryIndexKey is the expiry index key: the big-endian expiry, then the
// key, so a cursor walks keys in expiry order.
func expiryIndexKey(at int64, key []byte) []byte {
	b := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(at))
	return append(b, key...)
}

// Delete removes key, with its expiry, and reports whether it existed.
func (t *WriteTx) Delete(key []byte) (existed bool, err error) {
	if len(key) == 0 || t.kv.Get(key) == nil {
		return false, nil
	}
	if err := t.kv.Delete(key); err != nil {
		return false, fmt.Errorf("store: delete: %w", err)
	}
	t.keyDelta--
	if err := t.setExpiry(key, 0); err != nil {
		return false, err
	}
	return true, nil
}

// SetApplied records the raft index and term this transaction brings the
// store to. They commit atomically with the transaction's data.
func (t *WriteTx) SetApplied(index, term uint64) {
	t.appliedSet, t.index, t.term = true, index, term
}

// SetMember records a member's address, replacing any previous one. An empty
// addr is stored as is.
func (t *WriteTx) SetMember(id, addr string) error {
	if id == "" {
		return fmt.Errorf("store: set member: %w", ErrKeyRequired)
	}
	if err := t.members.Put([]byte(id), []byte(addr)); err != nil {
		return fmt.Errorf("store: set member %q: %w", id, err)
	}
	return nil
}

// SetClusterID records the cluster id, replacing any previous one. The store
// does not decide whether an id may change; package fsm does.
func (t *WriteTx) SetClusterID(id string) error {
	if id == "" {
		return fmt.Errorf("store: set cluster id: %w", ErrKeyRequired)
	}
	if err := t.meta.Put(metaClusterID, []byte(id)); err != nil {
		return fmt.Errorf("store: set cluster id: %w", err)
	}
	return nil
}

// flush writes the bookkeeping accumulated by the transaction.
func (t *WriteTx) flush() error {
	if t.keyDelta != 0 {
		n, err := t.committedKeyCount()
		if err != nil {
			return err
		}
		n += t.keyDelta
		if n < 0 {
			return fmt.Errorf("%w: key count would go negative (%d)", ErrCorrupt, n)
		}
		if err := t.meta.Put(metaKeyCount, u64(uint64(n))); err != nil {
			return fmt.Errorf("store: write key count: %w", err)
		}
	}
	if t.appliedSet {
		if err := t.meta.Put(metaAppliedIndex, u64(t.index)); err != nil {
			return fmt.Errorf("store: write applied index: %w", err)
		}
		if err := t.meta.Put(metaAppliedTerm, u64(t.term)); err != nil {
			return fmt.Errorf("store: write applied term: %w", err)
		}
	}
	return nil
}

// encodeRecord builds the kv bucket value for kv. NB: persisted layout, see
// the package doc.
func encodeRecord(kv KeyValue) []byte {
	b := make([]byte, recordHeaderLen+len(kv.Value))
	binary.BigEndian.PutUint64(b[0:8], uint64(kv.CreateRevision))
	binary.BigEndian.PutUint64(b[8:16], uint64(kv.ModRevision))
	binary.BigEndian.PutUint64(b[16:24], uint64(kv.Version))
	copy(b[recordHeaderLen:], kv.Value)
	return b
}

// decodeRecord decodes a kv bucket entry, copying key and value out of
// bbolt's memory map: that memory is only valid inside the transaction, and
// callers keep results longer.
func decodeRecord(key, raw []byte, withValue bool) (KeyValue, error) {
	if len(raw) < recordHeaderLen {
		return KeyValue{}, fmt.Errorf("%w: record for key %q has %d bytes, want at least %d",
			ErrCorrupt, key, len(raw), recordHeaderLen)
	}
	kv := KeyValue{
		Key:            bytes.Clone(key),
		CreateRevision: int64(binary.BigEndian.Uint64(raw[0:8])),
		ModRevision:    int64(binary.BigEndian.Uint64(raw[8:16])),
		Version:        int64(binary.BigEndian.Uint64(raw[16:24])),
	}
	if withValue {
		kv.Value = make([]byte, len(raw)-recordHeaderLen)
		copy(kv.Value, raw[recordHeaderLen:])
	}
	return kv, nil
}
