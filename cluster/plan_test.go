package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const stab = 10 * time.Second

// srv builds a ServerState for an alive, healthy voter in the
// configuration at "<id>:1"; options adjust it.
func srv(id string, opts ...func(*ServerState)) ServerState {
	s := ServerState{ID: id, InConfig: true, Suffrage: raft.Voter, ConfigAddr: id + ":1",
		Gossip: GossipAlive, GossipRaftAddr: id + ":1", Healthy: true, HealthyFor: time.Hour}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func leader(s *ServerState)   { s.Leader = true }
func nonvoter(s *ServerState) { s.Suffrage = raft.Nonvoter }
func unhealthy(s *ServerState) {
	s.Healthy, s.HealthyFor = false, 0
}
func notInConfig(s *ServerState) { s.InConfig, s.Suffrage, s.ConfigAddr = false, 0, "" }
func healthyFor(d time.Duration) func(*ServerState) {
	return func(s *ServerState) { s.HealthyFor = d }
}
func gstate(st GossipStatus, downFor time.Duration) func(*ServerState) {
	return func(s *ServerState) {
		s.Gossip, s.DownFor = st, downFor
		if st != GossipAlive {
			s.Healthy, s.HealthyFor = false, 0
		}
	}
}
func gossipAddr(a string) func(*ServerState) { return func(s *ServerState) { s.GossipRaftAddr = a } }
func restartedEmpty(s *ServerState)          { s.RestartedEmpty = true; s.Healthy, s.HealthyFor = false, 0 }
func holdNonvoter(s *ServerState)            { s.HoldNonvoter = true }
func holdOut(s *ServerState)                 { s.HoldOut = true }

func acts(as []Action) string {
	var out []string
	for _, a := range as {
		s := a.Kind.String() + " " + a.ID
		if a.Addr != "" && a.Kind != ActAddVoter {
			s += " " + a.Addr
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func TestPlan(t *testing.T) {
	three := func(more ...ServerState) []ServerState {
		return append([]ServerState{srv("n1", leader), srv("n2"), srv("n3")}, more...)
	}
	pol := Policy{StabilizationTime: stab, MinQuorum: 3}
	cleanup := Policy{StabilizationTime: stab, MinQuorum: 3, DeadServerCleanup: time.Minute}
	tests := []struct {
		name    string
		servers []ServerState
		policy  Policy
		want    string // acts(Plan(...)); "" for none
	}{
		{"steady three voters", three(), pol, ""},
		{"new gossip member is added as non-voter", three(srv("n4", notInConfig)), pol, "add-nonvoter n4 n4:1"},
		{"operator removed it: not re-added", three(srv("n4", notInConfig, holdOut)), pol, ""},
		{"failed gossip member is not added", three(srv("n4", notInConfig, gstate(GossipFailed, time.Second))), pol, ""},
		{"one ready non-voter with three voters waits for a second", three(srv("n4", nonvoter)), pol, ""},
		{"two ready non-voters: promote the lowest id first", three(srv("n5", nonvoter), srv("n4", nonvoter)), pol, "add-voter n4"},
		{"one ready non-voter with four voters is promoted", three(srv("n4"), srv("n5", nonvoter)), pol, "add-voter n5"},
		{"not stable long enough", three(srv("n4"), srv("n5", nonvoter, healthyFor(stab-time.Second))), pol, ""},
		{"unhealthy non-voter is not promoted", three(srv("n4"), srv("n5", nonvoter, unhealthy)), pol, ""},
		{"operator demoted it: not promoted", three(srv("n4"), srv("n5", nonvoter, holdNonvoter)), pol, ""},
		{"replacement for a failed voter is promoted (two healthy voters)",
			[]ServerState{srv("n1", leader), srv("n2"), srv("n3", gstate(GossipFailed, time.Hour)), srv("n6", nonvoter)}, pol, "add-voter n6"},
		{"failed voter is kept without dead-server cleanup",
			three(srv("n4"), srv("n5", gstate(GossipFailed, time.Hour))), pol, ""},
		{"failed voter is removed after dead-server cleanup",
			three(srv("n4"), srv("n5", gstate(GossipFailed, time.Hour))), cleanup, "remove n5"},
		{"failed voter not yet down long enough",
			three(srv("n4"), srv("n5", gstate(GossipFailed, time.Second))), cleanup, ""},
		{"failed voter kept when min quorum would be broken",
			[]ServerState{srv("n1", leader), srv("n2"), srv("n3", gstate(GossipFailed, time.Hour))}, cleanup, ""},
		{"failed voter absent from gossip counts as failed",
			three(srv("n4"), srv("n5", gstate(GossipNone, time.Hour))), cleanup, "remove n5"},
		{"failed non-voter is removed after cleanup",
			three(srv("n4", nonvoter, gstate(GossipFailed, time.Hour))), cleanup, "remove n4"},
		{"left voter is removed even without cleanup",
			three(srv("n4"), srv("n5", gstate(GossipLeft, time.Second))), pol, "remove n5"},
		{"left voter kept when min quorum would be broken",
			[]ServerState{srv("n1", leader), srv("n2"), srv("n3", gstate(GossipLeft, time.Second))}, pol, ""},
		{"voter restarted empty is demoted", three(srv("n3b", restartedEmpty)), pol, "demote n3b"},
		{"non-voter restarted empty is not promoted", three(srv("n4"), srv("n5", nonvoter, restartedEmpty)), pol, ""},
		{"same id, new address", three(srv("n4", gossipAddr("n4:2"))), pol, "update-address n4 n4:2"},
		{"address now held by a new id: old one removed first",
			[]ServerState{srv("n1", leader), srv("n2"), srv("n3", gstate(GossipFailed, time.Second)), srv("n6", notInConfig, gossipAddr("n3:1"))},
			pol, "remove n3"},
		{"leader is never an action's subject",
			[]ServerState{srv("n1", leader, restartedEmpty, gossipAddr("n1:9")), srv("n2"), srv("n3")}, pol, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acts(Plan(tt.servers, tt.policy)); got != tt.want {
				t.Errorf("Plan = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPlanConverges applies plans step by step, as the reconciler does, and
// checks where the configuration ends up.
func TestPlanConverges(t *testing.T) {
	servers := []ServerState{srv("n1", leader), srv("n2"), srv("n3"), srv("n4", notInConfig), srv("n5", notInConfig)}
	pol := Policy{StabilizationTime: 0, MinQuorum: 3}
	var steps []string
	for range 10 {
		as := Plan(servers, pol)
		if len(as) == 0 {
			break
		}
		a := as[0]
		steps = append(steps, acts(as[:1]))
		for i := range servers {
			if servers[i].ID != a.ID {
				continue
			}
			switch a.Kind {
			case ActAddNonvoter:
				servers[i].InConfig, servers[i].Suffrage, servers[i].ConfigAddr = true, raft.Nonvoter, a.Addr
			case ActAddVoter:
				servers[i].Suffrage = raft.Voter
			}
		}
	}
	want := "add-nonvoter n4 n4:1|add-nonvoter n5 n5:1|add-voter n4|add-voter n5"
	if got := strings.Join(steps, "|"); got != want {
		t.Fatalf("steps = %s, want %s", got, want)
	}
}

func TestCheck(t *testing.T) {
	three := []ServerState{srv("n1", leader), srv("n2"), srv("n3")}
	five := append(three[:3:3], srv("n4"), srv("n5"))
	fiveTwoDown := []ServerState{srv("n1", leader), srv("n2"), srv("n3"), srv("n4", unhealthy), srv("n5", unhealthy)}
	tests := []struct {
		name      string
		servers   []ServerState
		action    Action
		minQuorum int
		want      string // "" for allowed, else a substring of the error
	}{
		{"remove the leader", three, Action{Kind: ActRemove, ID: "n1"}, 1, "is the leader"},
		{"demote the leader", three, Action{Kind: ActDemote, ID: "n1"}, 1, "is the leader"},
		{"remove below min quorum", three, Action{Kind: ActRemove, ID: "n2"}, 3, "fewer than the minimum of 3"},
		{"remove within min quorum", five, Action{Kind: ActRemove, ID: "n5"}, 3, ""},
		{"remove a healthy voter when two are down", fiveTwoDown, Action{Kind: ActRemove, ID: "n3"}, 1, "only 2 of them are healthy"},
		{"remove a down voter when two are down", fiveTwoDown, Action{Kind: ActRemove, ID: "n5"}, 3, ""},
		{"demote below min quorum", three, Action{Kind: ActDemote, ID: "n3"}, 3, "fewer than the minimum"},
		{"remove the last voters", []ServerState{srv("n1", leader), srv("n2")}, Action{Kind: ActRemove, ID: "n2"}, 3, "fewer than the minimum"},
		{"remove the only voter", []ServerState{srv("n2"), srv("n3", nonvoter)}, Action{Kind: ActRemove, ID: "n2"}, 1, "no voters"},
		{"remove a non-voter", append(three[:3:3], srv("n4", nonvoter)), Action{Kind: ActRemove, ID: "n4"}, 3, ""},
		{"add an unreachable voter when one is down",
			[]ServerState{srv("n1", leader), srv("n2"), srv("n3", unhealthy)}, Action{Kind: ActAddVoter, ID: "n4", Addr: "n4:1"}, 3, "only 2 of them are healthy"},
		{"add a voter", three, Action{Kind: ActAddVoter, ID: "n4", Addr: "n4:1"}, 3, ""},
		{"promote a healthy non-voter", append(three[:3:3], srv("n4", nonvoter)), Action{Kind: ActAddVoter, ID: "n4"}, 3, ""},
		{"add a non-voter", three, Action{Kind: ActAddNonvoter, ID: "n4", Addr: "n4:1"}, 3, ""},
		{"unknown server", three, Action{Kind: ActRemove, ID: "nx"}, 3, "no such server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.servers, tt.action, tt.minQuorum)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Check = %v, want allowed", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Check = %v, want an error containing %q", err, tt.want)
			case tt.want != "" && !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrUnknownServer):
				t.Fatalf("Check = %v: neither ErrUnsafe nor ErrUnknownServer", err)
			}
		})
	}
}

func member(id string, expect int, st GossipStatus) Member {
	return Member{Name: id, Status: st, Meta: Meta{ID: id, RaftAddr: id + ":2", GRPCAddr: id + ":1", Expect: expect}}
}

func TestDecideBootstrap(t *testing.T) {
	tests := []struct {
		name    string
		self    string
		members []Member
		want    string // voters joined by ",", or "wait: <substring>"
	}{
		{"alone", "n1", []Member{member("n1", 3, GossipAlive)}, "wait: 1 of 3"},
		{"two of three", "n1", []Member{member("n1", 3, GossipAlive), member("n2", 3, GossipAlive)}, "wait: 2 of 3"},
		{"lowest id bootstraps", "n1", []Member{member("n3", 3, GossipAlive), member("n1", 3, GossipAlive), member("n2", 3, GossipAlive)}, "n1,n2,n3"},
		{"others wait for the lowest", "n2", []Member{member("n3", 3, GossipAlive), member("n1", 3, GossipAlive), member("n2", 3, GossipAlive)}, "wait: n1 (the lowest id) bootstraps"},
		{"failed members don't count", "n1", []Member{member("n1", 3, GossipAlive), member("n2", 3, GossipAlive), member("n3", 3, GossipFailed)}, "wait: 2 of 3"},
		{"expect mismatch", "n1", []Member{member("n1", 3, GossipAlive), member("n2", 3, GossipAlive), member("n3", 5, GossipAlive)}, "wait: n3 expects 5"},
		{"more than expected: the lowest ids", "n1", []Member{member("n4", 3, GossipAlive), member("n1", 3, GossipAlive), member("n2", 3, GossipAlive), member("n3", 3, GossipAlive)}, "n1,n2,n3"},
		{"bad metadata ignored", "n1", []Member{member("n1", 3, GossipAlive), member("n2", 3, GossipAlive), {Name: "x", Status: GossipAlive, MetaErr: errors.New("bad")}}, "wait: 2 of 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DecideBootstrap(tt.self, 3, tt.members)
			var got string
			if d.Servers == nil {
				got = "wait: " + d.Wait
			} else {
				var ids []string
				for _, s := range d.Servers {
					if s.Suffrage != raft.Voter || string(s.Address) != fmt.Sprintf("%s:2", s.ID) {
						t.Fatalf("server %+v: want a voter at its raft address", s)
					}
					ids = append(ids, string(s.ID))
				}
				got = strings.Join(ids, ",")
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("DecideBootstrap = %q, want %q", got, tt.want)
			}
		})
	}
}
