//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

// The membership tests start raftkvd processes themselves (not through
// scripts/cluster.sh): they need random start orders, nodes that come and
// go under new ids, and per-node flags.

// gossipKey and wrongKey are base64 AES-256 keys.
const (
	gossipKey = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="
	wrongKey  = "OTg3NjU0MzIxMDk4NzY1NDMyMTA5ODc2NTQzMjEwOTg="
)

// mnode is one raftkvd process of a membership test.
type mnode struct {
	id                   string
	dir                  string
	grpc, raft, gossip   string
	logPath              string
	args                 []string
	cmd                  *exec.Cmd
	exited               chan struct{}
	started              time.Time
	cli                  *client.Client // this node only
	mu                   sync.Mutex
	exitErr              error
	killed, expectedExit bool
}

// mcluster is a set of raftkvd processes started by one test.
type mcluster struct {
	t     *testing.T
	bin   string
	dir   string
	join  []string // gossip addresses every node is told to --join
	extra []string // flags for every node
	mu    sync.Mutex
	nodes map[string]*mnode
	ports map[int]bool
}

func newMCluster(t *testing.T, extra ...string) *mcluster {
	t.Helper()
	bin := os.Getenv("RAFTKV_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot(t), "bin")
	}
	for _, b := range []string{"raftkvd", "raftkvctl"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s missing in %s (run `make build`): %v", b, bin, err)
		}
	}
	c := &mcluster{t: t, bin: bin, dir: t.TempDir(), extra: extra, nodes: map[string]*mnode{}, ports: map[int]bool{}}
	t.Cleanup(c.cleanup)
	return c
}

// freePort returns a port free for TCP and UDP on 127.0.0.1 that this test
// has not handed out before.
func (c *mcluster) freePort() int {
	c.t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.t.Fatalf("listen: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		pc.Close()
		if !c.ports[port] {
			c.ports[port] = true
			return port
		}
	}
	c.t.Fatal("no free port")
	return 0
}

// define creates a node's addresses and data dir without starting it.
func (c *mcluster) define(id string) *mnode {
	n := &mnode{
		id:      id,
		dir:     filepath.Join(c.dir, id),
		grpc:    fmt.Sprintf("127.0.0.1:%d", c.freePort()),
		raft:    fmt.Sprintf("127.0.0.1:%d", c.freePort()),
		gossip:  fmt.Sprintf("127.0.0.1:%d", c.freePort()),
		logPath: filepath.Join(c.dir, id+".log"),
	}
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{n.grpc}
	cli, err := client.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	n.cli = cli
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

// start launches n with the cluster's common flags plus args.
func (c *mcluster) start(n *mnode, args ...string) {
	c.t.Helper()
	if err := os.MkdirAll(n.dir, 0o750); err != nil {
		c.t.Fatal(err)
	}
	all := []string{
		"--id", n.id, "--data-dir", n.dir,
		"--grpc-addr", n.grpc, "--raft-addr", n.raft, "--http-addr", "",
		"--gossip-addr", n.gossip, "--join", strings.Join(c.join, ","),
		"--gossip-profile", "local",
		"--server-stabilization-time", "1s",
		"--reconcile-interval", "250ms",
	}
	all = append(append(all, c.extra...), args...)
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== start %s %s\n", n.id, strings.Join(all, " "))
	cmd := exec.Command(filepath.Join(c.bin, "raftkvd"), all...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "RAFTKV_LOG_LEVEL=info")
	n.mu.Lock()
	n.args, n.cmd, n.exited, n.killed, n.expectedExit, n.exitErr = all, cmd, make(chan struct{}), false, false, nil
	n.mu.Unlock()
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start %s: %v", n.id, err)
	}
	n.started = time.Now()
	go func(exited chan struct{}) {
		err := cmd.Wait() // reaps the process
		logf.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(exited)
	}(n.exited)
}

// kill9 kills n with SIGKILL and waits until it is gone.
func (c *mcluster) kill9(n *mnode) {
	c.t.Helper()
	n.mu.Lock()
	n.killed = true
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill -9 %s: %v", n.id, err)
	}
	<-exited
}

// terminate sends SIGTERM and waits for a clean exit.
func (c *mcluster) terminate(n *mnode) {
	c.t.Helper()
	n.mu.Lock()
	n.expectedExit = true
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM %s: %v", n.id, err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s did not exit 30s after SIGTERM", n.id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exitErr != nil {
		c.t.Fatalf("%s exited with %v after SIGTERM", n.id, n.exitErr)
	}
}

func (n *mnode) running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return n.cmd != nil
	}
}

func (c *mcluster) cleanup() {
	c.mu.Lock()
	nodes := make([]*mnode, 0, len(c.nodes))
	for _, n := range c.nodes {
		nodes = append(nodes, n)
	}
	c.mu.Unlock()
	for _, n := range nodes {
		if n.cmd != nil && n.running() {
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.exited
		}
		n.cli.Close()
		if c.t.Failed() {
			if b, err := os.ReadFile(n.logPath); err == nil {
				c.t.Logf("--- %s log (last 6 KiB) ---\n%s", n.id, tail(b, 6144))
			}
		}
	}
}

// unexpectedExit fails the test if a node died on its own.
func (c *mcluster) unexpectedExit() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.cmd == nil || n.running() {
			continue
		}
		n.mu.Lock()
		bad := !n.killed && !n.expectedExit
		err := n.exitErr
		n.mu.Unlock()
		if bad {
			return fmt.Errorf("%s exited unexpectedly: %v", n.id, err)
		}
	}
	return nil
}

// live returns the running nodes.
func (c *mcluster) live() []*mnode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*mnode
	for _, n := range c.nodes {
		if n.cmd != nil && n.running() {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (c *mcluster) node(id string) *mnode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *mcluster) endpoints() string {
	var eps []string
	for _, n := range c.live() {
		eps = append(eps, n.grpc)
	}
	return strings.Join(eps, ",")
}

// ctl runs raftkvctl against the live nodes.
func (c *mcluster) ctl(args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	x := exec.CommandContext(ctx, filepath.Join(c.bin, "raftkvctl"), append([]string{"--endpoints", c.endpoints(), "--timeout", "10s"}, args...)...)
	var stdout, stderr strings.Builder
	x.Stdout, x.Stderr = &stdout, &stderr
	err := x.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		code = -1
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), code
}

// mview is the cluster as one node's member list reports it.
type mview struct {
	leader  string
	members map[string]*kvpb.Member
}

func (v mview) ids(suffrage string) []string {
	var out []string
	for id, m := range v.members {
		if m.GetSuffrage() == suffrage {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// memberView asks n for the member list.
func memberView(n *mnode) (mview, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := n.cli.MemberList(ctx)
	if err != nil {
		return mview{}, err
	}
	v := mview{members: map[string]*kvpb.Member{}}
	for _, m := range resp.GetMembers() {
		v.members[m.GetId()] = m
		if m.GetIsLeader() {
			v.leader = m.GetId()
		}
	}
	return v, nil
}

// leaderView returns the member list as the current leader reports it,
// after checking that every live node agrees on who leads.
func (c *mcluster) leaderView() (mview, *mnode, error) {
	var leader string
	for _, n := range c.live() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := n.cli.Status(ctx, n.grpc)
		cancel()
		if err != nil {
			return mview{}, nil, fmt.Errorf("%s: %w", n.id, err)
		}
		if st.GetLeaderId() == "" || (leader != "" && st.GetLeaderId() != leader) {
			return mview{}, nil, fmt.Errorf("%s sees leader %q, others %q", n.id, st.GetLeaderId(), leader)
		}
		leader = st.GetLeaderId()
	}
	ln := c.node(leader)
	if ln == nil || !ln.running() {
		return mview{}, nil, fmt.Errorf("leader %q is not a live node of this test", leader)
	}
	v, err := memberView(ln)
	return v, ln, err
}

// waitVoters waits until the leader's member list has exactly the voters
// want (sorted ids), no other members in the raft configuration, and every
// live voter healthy.
func (c *mcluster) waitVoters(what string, timeout time.Duration, want ...string) mview {
	c.t.Helper()
	var v mview
	eventually(c.t, what, timeout, func() error {
		if err := c.unexpectedExit(); err != nil {
			c.t.Fatal(err)
		}
		var err error
		if v, _, err = c.leaderView(); err != nil {
			return err
		}
		if got := v.ids("Voter"); !slices.Equal(got, want) {
			return fmt.Errorf("voters %v, want %v", got, want)
		}
		if nv := append(v.ids("Nonvoter"), v.ids("Staging")...); len(nv) > 0 {
			return fmt.Errorf("non-voters %v still in the configuration", nv)
		}
		for _, id := range want {
			if n := c.node(id); n != nil && n.running() && !v.members[id].GetHealthy() {
				return fmt.Errorf("voter %s not healthy: %s %s", id, v.members[id].GetUnhealthyReason(), v.members[id].GetError())
			}
		}
		return nil
	})
	return v
}

// mwriter puts keys w/NNNNNN one after another until stopped and remembers
// each acknowledged one with its revision.
type mwriter struct {
	cli    *client.Client
	mu     sync.Mutex
	acked  map[string]int64
	failed int
	stop   chan struct{}
	done   chan struct{}
}

func startMWriter(t *testing.T, endpoints []string) *mwriter {
	cfg := client.DefaultConfig()
	cfg.Endpoints = endpoints
	cli, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &mwriter{cli: cli, acked: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(5 * time.Millisecond) // load pacing, ~200 puts/s at most
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			key := fmt.Sprintf("w/%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			resp, err := cli.Put(ctx, &kvpb.PutRequest{Key: []byte(key), Value: []byte(key)})
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acked[key] = resp.GetHeader().GetRevision()
			} else {
				w.failed++
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.halt(); cli.Close() })
	return w
}

func (w *mwriter) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *mwriter) snapshot() (map[string]int64, int64, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var maxRev int64
	for _, r := range w.acked {
		maxRev = max(maxRev, r)
	}
	return cloneAcked(w.acked), maxRev, w.failed
}

func cloneAcked(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// checkWrites waits until every live voter has applied the newest
// acknowledged write, then reads each voter's own store (serializable) and
// checks that every acknowledged write is there.
func (c *mcluster) checkWrites(step string, w *mwriter, voters []string) {
	c.t.Helper()
	acked, maxRev, failed := w.snapshot()
	if len(acked) == 0 {
		c.t.Fatalf("%s: no write acknowledged yet", step)
	}
	for _, id := range voters {
		n := c.node(id)
		if n == nil || !n.running() {
			continue
		}
		eventually(c.t, step+": "+id+" applies the acknowledged writes", 30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			st, err := n.cli.Status(ctx, n.grpc)
			if err != nil {
				return err
			}
			if int64(st.GetAppliedIndex()) < maxRev {
				return fmt.Errorf("applied %d < %d", st.GetAppliedIndex(), maxRev)
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := n.cli.Range(ctx, &kvpb.RangeRequest{Key: []byte("w/"), Prefix: true, KeysOnly: true,
			Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
		cancel()
		if err != nil {
			c.t.Fatalf("%s: scan %s: %v", step, id, err)
		}
		have := make(map[string]bool, len(resp.GetKvs()))
		for _, kv := range resp.GetKvs() {
			have[string(kv.GetKey())] = true
		}
		var missing []string
		for k := range acked {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			c.t.Fatalf("%s: %s misses %d of %d acknowledged writes, first %v", step, id, len(missing), len(acked), missing[:min(5, len(missing))])
		}
	}
	c.t.Logf("%s: %d acknowledged writes present on voters %v (%d puts failed or unknown so far)", step, len(acked), voters, failed)
}

// bootstrapped counts "bootstrapped new cluster" lines in the nodes' logs.
func (c *mcluster) bootstrapped(ids ...string) int {
	total := 0
	for _, id := range ids {
		b, _ := os.ReadFile(c.node(id).logPath)
		total += strings.Count(string(b), "bootstrapped new cluster")
	}
	return total
}

// TestBootstrapExpectFormsOneCluster starts three nodes with
// --bootstrap-expect 3 --join in a random order, ten times, and checks that
// they form exactly one cluster with all three as voters. On the last round
// nodes with a wrong key, and with none, try to join and never do.
func TestBootstrapExpectFormsOneCluster(t *testing.T) {
	const rounds = 10
	for r := range rounds {
		c := newMCluster(t, "--gossip-key", gossipKey)
		ids := []string{"node1", "node2", "node3"}
		for _, id := range ids {
			c.join = append(c.join, c.define(id).gossip)
		}
		order := slices.Clone(ids)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		start := time.Now()
		for _, id := range order {
			c.start(c.node(id), "--bootstrap-expect", "3")
			// A random gap, so some nodes retry their joins for a while.
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond) // start spacing, not synchronisation
		}
		v := c.waitVoters(fmt.Sprintf("round %d: one cluster of three voters", r), 30*time.Second, ids...)
		for _, id := range ids {
			nv, err := memberView(c.node(id))
			if err != nil || nv.leader != v.leader || !slices.Equal(nv.ids("Voter"), ids) {
				t.Fatalf("round %d: %s sees leader %q voters %v (%v), leader's mview: %q %v", r, id, nv.leader, nv.ids("Voter"), err, v.leader, ids)
			}
		}
		if got := c.bootstrapped(ids...); got != 1 {
			t.Fatalf("round %d: %d nodes bootstrapped, want exactly 1", r, got)
		}
		t.Logf("round %d: start order %v, one cluster of 3 voters after %s, leader %s", r, order, time.Since(start).Round(time.Millisecond), v.leader)

		if r == rounds-1 {
			wrong := c.define("node4")
			c.start(wrong, "--bootstrap-expect", "3", "--gossip-key", wrongKey)
			none := c.define("node5")
			c.start(none, "--bootstrap-expect", "3", "--gossip-key", "")
			// Wait until both have retried their joins a few times, then
			// check nobody let them in.
			eventually(t, "outsiders retried their joins", 30*time.Second, func() error {
				for _, n := range []*mnode{wrong, none} {
					b, _ := os.ReadFile(n.logPath)
					if strings.Count(string(b), "gossip join failed")+strings.Count(string(b), "gossip join still failing") < 1 ||
						time.Since(n.started) < 3*time.Second {
						return fmt.Errorf("%s has not retried for 3s yet", n.id)
					}
				}
				return nil
			})
			for _, n := range append([]*mnode{wrong, none}, c.node("node1"), c.node("node2"), c.node("node3")) {
				nv, err := memberView(n)
				if err != nil {
					t.Fatalf("member list of %s: %v", n.id, err)
				}
				outsider := n == wrong || n == none
				for id, m := range nv.members {
					if (outsider && id != n.id) || (!outsider && !slices.Contains(ids, id)) {
						t.Fatalf("%s lists %s (%s, gossip %s): a node without the right key got in", n.id, id, m.GetSuffrage(), m.GetGossipStatus())
					}
				}
			}
			for _, n := range []*mnode{wrong, none} {
				b, _ := os.ReadFile(n.logPath)
				if strings.Contains(string(b), "joined gossip") || strings.Contains(string(b), "bootstrapped new cluster") {
					t.Fatalf("%s joined or bootstrapped although its key is wrong", n.id)
				}
			}
		}
		c.cleanup() // kill this round's nodes now rather than at the end
		c.mu.Lock()
		c.nodes = map[string]*mnode{}
		c.mu.Unlock()
	}
}

// TestMembershipLifecycle changes the membership under a steady write load:
// 3 → 5 (non-voters first, then promoted) → 3 (leave on terminate), two
// leadership transfers, kill -9 of a follower, its return with a wiped data
// dir under the same id, then under a new id. After every step each
// acknowledged write is on every live voter and the voters are the ones
// asked for. Finally unsafe removals are refused without --force.
func TestMembershipLifecycle(t *testing.T) {
	c := newMCluster(t, "--bootstrap-expect", "3", "--dead-server-cleanup", "2s", "--leave-on-terminate")
	first := []string{"node1", "node2", "node3"}
	for _, id := range first {
		c.join = append(c.join, c.define(id).gossip)
	}
	for _, id := range first {
		c.start(c.node(id))
	}
	c.waitVoters("bootstrap", 30*time.Second, first...)
	w := startMWriter(t, []string{c.node("node1").grpc, c.node("node2").grpc, c.node("node3").grpc})
	eventually(t, "first writes acknowledged", 10*time.Second, func() error {
		if acked, _, _ := w.snapshot(); len(acked) < 20 {
			return fmt.Errorf("%d acked", len(acked))
		}
		return nil
	})
	c.checkWrites("bootstrap", w, first)

	// Grow 3 → 5: both new nodes appear as non-voters before they vote.
	seenNonvoter := map[string]bool{}
	for _, id := range []string{"node4", "node5"} {
		c.start(c.define(id))
	}
	five := []string{"node1", "node2", "node3", "node4", "node5"}
	voterAt := map[string]time.Duration{}
	eventually(t, "grow to five voters", 60*time.Second, func() error {
		v, _, err := c.leaderView()
		if err != nil {
			return err
		}
		for _, id := range []string{"node4", "node5"} {
			m := v.members[id]
			if m == nil {
				continue
			}
			if m.GetSuffrage() == "Nonvoter" {
				seenNonvoter[id] = true
			}
			if _, ok := voterAt[id]; !ok && m.GetSuffrage() == "Voter" {
				voterAt[id] = time.Since(c.node(id).started)
			}
		}
		if got := v.ids("Voter"); !slices.Equal(got, five) {
			return fmt.Errorf("voters %v", got)
		}
		return nil
	})
	c.waitVoters("grow to five voters", 30*time.Second, five...)
	for _, id := range []string{"node4", "node5"} {
		if !seenNonvoter[id] {
			t.Fatalf("%s was never seen as a non-voter before it became a voter", id)
		}
	}
	t.Logf("grow: start to voter: node4 %s, node5 %s (stabilization 1s; a single new node waits for a second one to keep voters odd)",
		voterAt["node4"].Round(time.Millisecond), voterAt["node5"].Round(time.Millisecond))
	c.checkWrites("grow 3→5", w, five)

	// Shrink 5 → 3: SIGTERM with --leave-on-terminate, the first time on
	// the leader, which hands leadership over before it leaves.
	if out, errOut, code := c.ctl("leader", "transfer", "--to", "node5"); code != 0 {
		t.Fatalf("leader transfer --to node5: exit %d: %s %s", code, out, errOut)
	}
	eventually(t, "node5 leads", 30*time.Second, func() error {
		_, ln, err := c.leaderView()
		if err != nil {
			return err
		}
		if ln.id != "node5" {
			return fmt.Errorf("leader is %s", ln.id)
		}
		return nil
	})
	c.terminate(c.node("node5"))
	b, _ := os.ReadFile(c.node("node5").logPath)
	for _, want := range []string{"shutting down as leader: transferring leadership first", "left the cluster: removed from the raft configuration"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("node5 log lacks %q", want)
		}
	}
	c.waitVoters("shrink to four voters", 30*time.Second, "node1", "node2", "node3", "node4")
	c.terminate(c.node("node4"))
	c.waitVoters("shrink to three voters", 30*time.Second, first...)
	c.checkWrites("shrink 5→3", w, first)

	// Two leadership transfers through raftkvctl.
	for i := range 2 {
		v, ln, err := c.leaderView()
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"leader", "transfer"}
		var to string
		if i == 1 {
			for _, id := range first {
				if id != ln.id {
					to = id
				}
			}
			args = append(args, "--to", to)
		}
		out, errOut, code := c.ctl(args...)
		if code != 0 {
			t.Fatalf("raftkvctl %v: exit %d: %s %s", args, code, out, errOut)
		}
		eventually(t, "new leader after transfer", 30*time.Second, func() error {
			nv, nl, err := c.leaderView()
			if err != nil {
				return err
			}
			if nl.id == ln.id || (to != "" && nl.id != to) {
				return fmt.Errorf("leader still %s (want %q)", nl.id, to)
			}
			_ = nv
			return nil
		})
		_ = v
		t.Logf("transfer %d: %s → %s", i+1, ln.id, strings.TrimSpace(out))
		c.checkWrites(fmt.Sprintf("leader transfer %d", i+1), w, first)
	}

	// kill -9 a follower.
	_, ln, err := c.leaderView()
	if err != nil {
		t.Fatal(err)
	}
	var victim *mnode
	for _, id := range first {
		if id != ln.id {
			victim = c.node(id)
			break
		}
	}
	c.kill9(victim)
	eventually(t, "victim shown failed, still a voter", 30*time.Second, func() error {
		v, _, err := c.leaderView()
		if err != nil {
			return err
		}
		m := v.members[victim.id]
		if m == nil || m.GetSuffrage() != "Voter" || m.GetGossipStatus() != "failed" {
			return fmt.Errorf("%s: %v", victim.id, m)
		}
		if got := v.ids("Voter"); !slices.Equal(got, first) {
			return fmt.Errorf("voters %v", got)
		}
		return nil
	})
	c.checkWrites("kill -9 "+victim.id, w, first)

	// Same id, wiped data dir: demoted, caught up, promoted again.
	if err := os.RemoveAll(victim.dir); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	c.waitVoters("same id back with an empty data dir", 60*time.Second, first...)
	if b, _ := os.ReadFile(c.node(ln.id).logPath); !strings.Contains(string(b), "action=demote peer="+victim.id) {
		// Leadership may have moved; any node's log will do.
		found := false
		for _, id := range first {
			b, _ := os.ReadFile(c.node(id).logPath)
			found = found || strings.Contains(string(b), "action=demote peer="+victim.id)
		}
		if !found {
			t.Fatalf("%s came back empty but was never demoted", victim.id)
		}
	}
	c.checkWrites("same id, wiped", w, first)

	// New id on new ports for the same machine: node6 replaces the victim,
	// which dead-server cleanup removes once node6 votes.
	c.kill9(victim)
	if err := os.RemoveAll(victim.dir); err != nil {
		t.Fatal(err)
	}
	n6 := c.define("node6")
	c.start(n6)
	var want []string
	for _, id := range first {
		if id != victim.id {
			want = append(want, id)
		}
	}
	want = append(want, "node6")
	slices.Sort(want)
	eventually(t, "node6 becomes a voter", 60*time.Second, func() error {
		v, _, err := c.leaderView()
		if err != nil {
			return err
		}
		if m := v.members["node6"]; m == nil || m.GetSuffrage() != "Voter" {
			return fmt.Errorf("node6: %v", m)
		}
		return nil
	})
	t.Logf("replace: node6 start to voter %s", time.Since(n6.started).Round(time.Millisecond))
	c.waitVoters("new id replaces the dead server", 60*time.Second, want...)
	c.checkWrites("new id", w, want)

	// Unsafe removals are refused without --force, with the reason.
	_, ln, err = c.leaderView()
	if err != nil {
		t.Fatal(err)
	}
	var follower string
	for _, id := range want {
		if id != ln.id {
			follower = id
		}
	}
	for _, tc := range []struct{ id, why string }{
		{ln.id, "is the leader"},
		{follower, "fewer than the minimum of 3"},
	} {
		out, errOut, code := c.ctl("member", "remove", tc.id)
		if code != 1 || !strings.Contains(errOut, tc.why) || !strings.Contains(errOut, "--force") {
			t.Fatalf("member remove %s: exit %d, stderr %q; want exit 1 and %q", tc.id, code, errOut, tc.why)
		}
		_ = out
	}
	c.waitVoters("refused removals changed nothing", 10*time.Second, want...)
	out, errOut, code := c.ctl("member", "remove", follower, "--force")
	if code != 0 {
		t.Fatalf("member remove %s --force: exit %d: %s %s", follower, code, out, errOut)
	}
	// The removed server is still running but no longer a member; stop it
	// so every live node agrees on the leader again.
	c.kill9(c.node(follower))
	rest := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return id == follower })
	c.waitVoters("forced removal", 30*time.Second, rest...)
	w.halt()
	c.checkWrites("final", w, rest)
}

// TestLeaderFailoverTime measures, ten times, how long after kill -9 of the
// leader a new leader accepts writes (default raft timings), restarting the
// old leader with its data in between.
func TestLeaderFailoverTime(t *testing.T) {
	c := newMCluster(t, "--bootstrap-expect", "3")
	ids := []string{"node1", "node2", "node3"}
	for _, id := range ids {
		c.join = append(c.join, c.define(id).gossip)
	}
	for _, id := range ids {
		c.start(c.node(id))
	}
	c.waitVoters("bootstrap", 30*time.Second, ids...)
	var times []time.Duration
	for i := range 10 {
		_, ln, err := c.leaderView()
		if err != nil {
			t.Fatal(err)
		}
		var eps []string
		for _, id := range ids {
			if id != ln.id {
				eps = append(eps, c.node(id).grpc)
			}
		}
		cfg := client.DefaultConfig()
		cfg.Endpoints = eps
		cli, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.kill9(ln)
		killed := time.Now()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_, err := cli.Put(ctx, &kvpb.PutRequest{Key: []byte(fmt.Sprintf("failover/%d", i)), Value: []byte("x")})
			cancel()
			if err == nil {
				break
			}
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("no write accepted 30s after killing leader %s: %v", ln.id, err)
			}
		}
		d := time.Since(killed)
		cli.Close()
		times = append(times, d)
		t.Logf("failover %d: leader %s killed, a write was accepted after %s", i+1, ln.id, d.Round(time.Millisecond))
		c.start(ln)
		c.waitVoters("old leader back", 30*time.Second, ids...)
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	median := (sorted[4] + sorted[5]) / 2
	t.Logf("leader kill -9 to a new leader accepting writes: median %s, min %s, max %s (n=%d)",
		median.Round(time.Millisecond), sorted[0].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond), len(sorted))
}
