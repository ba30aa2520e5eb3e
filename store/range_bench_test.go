package store

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkRangePaging pages through 100k keys, 1000 per Range call, the
// way the raftkv migrate source and `raftkvctl scan` page. "count_rest"
// counts the rest of the range on every page (the behaviour before
// RangeOptions.CountRest existed: O(n²/page) over the whole walk);
// "stop_at_limit" stops at the first key past the page (O(n)). One
// iteration is a full walk.
func BenchmarkRangePaging(b *testing.B) {
	const n, page = 100_000, 1000
	s, err := Open(filepath.Join(b.TempDir(), "store.db"), Options{NoSync: true})
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	val := make([]byte, 64)
	for i := 0; i < n; i += 10_000 {
		err := s.Update(func(tx *WriteTx) error {
			for j := i; j < i+10_000; j++ {
				if err := tx.Put(KeyValue{Key: []byte(fmt.Sprintf("key/%08d", j)), Value: val, CreateRevision: 1, ModRevision: 1, Version: 1}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("load: %v", err)
		}
	}
	for _, mode := range []struct {
		name      string
		countRest bool
	}{{"count_rest", true}, {"stop_at_limit", false}} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				start, seen := []byte("key/"), 0
				for {
					var res RangeResult
					err := s.View(func(tx *ReadTx) (err error) {
						res, err = tx.Range(start, []byte("key0"), RangeOptions{Limit: page, CountRest: mode.countRest})
						return err
					})
					if err != nil {
						b.Fatalf("Range: %v", err)
					}
					seen += len(res.KVs)
					if !res.More {
						break
					}
					start = append(res.KVs[len(res.KVs)-1].Key, 0)
				}
				if seen != n {
					b.Fatalf("paged %d keys, want %d", seen, n)
				}
			}
		})
	}
}
