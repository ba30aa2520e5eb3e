package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/raftkv/raftkv/loadgen"
)

// row is one line of the comparison table.
type row struct {
	Name        string              `json:"name"`
	Op          loadgen.Op          `json:"op"`
	Clients     int                 `json:"clients"`
	Consistency loadgen.Consistency `json:"-"`
	ReadRatio   float64             `json:"read_ratio,omitempty"`
}

// rows are the workloads, in table order.
var rows = []row{
	{Name: "put c=1", Op: loadgen.OpPut, Clients: 1},
	{Name: "put c=16", Op: loadgen.OpPut, Clients: 16},
	{Name: "put c=64", Op: loadgen.OpPut, Clients: 64},
	{Name: "put c=256", Op: loadgen.OpPut, Clients: 256},
	{Name: "linearizable get c=64", Op: loadgen.OpGet, Clients: 64, Consistency: loadgen.Linearizable},
	{Name: "serializable get c=64", Op: loadgen.OpGet, Clients: 64, Consistency: loadgen.Serializable},
	{Name: "mixed 90/10 c=64 (linearizable reads)", Op: loadgen.OpMixed, Clients: 64, Consistency: loadgen.Linearizable, ReadRatio: 0.9},
	// Not a workload but the ceiling under the others: the same load
	// generator making bare gRPC health checks, which touch neither raft
	// nor the store.
	{Name: "gRPC health check c=64 (RPC ceiling)", Op: loadgen.OpPing, Clients: 64},
}

// systemRow is one system's runs of one row and their summary.
type systemRow struct {
	Runs []*loadgen.Result `json:"runs"`
	// OpsPerSec is the median of the runs' ops/s, with the smallest and
	// largest; P50Ms and P99Ms are the medians of the runs' percentiles.
	OpsPerSec    float64 `json:"ops_per_sec_median"`
	OpsPerSecMin float64 `json:"ops_per_sec_min"`
	OpsPerSecMax float64 `json:"ops_per_sec_max"`
	P50Ms        float64 `json:"p50_ms_median"`
	P99Ms        float64 `json:"p99_ms_median"`
	Errors       int64   `json:"errors"`
	// CPUPerOpUs is the runs' median server CPU time per operation in
	// microseconds: the CPU the three node processes used over a run
	// (warm-up included) divided by the operations of that run (warm-up
	// included). CPUPerOp holds every run's value.
	CPUPerOp   []float64 `json:"cpu_us_per_op_runs"`
	CPUPerOpUs float64   `json:"cpu_us_per_op_median"`
}

// rowResult is one row of the table.
type rowResult struct {
	row
	Raftkv systemRow `json:"raftkv"`
	Etcd   systemRow `json:"etcd"`
	// Ratio is raftkv's median ops/s over etcd's, both from this
	// invocation.
	Ratio float64 `json:"ratio"`
}

func (c *config) options(r row) loadgen.Options {
	o := loadgen.DefaultOptions()
	o.Op, o.Clients, o.Conns = r.Op, r.Clients, min(c.conns, r.Clients)
	o.Total, o.Duration, o.Warmup = 0, c.duration, c.warmup
	o.KeySize, o.ValueSize, o.KeySpace = c.keySize, c.valSize, c.keySpace
	o.Consistency, o.ReadRatio, o.OpTimeout = r.Consistency, r.ReadRatio, c.requestTimeout
	return o
}

// runCompare prefills both systems, then runs every row runs times per
// system, alternating which system goes first, so slow drifts of the
// machine (other load, thermal limits) hit both alike.
func runCompare(ctx context.Context, cfg *config, logger *slog.Logger, systems []system, rep *report) error {
	for _, s := range systems {
		leader, err := s.Leader(ctx)
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := loadgen.Prefill(ctx, s.Dialer([]string{leader}), 64, min(cfg.conns, 64), cfg.keySpace, cfg.keySize, cfg.valSize, nil); err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
		logger.Info("prefilled", "system", s.Name(), "keys", cfg.keySpace, "took", time.Since(start).Round(time.Millisecond))
	}
	for _, r := range cfg.rows {
		res := rowResult{row: r}
		for run := range cfg.runs {
			order := systems
			if run%2 == 1 {
				order = []system{systems[1], systems[0]}
			}
			for _, s := range order {
				// The leader is looked up before every run: it could have
				// changed, and a bench targets the leader.
				leader, err := s.Leader(ctx)
				if err != nil {
					return err
				}
				cpu0, err := serverCPU(s.Nodes())
				if err != nil {
					return err
				}
				out, err := loadgen.Run(ctx, cfg.options(r), s.Dialer([]string{leader}))
				if err != nil {
					return fmt.Errorf("%s, %s, run %d: %w", r.Name, s.Name(), run+1, err)
				}
				cpu1, err := serverCPU(s.Nodes())
				if err != nil {
					return err
				}
				logger.Info("run", "row", r.Name, "run", run+1, "system", s.Name(), "ops_per_sec", int(out.OpsPerSec),
					"p50", out.Latency.P50, "p99", out.Latency.P99, "errors", out.Errors)
				sr := &res.Raftkv
				if s.Name() == "etcd" {
					sr = &res.Etcd
				}
				sr.Runs = append(sr.Runs, out)
				if n := out.Ops + out.Errors + out.WarmupOps; n > 0 {
					sr.CPUPerOp = append(sr.CPUPerOp, float64((cpu1-cpu0).Microseconds())/float64(n))
				}
			}
		}
		res.Raftkv.summarize()
		res.Etcd.summarize()
		if res.Etcd.OpsPerSec > 0 {
			res.Ratio = res.Raftkv.OpsPerSec / res.Etcd.OpsPerSec
		}
		rep.Rows = append(rep.Rows, res)
	}
	return nil
}

// summarize computes the medians, min and max of the runs.
func (s *systemRow) summarize() {
	var ops, p50, p99 []float64
	s.Errors = 0
	for _, r := range s.Runs {
		ops = append(ops, r.OpsPerSec)
		p50 = append(p50, ms(r.Latency.P50))
		p99 = append(p99, ms(r.Latency.P99))
		s.Errors += r.Errors
	}
	if len(ops) == 0 {
		return
	}
	s.OpsPerSec, s.P50Ms, s.P99Ms = median(ops), median(p50), median(p99)
	s.OpsPerSecMin, s.OpsPerSecMax = slices.Min(ops), slices.Max(ops)
	if len(s.CPUPerOp) > 0 {
		s.CPUPerOpUs = median(s.CPUPerOp)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the middle value, or the mean of the two middle values of
// an even count.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
