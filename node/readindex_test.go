package node

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadIndexBatcherSharesRounds: reads that arrive while a round runs
// share the next round, and never the one already running (its commit
// index may predate them).
func TestReadIndexBatcherSharesRounds(t *testing.T) {
	var b readIndexBatcher
	var rounds atomic.Uint64
	started := make(chan uint64, 10)
	release := make(chan struct{})
	compute := func(ctx context.Context) (uint64, uint64, error) {
		n := rounds.Add(1)
		started <- n
		<-release
		return n, 1, nil
	}
	ctx := context.Background()
	first := make(chan uint64, 1)
	go func() {
		idx, _, _ := b.do(ctx, time.Minute, compute)
		first <- idx
	}()
	if n := <-started; n != 1 {
		t.Fatalf("first round is %d", n)
	}
	// Round 1 runs; these join round 2.
	const late = 8
	var wg sync.WaitGroup
	got := make([]uint64, late)
	joined := make(chan struct{}, late)
	for i := range late {
		wg.Add(1)
		go func() {
			defer wg.Done()
			joined <- struct{}{}
			got[i], _, _ = b.do(ctx, time.Minute, compute)
		}()
	}
	for range late {
		<-joined
	}
	// joined fires just before do: wait until all have registered, so
	// round 2 (which starts when round 1 is released) takes them all.
	waitFor(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.next != nil && b.next.waiters == late
	})
	close(release)
	if idx := <-first; idx != 1 {
		t.Fatalf("first read got round %d, want 1", idx)
	}
	wg.Wait()
	for i, idx := range got {
		if idx != 2 {
			t.Fatalf("late read %d got round %d, want 2 (shared, started after it joined)", i, idx)
		}
	}
	if n := rounds.Load(); n != 2 {
		t.Fatalf("%d rounds for %d reads, want 2", n, late+1)
	}
}

// TestReadIndexBatcherAbandonedRoundIsCanceled: when every read of a round
// gives up, the round's computation is canceled instead of running on.
func TestReadIndexBatcherAbandonedRoundIsCanceled(t *testing.T) {
	var b readIndexBatcher
	canceled := make(chan error, 1)
	compute := func(ctx context.Context) (uint64, uint64, error) {
		<-ctx.Done()
		canceled <- ctx.Err()
		return 0, 0, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := b.do(ctx, time.Hour, compute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("do: got %v, want deadline exceeded", err)
	}
	select {
	case err := <-canceled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("round ctx ended with %v, want canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("abandoned round still running after 10s")
	}
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
