package main

import (
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/loadgen"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSummarizeAndTable(t *testing.T) {
	run := func(ops float64, p50, p99 time.Duration, errs int64) *loadgen.Result {
		return &loadgen.Result{OpsPerSec: ops, Errors: errs, Latency: loadgen.Latency{P50: p50, P99: p99}}
	}
	rk := systemRow{Runs: []*loadgen.Result{
		run(1000, time.Millisecond, 5*time.Millisecond, 0),
		run(1200, 2*time.Millisecond, 4*time.Millisecond, 1),
		run(900, 3*time.Millisecond, 9*time.Millisecond, 0),
	}, CPUPerOp: []float64{120, 80, 100}}
	rk.summarize()
	if rk.OpsPerSec != 1000 || rk.OpsPerSecMin != 900 || rk.OpsPerSecMax != 1200 || rk.P50Ms != 2 || rk.P99Ms != 5 || rk.Errors != 1 || rk.CPUPerOpUs != 100 {
		t.Fatalf("summarize = %+v; want median 1000 [900-1200], p50 2 ms, p99 5 ms, 1 error, 100 us CPU per op", rk)
	}
	et := systemRow{Runs: []*loadgen.Result{run(2000, time.Millisecond, 2*time.Millisecond, 0)}, CPUPerOp: []float64{250}}
	et.summarize()
	r := &report{Rows: []rowResult{{row: rows[1], Raftkv: rk, Etcd: et, Ratio: 0.5}}}
	var b strings.Builder
	r.compareMarkdown(&b)
	for _, want := range []string{
		"| put c=16 | 1,000 [900–1,200] | 2.00 ms | 5.00 ms | 100 µs | 2,000 | 1.00 ms | 2.00 ms | 250 µs | 0.50 |",
		"put c=16 raftkv: 1 errors",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestSelectRows(t *testing.T) {
	tests := []struct {
		only    string
		want    []string
		wantErr string
	}{
		{only: "", want: names(rows)},
		{only: "put c=1,health", want: []string{"put c=1", "put c=16", "gRPC health check c=64 (RPC ceiling)"}},
		{only: " serializable , ", want: []string{"serializable get c=64"}},
		{only: "scan", wantErr: "matches no row"},
	}
	for _, tt := range tests {
		got, err := selectRows(tt.only)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("selectRows(%q) error %v, want one containing %q", tt.only, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("selectRows(%q): %v", tt.only, err)
			continue
		}
		if g := names(got); strings.Join(g, "|") != strings.Join(tt.want, "|") {
			t.Errorf("selectRows(%q) = %q, want %q", tt.only, g, tt.want)
		}
	}
}

func names(rs []row) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}
