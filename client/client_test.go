package client

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
)

// fakeServer is a real gRPC server whose every KV and Admin method answers
// through reply, so a test scripts the errors a client sees. It tests the
// client's retry policy, not raftkv's semantics.
type fakeServer struct {
	kvpb.UnimplementedKVServer
	kvpb.UnimplementedAdminServer

	addr  string
	srv   *grpc.Server
	calls atomic.Int64
	// reply returns the error for the n-th call (1-based), or nil to succeed.
	reply func(ctx context.Context, n int64) error
}

func startFake(t *testing.T, reply func(ctx context.Context, n int64) error) *fakeServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f := &fakeServer{addr: lis.Addr().String(), srv: grpc.NewServer(), reply: reply}
	kvpb.RegisterKVServer(f.srv, f)
	kvpb.RegisterAdminServer(f.srv, f)
	go func() { _ = f.srv.Serve(lis) }()
	t.Cleanup(f.srv.Stop)
	return f
}

// deadAddr returns an address nothing listens on: connecting is refused.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

func (f *fakeServer) answer(ctx context.Context) (*kvpb.ResponseHeader, error) {
	n := f.calls.Add(1)
	if f.reply != nil {
		if err := f.reply(ctx, n); err != nil {
			return nil, err
		}
	}
	return &kvpb.ResponseHeader{NodeId: f.addr, Revision: n}, nil
}

func (f *fakeServer) Get(ctx context.Context, _ *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	h, err := f.answer(ctx)
	return &kvpb.GetResponse{Header: h}, err
}

func (f *fakeServer) Put(ctx context.Context, _ *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	h, err := f.answer(ctx)
	return &kvpb.PutResponse{Header: h}, err
}

func (f *fakeServer) Delete(ctx context.Context, _ *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error) {
	h, err := f.answer(ctx)
	return &kvpb.DeleteResponse{Header: h}, err
}

func (f *fakeServer) Range(ctx context.Context, _ *kvpb.RangeRequest) (*kvpb.RangeResponse, error) {
	h, err := f.answer(ctx)
	return &kvpb.RangeResponse{Header: h}, err
}

func (f *fakeServer) Txn(ctx context.Context, _ *kvpb.TxnRequest) (*kvpb.TxnResponse, error) {
	h, err := f.answer(ctx)
	return &kvpb.TxnResponse{Header: h}, err
}

func (f *fakeServer) MemberList(ctx context.Context, _ *kvpb.MemberListRequest) (*kvpb.MemberListResponse, error) {
	h, err := f.answer(ctx)
	return &kvpb.MemberListResponse{Header: h}, err
}

func (f *fakeServer) Status(ctx context.Context, _ *kvpb.StatusRequest) (*kvpb.StatusResponse, error) {
	if _, err := f.answer(ctx); err != nil {
		return nil, err
	}
	return &kvpb.StatusResponse{NodeId: f.addr, RaftState: "Leader"}, nil
}

// reasonErr builds a status error the way transport does.
func reasonErr(code codes.Code, reason string, md map[string]string) error {
	st, err := status.New(code, reason).WithDetails(&errdetails.ErrorInfo{
		Domain: kvpb.ErrorDomain, Reason: reason, Metadata: md})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func testConfig(endpoints ...string) Config {
	cfg := DefaultConfig()
	cfg.Endpoints = endpoints
	cfg.RetryBackoff = Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	return cfg
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v, want a client", cfg, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// call runs op through c and returns the header of the node that answered.
func call(ctx context.Context, c *Client, op string) (*kvpb.ResponseHeader, error) {
	key := []byte("k")
	switch op {
	case "get":
		r, err := c.Get(ctx, &kvpb.GetRequest{Key: key})
		return r.GetHeader(), err
	case "range":
		r, err := c.Range(ctx, &kvpb.RangeRequest{Key: key})
		return r.GetHeader(), err
	case "member list":
		r, err := c.MemberList(ctx)
		return r.GetHeader(), err
	case "put":
		r, err := c.Put(ctx, &kvpb.PutRequest{Key: key, Value: []byte("v")})
		return r.GetHeader(), err
	case "delete":
		r, err := c.Delete(ctx, &kvpb.DeleteRequest{Key: key})
		return r.GetHeader(), err
	case "txn":
		r, err := c.Txn(ctx, &kvpb.TxnRequest{Success: []*kvpb.RequestOp{OpPut(key, nil)}})
		return r.GetHeader(), err
	}
	panic("unknown op " + op)
}

var (
	readOps  = []string{"get", "range", "member list"}
	writeOps = []string{"put", "delete", "txn"}
)

func TestStickyEndpoints(t *testing.T) {
	var addrs [2]string
	follower := startFake(t, func(context.Context, int64) error {
		return reasonErr(codes.FailedPrecondition, kvpb.ReasonNotLeader, map[string]string{kvpb.MetadataLeaderAddr: addrs[1]})
	})
	leader := startFake(t, nil)
	addrs = [2]string{follower.addr, leader.addr}
	c := newTestClient(t, testConfig(follower.addr))

	for i := range 3 {
		if _, err := call(t.Context(), c, "put"); err != nil {
			t.Fatalf("put %d = %v, want success", i, err)
		}
	}
	if _, err := call(t.Context(), c, "get"); err != nil {
		t.Fatalf("get = %v, want success", err)
	}
	if got := follower.calls.Load(); got != 1 {
		t.Errorf("follower saw %d calls, want 1 (only the first put, before the hint)", got)
	}
	if got := leader.calls.Load(); got != 4 {
		t.Errorf("leader saw %d calls, want 4", got)
	}
}

func TestStatus(t *testing.T) {
	f := startFake(t, nil)
	dead := deadAddr(t)
	c := newTestClient(t, testConfig(f.addr))

	resp, err := c.Status(t.Context(), f.addr)
	if err != nil || resp.GetNodeId() != f.addr {
		t.Errorf("Status(%s) = %v, %v; want node %s", f.addr, resp, err, f.addr)
	}
	if _, err := c.Status(t.Context(), dead); status.Code(err) != codes.Unavailable {
		t.Errorf("Status(dead) = %v, want code Unavailable", err)
	}
	if got := c.Endpoints(); !slices.Equal(got, []string{f.addr}) {
		t.Errorf("Endpoints() = %v after Status, want %v: Status must not grow the pool", got, []string{f.addr})
	}
}

func TestClosed(t *testing.T) {
	f := startFake(t, nil)
	c, err := New(testConfig(f.addr))
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := call(t.Context(), c, "get"); !errors.Is(err, ErrClosed) {
		t.Errorf("get after Close = %v, want ErrClosed", err)
	}
}
