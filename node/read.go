package node

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/transport"
)

// Get reads one key at the requested consistency, from the read cache when
// it may (readKey) unless the request says no_cache.
func (n *Node) Get(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	if err := n.readBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	applied := n.fsm.AppliedIndex()
	serializable := req.GetConsistency() == kvpb.Consistency_CONSISTENCY_SERIALIZABLE
	kv, found, err := n.readKey(ctx, req.GetKey(), serializable, req.GetNoCache(), applied)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	resp := &kvpb.GetResponse{Header: n.header(applied), Found: found}
	if found {
		resp.Kv = kvToAPI(kv)
	}
	return resp, nil
}

// Range reads a key range at the requested consistency. A single-key range
// may be served by the read cache, as Get is; wider ranges read the store.
func (n *Node) Range(ctx context.Context, req *kvpb.RangeRequest) (*kvpb.RangeResponse, error) {
	if err := n.readBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	applied := n.fsm.AppliedIndex()
	if n.cache != nil && !req.GetNoCache() && singleKeyRange(req) {
		serializable := req.GetConsistency() == kvpb.Consistency_CONSISTENCY_SERIALIZABLE
		kv, found, err := n.readKey(ctx, req.GetKey(), serializable, false, applied)
		if err != nil {
			return nil, fmt.Errorf("range: %w", err)
		}
		return rangeResultToAPI(n.header(applied), rangeOfOne(req, kv, found)), nil
	}
	res, err := n.fsm.Range(rangeToFSM(req))
	if err != nil {
		return nil, fmt.Errorf("range: %w", err)
	}
	return rangeResultToAPI(n.header(applied), res), nil
}

// readBarrier returns once a read at consistency c may be served from local
// state. Serializable reads never wait. Linearizable reads follow the
// ReadIndex protocol: obtain a read index from the leader (after it confirmed
// its leadership with a quorum) and wait until the local FSM reaches it.
func (n *Node) readBarrier(ctx context.Context, c kvpb.Consistency) error {
	if c == kvpb.Consistency_CONSISTENCY_SERIALIZABLE {
		return nil
	}
	var idx uint64
	var err error
	if n.raft.State() == raft.Leader {
		idx, _, err = n.ReadIndex(ctx)
	} else {
		idx, err = n.remoteReadIndex(ctx)
	}
	if err != nil {
		return err
	}
	return n.waitApplied(ctx, idx)
}

// remoteReadIndex asks the leader for a read index. Concurrent reads on
// this follower share one call (readIndexBatcher).
func (n *Node) remoteReadIndex(ctx context.Context) (uint64, error) {
	if _, err := n.leaderForward(ctx); err != nil {
		return 0, err
	}
	idx, _, err := n.remoteRead.do(ctx, n.cfg.RequestTimeout, n.askLeaderReadIndex)
	return idx, err
}

// askLeaderReadIndex is one ReadIndex call to the leader.
func (n *Node) askLeaderReadIndex(ctx context.Context) (uint64, uint64, error) {
	addr, err := n.leaderForward(ctx)
	if err != nil {
		return 0, 0, err
	}
	cli, err := n.peers.Internal(addr)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", transport.ErrNoLeader, err)
	}
	resp, err := cli.ReadIndex(transport.ForwardContext(ctx), &kvpb.ReadIndexRequest{})
	if err != nil {
		return 0, 0, transport.ClassifyForwardError(err, false)
	}
	return resp.GetIndex(), resp.GetTerm(), nil
}

// readErr maps raft failures of the read path: nothing was written, so every
// one of them is retryable.
func readErr(err error) error {
	if err == raft.ErrNotLeader || err == raft.ErrLeadershipLost || err == raft.ErrRaftShutdown {
		return fmt.Errorf("%w: %w", transport.ErrNoLeader, err)
	}
	return err
}

// waitApplied returns once every entry up to idx that affects the FSM has
// been applied locally. raft hands only command and configuration entries to
// the FSM, so when the tail of the log is a no-op or barrier entry the FSM's
// own applied index stops short of idx; then raft's applied index and the
// entry types in the gap decide.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	wait := 500 * time.Microsecond
	for {
		applied := n.fsm.AppliedIndex()
		if applied >= idx {
			return nil
		}
		if n.raft.AppliedIndex() >= idx && n.onlyNonFSMEntries(applied+1, idx) {
			return nil
		}
		// Wake on the next apply, or re-check raft's index after a short
		// wait: raft dispatching a no-op tail wakes no FSM waiter.
		wctx, cancel := context.WithTimeout(ctx, wait)
		err := n.fsm.WaitApplied(wctx, applied+1)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("wait for applied index %d (at %d): %w", idx, applied, ctx.Err())
		}
		_ = err // a timeout of wctx just means: check again
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}

// onlyNonFSMEntries reports whether every log entry in [from, to] is of a
// type raft does not hand to the FSM (no-op, barrier). Missing entries count
// as FSM entries, so the caller keeps waiting.
//
// The answer for a gap is memoized: the entries are committed (to is a read
// index, at most the commit index), so they never change. Without the memo
// every linearizable read on a leader whose log ends in its term's barrier
// would read and decode that entry from raft.db, which was 65% of the
// leader's CPU in a read-only benchmark (docs/bench.md).
func (n *Node) onlyNonFSMEntries(from, to uint64) bool {
	if g := n.nonFSMGap.Load(); g != nil && g.from == from && to <= g.to {
		return true
	}
	if to-from > 64 {
		return false
	}
	var l raft.Log
	for i := from; i <= to; i++ {
		if err := n.logStore.GetLog(i, &l); err != nil {
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	n.nonFSMGap.Store(&logGap{from: from, to: to})
	return true
}

// logGap is a run [from, to] of committed log entries that hold nothing
// for the FSM.
type logGap struct{ from, to uint64 }
