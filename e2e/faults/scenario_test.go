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

	"github.com/anishathalye/porcupine"

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
// leave it to the final heal). A run that rolls the state back (F11's
// restore) ends the workload's epoch and starts the next (newEpoch).
type scenario struct {
	name   string
	title  string
	rounds int
	run    func(s *scenarioRun, round int)
}

// scenarioRun is the state one scenario's fault schedule works with.
type scenarioRun struct {
	t    *testing.T
	c    *cluster
	w    *workload // the current epoch's
	rng  *rand.Rand
	log  *slog.Logger
	seed uint64
	// epochs are the workload's epochs, the current one last. Each is
	// checked from its own initial state.
	epochs []*epoch
	// recover is the longest time from the end of a fault to the first
	// acknowledged write.
	recover time.Duration
	// unsyncedKills counts nodes F9 killed while their store held
	// unsynced commits.
	unsyncedKills int
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

// epoch is one stretch of the workload between state rollbacks.
type epoch struct {
	w *workload
	// initial is each W1 key's value when the epoch began (absent: none),
	// carried the writes of unknown outcome of the epoch before, which may
	// still take effect after its end.
	initial map[string]string
	carried []porcupine.Operation
	// extra are checks on the epoch's history beyond its own operations:
	// F11 records the backup it took as one read of every W1 key.
	extra []porcupine.Operation
	// restored is the whole content of the backup restored at the end of
	// the epoch, nil if none was: W2 keys acknowledged in this epoch but
	// absent from it may be gone.
	restored map[string]string
}

// newEpoch stops the current workload, runs between (the rollback, with no
// operation in flight), and starts the next epoch's workload, whose W1
// registers start at initial.
func (s *scenarioRun) newEpoch(initial map[string]string, between func()) {
	s.t.Helper()
	prev := s.epochs[len(s.epochs)-1]
	prev.w.stop()
	between()
	// Unknown writes of every earlier epoch stay possible.
	carried := append([]porcupine.Operation(nil), prev.carried...)
	h, _, _ := prev.w.results()
	for _, op := range h {
		if op.Output.(regOutput).unknown {
			carried = append(carried, op)
		}
	}
	w, err := startEpoch(s.c, s.seed, len(s.epochs))
	if err != nil {
		s.t.Fatal(err)
	}
	s.w = w
	s.epochs = append(s.epochs, &epoch{w: w, initial: initial, carried: carried})
}

// pick returns a random element of xs.
func (s *scenarioRun) pick(xs []int) int { return xs[s.rng.IntN(len(xs))] }

// row is one line of the summary table.
type row struct {
	name, title                string
	ops, indeterminate         int
	violations, lost, phantoms int
	serial                     int // serializable reads checked
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
	fmt.Fprintf(&b, "| scenario | ops | indeterminate | violations | lost writes | time to recover | converge | wall | serializable reads |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range summary {
		status := ""
		if r.failed {
			status = " **FAILED**"
		}
		fmt.Fprintf(&b, "| %s %s%s | %d | %d | %d | %d | %s | %s | %s | %d |\n", r.name, r.title, status, r.ops, r.indeterminate,
			r.violations, r.lost, r.recover.Round(10*time.Millisecond), r.converge.Round(10*time.Millisecond), r.elapsed.Round(time.Second), r.serial)
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
	s := &scenarioRun{t: t, c: c, w: w, rng: rand.New(rand.NewPCG(seed, 0x7363656e)), log: logger, seed: seed,
		epochs: []*epoch{{w: w}}}
	stopped := false
	defer func() {
		if !stopped {
			s.w.stop()
		}
	}()
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
	s.w.stop()
	stopped = true

	convStart := time.Now()
	idx, sum, err := c.converge()
	r.converge = time.Since(convStart)
	if err != nil {
		t.Errorf("nodes did not converge to one applied index and state hash: %v", err)
	} else {
		logger.Info("converged", "applied_index", idx, "sha256", fmt.Sprintf("%x", sum[:8]))
	}

	r.ops, r.indeterminate, r.serial = s.check(artifacts, &r.violations, &r.lost, &r.phantoms)

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
	grpcConns, grpcChunks := 0, 0
	for _, row := range append(c.links, c.glinks...) {
		for _, l := range row {
			if l != nil {
				st := l.statsSnapshot()
				if st.drops > 0 {
					logger.Info("link stats", "link", l.name, "conns", st.conns, "chunks", st.chunks, "drops", st.drops, "resets", st.resets)
				}
				if strings.HasSuffix(l.name, " grpc") {
					grpcConns, grpcChunks = grpcConns+st.conns, grpcChunks+st.chunks
				}
			}
		}
	}
	logger.Info("proxied gRPC links (forwarding, ReadIndex)", "conns", grpcConns, "chunks", grpcChunks)
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

// check runs the W2, W1 and serializable checks over every epoch, reports
// failures through t, adds to the violation, lost and phantom counts, and
// returns the operation counts for the summary.
func (s *scenarioRun) check(artifacts string, violations, lost, phantoms *int) (ops, indeterminate, serial int) {
	t := s.t
	var attempts []w2Attempt
	for i, e := range s.epochs {
		history, w2, stats := e.w.results()
		ops += stats.ops
		indeterminate += stats.indeterminate
		t.Logf("epoch %d workload: %d ops (%d W1 gets, %d W1 writes, %d W2 inserts), %d indeterminate, %d failed writes, %d failed reads; %d serializable reads (%d failed or spanned a restart)",
			i, stats.ops, stats.w1Get, stats.w1Write, len(w2), stats.indeterminate, stats.failedWrites, stats.failedReads, stats.serialReads, stats.serialSkipped)
		for _, a := range w2 {
			// A restore rolls back what the backup lacks: those writes
			// may be gone, as if their outcome were unknown; what the
			// backup holds must survive, whatever the client heard.
			if e.restored != nil {
				if v, ok := e.restored[a.key]; ok {
					a.value, a.outcome = v, w2Acked
				} else if a.outcome == w2Acked {
					a.outcome = w2Unknown
				}
			}
			attempts = append(attempts, a)
		}

		// W1: linearizability, from the epoch's initial state. The initial
		// values are writes that returned before anything else began, the
		// carried writes of unknown outcome may happen at any point.
		full := make([]porcupine.Operation, 0, len(history)+len(e.initial)+len(e.carried)+len(e.extra))
		first := int64(0)
		if len(history) > 0 {
			first = history[0].Call
			for _, op := range history {
				first = min(first, op.Call)
			}
		}
		for k, v := range e.initial {
			full = append(full, porcupine.Operation{ClientId: initialClientID, Input: regInput{op: opPut, key: k, value: v}, Call: first - 3, Output: regOutput{}, Return: first - 2})
		}
		for _, op := range e.carried {
			op.Call = first - 1
			full = append(full, op)
		}
		full = append(full, e.extra...)
		full = append(full, history...)
		checkStart := time.Now()
		cr, err := checkLinearizable(full, checkTimeout, filepath.Join(artifacts, fmt.Sprintf("epoch%d", i)))
		if err != nil {
			t.Errorf("linearizability check: %v", err)
		}
		switch {
		case cr.ok:
			t.Logf("W1 epoch %d: %d ops linearizable (%d checked, %d unobserved indeterminate writes pruned; %s)",
				i, len(full), cr.checked, cr.pruned, time.Since(checkStart).Round(time.Millisecond))
		case cr.timedOut:
			*violations++
			t.Errorf("W1 epoch %d: linearizability check timed out after %s (counts as a failure); visualization: %s", i, checkTimeout, cr.visual)
		default:
			*violations++
			t.Errorf("W1 epoch %d: history of %d ops is NOT linearizable; visualization: %s", i, len(full), cr.visual)
		}

		// Serializable reads: written values, monotonic per client and
		// node generation, apart from W1.
		written := writesOf(history)
		for k, v := range e.initial {
			written[k+"\x00"+v] = true
		}
		for kv := range writesOf(e.carried) {
			written[kv] = true
		}
		sr := checkSerial(e.w.serialResults(), written)
		serial += sr.reads
		if n := sr.violations(); n > 0 {
			*violations += n
			t.Errorf("serializable reads, epoch %d: %v", i, sr)
		} else {
			t.Logf("serializable reads, epoch %d: %v", i, sr)
		}
	}
	if ops < 100 {
		t.Errorf("workload recorded only %d ops: the scenario checked too little", ops)
	}

	// W2: every acknowledged key present with its value, nothing invented.
	present, err := readW2(s.c)
	if err != nil {
		t.Errorf("read W2 set: %v", err)
	} else {
		res := checkW2(attempts, present)
		*lost, *phantoms = len(res.lost), len(res.phantom)
		if len(res.lost) > 0 || len(res.phantom) > 0 {
			t.Errorf("W2 durability: %v", res)
		} else {
			t.Logf("W2: %v", res)
		}
	}
	return ops, indeterminate, serial
}

// writesOf returns key+"\x00"+value of every write in history that may have
// taken effect: puts and compare-and-swaps acknowledged as done or of
// unknown outcome.
func writesOf(history []porcupine.Operation) map[string]bool {
	w := map[string]bool{}
	for _, op := range history {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if in.op == opPut || (in.op == opCAS && (out.ok || out.unknown)) {
			w[in.key+"\x00"+in.value] = true
		}
	}
	return w
}
