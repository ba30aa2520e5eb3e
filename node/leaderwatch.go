package node

import "github.com/hashicorp/raft"

// watchLeader registers a raft observer of leader changes for one of the
// node's loops. The channel receives an observation whenever the leader
// changes (dropped when the loop is busy: loops also re-check
// periodically); the returned function deregisters the observer.
func (n *Node) watchLeader() (<-chan raft.Observation, func()) {
	obs := make(chan raft.Observation, 4)
	observer := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(observer)
	return obs, func() { n.raft.DeregisterObserver(observer) }
}
