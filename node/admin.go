package node

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/fsm/fsmpb"
	"github.com/raftkv/raftkv/transport"
)

// Status reports this node's view of itself and the cluster.
func (n *Node) Status(ctx context.Context) (*kvpb.StatusResponse, error) {
	leaderID, leaderAddr := n.leaderGRPC()
	st := n.fsm.Stats()
	lastSnap, _ := n.lastSnapshot()
	return &kvpb.StatusResponse{
		NodeId:            n.cfg.ID,
		GrpcAddr:          n.GRPCAddr(),
		RaftAddr:          n.RaftAddr(),
		RaftState:         n.raft.State().String(),
		LeaderId:          leaderID,
		LeaderGrpcAddr:    leaderAddr,
		Term:              n.raft.CurrentTerm(),
		CommitIndex:       n.raft.CommitIndex(),
		AppliedIndex:      st.AppliedIndex,
		LastLogIndex:      n.raft.LastIndex(),
		StoreSizeBytes:    st.SizeBytes,
		KeyCount:          st.KeyCount,
		Version:           Version,
		LastSnapshotIndex: lastSnap,
		Cache:             n.cacheStatus(ctx),
		LastContactMs:     n.lastContactMs(),
		GossipAddr:        n.GossipAddr(),
		Goroutines:        int64(runtime.NumGoroutine()),
	}, nil
}

func (n *Node) lastSnapshot() (uint64, error) {
	var idx uint64
	_, err := fmt.Sscan(n.raft.Stats()["last_snapshot_index"], &idx)
	return idx, err
}

// StateHash implements transport.Admin: a SHA-256 over this node's whole
// replicated state (fsm.FSM.Hash) with the applied index it reflects and
// the key count, read from one store transaction.
func (n *Node) StateHash(context.Context) (*kvpb.StateHashResponse, error) {
	sh, err := n.fsm.StateHash()
	if err != nil {
		return nil, fmt.Errorf("state hash: %w", err)
	}
	return &kvpb.StateHashResponse{NodeId: n.cfg.ID, AppliedIndex: sh.Index, Sha256: sh.Sum, KeyCount: sh.KeyCount}, nil
}

// RegisterMember implements transport.Internal: the leader records id's gRPC
// address through raft.
func (n *Node) RegisterMember(ctx context.Context, id, grpcAddr string) (uint64, error) {
	if n.raft.State() != raft.Leader {
		lid, addr := n.leaderGRPC()
		return 0, &transport.NotLeaderError{LeaderID: lid, LeaderAddr: addr}
	}
	res, err := n.apply(ctx, &fsmpb.Command{Op: &fsmpb.Command_SetMember{SetMember: &fsmpb.SetMember{Id: id, GrpcAddr: grpcAddr}}})
	if err != nil {
		return 0, err
	}
	return res.Index, nil
}

// runMembership keeps this node's gRPC address registered in the replicated
// state, so followers can forward to it when it leads and operators can list
// it. It re-checks on every leader change and periodically.
func (n *Node) runMembership() {
	defer n.wg.Done()
	obs, unwatch := n.watchLeader()
	defer unwatch()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		if err := n.ensureRegistered(); err != nil {
			n.logger.Debug("register gRPC address", "err", err)
		}
		select {
		case <-n.stop:
			return
		case <-obs:
		case <-tick.C:
		}
	}
}

func (n *Node) ensureRegistered() error {
	want := n.GRPCAddr()
	if n.fsm.Members()[n.cfg.ID] == want {
		return nil
	}
	lid, laddr := n.leaderGRPC()
	if lid == "" {
		return transport.ErrNoLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if lid == n.cfg.ID {
		_, err := n.RegisterMember(ctx, n.cfg.ID, want)
		return err
	}
	if laddr == "" {
		return fmt.Errorf("%w: leader %s address unknown", transport.ErrNoLeader, lid)
	}
	cli, err := n.peers.Internal(laddr)
	if err != nil {
		return err
	}
	_, err = cli.RegisterMember(transport.ForwardContext(ctx), &kvpb.RegisterMemberRequest{Id: n.cfg.ID, GrpcAddr: want})
	return err
}
