package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// ErrUnsafe means a membership change was refused because it could cost the
// cluster its quorum (or break a rule that protects it); nothing changed.
// Manual changes may override it with force.
var ErrUnsafe = errors.New("unsafe membership change")

// ErrUnknownServer means a change named a server the raft configuration
// does not hold.
var ErrUnknownServer = errors.New("no such server in the raft configuration")

// ServerState is everything the planner knows about one server: its place
// in the raft configuration, what gossip says, and the leader's view of
// its health. The reconciler builds one per server in the raft
// configuration or in gossip.
type ServerState struct {
	ID string
	// InConfig is set when the raft configuration holds the server, with
	// Suffrage and ConfigAddr.
	InConfig   bool
	Suffrage   raft.ServerSuffrage
	ConfigAddr string
	// Leader marks the local node, which is the leader while planning.
	Leader bool

	// Gossip is the gossip status; GossipRaftAddr the raft address from
	// the member's metadata (empty without gossip).
	Gossip         GossipStatus
	GossipRaftAddr string
	// RestartedEmpty: see Member.RestartedEmpty.
	RestartedEmpty bool

	// Healthy: reachable, caught up and in contact with the leader.
	// HealthyFor is how long it has been so (0 when unhealthy); DownFor how
	// long gossip has reported it failed, left or absent (0 while alive).
	Healthy    bool
	HealthyFor time.Duration
	DownFor    time.Duration

	// HoldNonvoter and HoldOut record an operator's decision (member
	// demote / add --nonvoter, member remove) for the server's current
	// boot: the reconciler neither promotes nor re-adds it.
	HoldNonvoter bool
	HoldOut      bool
}

func (s ServerState) voter() bool { return s.InConfig && s.Suffrage == raft.Voter }

// down reports whether gossip says the server is gone.
func (s ServerState) down() bool { return s.Gossip != GossipAlive }

// Policy is the part of Config the planner uses.
type Policy struct {
	StabilizationTime time.Duration
	DeadServerCleanup time.Duration
	MinQuorum         int
}

// ActionKind is a raft configuration change.
type ActionKind int

const (
	// ActAddNonvoter adds a server as a non-voter (AddNonvoter).
	ActAddNonvoter ActionKind = iota + 1
	// ActAddVoter adds a server as a voter, or promotes a non-voter
	// (AddVoter).
	ActAddVoter
	// ActDemote turns a voter into a non-voter (DemoteVoter).
	ActDemote
	// ActRemove removes a server (RemoveServer).
	ActRemove
	// ActUpdateAddress changes a server's raft address, keeping its
	// suffrage (AddVoter or AddNonvoter with the known id).
	ActUpdateAddress
)

// String names the kind for logs.
func (k ActionKind) String() string {
	switch k {
	case ActAddNonvoter:
		return "add-nonvoter"
	case ActAddVoter:
		return "add-voter"
	case ActDemote:
		return "demote"
	case ActRemove:
		return "remove"
	case ActUpdateAddress:
		return "update-address"
	}
	return fmt.Sprintf("action(%d)", int(k))
}

// Action is one planned raft configuration change.
type Action struct {
	Kind ActionKind
	ID   string
	// Addr is the raft address for adds and address updates.
	Addr string
	// Reason says why, for the log.
	Reason string
}

func quorum(voters int) int { return voters/2 + 1 }

// Plan returns the configuration changes that move the raft configuration
// toward what gossip and health say it should be, most urgent first. The
// caller applies the first one, then plans again against the new
// configuration, so the rules only ever reason about one change at a time.
//
// Rules, in order:
//  1. A server whose raft address now belongs to another live server is
//     removed (an id that came back under a new id at the same address).
//  2. A voter that restarted with an empty data dir is demoted: it has
//     forgotten its votes and log; rule 5 promotes it again once it has
//     caught up.
//  3. A live server whose gossiped raft address differs from the
//     configuration's gets its address updated (same id, new address).
//  4. A live server missing from the configuration is added as a
//     non-voter.
//  5. A non-voter healthy for StabilizationTime is promoted, keeping the
//     number of healthy voters odd where possible: with an odd number it
//     waits until two are ready.
//  6. A server that left gossip, or (with DeadServerCleanup set) has been
//     failed that long, is removed: non-voters always, voters only while
//     at least MinQuorum voters remain and the rest still form a quorum.
//
// The leader itself is never the subject of an action.
func Plan(servers []ServerState, p Policy) []Action {
	servers = slices.Clone(servers)
	slices.SortFunc(servers, func(a, b ServerState) int { return strings.Compare(a.ID, b.ID) })
	var acts []Action

	// 1. address taken over by another live server.
	for _, s := range servers {
		if s.Leader || !s.InConfig || !s.down() {
			continue
		}
		for _, o := range servers {
			if o.ID != s.ID && o.Gossip == GossipAlive && o.GossipRaftAddr == s.ConfigAddr {
				acts = append(acts, Action{Kind: ActRemove, ID: s.ID, Reason: fmt.Sprintf("its raft address %s now belongs to %s", s.ConfigAddr, o.ID)})
				break
			}
		}
	}
	// 2. voter restarted empty.
	for _, s := range servers {
		if s.Leader || !s.voter() || !s.RestartedEmpty || s.Gossip != GossipAlive {
			continue
		}
		acts = append(acts, Action{Kind: ActDemote, ID: s.ID, Reason: "restarted with no raft state; promoted again once caught up"})
	}
	// 3. same id, new address.
	for _, s := range servers {
		if s.Leader || !s.InConfig || s.Gossip != GossipAlive || s.GossipRaftAddr == "" || s.GossipRaftAddr == s.ConfigAddr {
			continue
		}
		acts = append(acts, Action{Kind: ActUpdateAddress, ID: s.ID, Addr: s.GossipRaftAddr,
			Reason: fmt.Sprintf("raft address changed from %s", s.ConfigAddr)})
	}
	// 4. new server.
	for _, s := range servers {
		if s.InConfig || s.Gossip != GossipAlive || s.HoldOut || s.GossipRaftAddr == "" {
			continue
		}
		if takenBy := addrHolder(servers, s.GossipRaftAddr, s.ID); takenBy != "" {
			continue // rule 1 frees the address first
		}
		acts = append(acts, Action{Kind: ActAddNonvoter, ID: s.ID, Addr: s.GossipRaftAddr, Reason: "seen in gossip"})
	}
	// 5. promotion.
	var ready []ServerState
	for _, s := range servers {
		if s.InConfig && s.Suffrage != raft.Voter && s.Gossip == GossipAlive && s.Healthy &&
			s.HealthyFor >= p.StabilizationTime && !s.HoldNonvoter && !s.RestartedEmpty {
			ready = append(ready, s)
		}
	}
	healthyVoters := count(servers, func(s ServerState) bool { return s.voter() && s.Healthy })
	if len(ready) > 0 && (healthyVoters%2 == 0 || len(ready) >= 2) {
		acts = append(acts, Action{Kind: ActAddVoter, ID: ready[0].ID, Addr: ready[0].ConfigAddr,
			Reason: fmt.Sprintf("healthy for %s; %d healthy voters, %d non-voters ready", ready[0].HealthyFor.Round(time.Millisecond), healthyVoters, len(ready))})
	}
	// 6. departed and dead servers.
	for _, s := range servers {
		if s.Leader || !s.InConfig || !s.down() {
			continue
		}
		left := s.Gossip == GossipLeft
		if !left && (p.DeadServerCleanup <= 0 || s.DownFor < p.DeadServerCleanup) {
			continue
		}
		reason := "left the cluster"
		if !left {
			reason = fmt.Sprintf("%s for %s", s.Gossip, s.DownFor.Round(time.Second))
		}
		a := Action{Kind: ActRemove, ID: s.ID, Reason: reason}
		if err := Check(servers, a, p.MinQuorum); err != nil {
			continue
		}
		acts = append(acts, a)
	}
	return acts
}

// addrHolder returns the id of another server in the configuration at
// addr, or "".
func addrHolder(servers []ServerState, addr, except string) string {
	for _, s := range servers {
		if s.InConfig && s.ID != except && s.ConfigAddr == addr {
			return s.ID
		}
	}
	return ""
}

func count(servers []ServerState, f func(ServerState) bool) int {
	n := 0
	for _, s := range servers {
		if f(s) {
			n++
		}
	}
	return n
}

// Check reports whether applying a to the configuration described by
// servers keeps the cluster safe. It returns an error wrapping ErrUnsafe
// that says why not, or ErrUnknownServer. The rules:
//   - the leader is never removed or demoted (transfer leadership first);
//   - no change leaves zero voters;
//   - the voters after the change must include a quorum of healthy ones;
//   - a removal or demotion must leave at least minQuorum voters.
func Check(servers []ServerState, a Action, minQuorum int) error {
	idx := slices.IndexFunc(servers, func(s ServerState) bool { return s.ID == a.ID })
	var target ServerState
	if idx >= 0 {
		target = servers[idx]
	}
	switch a.Kind {
	case ActRemove, ActDemote, ActUpdateAddress:
		if idx < 0 || !target.InConfig {
			return fmt.Errorf("%w: %s", ErrUnknownServer, a.ID)
		}
	}
	if target.Leader && (a.Kind == ActRemove || a.Kind == ActDemote) {
		return fmt.Errorf("%w: %s is the leader; transfer leadership first (raftkvctl leader transfer)", ErrUnsafe, a.ID)
	}
	voters, healthy := 0, 0
	for _, s := range servers {
		if s.ID == a.ID {
			continue
		}
		if s.voter() {
			voters++
			if s.Healthy {
				healthy++
			}
		}
	}
	targetVotes := false
	switch a.Kind {
	case ActAddVoter:
		targetVotes = true
	case ActUpdateAddress:
		targetVotes = target.voter()
	case ActAddNonvoter:
		// AddNonvoter leaves an existing voter a voter.
		targetVotes = target.voter()
	}
	if targetVotes {
		voters++
		if target.Healthy {
			healthy++
		}
	}
	before := count(servers, ServerState.voter)
	healthyBefore := count(servers, func(s ServerState) bool { return s.voter() && s.Healthy })
	what := fmt.Sprintf("%s %s", verb(a.Kind), a.ID)
	if voters == 0 {
		return fmt.Errorf("%w: %s would leave no voters", ErrUnsafe, what)
	}
	// A change that leaves the voters as they are can't cost a quorum,
	// even while health is poor.
	touchesVoters := voters != before || healthy != healthyBefore
	if touchesVoters && healthy < quorum(voters) {
		return fmt.Errorf("%w: %s would leave %d voters, which need %d for a quorum, but only %d of them are healthy",
			ErrUnsafe, what, voters, quorum(voters), healthy)
	}
	if voters < before && voters < minQuorum {
		return fmt.Errorf("%w: %s would leave %d voters, fewer than the minimum of %d (--min-quorum)",
			ErrUnsafe, what, voters, minQuorum)
	}
	return nil
}

func verb(k ActionKind) string {
	switch k {
	case ActAddNonvoter:
		return "adding non-voter"
	case ActAddVoter:
		return "adding voter"
	case ActDemote:
		return "demoting"
	case ActRemove:
		return "removing"
	case ActUpdateAddress:
		return "changing the address of"
	}
	return k.String()
}

// parityWarning returns a note when a configuration has an even number of
// voters, which tolerates no more failures than one fewer.
func parityWarning(voters int) string {
	if voters > 0 && voters%2 == 0 {
		return fmt.Sprintf("%d voters: an even number tolerates no more failures than %d", voters, voters-1)
	}
	return ""
}
