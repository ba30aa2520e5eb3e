package transport

import (
	"fmt"

	"github.com/raftkv/raftkv/api/kvpb"
)

// Limits bounds what a request may carry. Requests beyond MaxRequestBytes are
// rejected by gRPC with ResourceExhausted before they are decoded; the other
// limits give InvalidArgument. All limits are far below
// raft.SuggestedMaxDataSize so one request is one reasonable log entry.
type Limits struct {
	// MaxKeyBytes is the largest key accepted.
	MaxKeyBytes int
	// MaxValueBytes is the largest value accepted.
	MaxValueBytes int
	// MaxRequestBytes is the largest encoded request message accepted.
	MaxRequestBytes int
	// MaxTxnOps caps the compares and the ops in each branch of a Txn.
	MaxTxnOps int
}

// DefaultLimits returns the documented defaults: 4 KiB keys, 1 MiB values,
// 1.5 MiB requests, 128 Txn ops.
func DefaultLimits() Limits {
	return Limits{
		MaxKeyBytes:     4 << 10,
		MaxValueBytes:   1 << 20,
		MaxRequestBytes: 3 << 19,
		MaxTxnOps:       128,
	}
}

// Validate checks each limit and how they relate.
func (l Limits) Validate() error {
	switch {
	case l.MaxKeyBytes <= 0 || l.MaxValueBytes < 0 || l.MaxRequestBytes <= 0 || l.MaxTxnOps <= 0:
		return fmt.Errorf("limits must be positive: %+v", l)
	case l.MaxRequestBytes < l.MaxKeyBytes+l.MaxValueBytes:
		return fmt.Errorf("max request bytes %d is below max key + max value (%d)", l.MaxRequestBytes, l.MaxKeyBytes+l.MaxValueBytes)
	case l.MaxRequestBytes > 64<<20:
		return fmt.Errorf("max request bytes %d is above the 64 MiB raft entry budget", l.MaxRequestBytes)
	}
	return nil
}

func (l Limits) key(what string, k []byte) error {
	if len(k) == 0 {
		return fmt.Errorf("%w: %s must not be empty", ErrInvalidArgument, what)
	}
	if len(k) > l.MaxKeyBytes {
		return fmt.Errorf("%w: %s is %d bytes, limit is %d", ErrInvalidArgument, what, len(k), l.MaxKeyBytes)
	}
	return nil
}

func (l Limits) rangeEnd(end []byte) error {
	if len(end) > l.MaxKeyBytes {
		return fmt.Errorf("%w: range_end is %d bytes, limit is %d", ErrInvalidArgument, len(end), l.MaxKeyBytes)
	}
	return nil
}

func (l Limits) consistency(c kvpb.Consistency) error {
	switch c {
	case kvpb.Consistency_CONSISTENCY_UNKNOWN, kvpb.Consistency_CONSISTENCY_LINEARIZABLE, kvpb.Consistency_CONSISTENCY_SERIALIZABLE:
		return nil
	}
	return fmt.Errorf("%w: unknown consistency %d", ErrInvalidArgument, c)
}

// ValidateGet checks a Get request.
func (l Limits) ValidateGet(r *kvpb.GetRequest) error {
	if err := l.key("key", r.GetKey()); err != nil {
		return err
	}
	return l.consistency(r.GetConsistency())
}

// ValidatePut checks a Put request.
func (l Limits) ValidatePut(r *kvpb.PutRequest) error {
	if err := l.key("key", r.GetKey()); err != nil {
		return err
	}
	if len(r.GetValue()) > l.MaxValueBytes {
		return fmt.Errorf("%w: value is %d bytes, limit is %d", ErrInvalidArgument, len(r.GetValue()), l.MaxValueBytes)
	}
	if r.GetTtlMs() < 0 || r.GetTtlMs() > MaxTTLMs {
		return fmt.Errorf("%w: ttl_ms %d must be 0 (no expiry) to %d", ErrInvalidArgument, r.GetTtlMs(), int64(MaxTTLMs))
	}
	return nil
}

// MaxTTLMs is the longest TTL a put accepts: 100 years, far from any
// overflow of the absolute expiry in milliseconds.
const MaxTTLMs = 100 * 365 * 24 * 3600 * 1000

// ValidateDelete checks a Delete request.
func (l Limits) ValidateDelete(r *kvpb.DeleteRequest) error {
	if err := l.key("key", r.GetKey()); err != nil {
		return err
	}
	if r.GetPrefix() && len(r.GetRangeEnd()) > 0 {
		return fmt.Errorf("%w: prefix and range_end are exclusive", ErrInvalidArgument)
	}
	return l.rangeEnd(r.GetRangeEnd())
}

// ValidateRange checks a Range request.
func (l Limits) ValidateRange(r *kvpb.RangeRequest) error {
	// An empty key with prefix=true is allowed: it ranges over every key.
	if len(r.GetKey()) == 0 && !r.GetPrefix() {
		return fmt.Errorf("%w: key must not be empty (use prefix with an empty key to scan everything)", ErrInvalidArgument)
	}
	if len(r.GetKey()) > l.MaxKeyBytes {
		return fmt.Errorf("%w: key is %d bytes, limit is %d", ErrInvalidArgument, len(r.GetKey()), l.MaxKeyBytes)
	}
	if r.GetPrefix() && len(r.GetRangeEnd()) > 0 {
		return fmt.Errorf("%w: prefix and range_end are exclusive", ErrInvalidArgument)
	}
	if r.GetLimit() < 0 {
		return fmt.Errorf("%w: limit must not be negative", ErrInvalidArgument)
	}
	if err := l.rangeEnd(r.GetRangeEnd()); err != nil {
		return err
	}
	return l.consistency(r.GetConsistency())
}

// ValidateTxn checks a Txn request, its compares and every op in both branches.
func (l Limits) ValidateTxn(r *kvpb.TxnRequest) error {
	if n := len(r.GetCompare()); n > l.MaxTxnOps {
		return fmt.Errorf("%w: txn has %d compares, limit is %d", ErrInvalidArgument, n, l.MaxTxnOps)
	}
	for i, c := range r.GetCompare() {
		if err := l.key(fmt.Sprintf("compare[%d] key", i), c.GetKey()); err != nil {
			return err
		}
		if err := validateCompare(c); err != nil {
			return fmt.Errorf("compare[%d]: %w", i, err)
		}
	}
	for name, ops := range map[string][]*kvpb.RequestOp{"success": r.GetSuccess(), "failure": r.GetFailure()} {
		if len(ops) > l.MaxTxnOps {
			return fmt.Errorf("%w: txn %s has %d ops, limit is %d", ErrInvalidArgument, name, len(ops), l.MaxTxnOps)
		}
		for i, op := range ops {
			var err error
			switch o := op.GetRequest().(type) {
			case *kvpb.RequestOp_RequestRange:
				err = l.ValidateRange(o.RequestRange)
			case *kvpb.RequestOp_RequestPut:
				err = l.ValidatePut(o.RequestPut)
			case *kvpb.RequestOp_RequestDelete:
				err = l.ValidateDelete(o.RequestDelete)
			default:
				err = fmt.Errorf("%w: empty op", ErrInvalidArgument)
			}
			if err != nil {
				return fmt.Errorf("txn %s[%d]: %w", name, i, err)
			}
		}
	}
	return nil
}

func validateCompare(c *kvpb.Compare) error {
	switch c.GetResult() {
	case kvpb.Compare_EQUAL, kvpb.Compare_NOT_EQUAL, kvpb.Compare_GREATER, kvpb.Compare_LESS:
	default:
		return fmt.Errorf("%w: unknown compare result %d", ErrInvalidArgument, c.GetResult())
	}
	var ok bool
	switch c.GetTarget() {
	case kvpb.Compare_VALUE:
		_, ok = c.GetTargetUnion().(*kvpb.Compare_Value)
	case kvpb.Compare_VERSION:
		_, ok = c.GetTargetUnion().(*kvpb.Compare_Version)
	case kvpb.Compare_CREATE:
		_, ok = c.GetTargetUnion().(*kvpb.Compare_CreateRevision)
	case kvpb.Compare_MOD:
		_, ok = c.GetTargetUnion().(*kvpb.Compare_ModRevision)
	case kvpb.Compare_EXISTS:
		_, ok = c.GetTargetUnion().(*kvpb.Compare_Exists)
		if ok && c.GetResult() != kvpb.Compare_EQUAL && c.GetResult() != kvpb.Compare_NOT_EQUAL {
			return fmt.Errorf("%w: EXISTS compares only with EQUAL or NOT_EQUAL", ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("%w: unknown compare target %d", ErrInvalidArgument, c.GetTarget())
	}
	if !ok {
		return fmt.Errorf("%w: compare target %s needs the matching value field", ErrInvalidArgument, c.GetTarget())
	}
	return nil
}
