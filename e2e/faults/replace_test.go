//go:build e2e

package faults

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

// replaceFollower is F12: under load, remove a follower from the raft
// configuration (member remove), stop it, wipe its data dir, start it again
// under a new server id, add it (member add), wait until it is a voter that
// registered its gRPC address and follows the leader, then transfer
// leadership: to the new node in even rounds, to the third node in odd
// ones. The slot keeps its addresses, so every link to and from it still
// goes through its proxies (nodeArgs gives every node overrides for both of
// a slot's ids).
func replaceFollower(s *scenarioRun, round int) {
	c := s.c
	l := c.mustLeader()
	f := s.pick(c.others(l))
	p := c.nodes[f]
	oldID := p.id
	ids := slotIDs(f)
	newID := ids[0]
	if oldID == ids[0] {
		newID = ids[1]
	}

	connsBefore := c.links[l][f].statsSnapshot().conns

	// member remove. Three voters are the default minimum (--min-quorum),
	// so the removal needs force, as an operator replacing a node would.
	err := eventually(leaderTimeout, func() error {
		if in, err := inConfig(c, oldID); err != nil || !in {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.admin.MemberRemove(ctx, &kvpb.MemberRemoveRequest{Id: oldID, Force: true})
		return err
	})
	if err != nil {
		s.t.Fatalf("F12: member remove %s: %v", oldID, err)
	}
	s.log.Info("removed a follower", "node", oldID)
	// Its raft shut down when it learned of its removal; the process must
	// still exit cleanly.
	if err := c.stop(f); err != nil {
		s.t.Errorf("F12: stop removed %s: %v", oldID, err)
	}
	if err := os.RemoveAll(p.dataDir); err != nil {
		s.t.Fatalf("F12: wipe %s: %v", p.dataDir, err)
	}

	// Start it under the new id: no bootstrap, it waits to be added.
	p.id = newID
	p.args = append(c.nodeArgs(f), "--initial-cluster", newID+"="+p.raftAddr)
	c.start(f)
	err = eventually(leaderTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.admin.MemberAdd(ctx, &kvpb.MemberAddRequest{Id: newID, RaftAddr: p.raftAddr})
		return err
	})
	if err != nil {
		s.t.Fatalf("F12: member add %s: %v", newID, err)
	}
	joined := time.Now()
	err = eventually(60*time.Second, func() error {
		ml, err := memberList(c)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ml, func(m *kvpb.Member) bool { return m.GetId() == newID })
		if i < 0 || ml[i].GetSuffrage() != "Voter" {
			return fmt.Errorf("%s is not a voter yet", newID)
		}
		if ml[i].GetGrpcAddr() == "" {
			return fmt.Errorf("%s has not registered its gRPC address yet", newID)
		}
		if slices.ContainsFunc(ml, func(m *kvpb.Member) bool { return m.GetId() == oldID }) {
			return fmt.Errorf("%s is still listed", oldID)
		}
		st, err := c.status(f)
		if err != nil {
			return err
		}
		if st.GetLeaderId() == "" || st.GetAppliedIndex() == 0 {
			return fmt.Errorf("%s has no leader or applied nothing yet", newID)
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("F12: %s never became a caught-up voter: %v", newID, err)
	}
	s.log.Info("new node is a voter", "node", newID, "after", time.Since(joined).Round(time.Millisecond))
	// The leader reached the new node through the proxy of its link, not
	// directly: the overrides cover the new id.
	if after := c.links[l][f].statsSnapshot().conns; after <= connsBefore {
		if cur, err := c.leader(); err == nil && cur == l {
			s.t.Errorf("F12: the leader's raft link to %s carried no new connection (%d before, %d after): the new id is not proxied", newID, connsBefore, after)
		}
	}

	// leader transfer.
	l = c.mustLeader()
	to := newID
	if l == f || round%2 == 1 {
		for _, j := range c.others(l) {
			if j != f {
				to = c.nodes[j].id
				break
			}
		}
	}
	err = eventually(leaderTimeout, func() error {
		if l, err := c.leader(); err == nil && c.nodes[l].id == to {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.admin.LeaderTransfer(ctx, &kvpb.LeaderTransferRequest{ToId: to})
		if err != nil {
			return err
		}
		if l, err := c.leader(); err != nil || c.nodes[l].id != to {
			return fmt.Errorf("leadership did not move to %s", to)
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("F12: leader transfer to %s: %v", to, err)
	}
	s.log.Info("transferred leadership", "to", to)
	s.healed()
	waitFor(2 * time.Second)
}

// inConfig reports whether id is in the raft configuration, as the
// leader's member list says.
func inConfig(c *cluster, id string) (bool, error) {
	ml, err := memberList(c)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ml, func(m *kvpb.Member) bool {
		return m.GetId() == id && m.GetSuffrage() != "None" && m.GetSuffrage() != ""
	}), nil
}

// memberList returns the member list as the current leader sees it.
func memberList(c *cluster) ([]*kvpb.Member, error) {
	for i, p := range c.nodes {
		if !c.available(i) {
			continue
		}
		st, err := c.status(i)
		if err != nil || st.GetRaftState() != "Leader" {
			continue
		}
		cfg := client.DefaultConfig()
		cfg.Endpoints = []string{p.grpcAddr}
		cfg.DialTimeout = time.Second
		cli, err := client.New(cfg)
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ml, err := cli.MemberList(ctx)
		if err != nil {
			return nil, err
		}
		return ml.GetMembers(), nil
	}
	return nil, fmt.Errorf("no node says it leads")
}
