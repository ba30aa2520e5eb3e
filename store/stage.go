package store

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Staged writes.
//
// A bbolt commit writes every page the transaction dirtied. Random keys
// dirty one leaf page each, so small transactions in quick succession
// rewrite the same pages again and again: in a put-heavy run, committing
// the store was the largest single cost of a follower (docs/write-path.md).
// Stage lets a caller that commits without fsync anyway (the FSM, whose
// durable record is the raft log) stage writes in one transaction that
// stays open for up to Options.CommitDelay, so a page dirtied by several
// batches in that window is written once.
//
// Nothing ever reads the staged transaction: every other use of the store
// (View, BeginRead, Stats, Update, Sync, Close) first commits it. A reader
// therefore always sees every staged write, exactly as if each Stage had
// been an Update, and pays for the commit when it is the first after a
// burst of writes.

// ErrStagedLost means writes staged by earlier Stage calls were rolled back
// and never reached the file: a later Stage failed (bbolt has no savepoints,
// so one failed write takes the whole staged transaction with it) or the
// commit of the staged transaction failed. The store refuses every further
// operation with it, since memory (Applied, and the caller's own state)
// describes writes the file does not hold.
var ErrStagedLost = errors.New("store: staged writes lost")

// Stage runs fn in the store's staged write transaction and returns without
// committing it; the transaction commits Options.CommitDelay after its first
// Stage, or earlier when anything else uses the store. With a CommitDelay of
// zero Stage is Update.
//
// If fn returns an error or panics and the transaction holds no earlier
// Stage, nothing fn did is kept and fn's error is returned unchanged, as
// with Update. If it holds earlier ones, they are rolled back too: Stage
// returns an error wrapping ErrStagedLost and so does every later operation.
// The WriteTx is valid only inside fn. Stage and Update calls are
// serialized.
func (s *Store) Stage(fn func(*WriteTx) error) (err error) {
	if s.commitDelay <= 0 {
		return s.Update(fn)
	}
	if s.closed.Load() {
		return ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed.Load() {
		return ErrClosed // Close won the lock
	}
	if err := s.lost(); err != nil {
		return err
	}
	began := s.staged == nil
	if began {
		tx, err := s.db.Begin(true)
		if err != nil {
			if errors.Is(err, berrors.ErrDatabaseNotOpen) {
				return ErrClosed
			}
			return fmt.Errorf("store: begin staged write: %w", err)
		}
		s.staged = tx
		s.hasStaged.Store(true)
		s.stageTimer = time.AfterFunc(s.commitDelay, s.commitStagedAfterDelay)
	}
	done := false
	defer func() {
		if done {
			return
		}
		// fn failed or panicked: its writes are in the transaction and
		// cannot be taken out alone. Poison first, then drop: a reader
		// that finds nothing staged must also find the poison.
		if !began {
			cause := "panicked"
			if err != nil {
				cause = err.Error()
			}
			lostErr := fmt.Errorf("%w: a later staged write failed: %s", ErrStagedLost, cause)
			s.failed.Store(&lostErr)
			if err != nil {
				err = lostErr // a panic goes on as a panic
			}
		}
		s.dropStagedLocked()
	}()
	r, err := newReader(s.staged)
	if err != nil {
		return err
	}
	w := &WriteTx{reader: r}
	if err = fn(w); err != nil {
		return err
	}
	if err = w.flush(); err != nil {
		return err
	}
	done = true
	if w.appliedSet {
		s.state.Store(&committed{index: w.index, term: w.term})
	}
	return nil
}

// commitStaged commits the staged transaction, if any, so that what comes
// next sees it. It returns the store's ErrStagedLost error, if any.
func (s *Store) commitStaged() error {
	if !s.hasStaged.Load() {
		return s.lost()
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.commitStagedLocked()
}

// commitStagedLocked is commitStaged with s.writeMu held.
func (s *Store) commitStagedLocked() error {
	if s.staged == nil {
		return s.lost()
	}
	// Only a finished commit may clear hasStaged: a reader that finds it
	// false reads without taking writeMu, and must then find every staged
	// write committed, not a commit still in progress.
	// On failure the poison goes first, for the same reason.
	if err := s.staged.Commit(); err != nil {
		lostErr := fmt.Errorf("%w: commit: %w", ErrStagedLost, err)
		s.failed.Store(&lostErr)
		s.clearStagedLocked()
		return lostErr
	}
	s.clearStagedLocked()
	return nil
}

// commitStagedAfterDelay is the CommitDelay timer. A failure is kept for
// the next operation to return.
func (s *Store) commitStagedAfterDelay() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.commitStagedLocked()
}

// dropStagedLocked rolls the staged transaction back. s.writeMu is held.
func (s *Store) dropStagedLocked() {
	if tx := s.staged; tx != nil {
		s.clearStagedLocked()
		_ = tx.Rollback()
	}
}

// clearStagedLocked forgets the staged transaction and its timer.
func (s *Store) clearStagedLocked() {
	s.staged = nil
	s.hasStaged.Store(false)
	if s.stageTimer != nil {
		s.stageTimer.Stop()
		s.stageTimer = nil
	}
}

// lost returns the error that poisoned the store, or nil.
func (s *Store) lost() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// stagedTx is what Store keeps for Stage; embedded so store.go stays about
// the file itself.
type stagedTx struct {
	staged *bolt.Tx // guarded by Store.writeMu
	// hasStaged is true from the first Stage of a transaction until its
	// commit has returned. A reader that finds it false may read without
	// taking writeMu: everything staged before it looked is committed.
	hasStaged  atomic.Bool
	stageTimer *time.Timer // guarded by Store.writeMu
	failed     atomic.Pointer[error]
}
