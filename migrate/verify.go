package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"
)

// Verification compares the source, as the migration selects and renames
// it, with the target.
type Verification struct {
	SourceKeys int64 `json:"source_keys"`
	TargetKeys int64 `json:"target_keys"`
	// SourceHash and TargetHash are SHA-256 over each side's pairs sorted
	// by key (see docs/migrate.md for the exact encoding).
	SourceHash string `json:"source_hash"`
	TargetHash string `json:"target_hash"`
	Match      bool   `json:"match"`
	// Differences counts keys missing on one side or with different values;
	// FirstDifferences lists the first of them in key order.
	Differences      int64        `json:"differences"`
	FirstDifferences []Difference `json:"first_differences"`
	// Note states what the comparison cannot see.
	Note string `json:"note,omitempty"`
}

// Difference is one key that differs between source and target.
type Difference struct {
	Key []byte `json:"key"`
	// Kind is "missing in target", "only in target" or "value differs".
	Kind string `json:"kind"`
}

// Differences kinds.
const (
	DiffMissing = "missing in target"
	DiffExtra   = "only in target"
	DiffValue   = "value differs"
)

// liveSourceNote is the limitation every verification of a raftkv source
// states.
const liveSourceNote = "the raftkv source was read as a point-in-time cut for the copy and as another " +
	"for this check: keys written to or deleted from the source between the two cuts show up as " +
	"differences; expiry times are not compared (a TTL decays), keys expired by now are left out on " +
	"both sides (see docs/migrate.md)"

// verifyInto runs the comparison and stores it in sum.
func (m *Migration) verifyInto(ctx context.Context, sum *Summary) error {
	m.phase.Store("verify")
	v, err := m.verify(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	sum.Verification = v
	sum.Verified = v.Match
	return nil
}

// verify reads both sides again and compares them key by key.
func (m *Migration) verify(ctx context.Context) (*Verification, error) {
	cfg := m.cfg
	src, err := OpenSource(ctx, cfg.From, SourceOptions{Prefix: cfg.Prefix, Batch: cfg.Batch,
		RequestTimeout: cfg.RequestTimeout, Endpoints: cfg.Endpoints, Logger: m.log})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	tgt, err := OpenSource(ctx, cfg.To, SourceOptions{Prefix: cfg.targetPrefix(), Batch: cfg.Batch,
		RequestTimeout: cfg.RequestTimeout, Endpoints: cfg.Endpoints, Logger: m.log})
	if err != nil {
		return nil, err
	}
	defer tgt.Close()
	canExpire := targetCanExpire(cfg.To)
	now := time.Now()
	srcSide, err := newDigestStream(ctx, src, func(r *Record) bool {
		if r.Skip != "" || (!r.ExpireAt.IsZero() && !r.ExpireAt.After(now)) {
			return false
		}
		if !r.ExpireAt.IsZero() && !canExpire && m.cfg.TTL == TTLSkip {
			return false
		}
		r.Key = cfg.rename(r.Key)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	tgtSide, err := newDigestStream(ctx, tgt, func(r *Record) bool {
		return r.Skip == "" && (r.ExpireAt.IsZero() || r.ExpireAt.After(now))
	})
	if err != nil {
		return nil, fmt.Errorf("read target: %w", err)
	}
	v, err := compare(srcSide, tgtSide, cfg.ListLimit, func() { m.read.Add(1) })
	if err != nil {
		return nil, err
	}
	if _, live := src.(CutReporter); live {
		v.Note = liveSourceNote
	}
	return v, nil
}

// targetCanExpire tells from the URL alone whether the target keeps TTLs.
func targetCanExpire(rawURL string) bool {
	kind, _, err := splitScheme(rawURL)
	return err == nil && (kind == "file" || kind == "redis" || kind == "raftkv")
}

// digest is one pair as verification sees it: the key and the SHA-256 of
// the value.
type digest struct {
	key []byte
	sum [32]byte
}

// digestStream yields digests in ascending key order.
type digestStream interface {
	next() (digest, bool, error)
}

// newDigestStream streams a sorted source and sorts any other in memory
// (keys and value hashes only; the last record of a key wins, as when it
// is copied). keep filters and may rewrite each record.
func newDigestStream(ctx context.Context, src Source, keep func(*Record) bool) (digestStream, error) {
	if src.Sorted() {
		return &sortedStream{ctx: ctx, src: src, keep: keep}, nil
	}
	byKey := map[string][32]byte{}
	for {
		r, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if keep(&r) {
			byKey[string(r.Key)] = sha256.Sum256(r.Value)
		}
	}
	all := make([]digest, 0, len(byKey))
	for k, s := range byKey {
		all = append(all, digest{key: []byte(k), sum: s})
	}
	slices.SortFunc(all, func(a, b digest) int { return bytes.Compare(a.key, b.key) })
	return &sliceStream{all: all}, nil
}

type sortedStream struct {
	ctx  context.Context
	src  Source
	keep func(*Record) bool
	last []byte
	any  bool
}

func (s *sortedStream) next() (digest, bool, error) {
	for {
		r, err := s.src.Next(s.ctx)
		if errors.Is(err, io.EOF) {
			return digest{}, false, nil
		}
		if err != nil {
			return digest{}, false, err
		}
		if !s.keep(&r) {
			continue
		}
		if s.any && bytes.Compare(r.Key, s.last) <= 0 {
			return digest{}, false, fmt.Errorf("source returned key %s after %s: not in byte order", KeyString(r.Key), KeyString(s.last))
		}
		s.last, s.any = r.Key, true
		return digest{key: r.Key, sum: sha256.Sum256(r.Value)}, true, nil
	}
}

type sliceStream struct {
	all []digest
	i   int
}

func (s *sliceStream) next() (digest, bool, error) {
	if s.i >= len(s.all) {
		return digest{}, false, nil
	}
	s.i++
	return s.all[s.i-1], true, nil
}

// side accumulates one side's count and hash.
type side struct {
	h   hash.Hash
	n   int64
	buf [binary.MaxVarintLen64]byte
}

func newSide() *side { return &side{h: sha256.New()} }

// add hashes uvarint(len(key)) || key || sha256(value).
func (s *side) add(d digest) {
	s.n++
	s.h.Write(s.buf[:binary.PutUvarint(s.buf[:], uint64(len(d.key)))])
	s.h.Write(d.key)
	s.h.Write(d.sum[:])
}

func (s *side) sum() string { return hex.EncodeToString(s.h.Sum(nil)) }

// compare merges the two sorted streams.
func compare(src, tgt digestStream, limit int, tick func()) (*Verification, error) {
	v := &Verification{FirstDifferences: []Difference{}}
	ss, ts := newSide(), newSide()
	diff := func(key []byte, kind string) {
		v.Differences++
		if len(v.FirstDifferences) < limit {
			v.FirstDifferences = append(v.FirstDifferences, Difference{Key: key, Kind: kind})
		}
	}
	a, aok, err := src.next()
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	b, bok, err := tgt.next()
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	for aok || bok {
		tick()
		c := 0
		switch {
		case !aok:
			c = 1
		case !bok:
			c = -1
		default:
			c = bytes.Compare(a.key, b.key)
		}
		if c <= 0 {
			ss.add(a)
		}
		if c >= 0 {
			ts.add(b)
		}
		switch {
		case c < 0:
			diff(a.key, DiffMissing)
		case c > 0:
			diff(b.key, DiffExtra)
		case a.sum != b.sum:
			diff(a.key, DiffValue)
		}
		if c <= 0 {
			if a, aok, err = src.next(); err != nil {
				return nil, fmt.Errorf("source: %w", err)
			}
		}
		if c >= 0 {
			if b, bok, err = tgt.next(); err != nil {
				return nil, fmt.Errorf("target: %w", err)
			}
		}
	}
	v.SourceKeys, v.TargetKeys = ss.n, ts.n
	v.SourceHash, v.TargetHash = ss.sum(), ts.sum()
	v.Match = v.Differences == 0 && v.SourceHash == v.TargetHash
	return v, nil
}

// String renders a short, one-line verdict.
func (v *Verification) String() string {
	var b strings.Builder
	if v.Match {
		fmt.Fprintf(&b, "ok: %d keys on both sides, sha256 %s", v.SourceKeys, v.SourceHash[:16])
	} else {
		fmt.Fprintf(&b, "DIFFERENT: source %d keys (sha256 %s), target %d keys (sha256 %s), %d differences",
			v.SourceKeys, v.SourceHash[:16], v.TargetKeys, v.TargetHash[:16], v.Differences)
	}
	return b.String()
}
