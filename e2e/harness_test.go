//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procCluster is a cluster of real raftkvd processes run by scripts/cluster.sh.
type procCluster struct {
	t        *testing.T
	root     string // repository root
	bin      string
	dir      string
	portBase int
	nodes    int
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// freePortBase finds a base port whose per-node ports (gRPC, raft, HTTP,
// gossip: base+10*i+1..4) are all free.
func freePortBase(t *testing.T, nodes int) int {
	t.Helper()
	for base := 20000 + os.Getpid()%200*100; base < 60000; base += 1000 {
		free := true
		for i := 0; i < nodes && free; i++ {
			for off := 1; off <= 4; off++ {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+10*i+off))
				if err != nil {
					free = false
					break
				}
				ln.Close()
			}
		}
		if free {
			return base
		}
	}
	t.Fatal("no free port range for the cluster")
	return 0
}

func startCluster(t *testing.T, nodes int, env ...string) *procCluster {
	t.Helper()
	root := repoRoot(t)
	bin := os.Getenv("RAFTKV_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	for _, b := range []string{"raftkvd", "raftkvctl"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s missing in %s (run `make build`): %v", b, bin, err)
		}
	}
	c := &procCluster{t: t, root: root, bin: bin, dir: t.TempDir(), nodes: nodes, portBase: freePortBase(t, nodes)}
	t.Cleanup(func() {
		if t.Failed() {
			for i := 1; i <= nodes; i++ {
				if b, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d.log", i))); err == nil {
					t.Logf("--- node%d.log (last 4 KiB) ---\n%s", i, tail(b, 4096))
				}
			}
		}
		c.script("down")
	})
	out, err := c.script("up", env...)
	if err != nil {
		t.Fatalf("cluster.sh up: %v\n%s", err, out)
	}
	return c
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (c *procCluster) script(cmd string, env ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	x := exec.CommandContext(ctx, filepath.Join(c.root, "scripts", "cluster.sh"), cmd)
	x.Env = append(os.Environ(),
		"RAFTKV_CLUSTER_DIR="+c.dir,
		"RAFTKV_BIN="+c.bin,
		"RAFTKV_NO_BUILD=1",
		"RAFTKV_PORT_BASE="+strconv.Itoa(c.portBase),
		"RAFTKV_NODES="+strconv.Itoa(c.nodes),
	)
	x.Env = append(x.Env, env...)
	out, err := x.CombinedOutput()
	return string(out), err
}

func (c *procCluster) grpcAddr(i int) string {
	return fmt.Sprintf("127.0.0.1:%d", c.portBase+10*(i-1)+1)
}

func (c *procCluster) endpoints(nodes ...int) string {
	if len(nodes) == 0 {
		for i := 1; i <= c.nodes; i++ {
			nodes = append(nodes, i)
		}
	}
	var eps []string
	for _, i := range nodes {
		eps = append(eps, c.grpcAddr(i))
	}
	return strings.Join(eps, ",")
}

// ctl runs raftkvctl against endpoints and returns stdout, stderr and the
// exit code.
func (c *procCluster) ctl(endpoints string, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	x := exec.CommandContext(ctx, filepath.Join(c.bin, "raftkvctl"), append([]string{"--endpoints", endpoints, "--timeout", "10s"}, args...)...)
	var stdout, stderr bytes.Buffer
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

func (c *procCluster) mustCtl(endpoints string, args ...string) string {
	c.t.Helper()
	out, errOut, code := c.ctl(endpoints, args...)
	if code != 0 {
		c.t.Fatalf("raftkvctl %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

func (c *procCluster) pid(i int) int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d.pid", i)))
	if err != nil {
		c.t.Fatalf("read pid of node%d: %v", i, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		c.t.Fatalf("pid of node%d: %v", i, err)
	}
	return pid
}

type nodeStatus struct {
	Endpoint string `json:"endpoint"`
	Status   *struct {
		NodeID       string `json:"node_id"`
		RaftState    string `json:"raft_state"`
		LeaderID     string `json:"leader_id"`
		AppliedIndex string `json:"applied_index"`
		KeyCount     string `json:"key_count"`
	} `json:"status"`
	Error string `json:"error"`
}

func (c *procCluster) status(endpoints string) []nodeStatus {
	c.t.Helper()
	out, _, _ := c.ctl(endpoints, "-o", "json", "status")
	var st []nodeStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("parse status json: %v\n%s", err, out)
	}
	return st
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// leader waits until the given nodes (all when none) agree on a leader that
// is one of them, and returns its node number.
func (c *procCluster) leader(nodes ...int) int {
	c.t.Helper()
	leader := 0
	eventually(c.t, "agree on a leader", 30*time.Second, func() error {
		leader = 0
		var id string
		for _, s := range c.status(c.endpoints(nodes...)) {
			if s.Status == nil {
				return fmt.Errorf("%s: %s", s.Endpoint, s.Error)
			}
			if s.Status.LeaderID == "" || (id != "" && s.Status.LeaderID != id) {
				return fmt.Errorf("%s sees leader %q, others %q", s.Endpoint, s.Status.LeaderID, id)
			}
			id = s.Status.LeaderID
		}
		n, err := strconv.Atoi(strings.TrimPrefix(id, "node"))
		if err != nil {
			return fmt.Errorf("leader id %q: %w", id, err)
		}
		if len(nodes) > 0 && !slices.Contains(nodes, n) {
			return fmt.Errorf("leader is node%d, not one of %v", n, nodes)
		}
		leader = n
		return nil
	})
	return leader
}

// alive reports whether pid is a running process. A zombie (exited, not yet
// reaped by a PID 1 that never reaps) counts as gone.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}
