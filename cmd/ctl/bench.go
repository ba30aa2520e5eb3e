package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/loadgen"
	"github.com/raftkv/raftkv/loadgen/kvtarget"
)

// benchDeadline is bench's default deadline: a run ends by --total or
// --duration, each request by --request-timeout.
const benchDeadline = 10 * 365 * 24 * time.Hour

var benchSpec = commandSpec{
	name:     "bench",
	synopsis: "bench put|get|mixed|txn|ping",
	summary:  "measure throughput and latency of puts, gets, a mix, txns or bare RPCs",
	help: `Load the cluster with --clients concurrent clients over --conns gRPC
connections and report operations per second and latency percentiles
(p50, p90, p99, p99.9, max) of the successful operations, and the failed
ones by kind. Keys are --key-size bytes ("b" and a zero-padded number below
--key-space), values --val-size random bytes.

  put     write random keys
  get     read random keys (--consistency); --prefill writes them first
  mixed   read a fraction --read-ratio of the time, else write
  txn     compare-and-put: put if the key's mod revision is below 2^63-1
          (always true; the leader reads the key and compares)
  ping    the standard gRPC health check: no raft, no store, so it
          measures the RPC stack alone, the ceiling of any workload above

The run ends after --total operations (default 10000) or after --duration;
operations during --warmup are not counted. --rate paces all clients
together at N operations a second on a shared schedule (open loop:
latency counts from each operation's scheduled start).

--target leader (the default) asks every endpoint for its status and
connects only to the leader; --target all spreads the connections over all
endpoints, so followers forward writes (and linearizable reads ask the
leader for a read index). Requests go straight to the gRPC stubs: no
retries, no leader tracking; an error is counted and the client goes on.

On a terminal a progress line shows operations and the current rate on
stderr. The command runs until done; --timeout sets a deadline for the
whole run, --request-timeout one for each request. See docs/bench.md.`,
	new: func(e *env) command { return newBenchCommand(e) },
}

// benchCommand implements `raftkvctl bench`.
type benchCommand struct {
	env *env
	fs  *flag.FlagSet

	clients, conns   int
	total            int64
	duration, warmup time.Duration
	keySize, valSize int
	keySpace         int64
	readRatio, rate  float64
	consistency      *consistencyFlag
	target           string
	prefill          bool
	requestTimeout   time.Duration
}

func newBenchCommand(e *env) *benchCommand {
	c := &benchCommand{env: e, fs: newFlagSet("bench")}
	def := loadgen.DefaultOptions()
	c.fs.IntVar(&c.clients, "clients", def.Clients, "`N` concurrent clients, each with one request in flight")
	c.fs.IntVar(&c.conns, "conns", def.Conns, "`N` gRPC connections shared by the clients (at most --clients; by default no more than --clients)")
	c.fs.Int64Var(&c.total, "total", def.Total, "stop after `N` measured operations (exclusive with --duration)")
	c.fs.DurationVar(&c.duration, "duration", 0, "stop after this long (exclusive with --total)")
	c.fs.DurationVar(&c.warmup, "warmup", 0, "run this long before measuring; these operations are not counted")
	c.fs.IntVar(&c.keySize, "key-size", def.KeySize, "key size in `BYTES`")
	c.fs.IntVar(&c.valSize, "val-size", def.ValueSize, "value size in `BYTES`")
	c.fs.Int64Var(&c.keySpace, "key-space", def.KeySpace, "number of distinct `KEYS`")
	c.fs.Float64Var(&c.readRatio, "read-ratio", def.ReadRatio, "mixed: fraction of reads, from 0 to 1")
	c.fs.Float64Var(&c.rate, "rate", 0, "start at most `N` operations per second in total (0: no limit)")
	c.consistency = newConsistencyFlag(c.fs)
	c.fs.StringVar(&c.target, "target", "leader", "`WHERE` to connect: leader, or all endpoints round-robin")
	c.fs.BoolVar(&c.prefill, "prefill", false, "get, mixed: write every key of --key-space first (not measured)")
	c.fs.DurationVar(&c.requestTimeout, "request-timeout", 10*time.Second, "deadline of each request")
	return c
}

func (c *benchCommand) flags() *flag.FlagSet { return c.fs }

// defaultTimeout makes bench run until done.
func (c *benchCommand) defaultTimeout([]string) time.Duration { return benchDeadline }

// options turns the command line into loadgen options.
func (c *benchCommand) options(args []string) (loadgen.Options, error) {
	o := loadgen.DefaultOptions()
	if len(args) == 0 {
		return o, usageErrorf("missing workload: put, get, mixed, txn or ping")
	}
	if err := wantArgs(args, 1, 1, "one workload"); err != nil {
		return o, err
	}
	switch op := loadgen.Op(args[0]); op {
	case loadgen.OpPut, loadgen.OpGet, loadgen.OpMixed, loadgen.OpTxn, loadgen.OpPing:
		o.Op = op
	default:
		return o, usageErrorf("unknown workload %q (want put, get, mixed, txn or ping)", args[0])
	}
	set := func(name string) bool { return flagSet(c.fs, name) }
	if !set("conns") {
		c.conns = min(c.conns, max(c.clients, 1)) // --clients 2 alone is fine
	}
	switch {
	case set("total") && set("duration"):
		return o, usageErrorf("--total and --duration are mutually exclusive")
	case c.clients < 1:
		return o, usageErrorf("--clients must be at least 1, got %d", c.clients)
	case c.conns < 1 || c.conns > c.clients:
		return o, usageErrorf("--conns must be between 1 and --clients (%d), got %d", c.clients, c.conns)
	case set("duration") && c.duration <= 0:
		return o, usageErrorf("--duration must be positive, got %v", c.duration)
	case !set("duration") && c.total < 1:
		return o, usageErrorf("--total must be at least 1, got %d", c.total)
	case c.readRatio < 0 || c.readRatio > 1 || c.readRatio != c.readRatio:
		return o, usageErrorf("--read-ratio must be between 0 and 1, got %v", c.readRatio)
	case set("read-ratio") && o.Op != loadgen.OpMixed:
		return o, usageErrorf("--read-ratio only goes with bench mixed")
	case set("consistency") && o.Op != loadgen.OpGet && o.Op != loadgen.OpMixed:
		return o, usageErrorf("--consistency only goes with bench get and bench mixed")
	case c.prefill && o.Op != loadgen.OpGet && o.Op != loadgen.OpMixed:
		return o, usageErrorf("--prefill only goes with bench get and bench mixed")
	case c.target != "leader" && c.target != "all":
		return o, usageErrorf("--target must be leader or all, got %q", c.target)
	case c.rate < 0:
		return o, usageErrorf("--rate must not be negative, got %v", c.rate)
	case c.warmup < 0:
		return o, usageErrorf("--warmup must not be negative, got %v", c.warmup)
	case c.requestTimeout <= 0:
		return o, usageErrorf("--request-timeout must be positive, got %v", c.requestTimeout)
	}
	o.Clients, o.Conns, o.Warmup = c.clients, c.conns, c.warmup
	if set("duration") {
		o.Total, o.Duration = 0, c.duration
	} else {
		o.Total = c.total
	}
	o.KeySize, o.ValueSize, o.KeySpace = c.keySize, c.valSize, c.keySpace
	o.ReadRatio, o.Rate, o.OpTimeout = c.readRatio, c.rate, c.requestTimeout
	if c.consistency.c == kvpb.Consistency_CONSISTENCY_SERIALIZABLE {
		o.Consistency = loadgen.Serializable
	}
	if err := o.Validate(); err != nil {
		// What is left are sizes: --key-size, --val-size, --key-space.
		return o, &usageError{err: err}
	}
	return o, nil
}

// benchConfig is what a bench run was asked to do, printed with its result.
type benchConfig struct {
	Workload    loadgen.Op `json:"workload"`
	Target      string     `json:"target"`
	Endpoints   []string   `json:"endpoints"`
	Clients     int        `json:"clients"`
	Conns       int        `json:"conns"`
	Total       int64      `json:"total"`
	DurationSec float64    `json:"duration_seconds"`
	WarmupSec   float64    `json:"warmup_seconds"`
	KeySize     int        `json:"key_size"`
	ValueSize   int        `json:"value_size"`
	KeySpace    int64      `json:"key_space"`
	ReadRatio   float64    `json:"read_ratio,omitempty"`
	Consistency string     `json:"consistency,omitempty"`
	Rate        float64    `json:"rate"`
}

// benchReport is the output of bench: the run's settings, the prefill (if
// any) and the measured result.
type benchReport struct {
	Config  benchConfig     `json:"config"`
	Prefill *loadgen.Result `json:"prefill,omitempty"`
	Result  *loadgen.Result `json:"result"`
}

func (c *benchCommand) run(ctx context.Context, args []string) error {
	o, err := c.options(args)
	if err != nil {
		return err
	}
	eps := c.env.globals.endpointList()
	if c.target == "leader" {
		lctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
		leader, err := kvtarget.FindLeader(lctx, eps)
		cancel()
		if err != nil {
			return fmt.Errorf("bench --target leader: %w", err)
		}
		eps = []string{leader}
	}
	rep := &benchReport{Config: benchConfig{
		Workload: o.Op, Target: c.target, Endpoints: eps, Clients: o.Clients, Conns: o.Conns,
		Total: o.Total, DurationSec: o.Duration.Seconds(), WarmupSec: o.Warmup.Seconds(),
		KeySize: o.KeySize, ValueSize: o.ValueSize, KeySpace: o.KeySpace, Rate: o.Rate,
	}}
	if o.Op == loadgen.OpMixed {
		rep.Config.ReadRatio = o.ReadRatio
	}
	if o.Op == loadgen.OpGet || o.Op == loadgen.OpMixed {
		rep.Config.Consistency = o.Consistency.String()
	}
	dial := c.dialer(eps)
	bar := newProgressBar(c.env.errWriter())
	defer bar.finish()
	if c.prefill {
		rep.Prefill, err = loadgen.Prefill(ctx, dial, o.Clients, o.Conns, o.KeySpace, o.KeySize, o.ValueSize,
			func(p loadgen.Progress) { showBenchProgress(bar, "prefill", p) })
		bar.finish()
		if err != nil {
			return err
		}
	}
	o.Progress = func(p loadgen.Progress) { showBenchProgress(bar, string(o.Op), p) }
	rep.Result, err = loadgen.Run(ctx, o, dial)
	bar.finish()
	if rep.Result != nil {
		if perr := c.env.printer().bench(rep); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// dialer connects each of the run's connections to one of eps, waiting at
// most --request-timeout for it to be ready.
func (c *benchCommand) dialer(eps []string) loadgen.Dialer {
	dial := kvtarget.Dialer(eps)
	return func(ctx context.Context, i int) (loadgen.Target, error) {
		ctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
		defer cancel()
		return dial(ctx, i)
	}
}

// showBenchProgress draws p on bar (a no-op off a terminal).
func showBenchProgress(bar *progressBar, phase string, p loadgen.Progress) {
	if !bar.due() {
		return
	}
	bar.draw(benchProgressLine(phase, p))
}

// benchProgressLine renders one progress line: the phase, how far it is
// (a bar when the end is known) and the current rate.
func benchProgressLine(phase string, p loadgen.Progress) string {
	if p.Warmup {
		phase = "warm-up"
	}
	done := p.Ops + p.Errors
	line := fmt.Sprintf("%-8s %d ops", phase, done)
	switch {
	case p.Warmup:
		line = fmt.Sprintf("%-8s %s %d ops", phase, p.Elapsed.Round(100*time.Millisecond), done)
	case p.Total > 0:
		line = fmt.Sprintf("%-8s %s %d/%d ops", phase, bar(float64(done)/float64(p.Total)), done, p.Total)
	case p.Duration > 0:
		line = fmt.Sprintf("%-8s %s %d ops", phase, bar(p.Elapsed.Seconds()/p.Duration.Seconds()), done)
	}
	line += fmt.Sprintf("  %.0f ops/s", p.Rate)
	if p.Errors > 0 {
		line += fmt.Sprintf("  (%d errors)", p.Errors)
	}
	return line
}
