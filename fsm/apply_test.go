package fsm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// TestApplyWrites drives Put and DeleteRange through Apply and checks each
// result and the final state, revisions and versions included.
func TestApplyWrites(t *testing.T) {
	type step struct {
		cmd  *fsmpb.Command
		want string // fmtResult without the index
	}
	tests := []struct {
		name  string
		steps []step
		want  string // every key-value after the last step
	}{
		{"create sets create=mod=index version 1", []step{
			{putCmd("a", "1"), "put(prev=nil)"},
		}, `[{"a"="1" c1 m1 v1}]`},
		{"overwrite keeps create, bumps mod and version", []step{
			{putCmd("a", "1"), "put(prev=nil)"},
			{putCmd("b", "x"), "put(prev=nil)"},
			{putCmd("a", "2"), "put(prev=nil)"},
			{putPrevCmd("a", "3"), `put(prev={"a"="2" c1 m3 v2})`},
		}, `[{"a"="3" c1 m4 v3} {"b"="x" c2 m2 v1}]`},
		{"prev_kv on create is nil", []step{
			{putPrevCmd("a", "1"), "put(prev=nil)"},
		}, `[{"a"="1" c1 m1 v1}]`},
		{"delete then recreate starts a new life", []step{
			{putCmd("a", "1"), "put(prev=nil)"},
			{putCmd("a", "2"), "put(prev=nil)"},
			{delCmd("a", "", true), `del(n=1 prev=[{"a"="2" c1 m2 v2}])`},
			{putCmd("a", "3"), "put(prev=nil)"},
		}, `[{"a"="3" c4 m4 v1}]`},
		{"delete missing key", []step{
			{delCmd("nope", "", true), "del(n=0 prev=[])"},
		}, `[]`},
		{"delete single key is exact, not a prefix", []step{
			{putCmd("a", "1"), "put(prev=nil)"},
			{putCmd("ab", "2"), "put(prev=nil)"},
			{delCmd("a", "", false), "del(n=1 prev=[])"},
		}, `[{"ab"="2" c2 m2 v1}]`},
		{"delete range [b, d) without prev", []step{
			{putCmd("a", "1"), "put(prev=nil)"},
			{putCmd("b", "2"), "put(prev=nil)"},
			{putCmd("c", "3"), "put(prev=nil)"},
			{putCmd("d", "4"), "put(prev=nil)"},
			{delCmd("b", "d", false), "del(n=2 prev=[])"},
		}, `[{"a"="1" c1 m1 v1} {"d"="4" c4 m4 v1}]`},
		{"delete range with prev", []step{
			{putCmd("b", "2"), "put(prev=nil)"},
			{putCmd("c", "3"), "put(prev=nil)"},
			{delCmd("a", "z", true), `del(n=2 prev=[{"b"="2" c1 m1 v1} {"c"="3" c2 m2 v1}])`},
		}, `[]`},
		{"delete range with end <= key deletes nothing", []step{
			{putCmd("b", "2"), "put(prev=nil)"},
			{delCmd("c", "a", true), "del(n=0 prev=[])"},
		}, `[{"b"="2" c1 m1 v1}]`},
		{"prefix delete", []step{
			{putCmd("app", "1"), "put(prev=nil)"},
			{putCmd("app/1", "2"), "put(prev=nil)"},
			{putCmd("app/2", "3"), "put(prev=nil)"},
			{putCmd("app0", "4"), "put(prev=nil)"},
			{putCmd("apple", "5"), "put(prev=nil)"},
			{delCmd("app/", string(fsm.PrefixEnd([]byte("app/"))), false), "del(n=2 prev=[])"},
		}, `[{"app"="1" c1 m1 v1} {"app0"="4" c4 m4 v1} {"apple"="5" c5 m5 v1}]`},
		{"prefix delete of \\xff prefix runs to the end", []step{
			{putCmd("\xfe", "1"), "put(prev=nil)"},
			{putCmd("\xff", "2"), "put(prev=nil)"},
			{putCmd("\xff\xff\x00", "3"), "put(prev=nil)"},
			{delCmd("\xff", string(fsm.PrefixEnd([]byte("\xff"))), false), "del(n=2 prev=[])"},
		}, `[{"\xfe"="1" c1 m1 v1}]`},
		{"delete everything with key \\x00 range_end \\x00", []step{
			{putCmd("\x00", "1"), "put(prev=nil)"},
			{putCmd("z", "2"), "put(prev=nil)"},
			{delCmd("\x00", "\x00", false), "del(n=2 prev=[])"},
		}, `[]`},
		{"empty key put is a deterministic error", []step{
			{putCmd("", "1"), "err=store: key required"},
		}, `[]`},
		{"binary keys and empty values", []step{
			{putCmd("\x00\xff", ""), "put(prev=nil)"},
			{putPrevCmd("\x00\xff", "\x00"), `put(prev={"\x00\xff"="" c1 m1 v1})`},
		}, `[{"\x00\xff"="\x00" c1 m2 v2}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t, "", nil)
			for i, st := range tt.steps {
				idx := uint64(i + 1)
				got := fmtResult(apply(t, f, idx, st.cmd))
				want := strings.TrimSpace(fmt.Sprintf("idx=%d %s", idx, st.want))
				if got != want {
					t.Errorf("step %d: got result %s, want %s", idx, got, want)
				}
			}
			all, err := f.Range(&fsmpb.Range{Key: []byte{0}, RangeEnd: []byte{0}})
			if err != nil {
				t.Fatalf("Range(all): got error %v, want nil", err)
			}
			if got := fmtKVs(all.KVs); got != tt.want {
				t.Errorf("state: got %s, want %s", got, tt.want)
			}
			if st := f.Stats(); st.KeyCount != int64(len(all.KVs)) || st.AppliedIndex != uint64(len(tt.steps)) {
				t.Errorf("Stats: got (keys %d, applied %d), want (%d, %d)", st.KeyCount, st.AppliedIndex, len(all.KVs), len(tt.steps))
			}
		})
	}
}

// TestTxnCompare covers every compare target and result against a present
// and a missing key. Key "a" is created at 1 and overwritten at 2, so it has
// value "v2", create 1, mod 2, version 2.
func TestTxnCompare(t *testing.T) {
	const (
		eq  = fsmpb.Compare_EQUAL
		ne  = fsmpb.Compare_NOT_EQUAL
		gt  = fsmpb.Compare_GREATER
		lt  = fsmpb.Compare_LESS
		val = fsmpb.Compare_VALUE
		ver = fsmpb.Compare_VERSION
		cre = fsmpb.Compare_CREATE
		mod = fsmpb.Compare_MOD
		exi = fsmpb.Compare_EXISTS
	)
	valueCmp := func(r fsmpb.Compare_Result, key, v string) *fsmpb.Compare {
		c := cmp(val, r, key)
		c.Value = []byte(v)
		return c
	}
	numCmp := func(tg fsmpb.Compare_Target, r fsmpb.Compare_Result, key string, n int64) *fsmpb.Compare {
		c := cmp(tg, r, key)
		c.Number = n
		return c
	}
	existsCmp := func(r fsmpb.Compare_Result, key string, e bool) *fsmpb.Compare {
		c := cmp(exi, r, key)
		c.Exists = e
		return c
	}
	tests := []struct {
		name    string
		cmps    []*fsmpb.Compare
		want    bool
		wantErr error
	}{
		{"value eq", []*fsmpb.Compare{valueCmp(eq, "a", "v2")}, true, nil},
		{"value eq other", []*fsmpb.Compare{valueCmp(eq, "a", "v1")}, false, nil},
		{"value ne", []*fsmpb.Compare{valueCmp(ne, "a", "v1")}, true, nil},
		{"value ne same", []*fsmpb.Compare{valueCmp(ne, "a", "v2")}, false, nil},
		{"value gt", []*fsmpb.Compare{valueCmp(gt, "a", "v1")}, true, nil},
		{"value gt prefix is shorter", []*fsmpb.Compare{valueCmp(gt, "a", "v")}, true, nil},
		{"value gt false", []*fsmpb.Compare{valueCmp(gt, "a", "v3")}, false, nil},
		{"value lt", []*fsmpb.Compare{valueCmp(lt, "a", "v3")}, true, nil},
		{"value lt equal", []*fsmpb.Compare{valueCmp(lt, "a", "v2")}, false, nil},
		{"value lt bytes not utf8", []*fsmpb.Compare{valueCmp(lt, "a", "\xff")}, true, nil},
		{"value eq missing empty", []*fsmpb.Compare{valueCmp(eq, "missing", "")}, false, nil},
		{"value ne missing", []*fsmpb.Compare{valueCmp(ne, "missing", "x")}, false, nil},
		{"value gt missing", []*fsmpb.Compare{valueCmp(gt, "missing", "")}, false, nil},
		{"value lt missing", []*fsmpb.Compare{valueCmp(lt, "missing", "z")}, false, nil},

		{"version eq", []*fsmpb.Compare{numCmp(ver, eq, "a", 2)}, true, nil},
		{"version ne", []*fsmpb.Compare{numCmp(ver, ne, "a", 2)}, false, nil},
		{"version gt", []*fsmpb.Compare{numCmp(ver, gt, "a", 1)}, true, nil},
		{"version gt equal", []*fsmpb.Compare{numCmp(ver, gt, "a", 2)}, false, nil},
		{"version lt", []*fsmpb.Compare{numCmp(ver, lt, "a", 3)}, true, nil},
		{"version lt equal", []*fsmpb.Compare{numCmp(ver, lt, "a", 2)}, false, nil},
		{"version eq 0 missing", []*fsmpb.Compare{numCmp(ver, eq, "missing", 0)}, true, nil},
		{"version ne 0 missing", []*fsmpb.Compare{numCmp(ver, ne, "missing", 0)}, false, nil},
		{"version gt 0 missing", []*fsmpb.Compare{numCmp(ver, gt, "missing", 0)}, false, nil},
		{"version lt 1 missing", []*fsmpb.Compare{numCmp(ver, lt, "missing", 1)}, true, nil},

		{"create eq", []*fsmpb.Compare{numCmp(cre, eq, "a", 1)}, true, nil},
		{"create ne", []*fsmpb.Compare{numCmp(cre, ne, "a", 2)}, true, nil},
		{"create gt", []*fsmpb.Compare{numCmp(cre, gt, "a", 1)}, false, nil},
		{"create lt", []*fsmpb.Compare{numCmp(cre, lt, "a", 2)}, true, nil},
		{"create eq 0 missing", []*fsmpb.Compare{numCmp(cre, eq, "missing", 0)}, true, nil},
		{"create lt 0 missing", []*fsmpb.Compare{numCmp(cre, lt, "missing", 0)}, false, nil},

		{"mod eq", []*fsmpb.Compare{numCmp(mod, eq, "a", 2)}, true, nil},
		{"mod ne", []*fsmpb.Compare{numCmp(mod, ne, "a", 2)}, false, nil},
		{"mod gt", []*fsmpb.Compare{numCmp(mod, gt, "a", 1)}, true, nil},
		{"mod lt", []*fsmpb.Compare{numCmp(mod, lt, "a", 2)}, false, nil},
		{"mod eq 0 missing", []*fsmpb.Compare{numCmp(mod, eq, "missing", 0)}, true, nil},
		{"mod gt 0 missing", []*fsmpb.Compare{numCmp(mod, gt, "missing", 0)}, false, nil},

		{"exists eq true present", []*fsmpb.Compare{existsCmp(eq, "a", true)}, true, nil},
		{"exists eq false present", []*fsmpb.Compare{existsCmp(eq, "a", false)}, false, nil},
		{"exists ne false present", []*fsmpb.Compare{existsCmp(ne, "a", false)}, true, nil},
		{"exists ne true present", []*fsmpb.Compare{existsCmp(ne, "a", true)}, false, nil},
		{"exists eq false missing", []*fsmpb.Compare{existsCmp(eq, "missing", false)}, true, nil},
		{"exists eq true missing", []*fsmpb.Compare{existsCmp(eq, "missing", true)}, false, nil},
		{"exists ne true missing", []*fsmpb.Compare{existsCmp(ne, "missing", true)}, true, nil},
		{"exists gt is invalid", []*fsmpb.Compare{existsCmp(gt, "a", true)}, false, fsm.ErrInvalidCompare},
		{"exists lt is invalid", []*fsmpb.Compare{existsCmp(lt, "a", true)}, false, fsm.ErrInvalidCompare},

		{"no compares succeed", nil, true, nil},
		{"all hold", []*fsmpb.Compare{numCmp(ver, eq, "a", 2), valueCmp(eq, "a", "v2"), existsCmp(eq, "missing", false)}, true, nil},
		{"one fails", []*fsmpb.Compare{numCmp(ver, eq, "a", 2), valueCmp(eq, "a", "nope")}, false, nil},
		{"unset target is invalid", []*fsmpb.Compare{cmp(fsmpb.Compare_TARGET_UNKNOWN, eq, "a")}, false, fsm.ErrInvalidCompare},
		{"unset result is invalid", []*fsmpb.Compare{cmp(ver, fsmpb.Compare_RESULT_UNKNOWN, "a")}, false, fsm.ErrInvalidCompare},
		{"invalid compare after a failing one still invalid", []*fsmpb.Compare{valueCmp(eq, "a", "nope"), cmp(ver, fsmpb.Compare_RESULT_UNKNOWN, "a")}, false, fsm.ErrInvalidCompare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t, "", nil)
			apply(t, f, 1, putCmd("a", "v1"))
			apply(t, f, 2, putCmd("a", "v2"))
			res := apply(t, f, 3, txnCmd(tt.cmps,
				[]*fsmpb.Op{opPut("branch", "success", false)},
				[]*fsmpb.Op{opPut("branch", "failure", false)}))
			if !errors.Is(res.Err, tt.wantErr) {
				t.Fatalf("Result.Err: got %v, want %v", res.Err, tt.wantErr)
			}
			kv, ok, err := f.Get([]byte("branch"))
			if err != nil {
				t.Fatalf("Get: got error %v, want nil", err)
			}
			if tt.wantErr != nil {
				if res.Txn != nil || ok {
					t.Errorf("invalid txn: got result %s and branch key present=%v, want no txn result and no write", fmtResult(res), ok)
				}
				if got := f.AppliedIndex(); got != 3 {
					t.Errorf("AppliedIndex after invalid txn: got %d, want 3", got)
				}
				return
			}
			wantBranch := map[bool]string{true: "success", false: "failure"}[tt.want]
			if res.Txn == nil || res.Txn.Succeeded != tt.want || string(kv.Value) != wantBranch {
				t.Errorf("got result %s and branch=%q, want succeeded=%v and branch=%q", fmtResult(res), kv.Value, tt.want, wantBranch)
			}
		})
	}
}

// TestTxnOps covers the ops of a branch: they run in order in one
// transaction, each seeing the effects of the ones before it.
func TestTxnOps(t *testing.T) {
	verEq := func(key string, n int64) *fsmpb.Compare {
		c := cmp(fsmpb.Compare_VERSION, fsmpb.Compare_EQUAL, key)
		c.Number = n
		return c
	}
	valEq := func(key, v string) *fsmpb.Compare {
		c := cmp(fsmpb.Compare_VALUE, fsmpb.Compare_EQUAL, key)
		c.Value = []byte(v)
		return c
	}
	type step struct {
		cmd  *fsmpb.Command
		want string
	}
	tests := []struct {
		name  string
		steps []step
		state string
	}{
		{"ops see earlier ops", []step{
			{txnCmd(nil, []*fsmpb.Op{
				opPut("k", "1", false),
				opRange("k", "", 0),
				opPut("k", "2", true),
				opRange("k", "", 0),
				opDel("k", "", true),
				opRange("k", "", 0),
				opPut("k", "3", true),
			}, nil), `txn(ok=true put(prev=nil) range(count=1 more=false kvs=[{"k"="1" c1 m1 v1}]) ` +
				`put(prev={"k"="1" c1 m1 v1}) range(count=1 more=false kvs=[{"k"="2" c1 m1 v2}]) ` +
				`del(n=1 prev=[{"k"="2" c1 m1 v2}]) range(count=0 more=false kvs=[]) put(prev=nil))`},
		}, `[{"k"="3" c1 m1 v1}]`},
		{"CAS on version: create if absent, then only once", []step{
			{txnCmd([]*fsmpb.Compare{verEq("lock", 0)}, []*fsmpb.Op{opPut("lock", "me", false)}, []*fsmpb.Op{opRange("lock", "", 0)}),
				`txn(ok=true put(prev=nil))`},
			{txnCmd([]*fsmpb.Compare{verEq("lock", 0)}, []*fsmpb.Op{opPut("lock", "you", false)}, []*fsmpb.Op{opRange("lock", "", 0)}),
				`txn(ok=false range(count=1 more=false kvs=[{"lock"="me" c1 m1 v1}]))`},
		}, `[{"lock"="me" c1 m1 v1}]`},
		{"CAS on value", []step{
			{putCmd("cfg", "a"), `put(prev=nil)`},
			{txnCmd([]*fsmpb.Compare{valEq("cfg", "a")}, []*fsmpb.Op{opPut("cfg", "b", true)}, nil),
				`txn(ok=true put(prev={"cfg"="a" c1 m1 v1}))`},
			{txnCmd([]*fsmpb.Compare{valEq("cfg", "a")}, []*fsmpb.Op{opPut("cfg", "c", true)}, nil),
				`txn(ok=false)`},
		}, `[{"cfg"="b" c1 m2 v2}]`},
		{"failure branch runs its ops", []step{
			{txnCmd([]*fsmpb.Compare{verEq("x", 5)}, []*fsmpb.Op{opPut("s", "1", false)},
				[]*fsmpb.Op{opPut("f1", "1", false), opPut("f2", "2", false), opDel("f1", "", false)}),
				`txn(ok=false put(prev=nil) put(prev=nil) del(n=1 prev=[]))`},
		}, `[{"f2"="2" c1 m1 v1}]`},
		{"two puts to one key in a txn: version +2, one revision", []step{
			{putCmd("k", "0"), `put(prev=nil)`},
			{txnCmd(nil, []*fsmpb.Op{opPut("k", "1", false), opPut("k", "2", false)}, nil),
				`txn(ok=true put(prev=nil) put(prev=nil))`},
		}, `[{"k"="2" c1 m2 v3}]`},
		{"range inside txn with range_end, limit and count", []step{
			{putCmd("a", "1"), `put(prev=nil)`},
			{putCmd("b", "2"), `put(prev=nil)`},
			{putCmd("c", "3"), `put(prev=nil)`},
			{txnCmd(nil, []*fsmpb.Op{opDel("a", "", false), opRange("a", "\x00", 1)}, nil),
				`txn(ok=true del(n=1 prev=[]) range(count=2 more=true kvs=[{"b"="2" c2 m2 v1}]))`},
		}, `[{"b"="2" c2 m2 v1} {"c"="3" c3 m3 v1}]`},
		{"invalid put in the branch not taken fails the whole txn", []step{
			{txnCmd(nil, []*fsmpb.Op{opPut("ok", "1", false)}, []*fsmpb.Op{opPut("", "bad", false)}),
				`err=store: key required`},
		}, `[]`},
		{"empty txn", []step{
			{txnCmd(nil, nil, nil), `txn(ok=true)`},
		}, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t, "", nil)
			for i, st := range tt.steps {
				idx := uint64(i + 1)
				got := fmtResult(apply(t, f, idx, st.cmd))
				want := fmt.Sprintf("idx=%d %s", idx, st.want)
				if got != want {
					t.Errorf("step %d:\n got %s\nwant %s", idx, got, want)
				}
			}
			all, err := f.Range(&fsmpb.Range{Key: []byte{0}, RangeEnd: []byte{0}})
			if err != nil {
				t.Fatalf("Range(all): got error %v, want nil", err)
			}
			if got := fmtKVs(all.KVs); got != tt.state {
				t.Errorf("state: got %s, want %s", got, tt.state)
			}
		})
	}
}

func TestRangeRead(t *testing.T) {
	f := newFSM(t, "", nil)
	for i, k := range []string{"\x00", "a", "a/1", "a/2", "a/3", "b", "\xff", "\xff\xff"} {
		apply(t, f, uint64(i+1), putCmd(k, "v"+k))
	}
	tests := []struct {
		name string
		r    *fsmpb.Range
		want string
	}{
		{"single key", &fsmpb.Range{Key: []byte("a")}, `range(count=1 more=false kvs=[{"a"="va" c2 m2 v1}])`},
		{"single missing key", &fsmpb.Range{Key: []byte("a/")}, `range(count=0 more=false kvs=[])`},
		{"single key count only", &fsmpb.Range{Key: []byte("a"), CountOnly: true}, `range(count=1 more=false kvs=[])`},
		{"single key keys only", &fsmpb.Range{Key: []byte("a"), KeysOnly: true}, `range(count=1 more=false kvs=[{"a"="" c2 m2 v1}])`},
		{"prefix", &fsmpb.Range{Key: []byte("a/"), RangeEnd: fsm.PrefixEnd([]byte("a/"))},
			`range(count=3 more=false kvs=[{"a/1"="va/1" c3 m3 v1} {"a/2"="va/2" c4 m4 v1} {"a/3"="va/3" c5 m5 v1}])`},
		{"prefix limit", &fsmpb.Range{Key: []byte("a/"), RangeEnd: fsm.PrefixEnd([]byte("a/")), Limit: 2},
			`range(count=3 more=true kvs=[{"a/1"="va/1" c3 m3 v1} {"a/2"="va/2" c4 m4 v1}])`},
		{"prefix count only", &fsmpb.Range{Key: []byte("a/"), RangeEnd: fsm.PrefixEnd([]byte("a/")), CountOnly: true, Limit: 1},
			`range(count=3 more=false kvs=[])`},
		{"from key to end", &fsmpb.Range{Key: []byte("b"), RangeEnd: []byte{0}},
			`range(count=3 more=false kvs=[{"b"="vb" c6 m6 v1} {"\xff"="v\xff" c7 m7 v1} {"\xff\xff"="v\xff\xff" c8 m8 v1}])`},
		{"\\xff prefix", &fsmpb.Range{Key: []byte("\xff"), RangeEnd: fsm.PrefixEnd([]byte("\xff")), KeysOnly: true},
			`range(count=2 more=false kvs=[{"\xff"="" c7 m7 v1} {"\xff\xff"="" c8 m8 v1}])`},
		{"everything count", &fsmpb.Range{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true}, `range(count=8 more=false kvs=[])`},
		{"empty prefix is everything", &fsmpb.Range{Key: nil, RangeEnd: fsm.PrefixEnd(nil), CountOnly: true}, `range(count=8 more=false kvs=[])`},
		{"end before key", &fsmpb.Range{Key: []byte("b"), RangeEnd: []byte("a")}, `range(count=0 more=false kvs=[])`},
		{"negative limit is none", &fsmpb.Range{Key: []byte("a"), RangeEnd: []byte("b"), Limit: -1, KeysOnly: true},
			`range(count=4 more=false kvs=[{"a"="" c2 m2 v1} {"a/1"="" c3 m3 v1} {"a/2"="" c4 m4 v1} {"a/3"="" c5 m5 v1}])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.Range(tt.r)
			if err != nil {
				t.Fatalf("Range: got error %v, want nil", err)
			}
			if got := fmtRange(res); got != tt.want {
				t.Errorf("Range:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct {
		prefix, want string
	}{
		{"a", "b"},
		{"abc", "abd"},
		{"a\xff", "b"},
		{"a\xff\xff", "b"},
		{"\x00", "\x01"},
		{"\xfe", "\xff"},
		{"\xff", "\x00"},
		{"\xff\xff", "\x00"},
		{"", "\x00"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.prefix), func(t *testing.T) {
			in := []byte(tt.prefix)
			got := fsm.PrefixEnd(in)
			if string(got) != tt.want {
				t.Errorf("PrefixEnd(%q): got %q, want %q", tt.prefix, got, tt.want)
			}
			if string(in) != tt.prefix {
				t.Errorf("PrefixEnd modified its input: got %q, want %q", in, tt.prefix)
			}
		})
	}
}

func TestApplyBatch(t *testing.T) {
	inv := &recordingInvalidator{}
	f := newFSM(t, "", inv)
	inv.f = f

	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("not a command")},
		cmdLog(t, 2, putCmd("a", "1")),
		cmdLog(t, 3, putCmd("b", "2")),
		{Index: 4, Term: 2, Type: raft.LogNoop},
		cmdLog(t, 5, delCmd("a", "", true)),
		cmdLog(t, 6, putCmd("", "bad")),
		cmdLog(t, 7, memberCmd("n1", "10.0.0.1:9000")),
		cmdLog(t, 8, delCmd("x", "\x00", false)),
	}
	logs[7].Term = 3
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("ApplyBatch: got %d results, want %d", len(out), len(logs))
	}
	want := []string{
		"idx=1",
		"idx=2 put(prev=nil)",
		"idx=3 put(prev=nil)",
		"idx=4",
		`idx=5 del(n=1 prev=[{"a"="1" c2 m2 v1}])`,
		"idx=6 err=store: key required",
		"idx=7",
		"idx=8 del(n=0 prev=[])",
	}
	for i, r := range out {
		res, ok := r.(*fsm.Result)
		if !ok {
			t.Fatalf("result %d: got %T, want *fsm.Result", i, r)
		}
		if got := fmtResult(res); got != want[i] {
			t.Errorf("result %d: got %s, want %s", i, got, want[i])
		}
	}
	if got := f.AppliedIndex(); got != 8 {
		t.Errorf("AppliedIndex: got %d, want 8", got)
	}
	if got := f.Members(); len(got) != 1 || got["n1"] != "10.0.0.1:9000" {
		t.Errorf("Members: got %v, want map[n1:10.0.0.1:9000]", got)
	}

	// Invalidation: one call per write, none for reads, failures, members;
	// all before the applied index moved.
	calls, at := inv.take()
	wantCalls := []string{`purge@0`, `key "a"@2="1"`, `key "b"@3="2"`, `key "a"@5`}
	if fmt.Sprint(calls) != fmt.Sprint(wantCalls) {
		t.Errorf("invalidations: got %q, want %q", calls, wantCalls)
	}
	for i, a := range at {
		if a != 0 {
			t.Errorf("invalidation %d ran at applied index %d, want 0 (before the batch was published)", i, a)
		}
	}

	// A config entry alone only advances the applied index.
	before := hashOf(t, f)
	out = f.ApplyBatch([]*raft.Log{{Index: 9, Term: 3, Type: raft.LogConfiguration}})
	if r := out[0].(*fsm.Result); r.Index != 9 || r.Err != nil {
		t.Errorf("config entry result: got %s, want idx=9", fmtResult(r))
	}
	if idx, sum := mustHash(t, f); idx != 9 || !bytes.Equal(sum, before) {
		t.Errorf("after config entry: got (index %d, hash changed %v), want (9, false)", idx, !bytes.Equal(sum, before))
	}
}

func hashOf(t testing.TB, f *fsm.FSM) []byte {
	_, sum := mustHash(t, f)
	return sum
}

// TestApplyBatchReplay: entries at or below the applied index are skipped
// without being decoded, and still get a result.
func TestApplyBatchReplay(t *testing.T) {
	inv := &recordingInvalidator{}
	f := newFSM(t, "", inv)
	f.ApplyBatch([]*raft.Log{cmdLog(t, 1, putCmd("a", "1")), cmdLog(t, 2, putCmd("b", "2")), cmdLog(t, 3, putCmd("c", "3"))})
	inv.take()
	idx, before := mustHash(t, f)

	garbage := []byte{0xee, 0xee} // would panic if decoded
	out := f.ApplyBatch([]*raft.Log{
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: garbage},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: garbage},
	})
	for i, r := range out {
		if got := fmtResult(r.(*fsm.Result)); got != fmt.Sprintf("idx=%d", i+2) {
			t.Errorf("replayed result %d: got %s, want idx=%d", i, got, i+2)
		}
	}
	if idx2, after := mustHash(t, f); idx2 != idx || !bytes.Equal(after, before) {
		t.Errorf("replay changed state: index %d -> %d, hash changed %v", idx, idx2, !bytes.Equal(after, before))
	}
	if calls, _ := inv.take(); len(calls) != 0 {
		t.Errorf("replay invalidated %q, want nothing", calls)
	}

	// A batch straddling the applied index applies only the new part.
	out = f.ApplyBatch([]*raft.Log{
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: garbage},
		cmdLog(t, 4, putPrevCmd("a", "new")),
	})
	if got := fmtResult(out[1].(*fsm.Result)); got != `idx=4 put(prev={"a"="1" c1 m1 v1})` {
		t.Errorf("new entry after replayed one: got %s", got)
	}
	if got := f.AppliedIndex(); got != 4 {
		t.Errorf("AppliedIndex: got %d, want 4", got)
	}
}

// TestApplyPanicsOnUnknown: content this binary cannot apply is fatal, with
// a clear message, and the whole batch is rolled back.
func TestApplyPanicsOnUnknown(t *testing.T) {
	withField := func(cmd *fsmpb.Command, num protowire.Number, payload []byte) []byte {
		b, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendBytes(b, payload)
		return append([]byte{fsm.EnvelopeV1}, b...)
	}
	badCompare := func(target fsmpb.Compare_Target, result fsmpb.Compare_Result) []byte {
		return mustEncode(t, txnCmd([]*fsmpb.Compare{{Target: target, Result: result, Key: []byte("k")}}, nil, nil))
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"unknown envelope byte", []byte{2, 0x12, 0x00}, "fsm: log entry 11: unknown command envelope byte 2, upgrade this node"},
		{"zero envelope byte", []byte{0}, "fsm: log entry 11: unknown command envelope byte 0, upgrade this node"},
		{"empty data", nil, "fsm: log entry 11: decode command"},
		{"bad proto", []byte{fsm.EnvelopeV1, 0x12, 0xff}, "fsm: log entry 11: decode command"},
		{"op unset", mustEncode(t, &fsmpb.Command{RequestId: "r1"}), "fsm: log entry 11: unknown command op, upgrade this node"},
		{"op from the future", withField(&fsmpb.Command{RequestId: "r1"}, 99, []byte("new op")), "fsm: log entry 11: unknown command op, upgrade this node"},
		{"txn op unset", mustEncode(t, txnCmd(nil, []*fsmpb.Op{opPut("a", "1", false), {}}, nil)), "fsm: log entry 11: txn success op 1: unknown op, upgrade this node"},
		{"txn failure op unset", mustEncode(t, txnCmd(nil, nil, []*fsmpb.Op{{}})), "fsm: log entry 11: txn failure op 0: unknown op, upgrade this node"},
		{"unknown compare target", badCompare(99, fsmpb.Compare_EQUAL), "fsm: log entry 11: txn compare 0: unknown target 99, upgrade this node"},
		{"unknown compare result", badCompare(fsmpb.Compare_VALUE, 42), "fsm: log entry 11: txn compare 0: unknown result 42, upgrade this node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &recordingInvalidator{}
			f := newFSM(t, "", inv)
			for i := uint64(1); i <= 9; i++ {
				apply(t, f, i, putCmd(fmt.Sprintf("k%d", i), "v"))
			}
			inv.take()
			idx, before := mustHash(t, f)

			var got any
			func() {
				defer func() { got = recover() }()
				f.ApplyBatch([]*raft.Log{
					cmdLog(t, 10, putCmd("k1", "changed")), // must be rolled back too
					{Index: 11, Term: 1, Type: raft.LogCommand, Data: tt.data},
				})
			}()
			msg, _ := got.(string)
			if !strings.HasPrefix(msg, tt.want) {
				t.Fatalf("ApplyBatch: got panic %v, want one starting %q", got, tt.want)
			}
			if idx2, after := mustHash(t, f); idx2 != idx || !bytes.Equal(after, before) || f.AppliedIndex() != idx {
				t.Errorf("after panic: got (store index %d, AppliedIndex %d, hash changed %v), want (%d, %d, false)",
					idx2, f.AppliedIndex(), !bytes.Equal(after, before), idx, idx)
			}
			if calls, _ := inv.take(); len(calls) != 0 {
				t.Errorf("after panic: invalidated %q, want nothing", calls)
			}
		})
	}
}

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	f, err := fsm.New(fsm.Config{Dir: dir}, fsm.Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	apply(t, f, 1, memberCmd("n1", "a:1"))
	apply(t, f, 2, putCmd("k", "v"))
	apply(t, f, 3, putCmd("k", "v2"))
	idx, sum := mustHash(t, f)
	if err := f.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: got error %v, want nil", err)
	}
	if _, _, err := f.Get([]byte("k")); !errors.Is(err, fsm.ErrClosed) {
		t.Errorf("Get after Close: got error %v, want ErrClosed", err)
	}

	f2 := newFSM(t, dir, nil)
	if got := f2.AppliedIndex(); got != 3 {
		t.Errorf("AppliedIndex after reopen: got %d, want 3", got)
	}
	if idx2, sum2 := mustHash(t, f2); idx2 != idx || !bytes.Equal(sum, sum2) {
		t.Errorf("Hash after reopen: got index %d (equal=%v), want %d (equal=true)", idx2, bytes.Equal(sum, sum2), idx)
	}
	kv, ok, err := f2.Get([]byte("k"))
	if err != nil || !ok || fmtKV(kv) != `{"k"="v2" c2 m3 v2}` {
		t.Errorf("Get after reopen: got (%s, %v, %v), want ({\"k\"=\"v2\" c2 m3 v2}, true, nil)", fmtKV(kv), ok, err)
	}
	// Raft replays entries after its last snapshot; the store skips them.
	f2.ApplyBatch([]*raft.Log{cmdLog(t, 2, putCmd("k", "REPLAYED")), cmdLog(t, 3, putCmd("k", "REPLAYED"))})
	if idx2, sum2 := mustHash(t, f2); idx2 != idx || !bytes.Equal(sum, sum2) {
		t.Errorf("replay after reopen changed state")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := fsm.New(fsm.DefaultConfig(), fsm.Deps{}); err == nil {
		t.Errorf("New(DefaultConfig()): got nil error, want one (Dir is required)")
	}
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fsm.New(fsm.Config{Dir: file}, fsm.Deps{}); err == nil {
		t.Errorf("New with Dir a regular file: got nil error, want one")
	}
}

func TestWaitApplied(t *testing.T) {
	f := newFSM(t, "", nil)
	apply(t, f, 1, putCmd("a", "1"))

	if err := f.WaitApplied(context.Background(), 1); err != nil {
		t.Errorf("WaitApplied(1) at 1: got error %v, want nil", err)
	}

	done := make(chan error, 1)
	go func() { done <- f.WaitApplied(context.Background(), 3) }()
	apply(t, f, 2, putCmd("a", "2"))
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(3) returned %v at index 2, want it to keep waiting", err)
	case <-time.After(20 * time.Millisecond):
	}
	apply(t, f, 3, putCmd("a", "3"))
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WaitApplied(3): got error %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("WaitApplied(3) did not return after index 3 was applied")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := f.WaitApplied(ctx, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitApplied with expiring ctx: got %v, want context.DeadlineExceeded", err)
	}

	go func() { done <- f.WaitApplied(context.Background(), 100) }()
	time.Sleep(5 * time.Millisecond) // let it block; correctness does not depend on it
	_ = f.Close()
	select {
	case err := <-done:
		if !errors.Is(err, fsm.ErrClosed) {
			t.Errorf("WaitApplied across Close: got %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("WaitApplied did not return after Close")
	}
}

func TestInvalidation(t *testing.T) {
	tests := []struct {
		name string
		cmd  *fsmpb.Command
		want []string
	}{
		{"put", putCmd("k", "v"), []string{`key "k"@3="v"`}},
		{"delete existing", delCmd("a", "", false), []string{`key "a"@3`}},
		{"delete missing", delCmd("zz", "", false), nil},
		{"delete range", delCmd("a", "c", false), []string{`range "a".."c"@3`}},
		{"delete range matching nothing", delCmd("x", "y", false), nil},
		{"delete to end", delCmd("b", "\x00", false), []string{`range "b"..end@3`}},
		{"txn puts and deletes, not ranges, without new states", txnCmd(nil, []*fsmpb.Op{opRange("a", "", 0), opPut("n", "1", false), opDel("a", "", false)}, nil),
			[]string{`key "n"@3`, `key "a"@3`}},
		{"failed put", putCmd("", "v"), nil},
		{"member", memberCmd("n1", "x"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &recordingInvalidator{}
			f := newFSM(t, "", inv)
			apply(t, f, 1, putCmd("a", "1"))
			apply(t, f, 2, putCmd("b", "1"))
			inv.take()
			apply(t, f, 3, tt.cmd)
			if got, _ := inv.take(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("invalidations: got %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkApplyBatch(b *testing.B) {
	const keySpace = 1 << 16
	value := bytes.Repeat([]byte("v"), 256)
	data := make([][]byte, keySpace)
	for i := range data {
		key := fmt.Appendf(nil, "key-%012d", i) // 16 bytes
		data[i] = mustEncode(b, &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Key: key, Value: value}}})
	}
	for _, size := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			f, err := fsm.New(fsm.Config{Dir: b.TempDir()}, fsm.Deps{})
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			logs := make([]*raft.Log, size)
			for i := range logs {
				logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand}
			}
			var index uint64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, l := range logs {
					index++
					l.Index = index
					l.Data = data[index%keySpace]
				}
				f.ApplyBatch(logs)
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
