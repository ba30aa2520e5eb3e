//go:build e2e

package faults

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
)

// nodeArgs are the raftkvd flags of every scenario beyond addresses: default
// raft timings, but snapshots small and frequent so that snapshotting,
// compaction and InstallSnapshot happen in every scenario, not only F2.
var nodeArgs = []string{
	"--snapshot-threshold", "256",
	"--snapshot-interval", "1s",
	"--trailing-logs", "64",
	"--log-level", "info",
}

// afterHeal is how long the workload keeps running after the last fault
// healed, so the history covers the recovery too.
const afterHeal = 3 * time.Second

// scenario is one row of the fault matrix. run injects one round of faults
// while the workload runs and must leave every fault it injected healed (or
// leave it to the final heal). Later scenarios (F11 backup and restore, F12
// membership) are added to scenarios once their features exist.
type scenario struct {
	name   string
	title  string
	rounds int
	run    func(s *scenarioRun, round int)
}

// scenarioRun is the state one scenario's fault schedule works with.
type scenarioRun struct {
	t   *testing.T
	c   *cluster
	w   *workload
	rng *rand.Rand
	log *slog.Logger
	// recover is the longest time from the end of a fault to the first
	// acknowledged write.
	recover time.Duration
}

// healed is called right after a round ended its fault (healed the links,
// resumed or restarted the nodes): it waits until a write is acknowledged,
// records how long that took (the scenario's time to recover is the longest
// of its rounds), then waits until all nodes agree on the leader.
func (s *scenarioRun) healed() {
	s.t.Helper()
	start := time.Now()
	if err := probeWrite(s.c); err != nil {
		s.t.Fatalf("liveness: no write acknowledged %s after the fault ended: %v", leaderTimeout, err)
	}
	s.recover = max(s.recover, time.Since(start))
	s.c.mustLeader()
}

// pick returns a random element of xs.
func (s *scenarioRun) pick(xs []int) int { return xs[s.rng.IntN(len(xs))] }

// row is one line of the summary table.
type row struct {
	name, title                string
	ops, indeterminate         int
	violations, lost, phantoms int
	recover, converge, elapsed time.Duration
	failed                     bool
}

var (
	summaryMu sync.Mutex
	summary   []row
)

// seed returns the suite's seed: RAFTKV_FAULT_SEED, or a fresh one.
func seed(t *testing.T) uint64 {
	if v := os.Getenv("RAFTKV_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("RAFTKV_FAULT_SEED=%q: %v", v, err)
		}
		return s
	}
	return rand.Uint64() % 1_000_000_000
}

// soak returns RAFTKV_FAULT_DURATION: when set, each scenario repeats its
// rounds until it ran at least that long.
func soak(t *testing.T) time.Duration {
	v := os.Getenv("RAFTKV_FAULT_DURATION")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("RAFTKV_FAULT_DURATION=%q: %v", v, err)
	}
	return d
}

// testLogger logs through t.Log (shown for failing tests and with -v).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestFaults runs the fault matrix: every scenario on a fresh cluster, one
// after the other, then prints the summary table.
func TestFaults(t *testing.T) {
	base := seed(t)
	t.Logf("fault suite seed %d (reproduce with RAFTKV_FAULT_SEED=%d)", base, base)
	suiteStart := time.Now()
	t.Cleanup(func() {
		table := formatSummary()
		t.Logf("fault matrix finished in %s (seed %d)\n%s", time.Since(suiteStart).Round(time.Second), base, table)
		// Also on disk, since `go test` without -v hides passing output.
		dir := filepath.Dir(artifactDir(t))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			text := fmt.Sprintf("seed %d, %s, wall %s\n\n%s", base, time.Now().UTC().Format(time.RFC3339), time.Since(suiteStart).Round(time.Second), table)
			_ = os.WriteFile(filepath.Join(dir, "summary.md"), []byte(text), 0o644)
		}
	})
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			runScenario(t, sc, base+uint64(i)*7919)
		})
	}
}

func formatSummary() string {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | ops | indeterminate | violations | lost writes | time to recover | converge | wall |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|\n")
	for _, r := range summary {
		status := ""
		if r.failed {
			status = " **FAILED**"
		}
		fmt.Fprintf(&b, "| %s %s%s | %d | %d | %d | %d | %s | %s | %s |\n", r.name, r.title, status, r.ops, r.indeterminate,
			r.violations, r.lost, r.recover.Round(10*time.Millisecond), r.converge.Round(10*time.Millisecond), r.elapsed.Round(time.Second))
	}
	return b.String()
}

// runScenario runs one scenario end to end and checks every safety
// property; see docs/faults.md.
func runScenario(t *testing.T, sc scenario, seed uint64) {
	start := time.Now()
	t.Logf("%s %s: seed %d (RAFTKV_FAULT_SEED applies to the whole suite; run just this one with -run 'TestFaults/%s$')", sc.name, sc.title, seed, sc.name)
	logger := testLogger(t)
	c := newCluster(t, seed, logger, nodeArgs...)
	r := row{name: sc.name, title: sc.title}
	artifacts := artifactDir(t)
	defer func() {
		r.elapsed = time.Since(start)
		r.failed = t.Failed()
		summaryMu.Lock()
		summary = append(summary, r)
		summaryMu.Unlock()
		if t.Failed() {
			if err := c.saveArtifacts(artifacts); err != nil {
				t.Logf("save artifacts: %v", err)
			}
			t.Logf("%s failed (seed %d): node logs and any linearizability visualization are in %s", sc.name, seed, artifacts)
		}
	}()

	w, err := startWorkload(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			w.stop()
		}
	}()
	s := &scenarioRun{t: t, c: c, w: w, rng: rand.New(rand.NewPCG(seed, 0x7363656e)), log: logger}
	waitFor(2 * time.Second) // warm up: some history before the first fault
	soakFor := soak(t)
	for round := 0; round < sc.rounds || time.Since(start) < soakFor; round++ {
		logger.Info("round", "scenario", sc.name, "round", round+1)
		sc.run(s, round)
	}

	// Heal everything, then measure how long until a write goes through.
	healed := time.Now()
	c.heal()
	if err := probeWrite(c); err != nil {
		t.Errorf("liveness: no write acknowledged %s after healing: %v", leaderTimeout, err)
	}
	r.recover = max(time.Since(healed), s.recover)
	waitFor(afterHeal)
	w.stop()
	stopped = true

	convStart := time.Now()
	idx, sum, err := c.converge()
	r.converge = time.Since(convStart)
	if err != nil {
		t.Errorf("nodes did not converge to one applied index and state hash: %v", err)
	} else {
		logger.Info("converged", "applied_index", idx, "sha256", fmt.Sprintf("%x", sum[:8]))
	}

	history, w2, stats := w.results()
	r.ops, r.indeterminate = stats.ops, stats.indeterminate
	t.Logf("%s workload: %d ops (%d W1 gets, %d W1 writes, %d W2 inserts), %d indeterminate, %d failed writes, %d failed reads",
		sc.name, stats.ops, stats.w1Get, stats.w1Write, len(w2), stats.indeterminate, stats.failedWrites, stats.failedReads)
	if stats.ops < 100 {
		t.Errorf("workload recorded only %d ops: the scenario checked too little", stats.ops)
	}

	// W2: every acknowledged key present with its value, nothing invented.
	present, err := readW2(c)
	if err != nil {
		t.Errorf("read W2 set: %v", err)
	} else {
		res := checkW2(w2, present)
		r.lost, r.phantoms = len(res.lost), len(res.phantom)
		if len(res.lost) > 0 || len(res.phantom) > 0 {
			t.Errorf("W2 durability: %v", res)
		} else {
			t.Logf("W2: %v", res)
		}
	}

	// W1: linearizability.
	checkStart := time.Now()
	cr, err := checkLinearizable(history, checkTimeout, artifacts)
	if err != nil {
		t.Errorf("linearizability check: %v", err)
	}
	switch {
	case cr.ok:
		t.Logf("W1: %d ops linearizable (%d checked, %d unobserved indeterminate writes pruned; %s)",
			len(history), cr.checked, cr.pruned, time.Since(checkStart).Round(time.Millisecond))
	case cr.timedOut:
		r.violations++
		t.Errorf("W1: linearizability check timed out after %s (counts as a failure); visualization: %s", checkTimeout, cr.visual)
	default:
		r.violations++
		t.Errorf("W1: history of %d ops is NOT linearizable; visualization: %s", len(history), cr.visual)
	}

	// Clean shutdown, then the logs.
	for i := range c.nodes {
		if err := c.stop(i); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	problems, err := c.logProblems()
	if err != nil {
		t.Error(err)
	}
	for _, p := range problems {
		t.Errorf("node log: %s", p)
	}
	for _, row := range c.links {
		for _, l := range row {
			if l != nil {
				if st := l.statsSnapshot(); st.drops > 0 {
					logger.Info("link stats", "link", l.name, "conns", st.conns, "chunks", st.chunks, "drops", st.drops, "resets", st.resets)
				}
			}
		}
	}
}

// probeWrite writes one key through any node until it is acknowledged.
func probeWrite(c *cluster) error {
	n := 0
	return eventually(leaderTimeout, func() error {
		n++
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.admin.Put(ctx, &kvpb.PutRequest{Key: []byte("probe/heal"), Value: []byte(strconv.Itoa(n))})
		return err
	})
}

// readW2 reads the whole W2 set with a linearizable range read.
func readW2(c *cluster) (map[string]string, error) {
	var resp *kvpb.RangeResponse
	err := eventually(leaderTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		resp, err = c.admin.Range(ctx, &kvpb.RangeRequest{Key: []byte(w2Prefix), Prefix: true})
		return err
	})
	if err != nil {
		return nil, err
	}
	present := make(map[string]string, len(resp.GetKvs()))
	for _, kv := range resp.GetKvs() {
		present[string(kv.GetKey())] = string(kv.GetValue())
	}
	return present, nil
}
