package cache

import (
	"bytes"
	"hash/maphash"
)

// maxSpans is how many recent range invalidations the fence remembers
// exactly; older ones are folded into the floor.
const maxSpans = 32

// fence remembers, conservatively, the raft index of the last write to every
// key: for any key k, bound(k) is at least the index of the last recorded
// write to k. It never forgets a write, it only over-approximates: keys share
// hash slots, ranges older than the last maxSpans become the floor, and the
// floor starts at the index the store was opened or restored at. An
// over-approximation only ever turns a hit into a miss.
//
// An entry read from the store at index x is the key's current state for as
// long as bound(k) <= x. That single rule makes fills, hits, invalidations
// and their races safe; see DESIGN.md.
//
// Not safe for concurrent use: the Cache's lock guards it.
type fence struct {
	seed  maphash.Seed
	slots []uint64
	// floor bounds the last write to every key.
	floor uint64
	// spans are recent range invalidations, oldest first.
	spans []span
	// high is the highest index recorded. The FSM records writes in index
	// order, so every write below high has been recorded (writes at high
	// may still be coming: one Txn writes several keys at one index).
	high uint64
}

type span struct {
	start, end []byte // empty end: no upper bound
	rev        uint64
}

func newFence(slots int) *fence {
	return &fence{seed: maphash.MakeSeed(), slots: make([]uint64, slots)}
}

func (f *fence) slot(key []byte) *uint64 {
	h := maphash.Bytes(f.seed, key)
	return &f.slots[h&uint64(len(f.slots)-1)]
}

// key records a write to key at rev.
func (f *fence) key(key []byte, rev uint64) {
	if s := f.slot(key); *s < rev {
		*s = rev
	}
	f.raise(rev)
}

// span records a write to every key in [start, end) at rev.
func (f *fence) span(start, end []byte, rev uint64) {
	if len(f.spans) == maxSpans {
		f.floor = max(f.floor, f.spans[0].rev)
		f.spans = append(f.spans[:0], f.spans[1:]...)
	}
	// Copy: the FSM's slices belong to the decoded command.
	f.spans = append(f.spans, span{start: bytes.Clone(start), end: bytes.Clone(end), rev: rev})
	f.raise(rev)
}

func (f *fence) raise(rev uint64) {
	if f.high < rev {
		f.high = rev
	}
}

// reset forgets everything and makes rev the floor: the state was replaced
// by a snapshot at rev.
func (f *fence) reset(rev uint64) {
	clear(f.slots)
	f.spans = f.spans[:0]
	f.floor, f.high = rev, rev
}

// check reports whether an entry of key read at index x is still current,
// and if so the index it is now known current through: every write below
// f.high has been recorded, and none of them touched key after x.
func (f *fence) check(key []byte, x uint64) (through uint64, ok bool) {
	if f.floor > x || *f.slot(key) > x {
		return 0, false
	}
	for i := len(f.spans) - 1; i >= 0; i-- {
		s := f.spans[i]
		if s.rev <= x {
			break // spans are in index order: the rest are older still
		}
		if bytes.Compare(key, s.start) >= 0 && (len(s.end) == 0 || bytes.Compare(key, s.end) < 0) {
			return 0, false
		}
	}
	if f.high == 0 {
		return x, true
	}
	return max(x, f.high-1), true
}
