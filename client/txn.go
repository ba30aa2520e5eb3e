package client

import "github.com/raftkv/raftkv/api/kvpb"

// CompareValue returns a Txn condition comparing key's value with value.
func CompareValue(key []byte, result kvpb.Compare_Result, value []byte) *kvpb.Compare {
	return &kvpb.Compare{Key: key, Result: result, Target: kvpb.Compare_VALUE,
		TargetUnion: &kvpb.Compare_Value{Value: value}}
}

// CompareVersion returns a Txn condition comparing key's version with v.
func CompareVersion(key []byte, result kvpb.Compare_Result, v int64) *kvpb.Compare {
	return &kvpb.Compare{Key: key, Result: result, Target: kvpb.Compare_VERSION,
		TargetUnion: &kvpb.Compare_Version{Version: v}}
}

// CompareModRevision returns a Txn condition comparing key's mod revision
// with rev.
func CompareModRevision(key []byte, result kvpb.Compare_Result, rev int64) *kvpb.Compare {
	return &kvpb.Compare{Key: key, Result: result, Target: kvpb.Compare_MOD,
		TargetUnion: &kvpb.Compare_ModRevision{ModRevision: rev}}
}

// CompareExists returns a Txn condition that holds when key's existence
// equals exists.
func CompareExists(key []byte, exists bool) *kvpb.Compare {
	return &kvpb.Compare{Key: key, Result: kvpb.Compare_EQUAL, Target: kvpb.Compare_EXISTS,
		TargetUnion: &kvpb.Compare_Exists{Exists: exists}}
}

// OpPut returns a Txn operation that writes key.
func OpPut(key, value []byte) *kvpb.RequestOp {
	return &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestPut{
		RequestPut: &kvpb.PutRequest{Key: key, Value: value}}}
}

// OpGet returns a Txn operation that reads key.
func OpGet(key []byte) *kvpb.RequestOp {
	return &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestRange{
		RequestRange: &kvpb.RangeRequest{Key: key}}}
}

// OpDelete returns a Txn operation that deletes key.
func OpDelete(key []byte) *kvpb.RequestOp {
	return &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestDelete{
		RequestDelete: &kvpb.DeleteRequest{Key: key}}}
}
