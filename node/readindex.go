package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/transport"
)

// readIndexBatcher shares one read index computation among all the
// linearizable reads that arrive while the previous one is in flight
// (ReadIndex batching, as in etcd's linearizable read loop). The leader
// batches its leadership confirmations, a follower its ReadIndex calls to
// the leader; without it every read sends its own.
//
// A round serves the reads that joined it before it started: the round's
// computation (the commit index, then a quorum confirmation) begins only
// after it has taken them, so for every read in the round the index covers
// each write acknowledged before the read arrived, and the confirmation
// happened after it arrived. A read arriving while a round runs waits for
// the next one.
type readIndexBatcher struct {
	mu      sync.Mutex
	next    *readRound // collecting reads; nil when none wait
	running bool       // a goroutine is running rounds
}

// readRound is one shared read index computation.
type readRound struct {
	done      chan struct{}
	idx, term uint64
	err       error

	// waiters counts the reads still waiting (under the batcher's mu);
	// when the last one gives up, cancel ends the round's computation.
	waiters int
	cancel  context.CancelFunc
}

// computeFunc computes a read index within ctx.
type computeFunc func(ctx context.Context) (idx, term uint64, err error)

// do joins the next round, starting a goroutine to run rounds with compute
// if none runs, and returns the round's result or ctx's error. A round's
// computation gets timeout, and ends early when every read in it gave up.
func (b *readIndexBatcher) do(ctx context.Context, timeout time.Duration, compute computeFunc) (uint64, uint64, error) {
	b.mu.Lock()
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	r.waiters++
	if !b.running {
		b.running = true
		go b.run(timeout, compute)
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.idx, r.term, r.err
	case <-ctx.Done():
		b.mu.Lock()
		r.waiters--
		if r.waiters == 0 && r.cancel != nil {
			r.cancel()
		}
		b.mu.Unlock()
		return 0, 0, fmt.Errorf("read index: %w", ctx.Err())
	}
}

// run runs rounds until no read waits.
func (b *readIndexBatcher) run(timeout time.Duration, compute computeFunc) {
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		r.cancel = cancel
		if r.waiters == 0 {
			cancel()
		}
		b.mu.Unlock()
		r.idx, r.term, r.err = compute(ctx)
		cancel()
		close(r.done)
	}
}

// ReadIndex implements transport.Internal on the leader. The returned index
// is at least the index of every write acknowledged before the call:
//
//  1. once per term, a barrier is applied, so the commit index covers every
//     entry of earlier terms (a new leader's commit index may lag);
//  2. the commit index is recorded;
//  3. VerifyLeader confirms with a quorum that this node still leads, and
//     the term is checked unchanged, so no newer leader could have
//     acknowledged writes this node has not seen.
//
// Concurrent calls share steps 2 and 3 (readIndexBatcher).
func (n *Node) ReadIndex(ctx context.Context) (uint64, uint64, error) {
	if n.raft.State() != raft.Leader {
		id, addr := n.leaderGRPC()
		return 0, 0, &transport.NotLeaderError{LeaderID: id, LeaderAddr: addr}
	}
	return n.readIndex.do(ctx, n.cfg.RequestTimeout, n.confirmReadIndex)
}

// confirmReadIndex is steps 1-3 of ReadIndex for one round.
func (n *Node) confirmReadIndex(ctx context.Context) (uint64, uint64, error) {
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() != term {
		if err := n.raft.Barrier(timeoutFrom(ctx, n.cfg.RequestTimeout)).Error(); err != nil {
			return 0, 0, fmt.Errorf("read index barrier: %w", readErr(err))
		}
		n.readyTerm.Store(term)
	}
	idx := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, 0, fmt.Errorf("read index verify leader: %w", readErr(err))
	}
	if n.raft.CurrentTerm() != term {
		return 0, 0, fmt.Errorf("%w: term changed during read index", transport.ErrNoLeader)
	}
	return idx, term, nil
}
