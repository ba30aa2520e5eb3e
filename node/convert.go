package node

import (
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// This file translates between the public API (kvpb) and the persisted
// command schema (fsmpb). The two are kept separate on purpose: an API
// change must never silently change the log format.

// putToFSM converts a put. A TTL becomes an absolute expiry from this
// node's clock: only the proposing leader's result is used (a follower
// forwards the original request), and every replica applies that value.
func putToFSM(r *kvpb.PutRequest) *fsmpb.Put {
	return &fsmpb.Put{Key: r.GetKey(), Value: r.GetValue(), PrevKv: r.GetPrevKv(),
		ExpireAtUnixMs: expireAt(r.GetTtlMs(), time.Now())}
}

// rangeEnd resolves the API's (key, range_end, prefix) triple to the FSM's
// [key, end) form, where an empty end means "key alone".
func rangeEnd(key, end []byte, prefix bool) []byte {
	if prefix {
		return fsm.PrefixEnd(key)
	}
	return end
}

func deleteToFSM(r *kvpb.DeleteRequest) *fsmpb.DeleteRange {
	return &fsmpb.DeleteRange{Key: r.GetKey(), RangeEnd: rangeEnd(r.GetKey(), r.GetRangeEnd(), r.GetPrefix()), PrevKv: r.GetPrevKv()}
}

func rangeToFSM(r *kvpb.RangeRequest) *fsmpb.Range {
	return &fsmpb.Range{
		Key:       r.GetKey(),
		RangeEnd:  rangeEnd(r.GetKey(), r.GetRangeEnd(), r.GetPrefix()),
		Limit:     r.GetLimit(),
		KeysOnly:  r.GetKeysOnly(),
		CountOnly: r.GetCountOnly(),
		CountRest: r.GetCountTotal(),
	}
}

func compareToFSM(c *kvpb.Compare) *fsmpb.Compare {
	out := &fsmpb.Compare{
		Result: fsmpb.Compare_Result(c.GetResult()),
		Target: fsmpb.Compare_Target(c.GetTarget()),
		Key:    c.GetKey(),
	}
	switch t := c.GetTargetUnion().(type) {
	case *kvpb.Compare_Value:
		out.Value = t.Value
	case *kvpb.Compare_Version:
		out.Number = t.Version
	case *kvpb.Compare_CreateRevision:
		out.Number = t.CreateRevision
	case *kvpb.Compare_ModRevision:
		out.Number = t.ModRevision
	case *kvpb.Compare_Exists:
		out.Exists = t.Exists
	}
	return out
}

func opsToFSM(ops []*kvpb.RequestOp) []*fsmpb.Op {
	out := make([]*fsmpb.Op, 0, len(ops))
	for _, op := range ops {
		switch o := op.GetRequest().(type) {
		case *kvpb.RequestOp_RequestRange:
			out = append(out, &fsmpb.Op{Op: &fsmpb.Op_Range{Range: rangeToFSM(o.RequestRange)}})
		case *kvpb.RequestOp_RequestPut:
			out = append(out, &fsmpb.Op{Op: &fsmpb.Op_Put{Put: putToFSM(o.RequestPut)}})
		case *kvpb.RequestOp_RequestDelete:
			out = append(out, &fsmpb.Op{Op: &fsmpb.Op_DeleteRange{DeleteRange: deleteToFSM(o.RequestDelete)}})
		}
	}
	return out
}

func txnToFSM(r *kvpb.TxnRequest) *fsmpb.Txn {
	t := &fsmpb.Txn{Success: opsToFSM(r.GetSuccess()), Failure: opsToFSM(r.GetFailure())}
	for _, c := range r.GetCompare() {
		t.Compare = append(t.Compare, compareToFSM(c))
	}
	return t
}

func kvToAPI(kv fsm.KeyValue) *kvpb.KeyValue {
	return &kvpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version,
		ExpireAtUnixMs: kv.ExpireAtUnixMs}
}

func kvToAPIPtr(kv *fsm.KeyValue) *kvpb.KeyValue {
	if kv == nil {
		return nil
	}
	return kvToAPI(*kv)
}

func putPrevKV(r *fsm.PutResult) *kvpb.KeyValue {
	if r == nil {
		return nil
	}
	return kvToAPIPtr(r.PrevKV)
}

func kvsToAPI(kvs []fsm.KeyValue) []*kvpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*kvpb.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = kvToAPI(kv)
	}
	return out
}

func rangeResultToAPI(h *kvpb.ResponseHeader, r fsm.RangeResult) *kvpb.RangeResponse {
	return &kvpb.RangeResponse{Header: h, Kvs: kvsToAPI(r.KVs), More: r.More, Count: r.Count}
}

func deleteResultToAPI(h *kvpb.ResponseHeader, r *fsm.DeleteResult) *kvpb.DeleteResponse {
	if r == nil {
		return &kvpb.DeleteResponse{Header: h}
	}
	return &kvpb.DeleteResponse{Header: h, Deleted: r.Deleted, PrevKvs: kvsToAPI(r.PrevKVs)}
}

func txnResultToAPI(h *kvpb.ResponseHeader, r *fsm.TxnResult) *kvpb.TxnResponse {
	resp := &kvpb.TxnResponse{Header: h}
	if r == nil {
		return resp
	}
	resp.Succeeded = r.Succeeded
	for _, op := range r.Ops {
		switch {
		case op.Range != nil:
			resp.Responses = append(resp.Responses, &kvpb.ResponseOp{Response: &kvpb.ResponseOp_ResponseRange{ResponseRange: rangeResultToAPI(h, *op.Range)}})
		case op.Put != nil:
			resp.Responses = append(resp.Responses, &kvpb.ResponseOp{Response: &kvpb.ResponseOp_ResponsePut{ResponsePut: &kvpb.PutResponse{Header: h, PrevKv: putPrevKV(op.Put)}}})
		case op.Delete != nil:
			resp.Responses = append(resp.Responses, &kvpb.ResponseOp{Response: &kvpb.ResponseOp_ResponseDelete{ResponseDelete: deleteResultToAPI(h, op.Delete)}})
		}
	}
	return resp
}
