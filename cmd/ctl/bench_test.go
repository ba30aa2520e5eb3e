package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/loadgen"
	"github.com/raftkv/raftkv/node/nodetest"
)

func TestBenchUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "missing workload"},
		{[]string{"bench", "scan"}, `unknown workload "scan"`},
		{[]string{"bench", "put", "get"}, "expected one workload"},
		{[]string{"bench", "put", "--clients", "0"}, "--clients must be at least 1"},
		{[]string{"bench", "put", "--clients", "2", "--conns", "3"}, "--conns must be between 1 and --clients (2)"},
		{[]string{"bench", "put", "--total", "5", "--duration", "1s"}, "mutually exclusive"},
		{[]string{"bench", "put", "--total", "0"}, "--total must be at least 1"},
		{[]string{"bench", "put", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"bench", "mixed", "--read-ratio", "1.5"}, "--read-ratio must be between 0 and 1"},
		{[]string{"bench", "put", "--read-ratio", "0.5"}, "--read-ratio only goes with bench mixed"},
		{[]string{"bench", "put", "--prefill"}, "--prefill only goes with"},
		{[]string{"bench", "txn", "--consistency", "serializable"}, "--consistency only goes with"},
		{[]string{"bench", "get", "--consistency", "strong"}, "linearizable or serializable"},
		{[]string{"bench", "put", "--target", "followers"}, "--target must be leader or all"},
		{[]string{"bench", "put", "--rate", "-1"}, "--rate must not be negative"},
		{[]string{"bench", "put", "--warmup", "-1s"}, "--warmup must not be negative"},
		{[]string{"bench", "put", "--key-size", "3", "--key-space", "100000"}, "key size must be between 6"},
		{[]string{"bench", "put", "--request-timeout", "0s"}, "--request-timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := ctl(t, "", append([]string{"--endpoints", deadAddr(t)}, tt.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, exitUsage, tt.want)
			}
		})
	}
	code, out, _ := ctl(t, "", "bench", "--help")
	if code != exitOK || !strings.Contains(out, "--read-ratio") || !strings.Contains(out, "--target WHERE") {
		t.Errorf("bench --help: exit %d\n%s", code, out)
	}
}

// benchJSON runs bench with -o json and decodes the report.
func benchJSON(t *testing.T, args ...string) benchReport {
	t.Helper()
	code, out, stderr := ctl(t, "", append([]string{"-o", "json", "bench"}, args...)...)
	if code != exitOK {
		t.Fatalf("bench %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, stderr)
	}
	if stderr != "" {
		t.Errorf("bench %v wrote %q to stderr; want nothing off a terminal", args, stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench -o json printed %q: %v", out, err)
	}
	if rep.Result == nil {
		t.Fatalf("bench -o json printed no result: %s", out)
	}
	return rep
}

func TestBenchMemServer(t *testing.T) {
	s := startMemServer(t)
	ep := "--endpoints=" + s.addr
	tests := []struct {
		name      string
		args      []string
		wantOps   int64
		wantReads int64 // -1: don't check
		prefill   int64
	}{
		{"put", []string{"put", "--total", "200", "--clients", "4", "--conns", "2"}, 200, 0, 0},
		{"txn", []string{"txn", "--total", "50", "--clients", "2", "--conns", "1"}, 50, 0, 0},
		{"one client, default conns", []string{"put", "--total", "20", "--clients", "1"}, 20, 0, 0},
		{"get with prefill", []string{"get", "--total", "100", "--prefill", "--key-space", "40", "--key-size", "8", "--consistency", "serializable"}, 100, 100, 40},
		{"mixed", []string{"mixed", "--total", "100", "--read-ratio", "0.5", "--target", "all", "--warmup", "20ms"}, 100, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := benchJSON(t, append(tt.args, ep)...)
			r := rep.Result
			if r.Ops != tt.wantOps || r.Errors != 0 || (tt.wantReads >= 0 && r.Reads != tt.wantReads) {
				t.Errorf("result %+v; want %d ops (%d reads), no errors", r, tt.wantOps, tt.wantReads)
			}
			if r.OpsPerSec <= 0 || r.Latency.P50 <= 0 || r.Duration <= 0 {
				t.Errorf("result %+v; want a rate, a duration and latencies", r)
			}
			if tt.prefill > 0 && (rep.Prefill == nil || rep.Prefill.Ops != tt.prefill) {
				t.Errorf("prefill %+v; want %d writes", rep.Prefill, tt.prefill)
			}
			if rep.Config.Endpoints[0] != s.addr {
				t.Errorf("config endpoints %v, want [%s]", rep.Config.Endpoints, s.addr)
			}
		})
	}
	s.mu.Lock()
	_, ok := s.kvs[string(loadgen.Key(39, 8))]
	s.mu.Unlock()
	if !ok {
		t.Errorf("prefill did not write key %q", loadgen.Key(39, 8))
	}

	code, out, stderr := ctl(t, "", "bench", "put", "--duration", "100ms", ep)
	if code != exitOK {
		t.Fatalf("bench put --duration: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"put: 16 clients, 4 conns, leader (" + s.addr + ")", "PHASE", "OPS/S", "P99.9", "\nput "} {
		if !strings.Contains(out, want) {
			t.Errorf("table output lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchCluster runs short benches against a real in-process 3-node
// cluster, through the leader and through every node.
func TestBenchCluster(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	leader := c.Leader()
	ep := "--endpoints=" + strings.Join(c.Endpoints(), ",")

	rep := benchJSON(t, "put", "--total", "300", "--clients", "6", "--conns", "3", "--target", "all", "--key-space", "100", ep)
	if rep.Result.Ops != 300 || rep.Result.Errors != 0 || len(rep.Config.Endpoints) != 3 {
		t.Errorf("put --target all: %+v over %v; want 300 ops, no errors, 3 endpoints", rep.Result, rep.Config.Endpoints)
	}

	rep = benchJSON(t, "get", "--total", "200", "--prefill", "--key-space", "100", "--clients", "4", "--conns", "2", ep)
	if rep.Result.Ops != 200 || rep.Result.Errors != 0 || rep.Prefill.Ops != 100 {
		t.Errorf("get --prefill: %+v, prefill %+v; want 200 reads after 100 writes", rep.Result, rep.Prefill)
	}
	if got := rep.Config.Endpoints; len(got) != 1 || got[0] != c.GRPCAddr(leader) {
		t.Errorf("--target leader connected to %v, want the leader %s", got, c.GRPCAddr(leader))
	}

	rep = benchJSON(t, "txn", "--duration", "300ms", "--clients", "2", "--conns", "1", "--warmup", "100ms", ep)
	if rep.Result.Ops == 0 || rep.Result.Errors != 0 || rep.Result.Duration < 300*time.Millisecond {
		t.Errorf("txn --duration 300ms: %+v; want some ops, no errors, at least 300ms", rep.Result)
	}

	// ping is the node's gRPC health service: it must answer, and counts
	// its calls as reads.
	rep = benchJSON(t, "ping", "--total", "100", "--clients", "2", "--conns", "1", ep)
	if rep.Result.Ops != 100 || rep.Result.Errors != 0 || rep.Result.Reads != 100 {
		t.Errorf("ping: %+v; want 100 calls, all reads, no errors", rep.Result)
	}
}

func TestBenchProgressLine(t *testing.T) {
	tests := []struct {
		p    loadgen.Progress
		want []string
	}{
		{loadgen.Progress{Warmup: true, Ops: 10, Elapsed: time.Second, Rate: 10}, []string{"warm-up", "1s 10 ops", "10 ops/s"}},
		{loadgen.Progress{Ops: 50, Total: 100, Rate: 99.6}, []string{"put", "50%", "50/100 ops", "100 ops/s"}},
		{loadgen.Progress{Ops: 7, Errors: 3, Duration: 4 * time.Second, Elapsed: time.Second}, []string{"25%", "10 ops", "(3 errors)"}},
	}
	for _, tt := range tests {
		got := benchProgressLine("put", tt.p)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("benchProgressLine(%+v) = %q, want it to contain %q", tt.p, got, w)
			}
		}
	}
}
