package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/raftkv/raftkv/loadgen"
)

// bench prints the report as one JSON object; durations in seconds,
// latencies in milliseconds.
func (p *jsonPrinter) bench(r *benchReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode bench report as json: %w", err)
	}
	return p.write(b)
}

// bench prints one row per phase (prefill, then the workload), then the
// errors by kind.
func (p *tablePrinter) bench(r *benchReport) error {
	cfg := r.Config
	fmt.Fprintf(p.w, "%s: %d clients, %d conns, %s (%s), %d-byte keys, %d-byte values, %d keys",
		cfg.Workload, cfg.Clients, cfg.Conns, cfg.Target, strings.Join(cfg.Endpoints, ","), cfg.KeySize, cfg.ValueSize, cfg.KeySpace)
	if cfg.Consistency != "" {
		fmt.Fprintf(p.w, ", %s reads", cfg.Consistency)
	}
	if cfg.Workload == loadgen.OpMixed {
		fmt.Fprintf(p.w, ", %.0f%% reads", cfg.ReadRatio*100)
	}
	if cfg.Rate > 0 {
		fmt.Fprintf(p.w, ", rate %.0f/s", cfg.Rate)
	}
	fmt.Fprintln(p.w)
	tw := p.table()
	fmt.Fprintln(tw, "PHASE\tOPS\tERRORS\tDURATION\tOPS/S\tMEAN\tP50\tP90\tP99\tP99.9\tMAX")
	row := func(name string, res *loadgen.Result) {
		l := res.Latency
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\n", name, res.Ops, res.Errors,
			res.Duration.Round(time.Millisecond), res.OpsPerSec,
			latencyText(l.Mean), latencyText(l.P50), latencyText(l.P90), latencyText(l.P99), latencyText(l.P999), latencyText(l.Max))
	}
	if r.Prefill != nil {
		row("prefill", r.Prefill)
	}
	row(string(cfg.Workload), r.Result)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Result.ErrorsByKind) > 0 {
		fmt.Fprintf(p.w, "errors:%s\n", reasons(r.Result.ErrorsByKind))
	}
	return nil
}

// latencyText formats a latency in milliseconds with three significant
// digits where it matters: 0.412ms, 3.18ms, 120ms.
func latencyText(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.3gms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}
