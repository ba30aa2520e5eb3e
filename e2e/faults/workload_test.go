//go:build e2e

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

// Workload parameters (docs/faults.md).
const (
	numClients     = 5
	opsPerSecond   = 80 // all clients together
	requestTimeout = time.Second
	numKeys        = 16
	w2Prefix       = "w2/"
	// numSerialClients issue serializable gets on W1 keys, each pinned to
	// one node, every serialInterval; they are checked apart from W1.
	numSerialClients = 2
	serialInterval   = 100 * time.Millisecond
	// w2Burst is how many W2 keys one insert operation writes at once, so
	// the leader's write coalescing puts several of them into one log
	// entry (a PutBatch) while nodes crash and links fail.
	w2Burst = 4
)

// workload runs W1 (registers) and W2 (durability set) together from
// numClients logical clients, each pinned to one node, and records every
// operation.
type workload struct {
	c     *cluster
	start time.Time // the cluster's time zero, shared by every epoch
	seed  uint64
	epoch int // 0, or 1 after F11's restore: part of every value and W2 key

	mu      sync.Mutex
	history []porcupine.Operation
	w2      []w2Attempt
	serial  []serialRead
	stats   workloadStats

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// workloadStats counts what the clients did.
type workloadStats struct {
	ops            int // recorded W1 ops plus W2 attempts
	indeterminate  int // writes whose outcome is unknown (W1 and W2)
	failedReads    int // dropped from the history
	failedWrites   int // failed for certain, nothing proposed
	w1Get, w1Write int
	serialReads    int // serializable gets recorded (not part of ops)
	serialSkipped  int // serializable gets that failed or spanned a node restart
}

// startWorkload starts the clients of epoch 0; stop ends them.
func startWorkload(c *cluster, seed uint64) (*workload, error) {
	return startEpoch(c, seed, 0)
}

// startEpoch starts the clients of one epoch (F11 restores a backup between
// two). Values and W2 keys name the epoch, so they stay unique across
// epochs.
func startEpoch(c *cluster, seed uint64, epoch int) (*workload, error) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{c: c, start: c.t0, seed: seed, epoch: epoch, cancel: cancel}
	rng := rand.New(rand.NewPCG(seed, 0x776b6c64+uint64(epoch)))
	for id := range numClients {
		pinned := c.nodes[rng.IntN(len(c.nodes))]
		cfg := client.DefaultConfig()
		cfg.Endpoints = []string{pinned.grpcAddr}
		cfg.DialTimeout = 500 * time.Millisecond
		cli, err := client.New(cfg)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("client %d: %w", id, err)
		}
		c.logger.Info("client pinned", "client", id, "node", pinned.id)
		wc := &workloadClient{w: w, id: id, cli: cli, rng: rand.New(rand.NewPCG(seed, uint64(id)+100*uint64(epoch))), seen: map[string]string{}}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer cli.Close()
			wc.run(ctx)
		}()
	}
	for id := range numSerialClients {
		pinned := rng.IntN(len(c.nodes))
		cfg := client.DefaultConfig()
		cfg.Endpoints = []string{c.nodes[pinned].grpcAddr}
		cfg.DialTimeout = 500 * time.Millisecond
		cli, err := client.New(cfg)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("serializable client %d: %w", id, err)
		}
		c.logger.Info("serializable client pinned", "client", id, "node", c.nodes[pinned].id)
		sc := &serialClient{w: w, id: id, node: pinned, cli: cli, rng: rand.New(rand.NewPCG(seed, 0x73657269+uint64(id)+100*uint64(epoch)))}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer cli.Close()
			sc.run(ctx)
		}()
	}
	return w, nil
}

// stop ends the clients and waits for their last operations to return.
func (w *workload) stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *workload) now() int64 { return int64(time.Since(w.start)) }

func (w *workload) record(op porcupine.Operation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.history = append(w.history, op)
	w.stats.ops++
	out := op.Output.(regOutput)
	if out.unknown {
		w.stats.indeterminate++
	}
	if op.Input.(regInput).op == opGet {
		w.stats.w1Get++
	} else {
		w.stats.w1Write++
	}
}

func (w *workload) recordW2(a w2Attempt) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w2 = append(w.w2, a)
	w.stats.ops++
	switch a.outcome {
	case w2Unknown:
		w.stats.indeterminate++
	case w2Failed:
		w.stats.failedWrites++
	}
}

func (w *workload) count(f func(*workloadStats)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(&w.stats)
}

// results returns copies of what was recorded.
func (w *workload) results() ([]porcupine.Operation, []w2Attempt, workloadStats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]porcupine.Operation(nil), w.history...), append([]w2Attempt(nil), w.w2...), w.stats
}

// serialResults returns a copy of the recorded serializable reads.
func (w *workload) serialResults() []serialRead {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]serialRead(nil), w.serial...)
}

// workloadClient is one logical client: one operation at a time.
type workloadClient struct {
	w    *workload
	id   int
	cli  *client.Client
	rng  *rand.Rand
	seq  int
	seen map[string]string // last value this client saw per key ("" = missing)
}

// every calls f every period until ctx is done.
func every(ctx context.Context, period time.Duration, f func()) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		f()
	}
}

func (wc *workloadClient) run(ctx context.Context) {
	every(ctx, time.Second*numClients/opsPerSecond, wc.next)
}

// next runs one operation.
func (wc *workloadClient) next() {
	wc.seq++
	key := fmt.Sprintf("w1/k%02d", wc.rng.IntN(numKeys))
	value := fmt.Sprintf("e%d-c%d-%d", wc.w.epoch, wc.id, wc.seq)
	// W1 takes get, put and CAS as 35:20:20; one operation in 16 is a
	// burst of w2Burst inserts, so W2 writes about as many keys as W1 puts.
	switch r := wc.rng.Float64(); {
	case r < 0.4375:
		wc.get(key)
	case r < 0.6875:
		wc.put(key, value)
	case r < 0.9375:
		wc.cas(key, value)
	default:
		wc.insertBurst()
	}
}

// indeterminate reports whether a failed write may still have been applied:
// the client says the outcome is unknown, or the deadline ran out.
func indeterminate(err error) bool {
	return errors.Is(err, client.ErrOutcomeUnknown) || errors.Is(err, context.DeadlineExceeded) ||
		status.Code(err) == codes.DeadlineExceeded
}

func (wc *workloadClient) get(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	call := wc.w.now()
	resp, err := wc.cli.Get(ctx, &kvpb.GetRequest{Key: []byte(key)})
	ret := wc.w.now()
	if err != nil {
		wc.w.count(func(s *workloadStats) { s.failedReads++ })
		return
	}
	out := regOutput{found: resp.GetFound(), value: string(resp.GetKv().GetValue())}
	wc.seen[key] = out.value
	wc.w.record(porcupine.Operation{ClientId: wc.id, Input: regInput{op: opGet, key: key}, Call: call, Output: out, Return: ret})
}

func (wc *workloadClient) put(key, value string) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	call := wc.w.now()
	_, err := wc.cli.Put(ctx, &kvpb.PutRequest{Key: []byte(key), Value: []byte(value)})
	ret := wc.w.now()
	in := regInput{op: opPut, key: key, value: value}
	switch {
	case err == nil:
		wc.seen[key] = value
		wc.w.record(porcupine.Operation{ClientId: wc.id, Input: in, Call: call, Output: regOutput{}, Return: ret})
	case indeterminate(err):
		wc.w.record(porcupine.Operation{ClientId: wc.id, Input: in, Call: call, Output: regOutput{unknown: true}, Return: infinity})
	default:
		wc.w.count(func(s *workloadStats) { s.failedWrites++ })
	}
}

// cas compares the key with the value this client last saw and, if equal,
// writes value; otherwise it reads the current value in the same Txn, which
// the checker verifies too.
func (wc *workloadClient) cas(key, value string) {
	expect := wc.seen[key]
	cmp := client.CompareValue([]byte(key), kvpb.Compare_EQUAL, []byte(expect))
	if expect == "" {
		cmp = client.CompareExists([]byte(key), false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	call := wc.w.now()
	resp, err := wc.cli.Txn(ctx, &kvpb.TxnRequest{
		Compare: []*kvpb.Compare{cmp},
		Success: []*kvpb.RequestOp{client.OpPut([]byte(key), []byte(value))},
		Failure: []*kvpb.RequestOp{client.OpGet([]byte(key))},
	})
	ret := wc.w.now()
	in := regInput{op: opCAS, key: key, value: value, expect: expect}
	switch {
	case err == nil:
		out := regOutput{ok: resp.GetSucceeded()}
		if out.ok {
			wc.seen[key] = value
		} else {
			var kvs []*kvpb.KeyValue
			if rs := resp.GetResponses(); len(rs) == 1 {
				kvs = rs[0].GetResponseRange().GetKvs()
			}
			if len(kvs) > 0 {
				out.found, out.value = true, string(kvs[0].GetValue())
			}
			wc.seen[key] = out.value
		}
		wc.w.record(porcupine.Operation{ClientId: wc.id, Input: in, Call: call, Output: out, Return: ret})
	case indeterminate(err):
		wc.w.record(porcupine.Operation{ClientId: wc.id, Input: in, Call: call, Output: regOutput{unknown: true}, Return: infinity})
	default:
		wc.w.count(func(s *workloadStats) { s.failedWrites++ })
	}
}

// insertBurst is w2Burst concurrent W2 writes, each of a key this client
// never used, with a unique value.
func (wc *workloadClient) insertBurst() {
	var wg sync.WaitGroup
	for i := range w2Burst {
		key := fmt.Sprintf("%se%d/c%d/%06d-%d", w2Prefix, wc.w.epoch, wc.id, wc.seq, i)
		value := fmt.Sprintf("v-%d-%d-%d-%d-%x", wc.w.epoch, wc.id, wc.seq, i, wc.rng.Uint32())
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc.insert(key, value)
		}()
	}
	wg.Wait()
}

// insert is one W2 write.
func (wc *workloadClient) insert(key, value string) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	call := wc.w.now()
	_, err := wc.cli.Put(ctx, &kvpb.PutRequest{Key: []byte(key), Value: []byte(value)})
	a := w2Attempt{key: key, value: value, outcome: w2Acked, call: call, ret: wc.w.now()}
	switch {
	case err == nil:
	case indeterminate(err):
		a.outcome = w2Unknown
	default:
		a.outcome = w2Failed
	}
	wc.w.recordW2(a)
}

// serialClient issues serializable gets on W1 keys at the one node it is
// pinned to. Its reads may be stale, so they never enter the W1 history;
// checkSerial checks them apart.
type serialClient struct {
	w    *workload
	id   int
	node int // index into cluster.nodes
	cli  *client.Client
	rng  *rand.Rand
}

func (sc *serialClient) run(ctx context.Context) {
	every(ctx, serialInterval, sc.read)
}

// read is one serializable get.
func (sc *serialClient) read() {
	key := fmt.Sprintf("w1/k%02d", sc.rng.IntN(numKeys))
	gen := sc.w.c.generation(sc.node)
	rctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	call := sc.w.now()
	resp, err := sc.cli.Get(rctx, &kvpb.GetRequest{Key: []byte(key), Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
	ret := sc.w.now()
	cancel()
	// A read that spans a restart of its node belongs to no one
	// generation of that node; it is left out.
	if err != nil || sc.w.c.generation(sc.node) != gen {
		sc.w.count(func(s *workloadStats) { s.serialSkipped++ })
		return
	}
	r := serialRead{client: sc.id, node: sc.node, gen: gen, key: key, call: call, ret: ret,
		found: resp.GetFound(), value: string(resp.GetKv().GetValue()), modRev: resp.GetKv().GetModRevision()}
	sc.w.mu.Lock()
	sc.w.serial = append(sc.w.serial, r)
	sc.w.stats.serialReads++
	sc.w.mu.Unlock()
}
