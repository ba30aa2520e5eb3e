package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/raftkv/raftkv/store"
)

// Cut is a point-in-time view of the FSM's keys: one store read transaction
// that later applies do not disturb (bbolt's MVCC). Every page read from it
// is the state at Index.
//
// A Cut pins the store pages it sees: while it is open bbolt cannot reuse
// pages freed by later writes, so the file grows with the write volume
// during the cut, and a store being replaced by Restore is closed only once
// every Cut on it is closed. Close it promptly.
type Cut struct {
	tx    *store.ReadTx
	index uint64
	once  sync.Once
	err   error
}

// BeginCut opens a Cut at the current applied index. The caller must Close
// it. It is not safe for concurrent use.
func (f *FSM) BeginCut() (*Cut, error) {
	tx, err := f.beginRead()
	if err != nil {
		return nil, fmt.Errorf("fsm: begin cut: %w", err)
	}
	idx, _, err := tx.Applied()
	if err != nil {
		_ = tx.Rollback()
		return nil, fmt.Errorf("fsm: begin cut: %w", err)
	}
	return &Cut{tx: tx, index: idx}, nil
}

// beginRead starts a long-lived read transaction on the current store
// (under the read lock, so Restore cannot swap the store mid-way). The
// caller must roll it back.
func (f *FSM) beginRead() (*store.ReadTx, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed.Load() {
		return nil, ErrClosed
	}
	return f.st.BeginRead()
}

// Index returns the applied index the cut reflects.
func (c *Cut) Index() uint64 { return c.index }

var errPageFull = errors.New("page full")

// Page returns the key-values of [start, end) (an empty end: no upper
// bound), in key order, up to maxKeys of them and stopping after the one
// that brings the values to maxBytes or more, and the start of the next
// page (nil when the range is exhausted).
func (c *Cut) Page(start, end []byte, maxKeys, maxBytes int) (kvs []KeyValue, next []byte, err error) {
	size := 0
	err = c.tx.ForEach(start, end, func(kv store.KeyValue) error {
		if len(kvs) >= maxKeys || (maxBytes > 0 && size >= maxBytes) {
			next = kv.Key
			return errPageFull
		}
		kvs = append(kvs, kv)
		size += len(kv.Key) + len(kv.Value)
		return nil
	})
	if err != nil && !errors.Is(err, errPageFull) {
		return nil, nil, fmt.Errorf("fsm: cut page: %w", err)
	}
	return kvs, bytes.Clone(next), nil
}

// Close ends the cut's read transaction. It is safe to call more than once.
func (c *Cut) Close() error {
	c.once.Do(func() { c.err = c.tx.Rollback() })
	return c.err
}

// Expired returns up to limit keys whose recorded expiry is at or before
// atUnixMs, in expiry order, from this node's applied state. The leader's
// expiry loop proposes their deletion; see DeleteExpired in fsmpb.
func (f *FSM) Expired(atUnixMs int64, limit int) ([]store.Expired, error) {
	var out []store.Expired
	err := f.view(func(tx *store.ReadTx) (err error) {
		out, err = tx.ExpiredBefore(atUnixMs, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: expired keys: %w", err)
	}
	return out, nil
}
