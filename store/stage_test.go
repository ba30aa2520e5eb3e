package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// openStaged opens a store whose Stage keeps its transaction open for
// delay.
func openStaged(t *testing.T, delay time.Duration) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), Options{NoSync: true, CommitDelay: delay})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stagePut stages kvs and the applied index idx.
func stagePut(s *Store, idx uint64, kvs ...KeyValue) error {
	return s.Stage(func(tx *WriteTx) error {
		for _, kv := range kvs {
			if err := tx.Put(kv); err != nil {
				return err
			}
		}
		tx.SetApplied(idx, 1)
		return nil
	})
}

func kv(key string, rev int64) KeyValue {
	return KeyValue{Key: []byte(key), Value: []byte(fmt.Sprint("v", rev)), CreateRevision: rev, ModRevision: rev, Version: 1}
}

// TestStagedWritesAreSeenByEveryRead: whatever reads the store after a
// Stage sees it, although nothing was committed when Stage returned.
func TestStagedWritesAreSeenByEveryRead(t *testing.T) {
	reads := []struct {
		name string
		read func(*Store) (int64, error) // returns the key count it saw
	}{
		{"View", func(s *Store) (n int64, err error) {
			err = s.View(func(tx *ReadTx) error { n, err = tx.KeyCount(); return err })
			return n, err
		}},
		{"BeginRead", func(s *Store) (int64, error) {
			tx, err := s.BeginRead()
			if err != nil {
				return 0, err
			}
			defer tx.Rollback()
			return tx.KeyCount()
		}},
		{"Stats", func(s *Store) (int64, error) { st, err := s.Stats(); return st.KeyCount, err }},
		{"Update", func(s *Store) (n int64, err error) {
			err = s.Update(func(tx *WriteTx) error { n, err = tx.KeyCount(); return err })
			return n, err
		}},
		{"Close and reopen", func(s *Store) (n int64, err error) {
			if err := s.Close(); err != nil {
				return 0, err
			}
			r, err := Open(s.Path(), Options{})
			if err != nil {
				return 0, err
			}
			defer r.Close()
			if idx, _ := r.Applied(); idx != 3 {
				return 0, fmt.Errorf("reopened store applied %d, want 3", idx)
			}
			st, err := r.Stats()
			return st.KeyCount, err
		}},
	}
	for _, tt := range reads {
		t.Run(tt.name, func(t *testing.T) {
			s := openStaged(t, time.Hour)
			for i := int64(1); i <= 3; i++ {
				if err := stagePut(s, uint64(i), kv(fmt.Sprint("k", i), i)); err != nil {
					t.Fatalf("Stage %d: %v", i, err)
				}
			}
			if !s.hasStaged.Load() {
				t.Fatal("nothing staged after three Stage calls with a one-hour delay")
			}
			if idx, _ := s.Applied(); idx != 3 {
				t.Errorf("Applied = %d, want the staged 3", idx)
			}
			n, err := tt.read(s)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if n != 3 {
				t.Errorf("read saw %d keys, want the 3 staged", n)
			}
		})
	}
}

// TestStageCommitsOnItsOwn: staged writes are committed CommitDelay after
// the first Stage even if nothing else touches the store; with no delay
// Stage commits at once, like Update.
func TestStageCommitsOnItsOwn(t *testing.T) {
	for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			s := openStaged(t, delay)
			if err := stagePut(s, 1, kv("a", 1)); err != nil {
				t.Fatalf("Stage: %v", err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for s.hasStaged.Load() {
				if time.Now().After(deadline) {
					t.Fatalf("still staged 10s after a Stage with CommitDelay %v", delay)
				}
				time.Sleep(time.Millisecond) // polling a condition, bounded by the deadline
			}
			if p := pagesWritten(s); p == 0 {
				t.Errorf("no page written after the commit")
			}
		})
	}
}

// TestStageWritesSharedPagesOnce is the point of staging: batches that
// dirty the same pages write them once per commit, not once per batch.
func TestStageWritesSharedPagesOnce(t *testing.T) {
	const batches, keys = 20, 50
	pageWrites := func(s *Store, write func(func(*WriteTx) error) error) int64 {
		t.Helper()
		before := pagesWritten(s)
		for b := 1; b <= batches; b++ {
			err := write(func(tx *WriteTx) error {
				for k := range keys {
					if err := tx.Put(kv(fmt.Sprintf("key%03d", k), int64(b))); err != nil {
						return err
					}
				}
				tx.SetApplied(uint64(b), 1)
				return nil
			})
			if err != nil {
				t.Fatalf("batch %d: %v", b, err)
			}
		}
		if err := s.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		return pagesWritten(s) - before
	}
	each := openStaged(t, 0)
	staged := openStaged(t, time.Hour)
	perBatch := pageWrites(each, each.Update)
	shared := pageWrites(staged, staged.Stage)
	t.Logf("page writes for %d batches: %d committing each, %d staged", batches, perBatch, shared)
	if shared*5 > perBatch {
		t.Errorf("staged batches wrote %d pages, committing each %d: want at least 5x fewer", shared, perBatch)
	}
}

// TestStageFailure: a failed Stage keeps nothing of its own; if earlier
// Stages shared its transaction they are lost too, and the store says so
// from then on instead of serving a state older than Applied.
func TestStageFailure(t *testing.T) {
	errFn := errors.New("fn failed")
	fail := func(s *Store) error { return s.Stage(func(*WriteTx) error { return errFn }) }
	panics := func(s *Store) (err error) {
		defer func() {
			if recover() == nil {
				err = errors.New("Stage did not pass fn's panic on")
			}
		}()
		return s.Stage(func(tx *WriteTx) error {
			_ = tx.Put(kv("p", 9))
			panic("fn panicked")
		})
	}
	tests := []struct {
		name        string
		stageBefore bool
		do          func(*Store) error
		wantErr     error // from do; nil for a panic
		wantLost    bool
	}{
		{"error, nothing staged before", false, fail, errFn, false},
		{"error after a staged write", true, fail, ErrStagedLost, true},
		{"panic, nothing staged before", false, panics, nil, false},
		{"panic after a staged write", true, panics, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStaged(t, time.Hour)
			if tt.stageBefore {
				if err := stagePut(s, 1, kv("a", 1)); err != nil {
					t.Fatalf("Stage: %v", err)
				}
			}
			if err := tt.do(s); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("failing Stage returned %v, want %v", err, tt.wantErr)
			}
			var n int64
			err := s.View(func(tx *ReadTx) (err error) { n, err = tx.KeyCount(); return err })
			if tt.wantLost {
				if !errors.Is(err, ErrStagedLost) {
					t.Fatalf("View after losing staged writes: %v, want ErrStagedLost", err)
				}
				if err := stagePut(s, 2, kv("b", 2)); !errors.Is(err, ErrStagedLost) {
					t.Errorf("Stage after losing staged writes: %v, want ErrStagedLost", err)
				}
				return
			}
			if err != nil || n != 0 {
				t.Fatalf("View after a failed first Stage: %d keys, %v; want 0 keys, nil", n, err)
			}
			if err := stagePut(s, 2, kv("b", 2)); err != nil {
				t.Fatalf("Stage after a failed first Stage: %v", err)
			}
		})
	}
}

// pagesWritten is how many pages s has written since it was opened.
func pagesWritten(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}

// TestReadsNeverMissAStage races readers against Stage and the delay's own
// commits, as the FSM uses them: a batch's index is published once Stage
// returns, and a read that starts after that must see the batch, even while
// the timer is committing it.
func TestReadsNeverMissAStage(t *testing.T) {
	s := openStaged(t, time.Millisecond)
	const batches = 3000
	var published atomic.Uint64
	errs := make(chan error, 4)
	done := make(chan struct{})
	for range 3 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				want := published.Load()
				var got uint64
				err := s.View(func(tx *ReadTx) (err error) { got, _, err = tx.Applied(); return err })
				if err == nil && got < want {
					err = fmt.Errorf("a read that began after batch %d was published saw applied index %d", want, got)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := uint64(1); i <= batches; i++ {
		if err := stagePut(s, i, kv(fmt.Sprintf("k%d", i%100), int64(i))); err != nil {
			t.Fatalf("Stage %d: %v", i, err)
		}
		published.Store(i)
	}
	close(done)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
