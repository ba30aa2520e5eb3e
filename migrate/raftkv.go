package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

// The server's default limits (transport.DefaultLimits). They are repeated
// here because a client must not import server code; a server started
// with stricter --max-* flags still works: what it rejects is split down
// to the one record it refuses, which then fails with the server's reason.
const (
	raftkvMaxKey     = 4 << 10
	raftkvMaxValue   = 1 << 20
	raftkvMaxRequest = 3 << 19
	raftkvMaxTxnOps  = 128
	// requestMargin keeps a Txn clear of the request limit, whatever the
	// exact protobuf framing adds.
	requestMargin = 16 << 10
	// recvLimit is the largest response the migration accepts (an Export
	// page or a Txn that reads values back).
	recvLimit = 64 << 20
	// unknownOutcomeRetries bounds how often a Txn whose outcome is unknown
	// is sent again. Every Txn the migration sends is idempotent: puts of
	// fixed values, conditional puts, reads.
	unknownOutcomeRetries = 3
)

func newRaftkvClient(hosts string, opts []string) (*client.Client, []string, error) {
	var eps []string
	for ep := range strings.SplitSeq(hosts, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		eps = opts
	}
	if len(eps) == 0 {
		return nil, nil, errors.New("no endpoints: write raftkv://HOST:PORT[,HOST:PORT...]")
	}
	cfg := client.DefaultConfig()
	cfg.Endpoints = eps
	cfg.DialOptions = []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(recvLimit))}
	cli, err := client.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cli, eps, nil
}

// clusterIdentity asks for the member list, which proves the cluster is
// reachable and identifies it: two URLs name the same cluster when their
// raft configurations are equal.
func clusterIdentity(ctx context.Context, cli *client.Client, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return "", fmt.Errorf("unreachable: %w", err)
	}
	var ids []string
	for _, m := range resp.GetMembers() {
		ids = append(ids, m.GetId()+"="+m.GetRaftAddr())
	}
	slices.Sort(ids)
	return strings.Join(ids, ","), nil
}

// raftkvSource streams a key range with KV.Export: after a linearizable
// read barrier, the answering node reads the whole range from one store
// read transaction, so a copy made in one run is the source's state at
// exactly one revision (the cut's applied index), deletes included.
//
// A resumed run (--resume) opens a new stream after the checkpointed key:
// each run is then its own cut, and the copy as a whole is consistent per
// run, not across runs (Consistency says which revisions were read).
type raftkvSource struct {
	cli      *client.Client
	timeout  time.Duration
	identity string
	prefix   []byte

	start, end []byte // the stream starts at start; end nil: no bound
	stream     *client.ExportStream
	page       []*kvpb.KeyValue
	i          int
	done       bool
	streams    int // streams opened by this run

	last     []byte // last key returned
	startRev int64
	endRev   int64
	modified int64
	modKeys  [][]byte
}

// raftkvPosition is the Position token of a raftkv source.
//
// NB: stored in checkpoint files; add fields, never change one.
type raftkvPosition struct {
	After    []byte `json:"after"`
	StartRev int64  `json:"start_revision"`
	Modified int64  `json:"modified"`
}

func openRaftkvSource(ctx context.Context, hosts string, opts SourceOptions) (*raftkvSource, error) {
	cli, _, err := newRaftkvClient(hosts, opts.Endpoints)
	if err != nil {
		return nil, err
	}
	id, err := clusterIdentity(ctx, cli, opts.RequestTimeout)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	s := &raftkvSource{
		cli: cli, timeout: opts.RequestTimeout, identity: id, prefix: bytes.Clone(opts.Prefix),
		start: bytes.Clone(opts.Prefix), end: prefixEnd(opts.Prefix),
	}
	if len(s.start) == 0 {
		s.start = []byte{0} // keys are never empty, so "\x00" is the first possible key
	}
	if opts.After != "" {
		var p raftkvPosition
		if err := json.Unmarshal([]byte(opts.After), &p); err != nil {
			_ = cli.Close()
			return nil, fmt.Errorf("bad resume position %q: %w", opts.After, err)
		}
		s.start, s.last = keyAfter(p.After), p.After
		s.startRev, s.modified = p.StartRev, p.Modified
	}
	return s, nil
}

func (s *raftkvSource) rangeEnd() []byte {
	if s.end == nil {
		return []byte{0} // the server's "to the end of the keyspace"
	}
	return s.end
}

func (s *raftkvSource) Next(ctx context.Context) (Record, error) {
	for s.i >= len(s.page) {
		if s.done {
			return Record{}, io.EOF
		}
		if err := s.fetch(ctx); err != nil {
			return Record{}, err
		}
	}
	kv := s.page[s.i]
	s.i++
	s.last = kv.GetKey()
	if kv.GetModRevision() > s.startRev {
		s.modified++
		if len(s.modKeys) < DefaultConfig().ListLimit {
			s.modKeys = append(s.modKeys, kv.GetKey())
		}
	}
	v := kv.GetValue()
	if v == nil {
		v = []byte{}
	}
	r := Record{Key: kv.GetKey(), Value: v}
	if at := kv.GetExpireAtUnixMs(); at != 0 {
		r.ExpireAt = time.UnixMilli(at)
	}
	return r, nil
}

// fetch receives the next page, opening the stream first if needed.
func (s *raftkvSource) fetch(ctx context.Context) error {
	if s.stream == nil {
		// The stream lives as long as the copy: no per-request timeout
		// (opening it is bounded by the node's read barrier).
		st, err := s.cli.Export(ctx, &kvpb.ExportRequest{Key: s.start, RangeEnd: s.rangeEnd()})
		if err != nil {
			return err
		}
		s.stream, s.streams = st, s.streams+1
		if s.startRev == 0 {
			s.startRev = st.Revision()
		}
		s.endRev = st.Revision()
	}
	resp, err := s.stream.Recv()
	if errors.Is(err, io.EOF) {
		s.stream.Close()
		s.stream, s.done, s.page, s.i = nil, true, nil, 0
		return nil
	}
	if err != nil {
		return err
	}
	s.page, s.i = resp.GetKvs(), 0
	return nil
}

func (s *raftkvSource) Position() string {
	b, _ := json.Marshal(raftkvPosition{After: s.last, StartRev: s.startRev, Modified: s.modified})
	return string(b)
}

func (s *raftkvSource) Sorted() bool { return true }

func (s *raftkvSource) Close() error {
	if s.stream != nil {
		s.stream.Close()
	}
	return s.cli.Close()
}

// Estimate counts the keys in the range (a count-only Range).
func (s *raftkvSource) Estimate(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := s.prefix
	if len(start) == 0 {
		start = []byte{0}
	}
	resp, err := s.cli.Range(ctx, &kvpb.RangeRequest{Key: start, RangeEnd: s.rangeEnd(), CountOnly: true})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}

// Cut reports how consistent the copy was.
func (s *raftkvSource) Cut() *Consistency {
	c := &Consistency{
		Model:         "snapshot",
		StartRevision: s.startRev,
		EndRevision:   s.endRev,
		Modified:      s.modified,
		ModifiedKeys:  s.modKeys,
		Exact:         s.startRev == s.endRev && s.modified == 0,
	}
	if c.Exact {
		c.Note = "one point-in-time cut: the copy is the source's state at revision " + fmt.Sprint(s.startRev)
	} else {
		c.Model = "per-run"
		c.Note = "the copy was resumed: each run read its own point-in-time cut (from revision " + fmt.Sprint(s.startRev) +
			" to " + fmt.Sprint(s.endRev) + "); keys changed between runs (listed) carry their newer value, " +
			"and keys deleted between runs from the part copied earlier are not detected"
	}
	return c
}

// raftkvTarget writes batches as Txns through the leader.
type raftkvTarget struct {
	cli      *client.Client
	timeout  time.Duration
	conc     int
	identity string
	log      *slog.Logger
}

func openRaftkvTarget(ctx context.Context, hosts string, opts TargetOptions) (*raftkvTarget, error) {
	cli, _, err := newRaftkvClient(hosts, opts.Endpoints)
	if err != nil {
		return nil, err
	}
	id, err := clusterIdentity(ctx, cli, opts.RequestTimeout)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	return &raftkvTarget{cli: cli, timeout: opts.RequestTimeout, conc: opts.TxnConcurrency, identity: id, log: opts.Logger}, nil
}

func (t *raftkvTarget) Prepare(context.Context) error { return nil }
func (t *raftkvTarget) CanExpire() bool               { return true }
func (t *raftkvTarget) Sync(context.Context) (string, error) {
	return "", nil
}
func (t *raftkvTarget) Close() error { return t.cli.Close() }

func (t *raftkvTarget) Check(r Record) error {
	switch {
	case len(r.Key) == 0:
		return errors.New("empty key: raftkv keys are 1 byte to 4 KiB")
	case len(r.Key) > raftkvMaxKey:
		return fmt.Errorf("key is %d bytes, over the %d-byte key limit", len(r.Key), raftkvMaxKey)
	case len(r.Value) > raftkvMaxValue:
		return fmt.Errorf("value is %d bytes, over the %d-byte value limit", len(r.Value), raftkvMaxValue)
	case opCost(r, SkipExisting) > raftkvMaxRequest-requestMargin:
		return fmt.Errorf("record is %d bytes, over the %d-byte request limit", len(r.Key)+len(r.Value), raftkvMaxRequest)
	}
	return nil
}

// opCost bounds what r adds to an encoded Txn: the put, and for
// SkipExisting a compare and a range on its key, each with its framing.
func opCost(r Record, mode Mode) int {
	c := len(r.Key) + len(r.Value) + 24
	if mode == SkipExisting {
		c += 2 * (len(r.Key) + 24)
	}
	return c
}

// chunks splits recs into Txn-sized runs: at most raftkvMaxTxnOps records
// and raftkvMaxRequest bytes (less a margin) each.
func chunks(recs []Record, mode Mode) [][]Record {
	var out [][]Record
	start, size := 0, 0
	for i, r := range recs {
		c := opCost(r, mode)
		if i > start && (i-start >= raftkvMaxTxnOps || size+c > raftkvMaxRequest-requestMargin) {
			out = append(out, recs[start:i])
			start, size = i, 0
		}
		size += c
	}
	if start < len(recs) {
		out = append(out, recs[start:])
	}
	return out
}

func (t *raftkvTarget) Write(ctx context.Context, recs []Record, opts WriteOptions) ([]Outcome, error) {
	outs := make([]Outcome, len(recs))
	parts := chunks(recs, opts.Mode)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, t.conc)
	off := 0
	for _, part := range parts {
		sem <- struct{}{}
		wg.Add(1)
		go func(part []Record, dst []Outcome) {
			defer func() { <-sem; wg.Done() }()
			if err := t.writeChunk(ctx, part, dst, opts); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}(part, outs[off:off+len(part)])
		off += len(part)
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return outs, nil
}

// writeChunk writes one Txn-sized chunk and fills outs.
func (t *raftkvTarget) writeChunk(ctx context.Context, recs []Record, outs []Outcome, opts WriteOptions) error {
	if opts.OnlyIfChanged {
		same, err := t.unchanged(ctx, recs)
		if err != nil {
			return err
		}
		var todo []Record
		var idx []int
		for i, r := range recs {
			if same[i] {
				outs[i] = Outcome{Status: Copied}
				continue
			}
			todo = append(todo, r)
			idx = append(idx, i)
		}
		if len(todo) == 0 {
			return nil
		}
		sub := make([]Outcome, len(todo))
		opts.OnlyIfChanged = false
		if err := t.writeChunk(ctx, todo, sub, opts); err != nil {
			return err
		}
		for j, i := range idx {
			outs[i] = sub[j]
		}
		return nil
	}
	var err error
	if opts.Mode == SkipExisting {
		err = t.putIfMissing(ctx, recs, outs)
	} else {
		err = t.put(ctx, recs, outs)
	}
	if !splittable(err) {
		return err
	}
	// The server refused the Txn as a whole: find the record it refuses.
	if len(recs) == 1 {
		outs[0] = Outcome{Status: Failed, Reason: "refused by the server: " + statusMessage(err)}
		return nil
	}
	h := len(recs) / 2
	if err := t.writeChunk(ctx, recs[:h], outs[:h], opts); err != nil {
		return err
	}
	return t.writeChunk(ctx, recs[h:], outs[h:], opts)
}

// statusMessage returns the server's own message of a gRPC error, without
// the client's wrapping.
func statusMessage(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Message()
	}
	return err.Error()
}

// splittable reports whether the server rejected a whole Txn for one of
// its records: nothing was applied, and smaller Txns may pass.
func splittable(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.ResourceExhausted:
		return true
	}
	return false
}

// txn sends req, again when its outcome is unknown: every Txn of the
// migration is idempotent (see unknownOutcomeRetries).
func (t *raftkvTarget) txn(ctx context.Context, req *kvpb.TxnRequest) (*kvpb.TxnResponse, error) {
	for try := 0; ; try++ {
		rctx, cancel := context.WithTimeout(ctx, t.timeout)
		resp, err := t.cli.Txn(rctx, req)
		cancel()
		if err == nil || !errors.Is(err, client.ErrOutcomeUnknown) || ctx.Err() != nil || try >= unknownOutcomeRetries {
			return resp, err
		}
		t.log.Warn("txn outcome unknown; sending it again (it is idempotent)", "err", err, "try", try+1)
	}
}

// putOp is the put of one record. An expiry becomes the TTL left now (at
// least 1 ms; the engine skips records already expired when it reads
// them): raftkv anchors TTLs to its leader's clock, so the copy keeps the
// remaining lifetime, give or take the clock skew between this machine and
// the leader and the time the batch takes to commit.
func putOp(r Record) *kvpb.RequestOp {
	p := &kvpb.PutRequest{Key: r.Key, Value: r.Value}
	if !r.ExpireAt.IsZero() {
		p.TtlMs = max(1, time.Until(r.ExpireAt).Milliseconds())
	}
	return &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestPut{RequestPut: p}}
}

func getOp(key []byte, countOnly bool) *kvpb.RequestOp {
	return &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestRange{RequestRange: &kvpb.RangeRequest{Key: key, CountOnly: countOnly}}}
}

// put writes recs unconditionally in one Txn.
func (t *raftkvTarget) put(ctx context.Context, recs []Record, outs []Outcome) error {
	req := &kvpb.TxnRequest{Success: make([]*kvpb.RequestOp, len(recs))}
	for i, r := range recs {
		req.Success[i] = putOp(r)
	}
	if _, err := t.txn(ctx, req); err != nil {
		return err
	}
	for i := range outs {
		outs[i] = Outcome{Status: Copied}
	}
	return nil
}

// putIfMissing writes the records whose keys don't exist. One Txn checks
// that none exists and writes them all; when some exist, its failure
// branch says which, and the rest go again.
func (t *raftkvTarget) putIfMissing(ctx context.Context, recs []Record, outs []Outcome) error {
	pending := make([]int, len(recs))
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		req := &kvpb.TxnRequest{}
		for _, i := range pending {
			k := recs[i].Key
			req.Compare = append(req.Compare, &kvpb.Compare{Result: kvpb.Compare_EQUAL, Target: kvpb.Compare_EXISTS,
				Key: k, TargetUnion: &kvpb.Compare_Exists{Exists: false}})
			req.Success = append(req.Success, putOp(recs[i]))
			req.Failure = append(req.Failure, getOp(k, true))
		}
		resp, err := t.txn(ctx, req)
		if err != nil {
			return err
		}
		if resp.GetSucceeded() {
			for _, i := range pending {
				outs[i] = Outcome{Status: Copied}
			}
			return nil
		}
		var still []int
		for j, i := range pending {
			if resp.GetResponses()[j].GetResponseRange().GetCount() > 0 {
				outs[i] = Outcome{Status: Skipped, Reason: "exists"}
			} else {
				still = append(still, i)
			}
		}
		pending = still
	}
	return nil
}

// unchanged reads recs' keys in one Txn and reports which already hold
// exactly the record's value.
func (t *raftkvTarget) unchanged(ctx context.Context, recs []Record) ([]bool, error) {
	req := &kvpb.TxnRequest{Success: make([]*kvpb.RequestOp, len(recs))}
	for i, r := range recs {
		req.Success[i] = getOp(r.Key, false)
	}
	resp, err := t.txn(ctx, req)
	if splittable(err) && len(recs) > 1 {
		h := len(recs) / 2
		a, err := t.unchanged(ctx, recs[:h])
		if err != nil {
			return nil, err
		}
		b, err := t.unchanged(ctx, recs[h:])
		return append(a, b...), err
	}
	if err != nil {
		return nil, err
	}
	same := make([]bool, len(recs))
	for i, op := range resp.GetResponses() {
		kvs := op.GetResponseRange().GetKvs()
		same[i] = len(kvs) == 1 && bytes.Equal(kvs[0].GetValue(), recs[i].Value)
	}
	return same, nil
}

// checkOverlap refuses to copy a raftkv key range onto an overlapping
// range of the same cluster: the copy would read its own writes.
func checkOverlap(_ context.Context, src Source, tgt Target, cfg Config) error {
	s, ok1 := src.(*raftkvSource)
	t, ok2 := tgt.(*raftkvTarget)
	if !ok1 || !ok2 || s.identity != t.identity {
		return nil
	}
	a0, a1 := cfg.Prefix, prefixEnd(cfg.Prefix)
	b0, b1 := cfg.targetPrefix(), prefixEnd(cfg.targetPrefix())
	// [a0, a1) and [b0, b1) overlap unless one ends before the other starts
	// (a nil end is unbounded).
	disjoint := (a1 != nil && bytes.Compare(a1, b0) <= 0) || (b1 != nil && bytes.Compare(b1, a0) <= 0)
	if disjoint {
		return nil
	}
	return fmt.Errorf("source and target are the same cluster and the target keys (prefix %s) overlap the source keys (prefix %s): "+
		"copy to a disjoint prefix with --rename-prefix", KeyString(cfg.targetPrefix()), KeyString(cfg.Prefix))
}
