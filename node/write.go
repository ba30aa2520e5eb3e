package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
	"github.com/raftkv/raftkv/transport"
)

// Put writes one key. On a follower it forwards once to the leader.
func (n *Node) Put(ctx context.Context, req *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	cmd := &fsmpb.Command{Op: &fsmpb.Command_Put{Put: putToFSM(req)}}
	res, err := n.propose(ctx, cmd, func(kv kvpb.KVClient) (any, error) {
		return kv.Put(transport.ForwardContext(ctx), req)
	})
	if err != nil {
		return nil, err
	}
	if fwd, ok := res.(*kvpb.PutResponse); ok {
		return fwd, nil
	}
	r := res.(*fsm.Result)
	return &kvpb.PutResponse{Header: n.header(r.Index), PrevKv: putPrevKV(r.Put)}, nil
}

// Delete deletes a key, a prefix or a range. On a follower it forwards once
// to the leader.
func (n *Node) Delete(ctx context.Context, req *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error) {
	cmd := &fsmpb.Command{Op: &fsmpb.Command_DeleteRange{DeleteRange: deleteToFSM(req)}}
	res, err := n.propose(ctx, cmd, func(kv kvpb.KVClient) (any, error) {
		return kv.Delete(transport.ForwardContext(ctx), req)
	})
	if err != nil {
		return nil, err
	}
	if fwd, ok := res.(*kvpb.DeleteResponse); ok {
		return fwd, nil
	}
	r := res.(*fsm.Result)
	return deleteResultToAPI(n.header(r.Index), r.Delete), nil
}

// Txn applies a transaction. On a follower it forwards once to the leader.
func (n *Node) Txn(ctx context.Context, req *kvpb.TxnRequest) (*kvpb.TxnResponse, error) {
	cmd := &fsmpb.Command{Op: &fsmpb.Command_Txn{Txn: txnToFSM(req)}}
	res, err := n.propose(ctx, cmd, func(kv kvpb.KVClient) (any, error) {
		return kv.Txn(transport.ForwardContext(ctx), req)
	})
	if err != nil {
		return nil, err
	}
	if fwd, ok := res.(*kvpb.TxnResponse); ok {
		return fwd, nil
	}
	r := res.(*fsm.Result)
	return txnResultToAPI(n.header(r.Index), r.Txn), nil
}

// propose is the write path: apply cmd through raft on the leader, or, on a
// follower, forward the original request once via forward. It returns either
// the FSM's *fsm.Result or the leader's response.
func (n *Node) propose(ctx context.Context, cmd *fsmpb.Command, forward func(kvpb.KVClient) (any, error)) (any, error) {
	if n.raft.State() == raft.Leader {
		res, err := n.applyWrite(ctx, cmd)
		if !errors.Is(err, raft.ErrNotLeader) {
			return res, err
		}
		// Lost leadership before proposing: nothing was appended, so
		// forwarding is safe.
	}
	addr, err := n.leaderForward(ctx)
	if err != nil {
		return nil, err
	}
	kv, err := n.peers.KV(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", transport.ErrNoLeader, err)
	}
	resp, err := forward(kv)
	if err != nil {
		return nil, transport.ClassifyForwardError(err, true)
	}
	return resp, nil
}

// apply proposes cmd to raft and waits for the FSM's result. It folds
// raft's two error channels: raft-level failures from future.Error() and
// deterministic apply failures from fsm.Result.Err.
func (n *Node) apply(ctx context.Context, cmd *fsmpb.Command) (*fsm.Result, error) {
	b, err := fsm.EncodeCommand(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: encode command: %w", transport.ErrInvalidArgument, err)
	}
	start := time.Now()
	f := n.raft.Apply(b, timeoutFrom(ctx, n.cfg.RequestTimeout))
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
			errors.Is(err, raft.ErrLeadershipTransferInProgress):
			// Never appended: safe to retry.
			return nil, fmt.Errorf("apply: %w", err)
		default:
			// ErrLeadershipLost, ErrRaftShutdown, ...: the entry may
			// still commit.
			return nil, fmt.Errorf("apply: %w: %w", transport.ErrOutcomeUnknown, err)
		}
	}
	observeSince(n.metrics.commit, start)
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		return nil, fmt.Errorf("apply: unexpected fsm response %T", f.Response())
	}
	if res.Err != nil {
		// A deterministic apply failure: the request was bad, and every
		// node rejected it the same way.
		return nil, fmt.Errorf("%w: %w", transport.ErrInvalidArgument, res.Err)
	}
	return res, nil
}

// leaderForward returns the leader's gRPC address for forwarding, or the
// error to return when the request must not or cannot be forwarded.
func (n *Node) leaderForward(ctx context.Context) (string, error) {
	id, addr := n.leaderGRPC()
	if transport.IsForwarded(ctx) {
		return "", &transport.NotLeaderError{LeaderID: id, LeaderAddr: addr}
	}
	if id == "" {
		return "", fmt.Errorf("%w: no leader elected", transport.ErrNoLeader)
	}
	if addr == "" {
		return "", fmt.Errorf("%w: leader %s has not registered its address yet", transport.ErrNoLeader, id)
	}
	if id == n.cfg.ID {
		return "", fmt.Errorf("%w: leadership is changing", transport.ErrNoLeader)
	}
	return n.grpcPeerAddr(id, addr), nil
}

// leaderGRPC returns the current leader's id and gRPC address, either empty
// when unknown.
func (n *Node) leaderGRPC() (id, addr string) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	return string(lid), n.fsm.Members()[string(lid)]
}

func (n *Node) header(rev uint64) *kvpb.ResponseHeader {
	return &kvpb.ResponseHeader{Revision: int64(rev), NodeId: n.cfg.ID, RaftTerm: n.raft.CurrentTerm()}
}

// timeoutFrom returns the time left before ctx's deadline, or def.
func timeoutFrom(ctx context.Context, def time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return def
}
