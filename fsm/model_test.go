package fsm_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

var (
	modelSeed    = flag.Uint64("model.seed", 0, "seed for TestModel (0 picks a random one)")
	modelEntries = flag.Int("model.entries", 1500, "log entries TestModel applies")
)

// model is the reference implementation: a sorted map with the same
// semantics as the FSM, written as plainly as possible.
type model struct {
	kvs     map[string]fsm.KeyValue
	members map[string]string
}

func newModel() *model {
	return &model{kvs: map[string]fsm.KeyValue{}, members: map[string]string{}}
}

func (m *model) clone() *model {
	return &model{kvs: maps.Clone(m.kvs), members: maps.Clone(m.members)}
}

// keys returns the existing keys selected by (key, rangeEnd), sorted.
func (m *model) keys(key, rangeEnd []byte) []string {
	var out []string
	for k := range m.kvs {
		kb := []byte(k)
		switch {
		case len(rangeEnd) == 0:
			if bytes.Equal(kb, key) {
				out = append(out, k)
			}
		case bytes.Equal(rangeEnd, []byte{0}):
			if bytes.Compare(kb, key) >= 0 {
				out = append(out, k)
			}
		default:
			if bytes.Compare(kb, key) >= 0 && bytes.Compare(kb, rangeEnd) < 0 {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (m *model) put(rev int64, p *fsmpb.Put) *fsm.PutResult {
	prev, ok := m.kvs[string(p.Key)]
	kv := fsm.KeyValue{Key: bytes.Clone(p.Key), Value: bytes.Clone(p.Value), CreateRevision: rev, ModRevision: rev, Version: 1}
	if ok {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
	}
	m.kvs[string(p.Key)] = kv
	res := &fsm.PutResult{}
	if ok && p.PrevKv {
		res.PrevKV = &prev
	}
	return res
}

func (m *model) del(d *fsmpb.DeleteRange) *fsm.DeleteResult {
	res := &fsm.DeleteResult{}
	for _, k := range m.keys(d.Key, d.RangeEnd) {
		if d.PrevKv {
			res.PrevKVs = append(res.PrevKVs, m.kvs[k])
		}
		delete(m.kvs, k)
		res.Deleted++
	}
	return res
}

func (m *model) rng(r *fsmpb.Range) *fsm.RangeResult {
	res := &fsm.RangeResult{}
	for _, k := range m.keys(r.Key, r.RangeEnd) {
		res.Count++
		if r.CountOnly {
			continue
		}
		if r.Limit > 0 && int64(len(res.KVs)) >= r.Limit {
			res.More = true
			if !r.CountRest {
				break
			}
			continue
		}
		kv := m.kvs[k]
		if r.KeysOnly {
			kv.Value = nil
		}
		res.KVs = append(res.KVs, kv)
	}
	return res
}

func (m *model) compare(c *fsmpb.Compare) bool {
	kv, ok := m.kvs[string(c.Key)]
	var d int
	switch c.Target {
	case fsmpb.Compare_VALUE:
		if !ok {
			return false
		}
		d = bytes.Compare(kv.Value, c.Value)
	case fsmpb.Compare_VERSION:
		d = cmpInt64(kv.Version, c.Number)
	case fsmpb.Compare_CREATE:
		d = cmpInt64(kv.CreateRevision, c.Number)
	case fsmpb.Compare_MOD:
		d = cmpInt64(kv.ModRevision, c.Number)
	case fsmpb.Compare_EXISTS:
		if ok != c.Exists {
			d = 1
		}
	}
	switch c.Result {
	case fsmpb.Compare_EQUAL:
		return d == 0
	case fsmpb.Compare_NOT_EQUAL:
		return d != 0
	case fsmpb.Compare_GREATER:
		return d > 0
	default:
		return d < 0
	}
}

func cmpInt64(a, b int64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

func (m *model) apply(index uint64, cmd *fsmpb.Command) *fsm.Result {
	rev := int64(index)
	res := &fsm.Result{Index: index}
	switch op := cmd.Op.(type) {
	case *fsmpb.Command_Put:
		if len(op.Put.Key) == 0 {
			res.Err = fsm.ErrKeyRequired
			return res
		}
		res.Put = m.put(rev, op.Put)
	case *fsmpb.Command_PutBatch:
		res.Batch = []*fsm.Result{}
		for _, p := range op.PutBatch.Puts {
			r := &fsm.Result{Index: index}
			if len(p.Key) == 0 {
				r.Err = fsm.ErrKeyRequired
			} else {
				r.Put = m.put(rev, p)
			}
			res.Batch = append(res.Batch, r)
		}
	case *fsmpb.Command_DeleteRange:
		res.Delete = m.del(op.DeleteRange)
	case *fsmpb.Command_SetMember:
		m.members[op.SetMember.Id] = op.SetMember.GrpcAddr
	case *fsmpb.Command_Txn:
		for _, o := range append(slices.Clone(op.Txn.Success), op.Txn.Failure...) {
			if p := o.GetPut(); p != nil && len(p.Key) == 0 {
				res.Err = fsm.ErrKeyRequired
				return res
			}
		}
		ok := true
		for _, c := range op.Txn.Compare {
			ok = ok && m.compare(c)
		}
		ops := op.Txn.Success
		if !ok {
			ops = op.Txn.Failure
		}
		res.Txn = &fsm.TxnResult{Succeeded: ok, Ops: []fsm.OpResult{}}
		for _, o := range ops {
			switch x := o.Op.(type) {
			case *fsmpb.Op_Put:
				res.Txn.Ops = append(res.Txn.Ops, fsm.OpResult{Put: m.put(rev, x.Put)})
			case *fsmpb.Op_DeleteRange:
				res.Txn.Ops = append(res.Txn.Ops, fsm.OpResult{Delete: m.del(x.DeleteRange)})
			case *fsmpb.Op_Range:
				res.Txn.Ops = append(res.Txn.Ops, fsm.OpResult{Range: m.rng(x.Range)})
			}
		}
	}
	return res
}

// gen produces random commands over a small keyspace so they collide.
type gen struct {
	rng   *rand.Rand
	index uint64
}

var modelKeys = []string{"a", "a/1", "a/2", "a/3", "ab", "b", "b/x", "\x00", "\x00\x01", "\xff", "\xff\xff", "z"}

func (g *gen) key() []byte   { return []byte(modelKeys[g.rng.IntN(len(modelKeys))]) }
func (g *gen) value() []byte { return []byte(fmt.Sprintf("v%d", g.rng.IntN(4)))[:g.rng.IntN(3)] }
func (g *gen) bool() bool    { return g.rng.IntN(2) == 0 }

// rangeEnd returns an empty (single key), "\x00" (to the end), prefix or
// arbitrary range end for key.
func (g *gen) rangeEnd(key []byte) []byte {
	switch g.rng.IntN(5) {
	case 0:
		return nil
	case 1:
		return []byte{0}
	case 2:
		return fsm.PrefixEnd(key)
	default:
		return g.key() // may be <= key: an empty range
	}
}

func (g *gen) put() *fsmpb.Put {
	return &fsmpb.Put{Key: g.key(), Value: g.value(), PrevKv: g.bool()}
}

func (g *gen) del() *fsmpb.DeleteRange {
	k := g.key()
	return &fsmpb.DeleteRange{Key: k, RangeEnd: g.rangeEnd(k), PrevKv: g.bool()}
}

func (g *gen) rng_() *fsmpb.Range {
	k := g.key()
	return &fsmpb.Range{Key: k, RangeEnd: g.rangeEnd(k), Limit: int64(g.rng.IntN(4)), KeysOnly: g.rng.IntN(4) == 0, CountOnly: g.rng.IntN(6) == 0, CountRest: g.rng.IntN(2) == 0}
}

func (g *gen) compare() *fsmpb.Compare {
	c := &fsmpb.Compare{Key: g.key(), Result: fsmpb.Compare_Result(1 + g.rng.IntN(4))}
	switch g.rng.IntN(5) {
	case 0:
		c.Target, c.Value = fsmpb.Compare_VALUE, g.value()
	case 1:
		c.Target, c.Number = fsmpb.Compare_VERSION, int64(g.rng.IntN(4))
	case 2:
		c.Target, c.Number = fsmpb.Compare_CREATE, int64(g.rng.IntN(int(g.index)+1))
	case 3:
		c.Target, c.Number = fsmpb.Compare_MOD, int64(g.rng.IntN(int(g.index)+1))
	default:
		c.Target, c.Exists = fsmpb.Compare_EXISTS, g.bool()
		c.Result = fsmpb.Compare_Result(1 + g.rng.IntN(2))
	}
	return c
}

func (g *gen) ops() []*fsmpb.Op {
	var ops []*fsmpb.Op
	for range g.rng.IntN(4) {
		switch g.rng.IntN(3) {
		case 0:
			ops = append(ops, &fsmpb.Op{Op: &fsmpb.Op_Put{Put: g.put()}})
		case 1:
			ops = append(ops, &fsmpb.Op{Op: &fsmpb.Op_DeleteRange{DeleteRange: g.del()}})
		default:
			ops = append(ops, &fsmpb.Op{Op: &fsmpb.Op_Range{Range: g.rng_()}})
		}
	}
	return ops
}

func (g *gen) command() *fsmpb.Command {
	switch n := g.rng.IntN(100); {
	case n < 28:
		return &fsmpb.Command{Op: &fsmpb.Command_Put{Put: g.put()}}
	case n < 35: // the leader never repeats a key in a batch; the FSM must not care
		b := &fsmpb.PutBatch{}
		for range 1 + g.rng.IntN(4) {
			p := g.put()
			if g.rng.IntN(10) == 0 {
				p.Key = nil // fails alone
			}
			b.Puts = append(b.Puts, p)
		}
		return &fsmpb.Command{Op: &fsmpb.Command_PutBatch{PutBatch: b}}
	case n < 55:
		return &fsmpb.Command{Op: &fsmpb.Command_DeleteRange{DeleteRange: g.del()}}
	case n < 90:
		var cmps []*fsmpb.Compare
		for range g.rng.IntN(3) {
			cmps = append(cmps, g.compare())
		}
		success, failure := g.ops(), g.ops()
		if g.rng.IntN(20) == 0 { // an invalid txn: empty key put in one branch
			failure = append(failure, &fsmpb.Op{Op: &fsmpb.Op_Put{Put: &fsmpb.Put{Value: []byte("x")}}})
		}
		return &fsmpb.Command{Op: &fsmpb.Command_Txn{Txn: &fsmpb.Txn{Compare: cmps, Success: success, Failure: failure}}}
	case n < 96:
		return &fsmpb.Command{Op: &fsmpb.Command_SetMember{SetMember: &fsmpb.SetMember{
			Id: fmt.Sprintf("n%d", g.rng.IntN(4)), GrpcAddr: fmt.Sprintf("10.0.0.%d:9000", g.rng.IntN(10))}}}
	default:
		return &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Value: []byte("empty key")}}}
	}
}

// TestModel applies random command sequences to the FSM and to the model,
// comparing every result, with snapshots, restores (including of older
// snapshots) and reopens at random points, then compares the final state.
func TestModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -args -model.seed=%d)", seed, seed)
	g := &gen{rng: rand.New(rand.NewPCG(seed, 0))}

	dir := t.TempDir()
	f := newFSM(t, dir, nil)
	m := newModel()

	type pendingSnap struct {
		snap  raft.FSMSnapshot
		model *model
		index uint64
	}
	var pending *pendingSnap
	persistPending := func() []byte {
		var sink memSink
		if err := pending.snap.Persist(&sink); err != nil {
			t.Fatalf("Persist pending snapshot at %d: got error %v, want nil", pending.index, err)
		}
		pending.snap.Release()
		return sink.Bytes()
	}
	var lastBatch []*raft.Log
	var counts = map[string]int{}

	for g.index < uint64(*modelEntries) {
		// One batch, sometimes with a configuration entry in it.
		n := 1 + g.rng.IntN(8)
		batch := make([]*raft.Log, 0, n)
		var cmds []*fsmpb.Command
		for range n {
			g.index++
			if g.rng.IntN(25) == 0 {
				batch = append(batch, &raft.Log{Index: g.index, Term: 1, Type: raft.LogConfiguration, Data: []byte("cfg")})
				cmds = append(cmds, nil)
				continue
			}
			cmd := g.command()
			batch = append(batch, cmdLog(t, g.index, cmd))
			cmds = append(cmds, cmd)
		}
		out := f.ApplyBatch(batch)
		for i, l := range batch {
			got := out[i].(*fsm.Result)
			want := &fsm.Result{Index: l.Index}
			if cmds[i] != nil {
				want = m.apply(l.Index, cmds[i])
			}
			if !errors.Is(got.Err, want.Err) || (got.Err == nil) != (want.Err == nil) {
				t.Fatalf("seed %d entry %d (%v): got error %v, want %v", seed, l.Index, cmds[i], got.Err, want.Err)
			}
			got.Err, want.Err = nil, nil
			if gs, ws := fmtResult(got), fmtResult(want); gs != ws {
				t.Fatalf("seed %d entry %d (%v):\n got %s\nwant %s", seed, l.Index, cmds[i], gs, ws)
			}
		}
		lastBatch = batch

		switch ev := g.rng.IntN(100); {
		case ev < 3: // move to a new node restored from a fresh snapshot
			counts["restore-new"]++
			data := snapshotBytes(t, f)
			if pending != nil {
				persistPending() // release before Close
				pending = nil
			}
			_ = f.Close()
			dir = t.TempDir()
			f = newFSM(t, dir, nil)
			if err := f.Restore(readCloser(data)); err != nil {
				t.Fatalf("seed %d: Restore into new FSM at %d: got error %v, want nil", seed, g.index, err)
			}
		case ev < 5: // restore the FSM from its own snapshot
			counts["restore-self"]++
			if err := f.Restore(readCloser(snapshotBytes(t, f))); err != nil {
				t.Fatalf("seed %d: self Restore at %d: got error %v, want nil", seed, g.index, err)
			}
		case ev < 8: // take a snapshot now, persist it later
			if pending == nil {
				counts["snapshot-pending"]++
				snap, err := f.Snapshot()
				if err != nil {
					t.Fatalf("seed %d: Snapshot: got error %v, want nil", seed, err)
				}
				pending = &pendingSnap{snap: snap, model: m.clone(), index: g.index}
			}
		case ev < 10: // go back in time to the pending snapshot
			if pending != nil {
				counts["restore-older"]++
				data := persistPending()
				if err := f.Restore(readCloser(data)); err != nil {
					t.Fatalf("seed %d: Restore of snapshot from %d: got error %v, want nil", seed, pending.index, err)
				}
				if got := f.AppliedIndex(); got != pending.index {
					t.Fatalf("seed %d: AppliedIndex after restoring snapshot from %d: got %d", seed, pending.index, got)
				}
				m = pending.model
				pending = nil
			}
		case ev < 13: // restart and replay the last batch
			counts["reopen-replay"]++
			if pending != nil {
				persistPending()
				pending = nil
			}
			_, before := mustHash(t, f)
			_ = f.Close()
			f = newFSM(t, dir, nil)
			for i, r := range f.ApplyBatch(lastBatch) {
				if got := fmtResult(r.(*fsm.Result)); got != fmt.Sprintf("idx=%d", lastBatch[i].Index) {
					t.Fatalf("seed %d: replayed entry %d: got %s, want a bare skip", seed, lastBatch[i].Index, got)
				}
			}
			if _, after := mustHash(t, f); !bytes.Equal(before, after) {
				t.Fatalf("seed %d: reopen and replay at %d changed the state", seed, g.index)
			}
		}
		compareState(t, seed, f, m)
	}
	if pending != nil {
		pending.snap.Release()
	}
	t.Logf("events: %v", counts)
}

func compareState(t *testing.T, seed uint64, f *fsm.FSM, m *model) {
	t.Helper()
	all, err := f.Range(&fsmpb.Range{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatalf("Range(all): got error %v, want nil", err)
	}
	want := m.rng(&fsmpb.Range{Key: []byte{0}, RangeEnd: []byte{0}})
	if g, w := fmtRange(all), fmtRange(*want); g != w {
		t.Fatalf("seed %d at %d: state:\n got %s\nwant %s", seed, f.AppliedIndex(), g, w)
	}
	if g, w := fmt.Sprint(f.Members()), fmt.Sprint(m.members); g != w {
		t.Fatalf("seed %d at %d: members: got %s, want %s", seed, f.AppliedIndex(), g, w)
	}
	if g := f.Stats().KeyCount; g != int64(len(m.kvs)) {
		t.Fatalf("seed %d at %d: KeyCount: got %d, want %d", seed, f.AppliedIndex(), g, len(m.kvs))
	}
}
