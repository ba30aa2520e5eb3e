package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/cluster"
	"github.com/raftkv/raftkv/transport"
)

// leaveTimeout bounds the graceful part of a shutdown: leadership transfer,
// leaving gossip and asking the leader to remove this node.
const leaveTimeout = 15 * time.Second

// newCluster builds the node's membership (package cluster) once the gRPC
// server is up, so peers can already ask this node for its stats, and
// starts gossip, the reconciler and, for --bootstrap-expect, the wait for
// the expected servers.
func (n *Node) newCluster(hasState bool) error {
	meta := cluster.Meta{
		ID:       n.cfg.ID,
		GRPCAddr: n.GRPCAddr(),
		RaftAddr: n.RaftAddr(),
		Version:  Version,
		Expect:   n.cfg.Cluster.BootstrapExpect,
		Boot:     cluster.NewBootID(),
		// A node that starts without raft state and does not bootstrap one
		// itself may be a voter that lost its log and its votes; the
		// leader demotes such a voter until it has caught up again.
		Fresh: !hasState && !n.cfg.Bootstrap,
	}
	c, err := cluster.New(n.cfg.Cluster, meta, cluster.Deps{
		Raft:     n.raft,
		LeaderCh: n.leaderCh,
		Stats:    clusterStats{n},
		Logger:   n.logger,
	})
	if err != nil {
		return err
	}
	n.cluster = c
	c.Start()
	if !hasState && n.cfg.Cluster.BootstrapExpect > 0 {
		// Ends when this node has raft state or the cluster closes.
		c.StartBootstrap()
	}
	return nil
}

// clusterStats implements cluster.StatsFetcher over the Admin.Status RPC.
type clusterStats struct{ n *Node }

func (s clusterStats) FetchStats(ctx context.Context, id, grpcAddr string) (cluster.ServerStats, error) {
	n := s.n
	if id == n.cfg.ID {
		return cluster.ServerStats{
			RaftState:    n.raft.State().String(),
			Term:         n.raft.CurrentTerm(),
			LastIndex:    n.raft.LastIndex(),
			CommitIndex:  n.raft.CommitIndex(),
			AppliedIndex: n.fsm.AppliedIndex(),
			LastContact:  n.lastContact(),
		}, nil
	}
	if grpcAddr == "" {
		grpcAddr = n.fsm.Members()[id]
	}
	if grpcAddr == "" {
		return cluster.ServerStats{}, fmt.Errorf("gRPC address of %s unknown", id)
	}
	cli, err := n.peers.Admin(grpcAddr)
	if err != nil {
		return cluster.ServerStats{}, err
	}
	st, err := cli.Status(ctx, &kvpb.StatusRequest{})
	if err != nil {
		return cluster.ServerStats{}, fmt.Errorf("status of %s at %s: %w", id, grpcAddr, err)
	}
	if st.GetNodeId() != id {
		return cluster.ServerStats{}, fmt.Errorf("%s answers as %q, not %s", grpcAddr, st.GetNodeId(), id)
	}
	lc := time.Duration(st.GetLastContactMs()) * time.Millisecond
	if st.GetLastContactMs() < 0 {
		lc = -1
	}
	return cluster.ServerStats{
		RaftState:    st.GetRaftState(),
		Term:         st.GetTerm(),
		LastIndex:    st.GetLastLogIndex(),
		CommitIndex:  st.GetCommitIndex(),
		AppliedIndex: st.GetAppliedIndex(),
		LastContact:  lc,
	}, nil
}

// lastContact is how long ago this node last heard from a leader: 0 on the
// leader, negative when never.
func (n *Node) lastContact() time.Duration {
	if n.raft.State() == raft.Leader {
		return 0
	}
	t := n.raft.LastContact()
	if t.IsZero() {
		return -1
	}
	return time.Since(t)
}

func (n *Node) lastContactMs() int64 {
	d := n.lastContact()
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// GossipAddr returns the node's advertised gossip address, "" with gossip
// off.
func (n *Node) GossipAddr() string {
	// Status may be served before the cluster component exists (the gRPC
	// server starts early in New).
	if n.cluster == nil {
		return ""
	}
	return n.cluster.GossipAddr()
}

// MemberList lists the servers of the raft configuration, and the live
// servers gossip knows that are not in it, each with its gossip status and
// its own report of its raft state.
func (n *Node) MemberList(ctx context.Context) (*kvpb.MemberListResponse, error) {
	infos, err := n.cluster.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	addrs := n.fsm.Members()
	resp := &kvpb.MemberListResponse{Header: n.header(n.fsm.AppliedIndex())}
	for _, mi := range infos {
		m := &kvpb.Member{
			Id:              mi.ID,
			RaftAddr:        mi.RaftAddr,
			GrpcAddr:        mi.GRPCAddr,
			Suffrage:        mi.Suffrage,
			IsLeader:        mi.IsLeader,
			GossipAddr:      mi.GossipAddr,
			GossipStatus:    mi.Gossip.String(),
			RaftState:       mi.Stats.RaftState,
			LastContactMs:   -1,
			AppliedIndex:    mi.Stats.AppliedIndex,
			AppliedLag:      mi.AppliedLag,
			Healthy:         mi.Healthy,
			UnhealthyReason: mi.Unhealthy,
			Version:         mi.Version,
		}
		if m.GrpcAddr == "" {
			m.GrpcAddr = addrs[mi.ID]
		}
		if mi.StatsErr != nil {
			m.Error = mi.StatsErr.Error()
		} else if mi.Stats.LastContact >= 0 {
			m.LastContactMs = mi.Stats.LastContact.Milliseconds()
		}
		resp.Members = append(resp.Members, m)
	}
	return resp, nil
}

// MemberAdd implements transport.Membership.
func (n *Node) MemberAdd(ctx context.Context, req *kvpb.MemberAddRequest) (*kvpb.MemberChangeResponse, error) {
	kind := cluster.ActAddVoter
	if req.GetNonvoter() {
		kind = cluster.ActAddNonvoter
	}
	return n.memberChange(ctx, cluster.Action{Kind: kind, ID: req.GetId(), Addr: req.GetRaftAddr()}, req.GetForce())
}

// MemberRemove implements transport.Membership.
func (n *Node) MemberRemove(ctx context.Context, req *kvpb.MemberRemoveRequest) (*kvpb.MemberChangeResponse, error) {
	return n.memberChange(ctx, cluster.Action{Kind: cluster.ActRemove, ID: req.GetId()}, req.GetForce())
}

// MemberPromote implements transport.Membership.
func (n *Node) MemberPromote(ctx context.Context, req *kvpb.MemberPromoteRequest) (*kvpb.MemberChangeResponse, error) {
	return n.memberChange(ctx, cluster.Action{Kind: cluster.ActAddVoter, ID: req.GetId()}, req.GetForce())
}

// MemberDemote implements transport.Membership.
func (n *Node) MemberDemote(ctx context.Context, req *kvpb.MemberDemoteRequest) (*kvpb.MemberChangeResponse, error) {
	return n.memberChange(ctx, cluster.Action{Kind: cluster.ActDemote, ID: req.GetId()}, req.GetForce())
}

func (n *Node) memberChange(ctx context.Context, a cluster.Action, force bool) (*kvpb.MemberChangeResponse, error) {
	res, err := n.cluster.Change(ctx, a, force)
	if err != nil {
		return nil, n.membershipError(err)
	}
	return &kvpb.MemberChangeResponse{Header: n.header(n.fsm.AppliedIndex()), ConfigurationIndex: res.Index, Warning: res.Warning}, nil
}

// LeaderTransfer implements transport.Membership.
func (n *Node) LeaderTransfer(ctx context.Context, req *kvpb.LeaderTransferRequest) (*kvpb.LeaderTransferResponse, error) {
	id, err := n.cluster.TransferLeadership(ctx, req.GetToId(), req.GetForce())
	if err != nil {
		return nil, n.membershipError(err)
	}
	return &kvpb.LeaderTransferResponse{Header: n.header(n.fsm.AppliedIndex()), LeaderId: id}, nil
}

// membershipError maps cluster's errors to transport's vocabulary.
func (n *Node) membershipError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		lid, addr := n.leaderGRPC()
		if lid == "" || lid == n.cfg.ID {
			return fmt.Errorf("%w: membership changes need the leader", transport.ErrNoLeader)
		}
		return &transport.NotLeaderError{LeaderID: lid, LeaderAddr: addr}
	case errors.Is(err, cluster.ErrUnsafe):
		return fmt.Errorf("%w: %w", transport.ErrUnsafeChange, err)
	case errors.Is(err, cluster.ErrUnknownServer):
		return fmt.Errorf("%w: %w", transport.ErrInvalidArgument, err)
	}
	return err
}

// leave is the graceful part of shutting down: a leader hands leadership to
// another voter first, so the cluster doesn't wait an election timeout;
// with LeaveOnTerminate the node also leaves gossip and asks the leader to
// remove it from the raft configuration.
func (n *Node) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if n.raft.State() == raft.Leader && n.otherVoters() > 0 {
		n.logger.Info("shutting down as leader: transferring leadership first")
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.logger.Warn("leadership transfer before shutdown failed", "err", err)
		}
	}
	if !n.cfg.LeaveOnTerminate {
		return
	}
	// Gossip first: a server that left gossip is never re-added by the
	// reconciler, so it can't race the removal below.
	if err := n.cluster.Leave(5 * time.Second); err != nil {
		n.logger.Warn("leave gossip", "err", err)
	}
	if err := n.removeSelf(ctx); err != nil {
		n.logger.Warn("not removed from the raft configuration", "err", err)
		return
	}
	n.logger.Info("left the cluster: removed from the raft configuration")
}

// otherVoters counts the voters of the configuration other than this node.
func (n *Node) otherVoters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.ID {
			c++
		}
	}
	return c
}

// removeSelf asks the leader to remove this node until it is out of the
// configuration, the leader refuses, or ctx ends.
func (n *Node) removeSelf(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		f := n.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		in := false
		for _, s := range f.Configuration().Servers {
			in = in || string(s.ID) == n.cfg.ID
		}
		if !in {
			return nil
		}
		lid, addr := n.leaderGRPC()
		var err error
		switch {
		case lid == n.cfg.ID:
			_, err = n.MemberRemove(ctx, &kvpb.MemberRemoveRequest{Id: n.cfg.ID})
		case addr != "":
			var cli kvpb.AdminClient
			if cli, err = n.peers.Admin(addr); err == nil {
				_, err = cli.MemberRemove(ctx, &kvpb.MemberRemoveRequest{Id: n.cfg.ID})
			}
		default:
			// No leader known. The leader may already have removed this
			// node (its reconciler does once gossip says the node left)
			// and stopped replicating to it before it saw that
			// configuration entry: then no leader ever contacts it again.
			// Ask the leader found among the peers instead.
			var member bool
			if addr, member, err = n.leaderAmongPeers(ctx); err == nil {
				if !member {
					return nil
				}
				var cli kvpb.AdminClient
				if cli, err = n.peers.Admin(addr); err == nil {
					_, err = cli.MemberRemove(ctx, &kvpb.MemberRemoveRequest{Id: n.cfg.ID})
				}
			}
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, transport.ErrUnsafeChange) || transport.Reason(err) == kvpb.ReasonUnsafeChange {
			return err // the leader says no; retrying won't change its mind
		}
		t := time.NewTimer(min(100*time.Millisecond<<min(attempt, 4), time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// leaderAmongPeers asks the peers of the member registry for their member
// lists until one says it leads, and returns that peer's gRPC address and
// whether its configuration still holds this node.
func (n *Node) leaderAmongPeers(ctx context.Context) (addr string, member bool, err error) {
	err = fmt.Errorf("%w: no peer in the member registry says it leads", transport.ErrNoLeader)
	for id, registered := range n.fsm.Members() {
		if id == n.cfg.ID || registered == "" {
			continue
		}
		peer := n.grpcPeerAddr(id, registered)
		cli, cerr := n.peers.Admin(peer)
		if cerr != nil {
			err = cerr
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, lerr := cli.MemberList(cctx, &kvpb.MemberListRequest{})
		cancel()
		if lerr != nil {
			err = fmt.Errorf("member list from %s: %w", id, lerr)
			continue
		}
		leads := false
		for _, m := range resp.GetMembers() {
			leads = leads || (m.GetId() == id && m.GetIsLeader())
			member = member || (m.GetId() == n.cfg.ID && m.GetSuffrage() != "None")
		}
		if leads {
			return peer, member, nil
		}
		member = false
	}
	return "", false, err
}

// validateMembership checks the membership settings against the rest of
// the configuration.
func (c Config) validateMembership() error {
	var errs []error
	if err := c.Cluster.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Cluster.BootstrapExpect > 0 && (c.Bootstrap || len(c.InitialCluster) > 0) {
		errs = append(errs, errors.New("bootstrap expect and bootstrap / initial cluster are two ways to start a cluster: pick one"))
	}
	if c.Cluster.GossipEnabled() && len(c.ID) > cluster.MaxIDLen {
		errs = append(errs, fmt.Errorf("id %q is longer than %d bytes, the most gossip metadata allows", c.ID, cluster.MaxIDLen))
	}
	return errors.Join(errs...)
}
