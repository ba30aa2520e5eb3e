package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Op is a workload: which operation every request is.
type Op string

const (
	// OpPut writes a random key of the key space.
	OpPut Op = "put"
	// OpGet reads a random key of the key space.
	OpGet Op = "get"
	// OpMixed reads (a fraction ReadRatio of the requests) or writes.
	OpMixed Op = "mixed"
	// OpTxn runs a compare-and-put (Target.Txn) on a random key.
	OpTxn Op = "txn"
	// OpPing makes the cheapest call the server answers (Target.Ping): no
	// key, no store. It measures the RPC stack's ceiling on the machine,
	// the most any workload of one call per operation can reach.
	OpPing Op = "ping"
)

// maxKeySize bounds Options.KeySize; servers refuse far smaller keys.
const maxKeySize = 1 << 16

// Options describe one run. DefaultOptions returns working values; Validate
// checks them.
type Options struct {
	// Op is the workload.
	Op Op
	// Clients is the number of goroutines issuing requests, each one at a
	// time.
	Clients int
	// Conns is the number of connections (Targets) the clients share;
	// client i uses connection i mod Conns. At most Clients.
	Conns int
	// Total, when positive, ends the run after this many measured
	// operations (successful or not). Exactly one of Total and Duration is
	// positive.
	Total int64
	// Duration, when positive, ends the run this long after the warm-up.
	Duration time.Duration
	// Warmup is how long the clients run before measuring starts;
	// operations that start during it are not counted.
	Warmup time.Duration
	// KeySize is the size of every key in bytes (see Key).
	KeySize int
	// ValueSize is the size of every written value in bytes.
	ValueSize int
	// KeySpace is the number of distinct keys: keys are Key(i, KeySize)
	// for 0 <= i < KeySpace, picked uniformly at random.
	KeySpace int64
	// ReadRatio is the fraction of OpMixed requests that are reads, in
	// [0, 1].
	ReadRatio float64
	// Consistency is the consistency of every read.
	Consistency Consistency
	// Rate, when positive, is the total number of operations per second
	// all clients together start, on a shared schedule (open loop); 0
	// means as fast as the clients go.
	Rate float64
	// OpTimeout is the deadline of each request.
	OpTimeout time.Duration
	// Sequential makes measured operation n use key n mod KeySpace instead
	// of a random one, so a run with Total = KeySpace writes every key
	// once (Prefill). It needs Total.
	Sequential bool
	// Seed seeds the clients' random keys, values and read/write choices;
	// 0 picks a random seed.
	Seed uint64
	// Progress, when set, is called every ProgressInterval from one
	// goroutine while the run lasts. It must return quickly.
	Progress func(Progress)
	// ProgressInterval is how often Progress is called.
	ProgressInterval time.Duration
}

// DefaultOptions returns a short put run: 16 clients over 4 connections,
// 10,000 operations, 16-byte keys, 256-byte values, 10,000 keys.
func DefaultOptions() Options {
	return Options{
		Op:               OpPut,
		Clients:          16,
		Conns:            4,
		Total:            10000,
		KeySize:          16,
		ValueSize:        256,
		KeySpace:         10000,
		ReadRatio:        0.9,
		Consistency:      Linearizable,
		OpTimeout:        10 * time.Second,
		ProgressInterval: 200 * time.Millisecond,
	}
}

// Validate checks every field and the relations between them.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch o.Op {
	case OpPut, OpGet, OpMixed, OpTxn, OpPing:
	default:
		bad("op must be put, get, mixed, txn or ping, got %q", o.Op)
	}
	if o.Clients < 1 {
		bad("clients must be at least 1, got %d", o.Clients)
	}
	if o.Conns < 1 {
		bad("conns must be at least 1, got %d", o.Conns)
	} else if o.Clients >= 1 && o.Conns > o.Clients {
		bad("conns (%d) must not exceed clients (%d): a connection without a client measures nothing", o.Conns, o.Clients)
	}
	switch {
	case o.Total < 0 || o.Duration < 0:
		bad("total and duration must not be negative")
	case o.Total > 0 && o.Duration > 0:
		bad("total and duration are mutually exclusive")
	case o.Total == 0 && o.Duration == 0:
		bad("one of total and duration must be positive")
	}
	if o.Warmup < 0 {
		bad("warmup must not be negative, got %v", o.Warmup)
	}
	if o.KeySpace < 1 {
		bad("key space must be at least 1, got %d", o.KeySpace)
	} else if need := minKeySize(o.KeySpace); o.KeySize < need || o.KeySize > maxKeySize {
		bad("key size must be between %d (to number %d keys) and %d, got %d", need, o.KeySpace, maxKeySize, o.KeySize)
	}
	if o.ValueSize < 0 {
		bad("value size must not be negative, got %d", o.ValueSize)
	}
	if o.ReadRatio < 0 || o.ReadRatio > 1 || o.ReadRatio != o.ReadRatio {
		bad("read ratio must be between 0 and 1, got %v", o.ReadRatio)
	}
	if o.Consistency != Linearizable && o.Consistency != Serializable {
		bad("unknown consistency %d", o.Consistency)
	}
	if o.Rate < 0 {
		bad("rate must not be negative, got %v", o.Rate)
	}
	if o.OpTimeout <= 0 {
		bad("op timeout must be positive, got %v", o.OpTimeout)
	}
	if o.Sequential && o.Total == 0 {
		bad("sequential keys need a total")
	}
	if o.Progress != nil && o.ProgressInterval <= 0 {
		bad("progress interval must be positive, got %v", o.ProgressInterval)
	}
	return errors.Join(errs...)
}

// keyPrefix starts every key, so bench keys are easy to recognise and
// delete (`raftkvctl del --prefix b`).
const keyPrefix = 'b'

// minKeySize is the smallest key size that numbers n keys: the prefix and
// the digits of n-1.
func minKeySize(n int64) int {
	return 1 + len(strconv.FormatInt(max(n-1, 0), 10))
}

// Key returns key number i of size bytes: the prefix byte 'b' and i in
// decimal, zero-padded ("b0000042"). size must be at least 1 plus the
// number of digits of i.
func Key(i int64, size int) []byte {
	return appendKey(make([]byte, 0, size), i, size)
}

// appendKey appends Key(i, size) to dst.
func appendKey(dst []byte, i int64, size int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], i, 10)
	dst = append(dst, keyPrefix)
	for range size - 1 - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}
