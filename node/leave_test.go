package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/node/nodetest"
)

// TestLeaveAfterSilentRemoval: a node stopping with LeaveOnTerminate asks
// the leader to remove it. The leader may have removed it already and
// stopped replicating to it before it saw that configuration entry (the
// reconciler removes a server as soon as gossip says it left), so the node
// knows no leader and still thinks it is a member. It must find the leader
// among its peers and learn it is out, not wait out the whole leave
// timeout (15 s) and report that it was never removed.
func TestLeaveAfterSilentRemoval(t *testing.T) {
	c := nodetest.NewCluster(t, 3, func(cfg *nodetest.NodeConfig) { cfg.LeaveOnTerminate = true })
	x := c.Followers()[0]
	id := c.Members[x].ID
	n := c.Members[x].Node
	// The leaving node finds its peers through the replicated member
	// registry: wait until it holds every member's gRPC address.
	c.Eventually(id+" knows every member's gRPC address", func() error {
		resp, err := n.MemberList(ctxT(t, 5*time.Second))
		if err != nil {
			return err
		}
		known := 0
		for _, m := range resp.GetMembers() {
			if m.GetGrpcAddr() != "" {
				known++
			}
		}
		if known != 3 {
			return fmt.Errorf("%d of 3 gRPC addresses known", known)
		}
		return nil
	})
	c.Partition(x) // raft only: its gRPC port stays reachable
	if _, err := c.Client(c.Leader()).MemberRemove(ctxT(t, 10*time.Second), &kvpb.MemberRemoveRequest{Id: id, Force: true}); err != nil {
		t.Fatalf("remove %s: %v", id, err)
	}
	c.Eventually(id+" knows no leader and still counts itself a member", func() error {
		if _, lid := n.Raft().LeaderWithID(); lid != "" {
			return fmt.Errorf("%s still follows %s", id, lid)
		}
		for _, s := range n.Raft().GetConfiguration().Configuration().Servers {
			if string(s.ID) == id {
				return nil
			}
		}
		return fmt.Errorf("%s already saw its removal", id)
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run leaves and stops at once
	start := time.Now()
	if err := n.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	c.Members[x].Node = nil
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("leaving took %v: the node waited for a leader that will never contact it", took)
	}
}
