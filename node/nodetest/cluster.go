package nodetest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/node"
)

// WaitTimeout bounds every Wait* helper.
const WaitTimeout = 30 * time.Second

// Cluster is an in-process raftkv cluster.
type Cluster struct {
	t       testing.TB
	net     *faultNet
	Members []*Member
}

// Member is one node of a Cluster. Node is nil while the member is stopped.
// Registry is the Prometheus registry of the member's current run (a new
// one on every start).
type Member struct {
	ID       string
	Dir      string
	Config   node.Config
	Node     *node.Node
	Registry *prometheus.Registry
	raftAddr string
	grpcAddr string
	httpAddr string
	log      *tlogWriter
}

// NodeConfig is the configuration an Option adjusts.
type NodeConfig = node.Config

// Option adjusts the node configuration of every member before start.
type Option func(*NodeConfig)

// ProductionTimings returns node.DefaultConfig, whose raft timings suit
// benchmarks that load the machine.
func ProductionTimings() node.Config { return node.DefaultConfig() }

// TestConfig returns the configuration the harness starts nodes with:
// node.DefaultConfig with raft timeouts short enough for tests.
func TestConfig() node.Config {
	cfg := node.DefaultConfig()
	// Short enough that elections take well under a second, long enough
	// that a leader on a loaded 2-core CI machine running -race tests does
	// not lose its lease between heartbeats.
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLeaseTimeout = 250 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.SnapshotInterval = 100 * time.Millisecond
	cfg.HTTPAddr = ""
	return cfg
}

// NewCluster starts n nodes bootstrapped as one cluster and waits for a
// leader. Shutdown runs in t.Cleanup.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, net: newFaultNet()}
	var initial []node.Peer
	raftLns := make([]net.Listener, n)
	grpcLns := make([]net.Listener, n)
	httpLns := make([]net.Listener, n)
	for i := 0; i < n; i++ {
		raftLns[i] = listen(t)
		grpcLns[i] = listen(t)
		httpLns[i] = listen(t)
		m := &Member{
			ID:       fmt.Sprintf("n%d", i+1),
			raftAddr: raftLns[i].Addr().String(),
			grpcAddr: grpcLns[i].Addr().String(),
			httpAddr: httpLns[i].Addr().String(),
		}
		m.Dir = filepath.Join(t.TempDir(), m.ID)
		c.Members = append(c.Members, m)
		initial = append(initial, node.Peer{ID: m.ID, RaftAddr: m.raftAddr})
	}
	for _, m := range c.Members {
		cfg := TestConfig()
		cfg.ID = m.ID
		cfg.DataDir = m.Dir
		cfg.RaftAddr = m.raftAddr
		cfg.GRPCAddr = m.grpcAddr
		cfg.Bootstrap = true
		cfg.InitialCluster = initial
		for _, o := range opts {
			o(&cfg)
		}
		m.Config = cfg
	}
	t.Cleanup(c.Close)
	for i, m := range c.Members {
		c.start(m, raftLns[i], grpcLns[i], httpLns[i])
	}
	c.WaitForLeader()
	return c
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

func (c *Cluster) start(m *Member, raftLn, grpcLn, httpLn net.Listener) {
	c.t.Helper()
	logger, w := newTestLogger(c.t)
	m.log = w
	m.Registry = prometheus.NewRegistry()
	n, err := node.New(m.Config, node.Deps{
		Logger:       logger.With("member", m.ID),
		RaftListener: c.net.listener(m.raftAddr, raftLn),
		GRPCListener: grpcLn,
		HTTPListener: httpLn,
		RaftDial:     c.net.dialer(m.raftAddr),
		Registry:     m.Registry,
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", m.ID, err)
	}
	m.Node = n
}

// Close stops every running member.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		if m.Node != nil {
			if err := m.Node.Close(); err != nil {
				c.t.Errorf("close %s: %v", m.ID, err)
			}
			m.Node = nil
		}
		if m.log != nil {
			m.log.close()
		}
	}
}

// Stop shuts member i down cleanly, keeping its data dir.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	m := c.Members[i]
	if m.Node == nil {
		c.t.Fatalf("stop %s: not running", m.ID)
	}
	if err := m.Node.Close(); err != nil {
		c.t.Fatalf("stop %s: %v", m.ID, err)
	}
	m.Node = nil
}

// Restart starts a stopped member again on its old addresses and data dir.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.Members[i]
	if m.Node != nil {
		c.t.Fatalf("restart %s: still running", m.ID)
	}
	raftLn, err := net.Listen("tcp", m.raftAddr)
	if err != nil {
		c.t.Fatalf("restart %s: listen raft: %v", m.ID, err)
	}
	grpcLn, err := net.Listen("tcp", m.grpcAddr)
	if err != nil {
		raftLn.Close()
		c.t.Fatalf("restart %s: listen grpc: %v", m.ID, err)
	}
	httpLn, err := net.Listen("tcp", m.httpAddr)
	if err != nil {
		raftLn.Close()
		grpcLn.Close()
		c.t.Fatalf("restart %s: listen http: %v", m.ID, err)
	}
	c.start(m, raftLn, grpcLn, httpLn)
}

// Partition cuts member i's raft traffic off from every other member, both
// ways. Its gRPC port stays reachable.
func (c *Cluster) Partition(i int) { c.net.setBlocked(c.Members[i].raftAddr, true) }

// Heal undoes Partition.
func (c *Cluster) Heal(i int) { c.net.setBlocked(c.Members[i].raftAddr, false) }

// GRPCAddr returns member i's gRPC address.
func (c *Cluster) GRPCAddr(i int) string { return c.Members[i].grpcAddr }

// HTTPAddr returns member i's HTTP address (/healthz, /readyz, /metrics).
func (c *Cluster) HTTPAddr(i int) string { return c.Members[i].httpAddr }

// Endpoints returns the gRPC addresses of the given members, or of all.
func (c *Cluster) Endpoints(members ...int) []string {
	if len(members) == 0 {
		for i := range c.Members {
			members = append(members, i)
		}
	}
	var eps []string
	for _, i := range members {
		eps = append(eps, c.Members[i].grpcAddr)
	}
	return eps
}

// Client returns a client of the given members (all when none are given),
// closed in t.Cleanup.
func (c *Cluster) Client(members ...int) *client.Client {
	c.t.Helper()
	cfg := client.DefaultConfig()
	cfg.Endpoints = c.Endpoints(members...)
	cl, err := client.New(cfg)
	if err != nil {
		c.t.Fatalf("client: %v", err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// Eventually polls cond until it returns nil or WaitTimeout passes, then
// fails the test with cond's last error.
func (c *Cluster) Eventually(what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: still failing after %s: %v", what, WaitTimeout, err)
		}
		time.Sleep(wait) // polling interval, not synchronisation
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// WaitForLeader waits until every running member agrees on one leader and
// knows its gRPC address, and returns the leader's index.
func (c *Cluster) WaitForLeader() int {
	c.t.Helper()
	leader := -1
	c.Eventually("wait for leader", func() error {
		leader = -1
		var leaderID string
		for i, m := range c.Members {
			if m.Node == nil {
				continue
			}
			_, id := m.Node.Raft().LeaderWithID()
			if id == "" {
				return fmt.Errorf("%s sees no leader", m.ID)
			}
			if leaderID != "" && string(id) != leaderID {
				return fmt.Errorf("%s sees leader %s, others %s", m.ID, id, leaderID)
			}
			leaderID = string(id)
			if m.Node.IsLeader() {
				leader = i
			}
		}
		if leader < 0 {
			return fmt.Errorf("leader %q is not a running member", leaderID)
		}
		// Followers forward to the leader's gRPC address, which they learn
		// by applying the leader's registration entry: wait until every
		// running member has, so a request to any of them can be served.
		for _, m := range c.Members {
			if m.Node == nil {
				continue
			}
			st, err := m.Node.Status(context.Background())
			if err != nil || st.GetLeaderGrpcAddr() == "" {
				return fmt.Errorf("%s does not know leader %s's address yet (%v)", m.ID, leaderID, err)
			}
		}
		return nil
	})
	return leader
}

// Leader returns the current leader's member index, waiting for one.
func (c *Cluster) Leader() int { return c.WaitForLeader() }

// Followers returns the indexes of running members that are not the leader.
func (c *Cluster) Followers() []int {
	leader := c.WaitForLeader()
	var out []int
	for i, m := range c.Members {
		if i != leader && m.Node != nil {
			out = append(out, i)
		}
	}
	return out
}

// WaitForApplied waits until every running member (or the given ones) has
// applied at least index.
func (c *Cluster) WaitForApplied(index uint64, members ...int) {
	c.t.Helper()
	if len(members) == 0 {
		for i, m := range c.Members {
			if m.Node != nil {
				members = append(members, i)
			}
		}
	}
	c.Eventually(fmt.Sprintf("wait for applied index %d", index), func() error {
		for _, i := range members {
			m := c.Members[i]
			if m.Node == nil {
				return fmt.Errorf("%s is stopped", m.ID)
			}
			if got := m.Node.AppliedIndex(); got < index {
				return fmt.Errorf("%s applied %d", m.ID, got)
			}
		}
		return nil
	})
}

// WaitForConvergence waits until every running member has applied the
// leader's last index and all report the same state hash.
func (c *Cluster) WaitForConvergence() {
	c.t.Helper()
	c.Eventually("wait for convergence", func() error {
		var want []byte
		var wantIdx uint64
		for _, m := range c.Members {
			if m.Node == nil {
				continue
			}
			sh, err := m.Node.StateHash(context.Background())
			if err != nil {
				return err
			}
			idx, sum := sh.GetAppliedIndex(), sh.GetSha256()
			if want == nil {
				want, wantIdx = sum, idx
				continue
			}
			if idx != wantIdx || !slices.Equal(sum, want) {
				return fmt.Errorf("%s at index %d hash %x, others at %d hash %x", m.ID, idx, sum, wantIdx, want)
			}
		}
		return nil
	})
}

// IsVoter reports whether id is a voter in member i's raft configuration.
func (c *Cluster) IsVoter(i int, id string) bool {
	f := c.Members[i].Node.Raft().GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}
