package node_test

import (
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/node/nodetest"
)

func cmpVersion(key string, r kvpb.Compare_Result, v int64) *kvpb.Compare {
	return &kvpb.Compare{Key: []byte(key), Target: kvpb.Compare_VERSION, Result: r, TargetUnion: &kvpb.Compare_Version{Version: v}}
}

func cmpValue(key string, r kvpb.Compare_Result, v string) *kvpb.Compare {
	return &kvpb.Compare{Key: []byte(key), Target: kvpb.Compare_VALUE, Result: r, TargetUnion: &kvpb.Compare_Value{Value: []byte(v)}}
}

func cmpExists(key string, exists bool) *kvpb.Compare {
	return &kvpb.Compare{Key: []byte(key), Target: kvpb.Compare_EXISTS, Result: kvpb.Compare_EQUAL, TargetUnion: &kvpb.Compare_Exists{Exists: exists}}
}

func cmpMod(key string, r kvpb.Compare_Result, rev int64) *kvpb.Compare {
	return &kvpb.Compare{Key: []byte(key), Target: kvpb.Compare_MOD, Result: r, TargetUnion: &kvpb.Compare_ModRevision{ModRevision: rev}}
}

func cmpCreate(key string, r kvpb.Compare_Result, rev int64) *kvpb.Compare {
	return &kvpb.Compare{Key: []byte(key), Target: kvpb.Compare_CREATE, Result: r, TargetUnion: &kvpb.Compare_CreateRevision{CreateRevision: rev}}
}

func opPut(k, v string) *kvpb.RequestOp {
	return &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func opGet(k string) *kvpb.RequestOp {
	return &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestRange{RequestRange: &kvpb.RangeRequest{Key: []byte(k)}}}
}

// TestTxnSemantics runs each case against a fresh key "k" holding "v1" at
// version 1 (created at revision rev) and checks which branch ran.
func TestTxnSemantics(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	cl := c.Client()
	cases := []struct {
		name    string
		compare func(rev int64) []*kvpb.Compare
		want    bool
	}{
		{"version equal", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpVersion("k", kvpb.Compare_EQUAL, 1)} }, true},
		{"version not equal", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpVersion("k", kvpb.Compare_NOT_EQUAL, 1)} }, false},
		{"version greater", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpVersion("k", kvpb.Compare_GREATER, 0)} }, true},
		{"version less", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpVersion("k", kvpb.Compare_LESS, 1)} }, false},
		{"missing key has version 0", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpVersion("missing", kvpb.Compare_EQUAL, 0)} }, true},
		{"value equal", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpValue("k", kvpb.Compare_EQUAL, "v1")} }, true},
		{"value mismatch", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpValue("k", kvpb.Compare_EQUAL, "v2")} }, false},
		{"value greater", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpValue("k", kvpb.Compare_GREATER, "v0")} }, true},
		{"value of missing key is false", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpValue("missing", kvpb.Compare_NOT_EQUAL, "x")} }, false},
		{"exists", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpExists("k", true)} }, true},
		{"missing does not exist", func(int64) []*kvpb.Compare { return []*kvpb.Compare{cmpExists("missing", true)} }, false},
		{"mod revision equal", func(rev int64) []*kvpb.Compare { return []*kvpb.Compare{cmpMod("k", kvpb.Compare_EQUAL, rev)} }, true},
		{"mod revision less", func(rev int64) []*kvpb.Compare { return []*kvpb.Compare{cmpMod("k", kvpb.Compare_LESS, rev)} }, false},
		{"create revision equal", func(rev int64) []*kvpb.Compare { return []*kvpb.Compare{cmpCreate("k", kvpb.Compare_EQUAL, rev)} }, true},
		{"all compares must hold", func(int64) []*kvpb.Compare {
			return []*kvpb.Compare{cmpExists("k", true), cmpValue("k", kvpb.Compare_EQUAL, "nope")}
		}, false},
		{"no compares succeeds", func(int64) []*kvpb.Compare { return nil }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cl.Delete(ctxT(t, 5*time.Second), &kvpb.DeleteRequest{Key: []byte("k")}); err != nil {
				t.Fatalf("reset: %v", err)
			}
			rev := put(t, cl, "k", "v1")
			resp, err := cl.Txn(ctxT(t, 5*time.Second), &kvpb.TxnRequest{
				Compare: tc.compare(rev),
				Success: []*kvpb.RequestOp{opPut("k", "success"), opGet("k")},
				Failure: []*kvpb.RequestOp{opPut("k", "failure"), opGet("k")},
			})
			if err != nil {
				t.Fatalf("txn: %v", err)
			}
			if resp.GetSucceeded() != tc.want {
				t.Fatalf("succeeded = %v, want %v", resp.GetSucceeded(), tc.want)
			}
			wantVal := map[bool]string{true: "success", false: "failure"}[tc.want]
			if n := len(resp.GetResponses()); n != 2 {
				t.Fatalf("got %d op responses, want 2", n)
			}
			kvs := resp.GetResponses()[1].GetResponseRange().GetKvs()
			if len(kvs) != 1 || string(kvs[0].GetValue()) != wantVal {
				t.Fatalf("get inside txn = %v, want %q (ops apply in order)", kvs, wantVal)
			}
			if kvs[0].GetVersion() != 2 || kvs[0].GetCreateRevision() != rev {
				t.Fatalf("after txn: version %d create %d, want version 2 create %d", kvs[0].GetVersion(), kvs[0].GetCreateRevision(), rev)
			}
		})
	}
}

func TestCompareAndSwapRace(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	cl := c.Client()
	put(t, cl, "ctr", "0")
	// Two CAS on the same version: exactly one wins.
	wins := 0
	for _, v := range []string{"a", "b"} {
		resp, err := cl.Txn(ctxT(t, 5*time.Second), &kvpb.TxnRequest{
			Compare: []*kvpb.Compare{cmpVersion("ctr", kvpb.Compare_EQUAL, 1)},
			Success: []*kvpb.RequestOp{opPut("ctr", v)},
		})
		if err != nil {
			t.Fatalf("cas: %v", err)
		}
		if resp.GetSucceeded() {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d CAS on version 1 succeeded, want exactly 1", wins)
	}
}
