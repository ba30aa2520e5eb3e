package node

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// readiness is this node's answer to "should clients be sent here?", served
// as /readyz and as the gRPC health status of the KV service.
type readiness struct {
	Ready        bool   `json:"-"`
	Status       string `json:"status"`
	Reason       string `json:"reason,omitempty"`
	NodeID       string `json:"node_id"`
	RaftState    string `json:"raft_state"`
	LeaderID     string `json:"leader_id,omitempty"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// readiness reports whether this node can serve clients: raft is running,
// it knows a leader whose gRPC address is registered (so it can forward
// writes and ReadIndex requests), and its FSM has applied everything it
// knows to be committed, give or take Config.ReadyMaxLag entries. A node
// cut off from the leader loses the leader within an election timeout
// (followers become candidates, a leader without a quorum steps down) and
// turns unready.
func (n *Node) readiness() readiness {
	_, leader := n.raft.LeaderWithID()
	r := readiness{
		NodeID:       n.cfg.ID,
		RaftState:    n.raft.State().String(),
		LeaderID:     string(leader),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.fsm.AppliedIndex(),
	}
	_, leaderAddr := n.leaderGRPC()
	switch {
	case n.raft.State() == raft.Shutdown:
		r.Reason = "raft is shut down"
	case leader == "":
		r.Reason = "no leader known"
	case leaderAddr == "":
		r.Reason = fmt.Sprintf("leader %s has not registered its gRPC address yet", leader)
	case r.CommitIndex > r.AppliedIndex && r.CommitIndex-r.AppliedIndex > n.cfg.ReadyMaxLag:
		r.Reason = fmt.Sprintf("applied index %d is %d entries behind commit index %d (more than %d)",
			r.AppliedIndex, r.CommitIndex-r.AppliedIndex, r.CommitIndex, n.cfg.ReadyMaxLag)
	default:
		r.Ready = true
	}
	r.Status = "not ready"
	if r.Ready {
		r.Status = "ready"
	}
	return r
}

// healthInterval is how often runHealth re-evaluates readiness for the gRPC
// health service.
const healthInterval = time.Second

// runHealth keeps the gRPC health status of the KV service equal to
// readiness, re-checking every second and on every leader change.
func (n *Node) runHealth() {
	defer n.wg.Done()
	obs := make(chan raft.Observation, 1)
	observer := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(observer)
	defer n.raft.DeregisterObserver(observer)
	tick := time.NewTicker(healthInterval)
	defer tick.Stop()
	ready := false
	for {
		if r := n.readiness(); r.Ready != ready {
			ready = r.Ready
			n.grpc.SetServing(ready)
			n.logger.Info("readiness changed", "ready", ready, "reason", r.Reason, "term", r.Term)
		}
		select {
		case <-n.stop:
			return
		case <-obs:
		case <-tick.C:
		}
	}
}
