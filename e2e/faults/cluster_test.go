//go:build e2e

package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

// Bounds of the liveness checks: missing one is a failure, but they are
// generous so only a real liveness bug misses them.
const (
	leaderTimeout   = 30 * time.Second
	convergeTimeout = 30 * time.Second
	exitTimeout     = 20 * time.Second
	startTimeout    = 20 * time.Second
)

// cluster is three real raftkvd processes with a TCP proxy on every
// directed raft link and every directed gRPC link between nodes: node i
// reaches node j's raft port only through links[i][j], and forwards writes
// and ReadIndex calls to j only through glinks[i][j]. Clients reach the
// nodes directly.
type cluster struct {
	t      *testing.T
	t0     time.Time // time zero of every recorded history
	bin    string
	dir    string
	logger *slog.Logger
	nodes  []*proc
	links  [][]*link // links[i][j]: i's raft traffic to j; nil on the diagonal
	glinks [][]*link // glinks[i][j]: i's forwarded gRPC calls to j
	admin  *client.Client
	args   []string // extra raftkvd flags for every node
}

// proc is one raftkvd node: its fixed addresses and data dir, and the
// process currently running it, if any.
type proc struct {
	idx      int
	id       string
	grpcAddr string
	raftAddr string
	dataDir  string
	logPath  string
	args     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd exits
	state  *os.ProcessState
	paused bool
	starts int
}

// binary returns the raftkvd under test:
//   - $RAFTKV_FAULT_BIN when set;
//   - by default a race-enabled build made once per test process (cgo and
//     gcc needed, as for `make test-unit`), so the node logs can be checked
//     for DATA RACE under faults; it costs ~15% more wall time (measured,
//     docs/faults.md);
//   - with RAFTKV_FAULT_RACE=0, $RAFTKV_BIN/raftkvd (what make builds) or a
//     plain build.
func binary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RAFTKV_FAULT_BIN"); p != "" {
		return p
	}
	race := os.Getenv("RAFTKV_FAULT_RACE") != "0"
	if !race {
		if dir := os.Getenv("RAFTKV_BIN"); dir != "" {
			p := filepath.Join(dir, "raftkvd")
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("RAFTKV_BIN=%s: %v", dir, err)
			}
			return p
		}
	}
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "raftkv-faults-bin-")
		if err != nil {
			builtErr = err
			return
		}
		builtDir = dir
		builtPath = filepath.Join(dir, "raftkvd")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		args := []string{"build", "-o", builtPath}
		env := os.Environ()
		if race {
			args = append(args, "-race")
			env = append(env, "CGO_ENABLED=1")
		}
		cmd := exec.Command("go", append(args, "./cmd/node")...)
		cmd.Dir, cmd.Env = root, env
		if out, err := cmd.CombinedOutput(); err != nil {
			builtErr = fmt.Errorf("go %s ./cmd/node (set RAFTKV_FAULT_RACE=0 to test without the race detector): %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	if builtErr != nil {
		t.Fatal(builtErr)
	}
	return builtPath
}

var (
	builtOnce sync.Once
	builtDir  string
	builtPath string
	builtErr  error
)

// TestMain removes the binary the suite built.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		_ = os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// freeAddr returns a free 127.0.0.1 port for a node to listen on, never
// one handed out before in this test process (listenFresh): the kernel may
// hand a port that was just closed out again, to the next freeAddr or to a
// proxy's listener, and a node whose address is taken fails to start (seen
// as a "duplicate endpoint" in TestCorruptRaftLog).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := listenFresh()
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newCluster starts three nodes bootstrapped as one cluster, every raft link
// proxied, and waits until they agree on a leader whose gRPC address every
// node knows (so followers can forward).
func newCluster(t *testing.T, seed uint64, logger *slog.Logger, args ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, t0: time.Now(), bin: binary(t), dir: t.TempDir(), logger: logger, args: args}
	const n = 3
	var initial []string
	for i := range n {
		p := &proc{idx: i, id: fmt.Sprintf("n%d", i+1), grpcAddr: freeAddr(t), raftAddr: freeAddr(t)}
		p.dataDir = filepath.Join(c.dir, p.id)
		p.logPath = filepath.Join(c.dir, p.id+".log")
		c.nodes = append(c.nodes, p)
		initial = append(initial, p.id+"="+p.raftAddr)
	}
	c.links, c.glinks = make([][]*link, n), make([][]*link, n)
	for i := range n {
		c.links[i], c.glinks[i] = make([]*link, n), make([]*link, n)
		for j := range n {
			if i == j {
				continue
			}
			l, err := newLink(c.nodes[i].id+"->"+c.nodes[j].id, c.nodes[j].raftAddr, seed+uint64(10*i+j), logger)
			if err != nil {
				t.Fatal(err)
			}
			c.links[i][j] = l
			g, err := newLink(c.nodes[i].id+"->"+c.nodes[j].id+" grpc", c.nodes[j].grpcAddr, seed+uint64(1000+10*i+j), logger)
			if err != nil {
				t.Fatal(err)
			}
			c.glinks[i][j] = g
		}
	}
	cfg := client.DefaultConfig()
	cfg.Endpoints = c.grpcAddrs()
	cfg.DialTimeout = time.Second
	admin, err := client.New(cfg)
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	c.admin = admin
	t.Cleanup(c.close)
	// Every test on a cluster keeps its node logs when it fails, also one
	// that failed before its own checks began (runScenario adds the
	// linearizability visualization).
	t.Cleanup(func() {
		if t.Failed() {
			if err := c.saveArtifacts(artifactDir(t)); err != nil {
				t.Logf("save artifacts: %v", err)
			} else {
				t.Logf("node logs are in %s", artifactDir(t))
			}
		}
	})
	for i, p := range c.nodes {
		p.args = append(c.nodeArgs(i), "--initial-cluster", strings.Join(initial, ","), "--bootstrap")
	}
	for i := range c.nodes {
		c.start(i)
	}
	c.waitReady()
	return c
}

// slotIDs are the server ids node slot j may run under: its own, and the
// one F12 gives it when it rejoins wiped. Every node has overrides for both,
// so a slot's links stay proxied whichever id it has.
func slotIDs(j int) []string {
	return []string{fmt.Sprintf("n%d", j+1), fmt.Sprintf("n%d", j+4)}
}

// nodeArgs are node i's flags under its current id, without the bootstrap
// flags: addresses, and the raft and gRPC overrides that send its traffic
// to every other slot, under either of the slot's ids, through that
// directed link's proxies.
func (c *cluster) nodeArgs(i int) []string {
	p := c.nodes[i]
	var raftOv, grpcOv []string
	for j := range c.nodes {
		if j == i {
			continue
		}
		for _, id := range slotIDs(j) {
			raftOv = append(raftOv, id+"="+c.links[i][j].addr())
			grpcOv = append(grpcOv, id+"="+c.glinks[i][j].addr())
		}
	}
	return append([]string{
		"--id", p.id,
		"--data-dir", p.dataDir,
		"--grpc-addr", p.grpcAddr,
		"--raft-addr", p.raftAddr,
		"--http-addr", "",
		"--raft-peer-override", strings.Join(raftOv, ","),
		"--grpc-peer-override", strings.Join(grpcOv, ","),
	}, c.args...)
}

// generation returns how many times node i was started: a serializable
// reader's view of a node starts over with each start.
func (c *cluster) generation(i int) int {
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

func (c *cluster) grpcAddrs() []string {
	var a []string
	for _, p := range c.nodes {
		a = append(a, p.grpcAddr)
	}
	return a
}

// start runs node i's process, with extra environment variables (failpoints).
func (c *cluster) start(i int, env ...string) {
	c.t.Helper()
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.state == nil {
		c.t.Fatalf("start %s: already running", p.id)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("open log of %s: %v", p.id, err)
	}
	p.starts++
	fmt.Fprintf(logf, "=== start %d of %s env=%v\n", p.starts, p.id, env)
	cmd := exec.Command(c.bin, p.args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start %s: %v", p.id, err)
	}
	logf.Close() // the child has its own copy
	p.cmd, p.state, p.paused = cmd, nil, false
	exited := make(chan struct{})
	p.exited = exited
	go func() {
		_ = cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(exited)
	}()
	c.logger.Info("started node", "node", p.id, "pid", cmd.Process.Pid, "env", env)
}

// running reports whether node i's process is alive (paused counts).
func (c *cluster) running(i int) bool {
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && p.state == nil
}

// available reports whether node i runs and is not paused.
func (c *cluster) available(i int) bool {
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && p.state == nil && !p.paused
}

// signal sends sig to node i's process.
func (c *cluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.state != nil {
		c.t.Fatalf("signal %v to %s: not running", sig, p.id)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to %s: %v", sig, p.id, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	c.logger.Info("signalled node", "node", p.id, "signal", sig.String())
}

// waitExit waits for node i's process to exit and returns its state.
func (c *cluster) waitExit(i int, timeout time.Duration) (*os.ProcessState, error) {
	p := c.nodes[i]
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return nil, fmt.Errorf("%s was never started", p.id)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		return nil, fmt.Errorf("%s did not exit within %s", p.id, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, nil
}

// kill SIGKILLs node i (paused or not) and waits for it to be gone.
func (c *cluster) kill(i int) {
	c.t.Helper()
	c.signal(i, syscall.SIGKILL)
	if _, err := c.waitExit(i, exitTimeout); err != nil {
		c.t.Fatal(err)
	}
}

// stop SIGTERMs node i and requires a clean exit (status 0).
func (c *cluster) stop(i int) error {
	p := c.nodes[i]
	if c.nodes[i].isPaused() {
		c.signal(i, syscall.SIGCONT)
	}
	c.signal(i, syscall.SIGTERM)
	st, err := c.waitExit(i, exitTimeout)
	if err != nil {
		// SIGQUIT makes the Go runtime dump every goroutine into the
		// node's log: the evidence for a hung shutdown.
		c.signal(i, syscall.SIGQUIT)
		if _, qerr := c.waitExit(i, 5*time.Second); qerr != nil {
			c.signal(i, syscall.SIGKILL)
			_, _ = c.waitExit(i, exitTimeout)
		}
		return fmt.Errorf("%w (goroutine dump in %s)", err, p.logPath)
	}
	if st.ExitCode() != 0 {
		return fmt.Errorf("%s exited with %v on SIGTERM, want status 0", p.id, st)
	}
	return nil
}

func (p *proc) isPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// close kills whatever still runs and stops the proxies. Clean shutdown is
// checked by the scenario, not here.
func (c *cluster) close() {
	for i, p := range c.nodes {
		if c.running(i) {
			p.mu.Lock()
			_ = p.cmd.Process.Kill()
			p.mu.Unlock()
			_, _ = c.waitExit(i, exitTimeout)
		}
	}
	for _, row := range append(c.links, c.glinks...) {
		for _, l := range row {
			if l != nil {
				l.close()
			}
		}
	}
	if c.admin != nil {
		_ = c.admin.Close()
	}
}

// setLink sets the faults of the directed link i->j: i's raft RPCs to j and
// the writes and ReadIndex calls i forwards to j.
func (c *cluster) setLink(i, j int, f linkFaults) {
	c.links[i][j].set(f)
	c.glinks[i][j].set(f)
}

// isolate blackholes every link to and from node i.
func (c *cluster) isolate(i int) {
	for j := range c.nodes {
		if j != i {
			c.setLink(i, j, linkFaults{mode: modeBlackhole})
			c.setLink(j, i, linkFaults{mode: modeBlackhole})
		}
	}
	c.logger.Info("isolated node", "node", c.nodes[i].id)
}

// setAllLinks sets the same faults on every link.
func (c *cluster) setAllLinks(f linkFaults) {
	for i := range c.nodes {
		for j := range c.nodes {
			if i != j {
				c.setLink(i, j, f)
			}
		}
	}
	c.logger.Info("all links", "faults", f.String())
}

// heal clears every link fault, resumes paused nodes and starts stopped
// ones (without failpoints).
func (c *cluster) heal() {
	c.setAllLinks(linkFaults{})
	for i, p := range c.nodes {
		if p.isPaused() {
			c.signal(i, syscall.SIGCONT)
		}
		if !c.running(i) {
			c.start(i)
		}
	}
}

// status asks node i for its status with a short deadline.
func (c *cluster) status(i int) (*kvpb.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.admin.Status(ctx, c.nodes[i].grpcAddr)
}

// eventually polls cond every 100ms until it returns nil or timeout passes.
func eventually(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// leader waits until every available node names the same leader, which
// itself is available and says it leads, and returns its index.
func (c *cluster) leader() (int, error) {
	leader := -1
	err := eventually(leaderTimeout, func() error {
		leader = -1
		id := ""
		for i, p := range c.nodes {
			if !c.available(i) {
				continue
			}
			st, err := c.status(i)
			if err != nil {
				return fmt.Errorf("%s: %w", p.id, err)
			}
			if st.GetLeaderId() == "" || (id != "" && st.GetLeaderId() != id) {
				return fmt.Errorf("%s sees leader %q, others %q", p.id, st.GetLeaderId(), id)
			}
			id = st.GetLeaderId()
			if st.GetLeaderId() == p.id {
				if st.GetRaftState() != "Leader" {
					return fmt.Errorf("%s is named leader but is %s", p.id, st.GetRaftState())
				}
				leader = i
			}
		}
		if leader < 0 {
			return fmt.Errorf("leader %q is not an available node", id)
		}
		return nil
	})
	return leader, err
}

// mustLeader is leader for schedules: a missing leader fails the test.
func (c *cluster) mustLeader() int {
	c.t.Helper()
	l, err := c.leader()
	if err != nil {
		c.t.Fatalf("no leader: %v", err)
	}
	return l
}

// others returns the nodes other than i.
func (c *cluster) others(i int) []int {
	var o []int
	for j := range c.nodes {
		if j != i {
			o = append(o, j)
		}
	}
	return o
}

// waitReady waits for a leader, for every node to know the leader's gRPC
// address (so writes sent to followers can be forwarded), and for every
// node's own registration to be applied (so no SetMember entry is still to
// come).
func (c *cluster) waitReady() {
	c.t.Helper()
	if _, err := c.leader(); err != nil {
		c.t.Fatalf("cluster start: %v", err)
	}
	err := eventually(startTimeout, func() error {
		for i, p := range c.nodes {
			st, err := c.status(i)
			if err != nil {
				return err
			}
			if st.GetLeaderGrpcAddr() == "" {
				return fmt.Errorf("%s does not know the leader's gRPC address yet", p.id)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ml, err := c.admin.MemberList(ctx)
		if err != nil {
			return err
		}
		for _, m := range ml.GetMembers() {
			if m.GetGrpcAddr() == "" {
				return fmt.Errorf("%s has not registered its gRPC address yet", m.GetId())
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("cluster start: %v", err)
	}
}

// waitFor waits for d. Schedules use it to pace faults (how long a partition
// lasts, how much load runs between faults); it never stands in for
// waiting on a condition, which eventually does by polling.
func waitFor(d time.Duration) { <-time.After(d) }

// converge waits until every node reports the same applied index and state
// hash, and returns them.
func (c *cluster) converge() (uint64, []byte, error) {
	var idx uint64
	var sum []byte
	err := eventually(convergeTimeout, func() error {
		var err error
		idx, sum, err = c.convergedOnce()
		return err
	})
	return idx, sum, err
}

// convergedOnce asks every node once for its applied index and state hash
// and fails unless all agree.
func (c *cluster) convergedOnce() (uint64, []byte, error) {
	var idx uint64
	var sum []byte
	for i, p := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h, err := c.admin.StateHash(ctx, p.grpcAddr)
		cancel()
		if err != nil {
			return 0, nil, err
		}
		if i == 0 {
			idx, sum = h.GetAppliedIndex(), h.GetSha256()
			continue
		}
		if h.GetAppliedIndex() != idx || !bytes.Equal(h.GetSha256(), sum) {
			return 0, nil, fmt.Errorf("%s at %d hash %x, n1 at %d hash %x", p.id, h.GetAppliedIndex(), h.GetSha256(), idx, sum)
		}
	}
	return idx, sum, nil
}

// logProblems returns the lines of every node log that mention a panic or a
// data race, plus the failpoint lines (not problems, reported separately).
func (c *cluster) logProblems() (problems []string, err error) {
	for _, p := range c.nodes {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			return nil, fmt.Errorf("read log of %s: %w", p.id, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "panic") || strings.Contains(line, "DATA RACE") || strings.HasPrefix(line, "fatal error:") {
				problems = append(problems, p.id+": "+line)
			}
		}
	}
	return problems, nil
}

// logContains reports whether node i's log has a line containing s.
func (c *cluster) logContains(i int, s string) bool {
	b, err := os.ReadFile(c.nodes[i].logPath)
	return err == nil && bytes.Contains(b, []byte(s))
}

// saveArtifacts copies every node log into dir.
func (c *cluster) saveArtifacts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create artifact dir: %w", err)
	}
	var errs []error
	for _, p := range c.nodes {
		if err := copyFile(p.logPath, filepath.Join(dir, p.id+".log")); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// artifactDir is where a failed test leaves its evidence:
// $RAFTKV_FAULT_ARTIFACTS/<test> or e2e/artifacts/faults/<test> (gitignored).
func artifactDir(t *testing.T) string {
	root := os.Getenv("RAFTKV_FAULT_ARTIFACTS")
	if root == "" {
		_, file, _, _ := runtime.Caller(0)
		root = filepath.Join(filepath.Dir(filepath.Dir(file)), "artifacts", "faults")
	}
	return filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
}
