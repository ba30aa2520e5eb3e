package main

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/api/kvpb"
)

// memServer is a small in-memory KV and Admin server for driving raftkvctl
// end to end in-process. It implements just enough of raftkv's semantics for
// the commands' requests; the real cluster e2e tests live elsewhere.
type memServer struct {
	kvpb.UnimplementedKVServer
	kvpb.UnimplementedAdminServer

	addr string

	mu  sync.Mutex
	rev int64
	kvs map[string]*kvpb.KeyValue
}

func startMemServer(t *testing.T) *memServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &memServer{addr: lis.Addr().String(), kvs: make(map[string]*kvpb.KeyValue)}
	srv := grpc.NewServer()
	kvpb.RegisterKVServer(srv, s)
	kvpb.RegisterAdminServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return s
}

func (s *memServer) header() *kvpb.ResponseHeader {
	return &kvpb.ResponseHeader{Revision: s.rev, NodeId: "n1", RaftTerm: 2}
}

func (s *memServer) Get(_ context.Context, r *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.kvs[string(r.GetKey())]
	return &kvpb.GetResponse{Header: s.header(), Found: ok, Kv: kv}, nil
}

func (s *memServer) Put(_ context.Context, r *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	return &kvpb.PutResponse{Header: s.header(), PrevKv: s.put(r)}, nil
}

// put applies r at s.rev and returns the previous pair if r asks for it.
func (s *memServer) put(r *kvpb.PutRequest) *kvpb.KeyValue {
	prev := s.kvs[string(r.GetKey())]
	kv := &kvpb.KeyValue{Key: r.GetKey(), Value: r.GetValue(), CreateRevision: s.rev, ModRevision: s.rev, Version: 1}
	if r.GetTtlMs() > 0 {
		kv.ExpireAtUnixMs = time.Now().UnixMilli() + r.GetTtlMs()
	}
	if prev != nil {
		kv.CreateRevision, kv.Version = prev.GetCreateRevision(), prev.GetVersion()+1
	}
	s.kvs[string(r.GetKey())] = kv
	if r.GetPrevKv() {
		return prev
	}
	return nil
}

// match returns the sorted keys selected by key, range_end and prefix.
func (s *memServer) match(key, end []byte, prefix bool) []string {
	var keys []string
	for k := range s.kvs {
		switch {
		case prefix && strings.HasPrefix(k, string(key)),
			len(end) > 0 && k >= string(key) && k < string(end),
			!prefix && len(end) == 0 && k == string(key):
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func (s *memServer) Delete(_ context.Context, r *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	resp := &kvpb.DeleteResponse{Header: s.header()}
	for _, k := range s.match(r.GetKey(), r.GetRangeEnd(), r.GetPrefix()) {
		if r.GetPrevKv() {
			resp.PrevKvs = append(resp.PrevKvs, s.kvs[k])
		}
		delete(s.kvs, k)
		resp.Deleted++
	}
	return resp, nil
}

func (s *memServer) Range(_ context.Context, r *kvpb.RangeRequest) (*kvpb.RangeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rangeLocked(r), nil
}

func (s *memServer) rangeLocked(r *kvpb.RangeRequest) *kvpb.RangeResponse {
	keys := s.match(r.GetKey(), r.GetRangeEnd(), r.GetPrefix())
	resp := &kvpb.RangeResponse{Header: s.header(), Count: int64(len(keys))}
	if r.GetCountOnly() {
		return resp
	}
	if r.GetLimit() > 0 && int64(len(keys)) > r.GetLimit() {
		keys, resp.More = keys[:r.GetLimit()], true
	}
	for _, k := range keys {
		kv := proto.Clone(s.kvs[k]).(*kvpb.KeyValue)
		if r.GetKeysOnly() {
			kv.Value = nil
		}
		resp.Kvs = append(resp.Kvs, kv)
	}
	return resp
}

func (s *memServer) Txn(_ context.Context, r *kvpb.TxnRequest) (*kvpb.TxnResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	ok := true
	for _, c := range r.GetCompare() {
		kv := s.kvs[string(c.GetKey())]
		switch c.GetTarget() {
		case kvpb.Compare_VALUE:
			ok = ok && kv != nil && bytes.Equal(kv.GetValue(), c.GetValue())
		case kvpb.Compare_VERSION:
			ok = ok && kv.GetVersion() == c.GetVersion()
		case kvpb.Compare_EXISTS:
			ok = ok && (kv != nil) == c.GetExists()
		}
	}
	ops := r.GetFailure()
	if ok {
		ops = r.GetSuccess()
	}
	resp := &kvpb.TxnResponse{Header: s.header(), Succeeded: ok}
	for _, op := range ops {
		switch o := op.GetRequest().(type) {
		case *kvpb.RequestOp_RequestPut:
			s.put(o.RequestPut)
			resp.Responses = append(resp.Responses, &kvpb.ResponseOp{Response: &kvpb.ResponseOp_ResponsePut{
				ResponsePut: &kvpb.PutResponse{Header: s.header()}}})
		case *kvpb.RequestOp_RequestRange:
			resp.Responses = append(resp.Responses, &kvpb.ResponseOp{Response: &kvpb.ResponseOp_ResponseRange{
				ResponseRange: s.rangeLocked(o.RequestRange)}})
		}
	}
	return resp, nil
}

func (s *memServer) Status(context.Context, *kvpb.StatusRequest) (*kvpb.StatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &kvpb.StatusResponse{NodeId: "n1", GrpcAddr: s.addr, RaftState: "Leader", LeaderId: "n1",
		Term: 2, CommitIndex: uint64(s.rev), AppliedIndex: uint64(s.rev), StoreSizeBytes: 3 << 19,
		KeyCount: int64(len(s.kvs))}, nil
}

func (s *memServer) MemberList(context.Context, *kvpb.MemberListRequest) (*kvpb.MemberListResponse, error) {
	return &kvpb.MemberListResponse{Members: []*kvpb.Member{
		{Id: "n1", RaftAddr: "127.0.0.1:7000", GrpcAddr: s.addr, Suffrage: "Voter", IsLeader: true},
		{Id: "n2", RaftAddr: "127.0.0.1:7010", GrpcAddr: "127.0.0.1:7011", Suffrage: "Voter"},
	}}, nil
}
