package fsm

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/fsm/fsmpb"
	"github.com/raftkv/raftkv/internal/failpoint"
	"github.com/raftkv/raftkv/store"
)

// Deterministic apply errors, returned in Result.Err. Every node returns the
// same one for the same entry, and the entry changes nothing but the applied
// index.
//
// NB: which commands produce these errors is replicated behaviour: changing
// a check (or a limit) needs the same care as adding an op.
var (
	// ErrKeyRequired is returned for a Put with an empty key.
	ErrKeyRequired = store.ErrKeyRequired
	// ErrKeyTooLarge is returned for a Put whose key exceeds store.MaxKeySize.
	ErrKeyTooLarge = store.ErrKeyTooLarge
	// ErrValueTooLarge is returned for a Put whose value exceeds
	// store.MaxValueSize.
	ErrValueTooLarge = store.ErrValueTooLarge
	// ErrInvalidCompare is returned for a Txn with a Compare whose target or
	// result is unset, or an EXISTS compare with GREATER or LESS.
	ErrInvalidCompare = errors.New("fsm: invalid compare")
	// ErrInvalidMember is returned for a SetMember with an empty id.
	ErrInvalidMember = errors.New("fsm: invalid member")
	// ErrInvalidClusterID is returned for a SetClusterID whose id is empty,
	// longer than MaxClusterIDLen or not printable ASCII without spaces.
	ErrInvalidClusterID = errors.New("fsm: invalid cluster id")
	// ErrInvalidExpiry is returned for a Put with a negative expiry time.
	ErrInvalidExpiry = errors.New("fsm: invalid expiry")
)

// MaxClusterIDLen is the longest cluster id SetClusterID accepts.
//
// NB: part of deterministic apply behaviour, like the key and value limits.
const MaxClusterIDLen = 64

// errUpgrade marks content this binary does not know. Applying it is fatal:
// skipping it or failing it would let this node diverge from upgraded ones.
var errUpgrade = errors.New("upgrade this node")

// Result is what Apply returns for each log entry (as a *Result); node reads
// it from raft's ApplyFuture.Response. Index is the entry's raft index, which
// is also the revision of every write it made. Err is a deterministic apply
// failure (the entry changed nothing but the applied index). Exactly one of
// Put, Delete, Txn and Batch is set for a successful command of that kind;
// none is set for SetMember and SetClusterID, for non-command entries, and
// for entries skipped as already applied (replay after a restart).
type Result struct {
	// Index is the entry's raft index: the revision of its writes.
	Index uint64
	// Err is the deterministic apply failure, or nil.
	Err error
	// Put is the outcome of a Put command.
	Put *PutResult
	// Delete is the outcome of a DeleteRange command.
	Delete *DeleteResult
	// Txn is the outcome of a Txn command.
	Txn *TxnResult
	// Batch holds one result per Put of a PutBatch command, in order: each
	// has the entry's Index and either its own Err or Put.
	Batch []*Result
}

// PutResult is the outcome of a Put. PrevKV is the key-value the Put
// replaced, set only if the Put asked for it and the key existed.
type PutResult struct {
	// PrevKV is the replaced key-value, if requested and it existed.
	PrevKV *KeyValue
}

// DeleteResult is the outcome of a DeleteRange: how many keys it deleted
// and, if asked for, their previous key-values in key order.
type DeleteResult struct {
	// Deleted is the number of keys deleted.
	Deleted int64
	// PrevKVs are the deleted key-values, if requested, in key order.
	PrevKVs []KeyValue
}

// TxnResult is the outcome of a Txn: whether every compare held (so the
// success branch ran) and one OpResult per op of the branch that ran, in
// order.
type TxnResult struct {
	// Succeeded is true if every compare held and the success branch ran.
	Succeeded bool
	// Ops are the outcomes of the branch's ops, in order.
	Ops []OpResult
}

// OpResult is the outcome of one Txn op; exactly one field is set.
type OpResult struct {
	// Range is the outcome of a Range op, read at that point of the Txn.
	Range *RangeResult
	// Put is the outcome of a Put op.
	Put *PutResult
	// Delete is the outcome of a DeleteRange op.
	Delete *DeleteResult
}

// Apply applies one committed log entry. It is ApplyBatch for one entry.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed log entries in one store transaction and
// returns one *Result per entry. Raft calls it on the FSM goroutine.
//
// Entries at or below the store's applied index were applied before a
// restart and are skipped without being decoded. Non-command entries only
// advance the applied index. The data of every entry and the applied index
// of the last one commit atomically; then the cache is invalidated and
// WaitApplied waiters are woken.
//
// ApplyBatch panics, after logging, if an entry cannot be decoded or holds
// an op this binary does not know, or if the store cannot commit: continuing
// would make this node silently diverge. Nothing of the batch is committed
// in that case.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) == 0 {
		return nil
	}
	results := make([]interface{}, len(logs))
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed.Load() {
		f.fatal(logs[0].Index, "apply after close", nil)
	}

	applied, _ := f.st.Applied()
	var inv invalidations
	inv.enabled = f.inv != nil
	last := uint64(0)
	var pending []int // positions to apply
	for i, l := range logs {
		if l.Index <= applied {
			results[i] = &Result{Index: l.Index}
			continue
		}
		pending = append(pending, i)
		last = l.Index
	}
	if len(pending) == 0 {
		return results
	}

	err := f.commitBatch(func(tx *store.WriteTx) error {
		for _, i := range pending {
			l := logs[i]
			res := &Result{Index: l.Index}
			if l.Type == raft.LogCommand {
				if err := f.applyCommand(tx, l, res, &inv); err != nil {
					return fmt.Errorf("log entry %d: %w", l.Index, err)
				}
			}
			results[i] = res
		}
		l := logs[pending[len(pending)-1]]
		tx.SetApplied(l.Index, l.Term)
		// Test-only crash point: the entries are in the raft log, their
		// effects in this uncommitted transaction.
		failpoint.Inject(failpoint.FSMApplyBeforeCommit)
		return nil
	})
	if err != nil {
		f.fatal(last, "commit batch", err)
	}

	// Invalidate before publishing the index: a reader that waited for this
	// index must not find a cached value the batch replaced.
	inv.apply(f.inv)
	f.applied.Store(last)
	f.notify()
	return results
}

// commitBatch runs fn in the store's staged write transaction (committed
// now, or with later batches within Config.CommitDelay: store.Stage),
// marking the store unsynced first when commits skip fsync
// (durability.go). The sync lock is released even when fn panics (a fatal
// apply failure), so a recovered panic in a test cannot wedge the FSM.
func (f *FSM) commitBatch(fn func(*store.WriteTx) error) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	if err := f.markUnsynced(); err != nil {
		return err
	}
	return f.st.Stage(fn)
}

// fatal logs and panics: the FSM cannot continue without diverging.
func (f *FSM) fatal(index uint64, what string, err error) {
	msg := fmt.Sprintf("fsm: log entry %d: %s", index, what)
	if err != nil {
		msg = fmt.Sprintf("fsm: log entry %d: %s: %v", index, what, err)
	}
	f.logger.Error("fatal apply failure, stopping", "raft_index", index, "err", msg)
	panic(msg)
}

// applyCommand decodes and applies one command entry. Deterministic
// failures go into res.Err; undecodable or unknown content panics; a
// returned error is a store failure and aborts the batch.
func (f *FSM) applyCommand(tx *store.WriteTx, l *raft.Log, res *Result, inv *invalidations) error {
	cmd, err := DecodeCommand(l.Data)
	if err != nil {
		if errors.Is(err, ErrUnknownEnvelope) {
			f.fatal(l.Index, fmt.Sprintf("unknown command envelope byte %d, upgrade this node", l.Data[0]), nil)
		}
		f.fatal(l.Index, "decode command (corrupt log entry?)", err)
	}
	if err := checkKnown(cmd); err != nil {
		f.fatal(l.Index, err.Error(), nil)
	}
	if err := validate(cmd); err != nil {
		res.Err = err
		return nil
	}

	a := applier{tx: tx, rev: int64(l.Index), inv: inv, inTxn: cmd.GetTxn() != nil}
	switch op := cmd.Op.(type) {
	case *fsmpb.Command_Put:
		res.Put, err = a.put(op.Put)
	case *fsmpb.Command_DeleteRange:
		res.Delete, err = a.deleteRange(op.DeleteRange)
	case *fsmpb.Command_Txn:
		res.Txn, err = a.txn(op.Txn)
	case *fsmpb.Command_SetMember:
		err = tx.SetMember(op.SetMember.GetId(), op.SetMember.GetGrpcAddr())
	case *fsmpb.Command_SetClusterId:
		// The first id wins; later ones (a second leader racing the first
		// after an election) change nothing, on every node alike.
		if tx.ClusterID() == "" {
			err = tx.SetClusterID(op.SetClusterId.GetId())
		}
	case *fsmpb.Command_DeleteExpired:
		res.Delete, err = a.deleteExpired(op.DeleteExpired)
	case *fsmpb.Command_PutBatch:
		res.Batch, err = a.putBatch(op.PutBatch)
	default:
		// checkKnown already refused this; keep the policy visible here.
		f.fatal(l.Index, "unknown command op, upgrade this node", nil)
	}
	return err
}

// checkKnown returns an error wrapping errUpgrade if cmd contains anything
// this binary cannot apply exactly as a newer binary would: an unset or
// unknown op (anywhere, including inside a Txn) or an unknown enum value.
func checkKnown(cmd *fsmpb.Command) error {
	switch op := cmd.Op.(type) {
	case *fsmpb.Command_Put, *fsmpb.Command_DeleteRange, *fsmpb.Command_SetMember, *fsmpb.Command_SetClusterId,
		*fsmpb.Command_DeleteExpired, *fsmpb.Command_PutBatch:
		return nil
	case *fsmpb.Command_Txn:
		for i, c := range op.Txn.GetCompare() {
			switch c.GetResult() {
			case fsmpb.Compare_RESULT_UNKNOWN, fsmpb.Compare_EQUAL, fsmpb.Compare_NOT_EQUAL,
				fsmpb.Compare_GREATER, fsmpb.Compare_LESS:
			default:
				return fmt.Errorf("txn compare %d: unknown result %d, %w", i, c.GetResult(), errUpgrade)
			}
			switch c.GetTarget() {
			case fsmpb.Compare_TARGET_UNKNOWN, fsmpb.Compare_VALUE, fsmpb.Compare_VERSION,
				fsmpb.Compare_CREATE, fsmpb.Compare_MOD, fsmpb.Compare_EXISTS:
			default:
				return fmt.Errorf("txn compare %d: unknown target %d, %w", i, c.GetTarget(), errUpgrade)
			}
		}
		for _, branch := range []struct {
			name string
			ops  []*fsmpb.Op
		}{{"success", op.Txn.GetSuccess()}, {"failure", op.Txn.GetFailure()}} {
			for i, o := range branch.ops {
				switch o.GetOp().(type) {
				case *fsmpb.Op_Range, *fsmpb.Op_Put, *fsmpb.Op_DeleteRange:
				default:
					return fmt.Errorf("txn %s op %d: unknown op, %w", branch.name, i, errUpgrade)
				}
			}
		}
		return nil
	default:
		return fmt.Errorf("unknown command op, %w", errUpgrade)
	}
}

// validate returns the deterministic error for a command that cannot be
// applied, checking everything before anything is written so a failing
// command (or Txn) changes nothing.
func validate(cmd *fsmpb.Command) error {
	switch op := cmd.Op.(type) {
	case *fsmpb.Command_Put:
		return validatePut(op.Put)
	case *fsmpb.Command_SetMember:
		if op.SetMember.GetId() == "" {
			return fmt.Errorf("%w: empty id", ErrInvalidMember)
		}
	case *fsmpb.Command_SetClusterId:
		return ValidateClusterID(op.SetClusterId.GetId())
	case *fsmpb.Command_Txn:
		for i, c := range op.Txn.GetCompare() {
			if c.GetResult() == fsmpb.Compare_RESULT_UNKNOWN || c.GetTarget() == fsmpb.Compare_TARGET_UNKNOWN {
				return fmt.Errorf("%w: compare %d: target and result are required", ErrInvalidCompare, i)
			}
			if c.GetTarget() == fsmpb.Compare_EXISTS &&
				c.GetResult() != fsmpb.Compare_EQUAL && c.GetResult() != fsmpb.Compare_NOT_EQUAL {
				return fmt.Errorf("%w: compare %d: EXISTS takes EQUAL or NOT_EQUAL", ErrInvalidCompare, i)
			}
		}
		for _, ops := range [][]*fsmpb.Op{op.Txn.GetSuccess(), op.Txn.GetFailure()} {
			for _, o := range ops {
				if p := o.GetPut(); p != nil {
					if err := validatePut(p); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func validatePut(p *fsmpb.Put) error {
	switch {
	case len(p.GetKey()) == 0:
		return ErrKeyRequired
	case len(p.GetKey()) > store.MaxKeySize:
		return fmt.Errorf("%w: %d bytes, max %d", ErrKeyTooLarge, len(p.GetKey()), store.MaxKeySize)
	case len(p.GetValue()) > store.MaxValueSize:
		return fmt.Errorf("%w: %d bytes, max %d", ErrValueTooLarge, len(p.GetValue()), store.MaxValueSize)
	case p.GetExpireAtUnixMs() < 0:
		return fmt.Errorf("%w: %d", ErrInvalidExpiry, p.GetExpireAtUnixMs())
	}
	return nil
}

// applier applies validated ops of one entry to a write transaction. Its
// errors are store failures, never deterministic outcomes.
type applier struct {
	tx    *store.WriteTx
	rev   int64
	inv   *invalidations
	inTxn bool // applying a Txn: report keys without their new state
}

func (a *applier) put(p *fsmpb.Put) (*PutResult, error) {
	prev, existed, err := a.tx.Get(p.GetKey())
	if err != nil {
		return nil, err
	}
	kv := KeyValue{
		Key:            p.GetKey(),
		Value:          p.GetValue(),
		CreateRevision: a.rev,
		ModRevision:    a.rev,
		Version:        1,
		// Replaces any earlier expiry; 0 clears it (Redis SET semantics).
		ExpireAtUnixMs: p.GetExpireAtUnixMs(),
	}
	if existed {
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
	}
	if err := a.tx.Put(kv); err != nil {
		return nil, err
	}
	if a.inTxn {
		a.inv.key(p.GetKey(), uint64(a.rev), nil)
	} else {
		a.inv.key(p.GetKey(), uint64(a.rev), &kv)
	}
	res := &PutResult{}
	if p.GetPrevKv() && existed {
		res.PrevKV = &prev
	}
	return res, nil
}

// putBatch applies each Put of a PutBatch as its own command: a Put that
// fails validation gets its own Err and changes nothing, the others apply in
// order.
func (a *applier) putBatch(b *fsmpb.PutBatch) ([]*Result, error) {
	// A key written twice in one batch would reach the cache twice at one
	// revision, and the cache keeps the first state it learns for a
	// revision. Such keys are reported without their new state, as in a
	// Txn, so the cache drops them and the next read fills it from the
	// store. (The leader never repeats a key in a batch; the FSM must be
	// right for any log all the same.)
	writes := make(map[string]int, len(b.GetPuts()))
	for _, p := range b.GetPuts() {
		writes[string(p.GetKey())]++
	}
	defer func(inTxn bool) { a.inTxn = inTxn }(a.inTxn)
	out := make([]*Result, len(b.GetPuts()))
	for i, p := range b.GetPuts() {
		a.inTxn = writes[string(p.GetKey())] > 1
		r := &Result{Index: uint64(a.rev)}
		if err := validatePut(p); err != nil {
			r.Err = err
		} else {
			put, err := a.put(p)
			if err != nil {
				return nil, err
			}
			r.Put = put
		}
		out[i] = r
	}
	return out, nil
}

func (a *applier) deleteRange(d *fsmpb.DeleteRange) (*DeleteResult, error) {
	start, end, single := bounds(d.GetKey(), d.GetRangeEnd())
	res := &DeleteResult{}
	if single {
		prev, existed, err := a.tx.Get(start)
		if err != nil || !existed {
			return res, err
		}
		if _, err := a.tx.Delete(start); err != nil {
			return nil, err
		}
		res.Deleted = 1
		if d.GetPrevKv() {
			res.PrevKVs = []KeyValue{prev}
		}
		a.inv.key(start, uint64(a.rev), nil)
		return res, nil
	}

	// Collect first: deleting under a live cursor skips keys in bbolt.
	found, err := a.tx.Range(start, end, store.RangeOptions{KeysOnly: !d.GetPrevKv()})
	if err != nil {
		return nil, err
	}
	for _, kv := range found.KVs {
		if _, err := a.tx.Delete(kv.Key); err != nil {
			return nil, err
		}
	}
	res.Deleted = int64(len(found.KVs))
	if d.GetPrevKv() {
		res.PrevKVs = found.KVs
	}
	if res.Deleted > 0 {
		a.inv.rng(start, end, uint64(a.rev))
	}
	return res, nil
}

// deleteExpired deletes each listed key whose stored expiry is still at or
// before the command's time. The leader chose the keys from its expiry
// index, but entries between that scan and this one may have re-put a key
// with a later expiry or none, or deleted it: those are skipped. The
// decision reads only the store and the command, so every replica makes
// the same one.
func (a *applier) deleteExpired(d *fsmpb.DeleteExpired) (*DeleteResult, error) {
	res := &DeleteResult{}
	now := d.GetNowUnixMs()
	for _, k := range d.GetKeys() {
		kv, existed, err := a.tx.Get(k)
		if err != nil {
			return nil, err
		}
		if !existed || kv.ExpireAtUnixMs == 0 || kv.ExpireAtUnixMs > now {
			continue
		}
		if _, err := a.tx.Delete(k); err != nil {
			return nil, err
		}
		res.Deleted++
		a.inv.key(k, uint64(a.rev), nil)
	}
	return res, nil
}

// txn evaluates every compare against the state at this entry, then runs
// the chosen branch's ops in order in the same transaction: each op sees
// the effects of the ops before it (a Range after a Put reads the new
// value; two Puts to one key make version +2).
func (a *applier) txn(t *fsmpb.Txn) (*TxnResult, error) {
	ok := true
	for _, c := range t.GetCompare() {
		holds, err := a.compare(c)
		if err != nil {
			return nil, err
		}
		if !holds {
			ok = false
			break
		}
	}
	ops := t.GetSuccess()
	if !ok {
		ops = t.GetFailure()
	}
	res := &TxnResult{Succeeded: ok, Ops: make([]OpResult, len(ops))}
	for i, o := range ops {
		var err error
		switch op := o.GetOp().(type) {
		case *fsmpb.Op_Range:
			var rr RangeResult
			rr, err = doRange(a.tx, op.Range)
			res.Ops[i].Range = &rr
		case *fsmpb.Op_Put:
			res.Ops[i].Put, err = a.put(op.Put)
		case *fsmpb.Op_DeleteRange:
			res.Ops[i].Delete, err = a.deleteRange(op.DeleteRange)
		default:
			panic("fsm: unknown txn op after checkKnown") // unreachable: checkKnown refused it
		}
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// compare evaluates one Compare with etcd's semantics: a missing key has
// version, create and mod revision 0; a VALUE compare on a missing key is
// false; values compare as bytes, lexicographically; EXISTS compares whether
// the key exists with c.exists.
func (a *applier) compare(c *fsmpb.Compare) (bool, error) {
	kv, exists, err := a.tx.Get(c.GetKey())
	if err != nil {
		return false, err
	}
	var cmp int
	switch c.GetTarget() {
	case fsmpb.Compare_VALUE:
		if !exists {
			return false, nil
		}
		cmp = bytes.Compare(kv.Value, c.GetValue())
	case fsmpb.Compare_VERSION:
		cmp = cmpInt(kv.Version, c.GetNumber())
	case fsmpb.Compare_CREATE:
		cmp = cmpInt(kv.CreateRevision, c.GetNumber())
	case fsmpb.Compare_MOD:
		cmp = cmpInt(kv.ModRevision, c.GetNumber())
	case fsmpb.Compare_EXISTS:
		if exists == c.GetExists() {
			cmp = 0
		} else {
			cmp = 1
		}
	default:
		panic("fsm: unknown compare target after validate") // unreachable
	}
	switch c.GetResult() {
	case fsmpb.Compare_EQUAL:
		return cmp == 0, nil
	case fsmpb.Compare_NOT_EQUAL:
		return cmp != 0, nil
	case fsmpb.Compare_GREATER:
		return cmp > 0, nil
	case fsmpb.Compare_LESS:
		return cmp < 0, nil
	default:
		panic("fsm: unknown compare result after validate") // unreachable
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	default:
		return 0
	}
}

// invalidations collects the keys and ranges a batch changed, to tell the
// cache after the commit.
type invalidations struct {
	enabled bool
	items   []invalidation
}

type invalidation struct {
	start, end []byte
	rev        uint64
	kv         *KeyValue // a single Put's new state
	isRange    bool
}

func (v *invalidations) key(k []byte, rev uint64, kv *KeyValue) {
	if v.enabled {
		v.items = append(v.items, invalidation{start: k, rev: rev, kv: kv})
	}
}

func (v *invalidations) rng(start, end []byte, rev uint64) {
	if v.enabled {
		v.items = append(v.items, invalidation{start: start, end: end, rev: rev, isRange: true})
	}
}

func (v *invalidations) apply(inv Invalidator) {
	if inv == nil {
		return
	}
	for _, it := range v.items {
		if it.isRange {
			inv.InvalidateRange(it.start, it.end, it.rev)
		} else {
			inv.Invalidate(it.start, it.rev, it.kv)
		}
	}
}

// ValidateClusterID returns an error wrapping ErrInvalidClusterID unless id
// is 1 to MaxClusterIDLen bytes of printable ASCII without spaces.
func ValidateClusterID(id string) error {
	if id == "" || len(id) > MaxClusterIDLen {
		return fmt.Errorf("%w: length %d, want 1 to %d", ErrInvalidClusterID, len(id), MaxClusterIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("%w: byte %d is not printable ASCII", ErrInvalidClusterID, i)
		}
	}
	return nil
}
