// Package cluster owns a node's membership: memberlist gossip (discovery,
// node metadata, failure detection), the --bootstrap-expect handshake that
// forms a new cluster exactly once, the leader-side reconciler that moves
// the raft configuration toward what gossip reports (add as non-voter,
// promote when stable, demote a voter that lost its data, remove departed
// and, if asked, failed servers), the quorum checks of manual membership
// changes, and the member list with each server's health.
//
// It reconciles; it doesn't command: only the leader changes the raft
// configuration, always one change at a time and conditional on the
// configuration it planned against. It talks to raft through raft's public
// API and to other servers only through the StatsFetcher it declares; it
// never imports node, transport or fsm. The rules live in Plan and Check,
// pure functions over ServerState; see DESIGN.md for why they are what
// they are.
package cluster
