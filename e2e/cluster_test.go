//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/raftkv/raftkv/api/kvpb"
)

// TestKillLeaderKeepsAcknowledgedWrites is the core end-to-end scenario:
// 1000 puts through raftkvctl, kill -9 of the leader, every key readable
// from the survivors, new writes accepted, the old leader restarts and
// catches up, and `down` leaves no process behind.
func TestKillLeaderKeepsAcknowledgedWrites(t *testing.T) {
	c := startCluster(t, 3)
	all := c.endpoints()

	const keys = 1000
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out, errOut, code := c.ctl(all, "put", fmt.Sprintf("e2e/%04d", i), fmt.Sprintf("value-%04d", i))
				if code != 0 {
					errs <- fmt.Errorf("put %d: exit %d: %s %s", i, code, out, errOut)
				}
			}
		}()
	}
	for i := 0; i < keys; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err) // every put was acknowledged, or the test stops here
	}

	leader := c.leader()
	leaderPID := c.pid(leader)
	if err := syscall.Kill(leaderPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 leader node%d: %v", leader, err)
	}
	eventually(t, "leader process gone", 10*time.Second, func() error {
		if alive(leaderPID) {
			return fmt.Errorf("pid %d still alive", leaderPID)
		}
		return nil
	})
	var survivors []int
	for i := 1; i <= 3; i++ {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	c.leader(survivors...)

	out := c.mustCtl(c.endpoints(survivors...), "-o", "json", "scan", "e2e/")
	var rr kvpb.RangeResponse
	if err := protojson.Unmarshal([]byte(out), &rr); err != nil {
		t.Fatalf("parse scan output: %v\n%.500s", err, out)
	}
	if len(rr.GetKvs()) != keys {
		t.Fatalf("survivors hold %d keys, want %d", len(rr.GetKvs()), keys)
	}
	for i, kv := range rr.GetKvs() {
		if wantK, wantV := fmt.Sprintf("e2e/%04d", i), fmt.Sprintf("value-%04d", i); string(kv.GetKey()) != wantK || string(kv.GetValue()) != wantV {
			t.Fatalf("key %d = %q=%q, want %q=%q", i, kv.GetKey(), kv.GetValue(), wantK, wantV)
		}
	}

	c.mustCtl(c.endpoints(survivors...), "put", "after-kill", "yes")

	if out, err := c.script("up"); err != nil {
		t.Fatalf("restart old leader with cluster.sh up: %v\n%s", err, out)
	}
	eventually(t, "old leader catches up", 30*time.Second, func() error {
		out, errOut, code := c.ctl(c.grpcAddr(leader), "get", "after-kill", "--consistency", "serializable", "--print-value-only")
		if code != 0 || strings.TrimSpace(out) != "yes" {
			return fmt.Errorf("node%d: exit %d %q %s", leader, code, out, errOut)
		}
		var applied []string
		for _, s := range c.status(all) {
			if s.Status == nil {
				return fmt.Errorf("%s: %s", s.Endpoint, s.Error)
			}
			applied = append(applied, s.Status.AppliedIndex)
		}
		if len(slices.Compact(slices.Clone(applied))) != 1 {
			return fmt.Errorf("applied indexes differ: %v", applied)
		}
		return nil
	})

	pids := []int{c.pid(1), c.pid(2), c.pid(3)}
	if out, err := c.script("down"); err != nil {
		t.Fatalf("cluster.sh down: %v\n%s", err, out)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Fatalf("pid %d still running after down", pid)
		}
	}
}

// TestMissingKeyExitCode checks raftkvctl's documented exit codes against a
// real cluster.
func TestMissingKeyExitCode(t *testing.T) {
	c := startCluster(t, 3)
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"put", []string{"put", "k", "v"}, 0},
		{"get existing", []string{"get", "k"}, 0},
		{"get missing", []string{"get", "no-such-key"}, 3},
		{"unknown command", []string{"frobnicate"}, 2},
		{"bad flag", []string{"get", "--no-such-flag", "k"}, 2},
		{"oversize key", []string{"put", strings.Repeat("k", 4097), "v"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := c.ctl(c.endpoints(), tc.args...)
			if code != tc.want {
				t.Fatalf("raftkvctl %v: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args[:1], code, tc.want, out, errOut)
			}
		})
	}
}
