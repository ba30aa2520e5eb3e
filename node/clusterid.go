package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// ClusterID returns the cluster's id: replicated state set once by the
// first leader (see ensureClusterID) and carried by snapshots and backups.
// It is "" until that first entry has been applied on this node.
//
// It is the one place the rest of the node (and other features, such as a
// cache keyed per cluster) should read the id from.
func (n *Node) ClusterID() string { return n.fsm.ClusterID() }

// newClusterID returns a random cluster id: 16 hex digits.
func newClusterID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// ensureClusterID gives the cluster an id if it has none. Only the leader
// proposes; the randomness is in the proposal, never in the FSM, and the
// first SetClusterID applied wins, so two leaders racing after an election
// cannot make replicas differ. A cluster created by an older release gets
// its id the same way, from its first leader running this one.
//
// TODO(issue 4): gate this new op on every voter advertising support once
// members advertise their versions (STYLE.md §3); until then a v0.1.0 node
// in the cluster stops with "unknown op, upgrade this node" when it applies
// it, which is safe but not graceful.
func (n *Node) ensureClusterID(ctx context.Context) error {
	if n.raft.State() != raft.Leader || n.ClusterID() != "" {
		return nil
	}
	id := newClusterID()
	if _, err := n.apply(ctx, clusterIDCommand(id)); err != nil {
		return fmt.Errorf("set cluster id: %w", err)
	}
	if got := n.ClusterID(); got != id {
		// Another leader's id won; that is fine.
		n.logger.Info("cluster id was set by another leader", "cluster_id", got)
		return nil
	}
	n.logger.Info("generated cluster id", "cluster_id", id)
	return nil
}

func clusterIDCommand(id string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetClusterId{SetClusterId: &fsmpb.SetClusterID{Id: id}}}
}
