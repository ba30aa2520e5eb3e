package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (nopFSM) Restore(r io.ReadCloser) error       { return r.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}

// rafts is an in-memory raft cluster whose stats fetcher reads each raft
// directly, standing in for node's Admin.Status RPC.
type rafts map[string]*raft.Raft

func (rs rafts) FetchStats(_ context.Context, id, _ string) (ServerStats, error) {
	r, ok := rs[id]
	if !ok || r.State() == raft.Shutdown {
		return ServerStats{}, fmt.Errorf("%s unreachable", id)
	}
	lc := time.Duration(0)
	if r.State() != raft.Leader {
		lc = time.Since(r.LastContact())
	}
	return ServerStats{RaftState: r.State().String(), Term: r.CurrentTerm(), LastIndex: r.LastIndex(),
		CommitIndex: r.CommitIndex(), AppliedIndex: r.AppliedIndex(), LastContact: lc}, nil
}

// newRafts starts n in-memory raft servers (s1..sn), bootstrapped as
// voters, and a Cluster (gossip off) for each.
func newRafts(t *testing.T, n int) (rafts, map[string]*Cluster) {
	t.Helper()
	rs := rafts{}
	cs := map[string]*Cluster{}
	trans := map[string]*raft.InmemTransport{}
	var servers []raft.Server
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("s%d", i)
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(id))
		trans[id] = tr
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: addr})
	}
	for a, ta := range trans {
		for b, tb := range trans {
			if a != b {
				ta.Connect(raft.ServerAddress(b), tb)
			}
		}
	}
	for _, s := range servers {
		id := string(s.ID)
		conf := raft.DefaultConfig()
		conf.LocalID = s.ID
		conf.HeartbeatTimeout, conf.ElectionTimeout = 50*time.Millisecond, 50*time.Millisecond
		conf.LeaderLeaseTimeout, conf.CommitTimeout = 50*time.Millisecond, 5*time.Millisecond
		conf.Logger = hclog.NewNullLogger()
		leaderCh := make(chan bool, 16)
		conf.NotifyCh = leaderCh
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(conf, nopFSM{}, store, store, raft.NewInmemSnapshotStore(), trans[id])
		if err != nil {
			t.Fatal(err)
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatal(err)
		}
		rs[id] = r
		cfg := DefaultConfig()
		c, err := New(cfg, Meta{ID: id, GRPCAddr: id, RaftAddr: id, Version: "test"}, Deps{Raft: r, LeaderCh: leaderCh, Stats: rs})
		if err != nil {
			t.Fatal(err)
		}
		c.Start()
		cs[id] = c
	}
	t.Cleanup(func() {
		for id, r := range rs {
			_ = r.Shutdown().Error()
			_ = cs[id].Close()
		}
	})
	return rs, cs
}

func waitLeader(t *testing.T, rs rafts) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for id, r := range rs {
			if r.State() == raft.Leader {
				return id
			}
		}
		// Poll the in-memory cluster; a raft observer per server would be
		// more code than this test is worth.
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader")
	return ""
}

func voters(t *testing.T, r *raft.Raft) string {
	t.Helper()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		out = append(out, fmt.Sprintf("%s:%s", s.ID, s.Suffrage))
	}
	return strings.Join(out, ",")
}

func TestManualChanges(t *testing.T) {
	rs, cs := newRafts(t, 3)
	leader := waitLeader(t, rs)
	lc := cs[leader]
	var follower string
	for id := range rs {
		if id != leader {
			follower = id
			break
		}
	}
	ctx := context.Background()

	// A follower refuses with raft.ErrNotLeader (node turns it into a hint).
	if _, err := cs[follower].Change(ctx, Action{Kind: ActRemove, ID: leader}, false); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("change on a follower: err = %v, want ErrNotLeader", err)
	}
	for _, tc := range []struct {
		a    Action
		want string
	}{
		{Action{Kind: ActRemove, ID: leader}, "is the leader"},
		{Action{Kind: ActDemote, ID: leader}, "is the leader"},
		{Action{Kind: ActRemove, ID: follower}, "fewer than the minimum of 3"},
		{Action{Kind: ActDemote, ID: follower}, "fewer than the minimum of 3"},
		{Action{Kind: ActRemove, ID: "nosuch"}, "no such server"},
	} {
		_, err := lc.Change(ctx, tc.a, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s %s: err = %v, want %q", tc.a.Kind, tc.a.ID, err, tc.want)
		}
		if errors.Is(err, ErrUnsafe) && !strings.Contains(err.Error(), "--force") {
			t.Fatalf("%s %s: refusal %q does not mention --force", tc.a.Kind, tc.a.ID, err)
		}
	}
	before := voters(t, rs[leader])

	// Forced: the follower becomes a non-voter, then a voter again.
	res, err := lc.Change(ctx, Action{Kind: ActDemote, ID: follower}, true)
	if err != nil || res.Index == 0 || !strings.Contains(res.Warning, "2 voters") {
		t.Fatalf("forced demote: %+v, %v", res, err)
	}
	if got := voters(t, rs[leader]); !strings.Contains(got, follower+":Nonvoter") {
		t.Fatalf("after demote: %s", got)
	}
	if _, err := lc.Change(ctx, Action{Kind: ActAddVoter, ID: follower}, false); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if got := voters(t, rs[leader]); got != before {
		t.Fatalf("after promote: %s, want %s", got, before)
	}
	res, err = lc.Change(ctx, Action{Kind: ActAddVoter, ID: follower}, false)
	if err != nil || res.Index != 0 || !strings.Contains(res.Warning, "already a voter") {
		t.Fatalf("promote a voter: %+v, %v", res, err)
	}

	// Unreachable voters may be added while the healthy ones stay a quorum:
	// 3 of 4, 3 of 5, but not 3 of 6.
	for _, id := range []string{"ghost1", "ghost2"} {
		if _, err := lc.Change(ctx, Action{Kind: ActAddVoter, ID: id, Addr: id}, false); err != nil {
			t.Fatalf("add unreachable voter %s: %v", id, err)
		}
	}
	if _, err := lc.Change(ctx, Action{Kind: ActAddVoter, ID: "ghost3", Addr: "ghost3"}, false); err == nil ||
		!strings.Contains(err.Error(), "need 4 for a quorum, but only 3 of them are healthy") {
		t.Fatalf("add a third unreachable voter: err = %v, want a quorum refusal", err)
	}
	if _, err := lc.Change(ctx, Action{Kind: ActAddNonvoter, ID: "ghost3", Addr: "ghost1"}, false); err == nil ||
		!strings.Contains(err.Error(), "belongs to ghost1") {
		t.Fatalf("add at a taken address: err = %v", err)
	}
	for _, id := range []string{"ghost1", "ghost2"} {
		if _, err := lc.Change(ctx, Action{Kind: ActRemove, ID: id}, false); err != nil {
			t.Fatalf("remove unreachable voter %s: %v", id, err)
		}
	}
	if got := voters(t, rs[leader]); got != before {
		t.Fatalf("after removing the ghosts: %s, want %s", got, before)
	}

	// Leadership transfer to a named voter, then to whoever raft picks.
	to, err := lc.TransferLeadership(ctx, follower, false)
	if err != nil || to != follower {
		t.Fatalf("transfer to %s: %q, %v", follower, to, err)
	}
	if _, err := cs[follower].TransferLeadership(ctx, "nosuch", false); !errors.Is(err, ErrUnknownServer) && !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("transfer to an unknown server: %v", err)
	}
}
