package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTarget is an in-memory Target. It tests the generator, not a store:
// it counts calls, remembers keys and fails when told to.
type fakeTarget struct {
	s *fakeStore
}

type fakeStore struct {
	mu     sync.Mutex
	kvs    map[string][]byte
	puts   atomic.Int64
	gets   atomic.Int64
	txns   atomic.Int64
	pings  atomic.Int64
	closed atomic.Int64
	// failEvery, when positive, fails every failEvery-th call with
	// errFake.
	failEvery int64
	calls     atomic.Int64
	// consistency records the consistency of the last Get.
	consistency atomic.Int64
}

var errFake = errors.New("fake failure")

func (f fakeTarget) fail() error {
	if n := f.s.calls.Add(1); f.s.failEvery > 0 && n%f.s.failEvery == 0 {
		return errFake
	}
	return nil
}

func (f fakeTarget) Put(ctx context.Context, key, value []byte) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("no deadline")
	}
	f.s.puts.Add(1)
	if err := f.fail(); err != nil {
		return err
	}
	f.s.mu.Lock()
	f.s.kvs[string(key)] = bytes.Clone(value)
	f.s.mu.Unlock()
	return nil
}

func (f fakeTarget) Get(_ context.Context, key []byte, c Consistency) error {
	f.s.gets.Add(1)
	f.s.consistency.Store(int64(c))
	return f.fail()
}

func (f fakeTarget) Txn(_ context.Context, key, value []byte) error {
	f.s.txns.Add(1)
	return f.fail()
}

func (f fakeTarget) Ping(context.Context) error {
	f.s.pings.Add(1)
	return f.fail()
}

func (f fakeTarget) Close() error { f.s.closed.Add(1); return nil }

func (f fakeTarget) ErrorKind(err error) string {
	if errors.Is(err, errFake) {
		return "fake"
	}
	return ""
}

func newFake() (*fakeStore, Dialer) {
	s := &fakeStore{kvs: map[string][]byte{}}
	return s, func(context.Context, int) (Target, error) { return fakeTarget{s}, nil }
}

func opts(mod func(*Options)) Options {
	o := DefaultOptions()
	o.Clients, o.Conns, o.Total, o.KeySpace, o.Seed = 4, 2, 1000, 100, 42
	if mod != nil {
		mod(&o)
	}
	return o
}

func TestRunCounts(t *testing.T) {
	tests := []struct {
		name                  string
		mod                   func(*Options)
		failEvery             int64
		wantOps, wantErrors   int64
		wantPuts, wantGets    int64 // calls on the fake, when no warm-up
		wantTxns, wantPings   int64
		wantKinds             map[string]int64
		wantReadsMin, maxRead int64
	}{
		{name: "put", wantOps: 1000, wantPuts: 1000, maxRead: 0, wantKinds: map[string]int64{}},
		{name: "get", mod: func(o *Options) { o.Op = OpGet }, wantOps: 1000, wantGets: 1000, wantReadsMin: 1000, maxRead: 1000, wantKinds: map[string]int64{}},
		{name: "txn", mod: func(o *Options) { o.Op = OpTxn }, wantOps: 1000, wantTxns: 1000, wantKinds: map[string]int64{}},
		{name: "ping", mod: func(o *Options) { o.Op = OpPing }, wantOps: 1000, wantPings: 1000, wantReadsMin: 1000, maxRead: 1000, wantKinds: map[string]int64{}},
		{name: "one client one conn", mod: func(o *Options) { o.Clients, o.Conns = 1, 1 }, wantOps: 1000, wantPuts: 1000, wantKinds: map[string]int64{}},
		{
			name: "errors by kind", failEvery: 4, wantOps: 750, wantErrors: 250, wantPuts: 1000,
			wantKinds: map[string]int64{"fake": 250},
		},
		{
			name: "mixed all reads", mod: func(o *Options) { o.Op, o.ReadRatio = OpMixed, 1 },
			wantOps: 1000, wantGets: 1000, wantReadsMin: 1000, maxRead: 1000, wantKinds: map[string]int64{},
		},
		{
			name: "mixed all writes", mod: func(o *Options) { o.Op, o.ReadRatio = OpMixed, 0 },
			wantOps: 1000, wantPuts: 1000, wantKinds: map[string]int64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dial := newFake()
			s.failEvery = tt.failEvery
			o := opts(tt.mod)
			res, err := Run(t.Context(), o, dial)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Ops != tt.wantOps || res.Errors != tt.wantErrors {
				t.Errorf("ops, errors = %d, %d; want %d, %d", res.Ops, res.Errors, tt.wantOps, tt.wantErrors)
			}
			if got, want := [4]int64{s.puts.Load(), s.gets.Load(), s.txns.Load(), s.pings.Load()}, [4]int64{tt.wantPuts, tt.wantGets, tt.wantTxns, tt.wantPings}; got != want {
				t.Errorf("puts, gets, txns, pings = %v; want %v", got, want)
			}
			if res.Reads < tt.wantReadsMin || res.Reads > tt.maxRead || res.Reads+res.Writes != res.Ops {
				t.Errorf("reads %d, writes %d; want reads in [%d, %d] and reads+writes = ops %d", res.Reads, res.Writes, tt.wantReadsMin, tt.maxRead, res.Ops)
			}
			if len(res.ErrorsByKind) != len(tt.wantKinds) {
				t.Errorf("errors by kind %v, want %v", res.ErrorsByKind, tt.wantKinds)
			}
			for k, n := range tt.wantKinds {
				if res.ErrorsByKind[k] != n {
					t.Errorf("errors by kind %v, want %v", res.ErrorsByKind, tt.wantKinds)
				}
			}
			if got := s.closed.Load(); got != int64(o.Conns) {
				t.Errorf("closed %d targets, want %d", got, o.Conns)
			}
			if res.Ops > 0 && (res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.Latency.P99 < res.Latency.P50) {
				t.Errorf("latency %+v: want 0 < p50 <= p99 <= max", res.Latency)
			}
		})
	}
}

func TestRunReadRatio(t *testing.T) {
	s, dial := newFake()
	o := opts(func(o *Options) { o.Op, o.ReadRatio, o.Total, o.Consistency = OpMixed, 0.9, 10000, Serializable })
	res, err := Run(t.Context(), o, dial)
	if err != nil {
		t.Fatal(err)
	}
	// 10,000 draws at p = 0.9: the standard deviation is 30 reads, so
	// [8,700, 9,300] is ten of them either side.
	if res.Reads < 8700 || res.Reads > 9300 || res.Reads+res.Writes != 10000 {
		t.Errorf("reads %d, writes %d of 10000; want about 9000 reads", res.Reads, res.Writes)
	}
	if s.gets.Load() != res.Reads || s.puts.Load() != res.Writes {
		t.Errorf("fake saw %d gets and %d puts; result says %d reads and %d writes", s.gets.Load(), s.puts.Load(), res.Reads, res.Writes)
	}
	if Consistency(s.consistency.Load()) != Serializable {
		t.Errorf("reads used %v, want serializable", Consistency(s.consistency.Load()))
	}
}

// TestRunWarmupExcluded checks that the warm-up's operations reach the
// target but not the result.
func TestRunWarmupExcluded(t *testing.T) {
	s, dial := newFake()
	o := opts(func(o *Options) { o.Warmup = 50 * time.Millisecond })
	res, err := Run(t.Context(), o, dial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 1000 {
		t.Errorf("ops %d, want 1000 measured", res.Ops)
	}
	if res.WarmupOps == 0 {
		t.Errorf("warm-up ops 0; want the clients to have run during the warm-up")
	}
	if got := s.puts.Load(); got != res.Ops+res.WarmupOps {
		t.Errorf("target saw %d puts; want %d measured + %d warm-up", got, res.Ops, res.WarmupOps)
	}
}

// TestRunRate checks the pacing through counts: a schedule of 500 starts a
// second over 400 ms has at most 200 slots, however fast the target; an
// unpaced run of a fast fake does far more.
func TestRunRate(t *testing.T) {
	_, dial := newFake()
	o := opts(func(o *Options) { o.Total, o.Duration, o.Rate = 0, 400*time.Millisecond, 500 })
	res, err := Run(t.Context(), o, dial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops > 200 || res.Ops < 20 {
		t.Errorf("paced run did %d ops; want at most 200 (500/s for 400 ms) and not nearly none", res.Ops)
	}
	// The warm-up uses the same schedule: with a 200 ms warm-up the
	// measured phase again has at most 200 slots.
	o.Warmup = 200 * time.Millisecond
	res, err = Run(t.Context(), o, dial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops > 200 || res.WarmupOps > 101 {
		t.Errorf("paced run with warm-up: %d ops, %d warm-up ops; want at most 200 and 101", res.Ops, res.WarmupOps)
	}
}

func TestRunDuration(t *testing.T) {
	_, dial := newFake()
	o := opts(func(o *Options) { o.Total, o.Duration = 0, 100*time.Millisecond })
	var calls atomic.Int64
	o.Progress, o.ProgressInterval = func(Progress) { calls.Add(1) }, 10*time.Millisecond
	res, err := Run(t.Context(), o, dial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Duration < 100*time.Millisecond || res.OpsPerSec <= 0 {
		t.Errorf("timed run: %d ops in %v (%.0f/s); want some ops in at least 100ms", res.Ops, res.Duration, res.OpsPerSec)
	}
	if calls.Load() == 0 {
		t.Errorf("progress was never called")
	}
}

func TestRunInterrupted(t *testing.T) {
	_, dial := newFake()
	ctx, cancel := context.WithCancel(t.Context())
	o := opts(func(o *Options) { o.Total, o.Duration = 0, time.Hour })
	o.Progress, o.ProgressInterval = func(Progress) { cancel() }, time.Millisecond
	res, err := Run(ctx, o, dial)
	if !errors.Is(err, context.Canceled) || res == nil {
		t.Fatalf("Run = %v, %v; want a partial result and context.Canceled", res, err)
	}
}

func TestPrefill(t *testing.T) {
	s, dial := newFake()
	res, err := Prefill(t.Context(), dial, 3, 2, 500, 8, 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 500 || len(s.kvs) != 500 {
		t.Fatalf("prefill wrote %d ops, %d keys; want 500 and 500", res.Ops, len(s.kvs))
	}
	for i := range int64(500) {
		if v, ok := s.kvs[string(Key(i, 8))]; !ok || len(v) != 32 {
			t.Fatalf("key %q: present %v, value %d bytes; want present with 32 bytes", Key(i, 8), ok, len(v))
		}
	}
	s.failEvery = 7
	if _, err := Prefill(t.Context(), dial, 3, 2, 500, 8, 32, nil); err == nil || !strings.Contains(err.Error(), "writes failed") {
		t.Errorf("prefill with failures = %v, want an error counting them", err)
	}
}

func TestRunDialError(t *testing.T) {
	var closed atomic.Int64
	s := &fakeStore{kvs: map[string][]byte{}}
	dial := func(_ context.Context, i int) (Target, error) {
		if i == 1 {
			return nil, errFake
		}
		return closeCounter{fakeTarget{s}, &closed}, nil
	}
	if _, err := Run(t.Context(), opts(nil), dial); !errors.Is(err, errFake) {
		t.Errorf("Run with a failing dial = %v, want it wrapped", err)
	}
	if closed.Load() != 1 {
		t.Errorf("closed %d targets, want the 1 dialed", closed.Load())
	}
}

type closeCounter struct {
	fakeTarget
	n *atomic.Int64
}

func (c closeCounter) Close() error { c.n.Add(1); return nil }

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"default", nil, ""},
		{"op", func(o *Options) { o.Op = "scan" }, "op must be"},
		{"clients", func(o *Options) { o.Clients = 0 }, "clients must be at least 1"},
		{"conns", func(o *Options) { o.Conns = 0 }, "conns must be at least 1"},
		{"conns above clients", func(o *Options) { o.Conns = 5 }, "must not exceed clients"},
		{"both", func(o *Options) { o.Duration = time.Second }, "mutually exclusive"},
		{"neither", func(o *Options) { o.Total = 0 }, "one of total and duration"},
		{"negative", func(o *Options) { o.Total = -1 }, "must not be negative"},
		{"key too small", func(o *Options) { o.KeySpace, o.KeySize = 100000, 5 }, "key size must be between 6"},
		{"read ratio", func(o *Options) { o.ReadRatio = 1.5 }, "read ratio"},
		{"rate", func(o *Options) { o.Rate = -1 }, "rate must not be negative"},
		{"timeout", func(o *Options) { o.OpTimeout = 0 }, "op timeout"},
		{"sequential", func(o *Options) { o.Sequential, o.Total, o.Duration = true, 0, time.Second }, "sequential keys need a total"},
		{"warmup", func(o *Options) { o.Warmup = -time.Second }, "warmup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := opts(tt.mod).Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		i    int64
		size int
		want string
	}{
		{0, 8, "b0000000"},
		{42, 8, "b0000042"},
		{9999, 5, "b9999"},
		{7, 16, "b000000000000007"},
	}
	for _, tt := range tests {
		if got := string(Key(tt.i, tt.size)); got != tt.want {
			t.Errorf("Key(%d, %d) = %q, want %q", tt.i, tt.size, got, tt.want)
		}
	}
}

func TestResultJSON(t *testing.T) {
	in := Result{Op: OpPut, Ops: 10, Duration: 1500 * time.Millisecond, OpsPerSec: 6.7,
		Latency: Latency{P50: 1250 * time.Microsecond, Max: 3 * time.Millisecond}, ErrorsByKind: map[string]int64{"x": 1}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"duration_seconds":1.5`, `"p50_ms":1.25`, `"max_ms":3`, `"ops_per_sec":6.7`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("json %s lacks %s", b, want)
		}
	}
	var out Result
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Duration != in.Duration || out.Latency != in.Latency || out.Ops != in.Ops {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
}
