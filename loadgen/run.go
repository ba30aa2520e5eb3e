package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// valuePoolSize is the size of each client's pool of random bytes that
// values are sliced from.
const valuePoolSize = 64 << 10

// Run dials opts.Conns targets, runs the workload on them with opts.Clients
// goroutines and returns what it measured. It returns an error without a
// result when opts are invalid or a dial fails. When ctx ends early, it
// returns the result measured so far together with ctx's error.
func Run(ctx context.Context, opts Options, dial Dialer) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	targets := make([]Target, 0, opts.Conns)
	defer func() {
		for _, t := range targets {
			_ = t.Close() // a bench has nothing useful to do with a close error
		}
	}()
	for i := range opts.Conns {
		t, err := dial(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("dial connection %d: %w", i, err)
		}
		targets = append(targets, t)
	}

	r := newRun(opts)
	clients := make([]*client, opts.Clients)
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for i := range clients {
		clients[i] = newClient(r, targets[i%len(targets)], seed+uint64(i))
	}

	r.start = time.Now()
	r.measureStart = r.start.Add(opts.Warmup)
	if opts.Duration > 0 {
		r.end = r.measureStart.Add(opts.Duration)
	}
	stopProgress := r.reportProgress()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.loop(ctx) })
	}
	wg.Wait()
	elapsed := time.Since(r.measureStart)
	stopProgress()

	res := &Result{Op: opts.Op, Clients: opts.Clients, Conns: opts.Conns, ErrorsByKind: map[string]int64{}}
	hist := newHistogram()
	for _, c := range clients {
		hist.Merge(c.hist)
		res.Ops += c.ops
		res.Reads += c.reads
		res.Writes += c.ops - c.reads
		res.Errors += c.errors
		res.WarmupOps += c.warmupOps
		for k, n := range c.errorKinds {
			res.ErrorsByKind[k] += n
		}
	}
	res.Duration = max(elapsed, 0)
	if secs := res.Duration.Seconds(); secs > 0 {
		res.OpsPerSec = float64(res.Ops) / secs
	}
	res.Latency = latencyOf(hist)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("run interrupted: %w", err)
	}
	return res, nil
}

// run is the state the clients of one Run share.
type run struct {
	opts  Options
	start time.Time
	// measureStart ends the warm-up; end (zero for a Total run) ends the
	// measured phase.
	measureStart, end time.Time
	// interval is the pacing interval of the shared schedule (0: no
	// pacing); slot numbers its next start time.
	interval time.Duration
	slot     atomic.Int64
	// claimed counts the measured operations handed out in a Total run.
	claimed atomic.Int64
	// done, failed and warm feed the progress callback.
	done, failed, warm, warmFailed atomic.Int64
}

func newRun(opts Options) *run {
	r := &run{opts: opts}
	if opts.Rate > 0 {
		r.interval = max(time.Duration(float64(time.Second)/opts.Rate), 1)
	}
	return r
}

// reportProgress calls opts.Progress every ProgressInterval until the
// returned function is called.
func (r *run) reportProgress() (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.opts.ProgressInterval)
		defer t.Stop()
		var prevOps int64
		prevWarm, prevAt := true, time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				p := Progress{Total: r.opts.Total, Duration: r.opts.Duration}
				if now.Before(r.measureStart) {
					p.Warmup, p.Ops, p.Errors, p.Elapsed = true, r.warm.Load(), r.warmFailed.Load(), now.Sub(r.start)
				} else {
					p.Ops, p.Errors, p.Elapsed = r.done.Load(), r.failed.Load(), now.Sub(r.measureStart)
				}
				if p.Warmup != prevWarm {
					prevOps = 0
				}
				if secs := now.Sub(prevAt).Seconds(); secs > 0 {
					p.Rate = float64(p.Ops+p.Errors-prevOps) / secs
				}
				prevOps, prevWarm, prevAt = p.Ops+p.Errors, p.Warmup, now
				r.opts.Progress(p)
			}
		}
	}()
	return func() { close(quit); <-done }
}

// client is one goroutine's state; only its goroutine touches it until Run
// merges it.
type client struct {
	r      *run
	t      Target
	kinder ErrorKinder
	rng    *rand.Rand
	pool   []byte
	key    []byte
	hist   *hdrhistogram.Histogram

	ops, reads, errors, warmupOps int64
	errorKinds                    map[string]int64
}

func newClient(r *run, t Target, seed uint64) *client {
	c := &client{
		r:          r,
		t:          t,
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		pool:       make([]byte, valuePoolSize+r.opts.ValueSize),
		key:        make([]byte, 0, r.opts.KeySize),
		hist:       newHistogram(),
		errorKinds: map[string]int64{},
	}
	c.kinder, _ = t.(ErrorKinder)
	for i := 0; i < len(c.pool); i += 8 {
		v := c.rng.Uint64()
		for j := 0; j < 8 && i+j < len(c.pool); j++ {
			c.pool[i+j] = byte(v >> (8 * j))
		}
	}
	return c
}

// loop issues operations until the run ends or ctx is done.
func (c *client) loop(ctx context.Context) {
	r := c.r
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for ctx.Err() == nil {
		start := time.Now()
		if r.interval > 0 {
			// Open loop: take the next start time of the shared schedule
			// and wait for it. Latency counts from it, so a server that
			// stalls is charged for the requests it held up.
			due := r.start.Add(time.Duration(r.slot.Add(1)-1) * r.interval)
			if !r.end.IsZero() && !due.Before(r.end) {
				return
			}
			if wait := time.Until(due); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
			start = due
		}
		measured := !start.Before(r.measureStart)
		index := int64(-1)
		if measured {
			switch {
			case r.opts.Total > 0:
				n := r.claimed.Add(1)
				if n > r.opts.Total {
					return
				}
				index = n - 1
			case !start.Before(r.end):
				return
			}
		}
		read, err := c.do(ctx, index)
		if ctx.Err() != nil {
			return // interrupted: the error says nothing about the server
		}
		lat := time.Since(start)
		switch {
		case !measured:
			c.warmupOps++
			r.warm.Add(1)
			if err != nil {
				r.warmFailed.Add(1)
			}
		case err != nil:
			c.errors++
			c.errorKinds[c.kind(err)]++
			r.failed.Add(1)
		default:
			c.ops++
			if read {
				c.reads++
			}
			us := min(max(lat.Microseconds(), histMinMicros), histMaxMicros)
			_ = c.hist.RecordValue(us) // in range by construction
			r.done.Add(1)
		}
	}
}

// do runs one operation; index is the measured operation's number, or -1.
func (c *client) do(ctx context.Context, index int64) (read bool, err error) {
	o := c.r.opts
	var k int64
	if o.Sequential && index >= 0 {
		k = index % o.KeySpace
	} else {
		k = c.rng.Int64N(o.KeySpace)
	}
	c.key = appendKey(c.key[:0], k, o.KeySize)
	ctx, cancel := context.WithTimeout(ctx, o.OpTimeout)
	defer cancel()
	switch o.Op {
	case OpGet:
		return true, c.t.Get(ctx, c.key, o.Consistency)
	case OpMixed:
		if c.rng.Float64() < o.ReadRatio {
			return true, c.t.Get(ctx, c.key, o.Consistency)
		}
		return false, c.t.Put(ctx, c.key, c.value())
	case OpTxn:
		return false, c.t.Txn(ctx, c.key, c.value())
	case OpPing:
		return true, c.t.Ping(ctx)
	default:
		return false, c.t.Put(ctx, c.key, c.value())
	}
}

// value returns ValueSize random bytes, a slice of the client's pool.
func (c *client) value() []byte {
	off := c.rng.IntN(valuePoolSize)
	return c.pool[off : off+c.r.opts.ValueSize : off+c.r.opts.ValueSize]
}

// kind names err for Result.ErrorsByKind.
func (c *client) kind(err error) string {
	if c.kinder != nil {
		if k := c.kinder.ErrorKind(err); k != "" {
			return k
		}
	}
	return DefaultErrorKind(err)
}

// DefaultErrorKind is the kind of err for Targets without ErrorKinder:
// "deadline_exceeded", "canceled" or "other".
func DefaultErrorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

// Prefill writes every key of the key space once (Key(i, keySize) for
// 0 <= i < keySpace, valueSize random bytes each) with clients goroutines
// over conns connections, and returns the run's result. progress may be
// nil.
func Prefill(ctx context.Context, dial Dialer, clients, conns int, keySpace int64, keySize, valueSize int, progress func(Progress)) (*Result, error) {
	o := DefaultOptions()
	o.Op, o.Clients, o.Conns = OpPut, clients, conns
	o.Total, o.KeySpace, o.KeySize, o.ValueSize = keySpace, keySpace, keySize, valueSize
	o.Sequential, o.Progress = true, progress
	res, err := Run(ctx, o, dial)
	if err != nil {
		return res, fmt.Errorf("prefill: %w", err)
	}
	if res.Errors > 0 {
		return res, fmt.Errorf("prefill: %d of %d writes failed (%v)", res.Errors, keySpace, res.ErrorsByKind)
	}
	return res, nil
}
