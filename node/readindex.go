package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/transport"
)

// readIndexBatcher shares one leadership confirmation among all the
// linearizable reads that arrive while the previous one is in flight
// (ReadIndex batching, as in etcd's linearizable read loop). Without it
// every read sends its own VerifyLeader through raft's leader loop.
//
// A round serves the reads that joined it before it started: it records
// the commit index only after taking them, and confirms leadership with a
// quorum after that, so for every read in the round the index covers each
// write acknowledged before the read arrived, and the confirmation happened
// after it arrived. A read arriving while a round runs waits for the next.
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
	b := &n.readIndex
	b.mu.Lock()
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		go n.runReadRounds()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.idx, r.term, r.err
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("read index: %w", ctx.Err())
	}
}

// runReadRounds runs rounds until no read waits.
func (n *Node) runReadRounds() {
	b := &n.readIndex
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.idx, r.term, r.err = n.confirmReadIndex()
		close(r.done)
	}
}

// confirmReadIndex is steps 1-3 of ReadIndex for one round.
func (n *Node) confirmReadIndex() (uint64, uint64, error) {
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() != term {
		if err := n.raft.Barrier(n.cfg.RequestTimeout).Error(); err != nil {
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
