package kvtarget

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/loadgen"
	"github.com/raftkv/raftkv/node/nodetest"
)

func TestErrorKind(t *testing.T) {
	notLeader, err := status.New(codes.FailedPrecondition, "not the leader").WithDetails(
		&errdetails.ErrorInfo{Domain: kvpb.ErrorDomain, Reason: kvpb.ReasonNotLeader})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := status.New(codes.Unavailable, "x").WithDetails(&errdetails.ErrorInfo{Domain: "other", Reason: "R"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"raftkv reason", notLeader.Err(), "FailedPrecondition/NOT_LEADER"},
		{"wrapped", fmt.Errorf("put: %w", notLeader.Err()), "FailedPrecondition/NOT_LEADER"},
		{"plain status", status.Error(codes.Unavailable, "down"), "Unavailable"},
		{"other domain", foreign.Err(), "Unavailable"},
		{"deadline", context.DeadlineExceeded, "DeadlineExceeded"},
		{"not grpc", errors.New("boom"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorKind(tt.err); got != tt.want {
				t.Errorf("ErrorKind(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestTargetCluster drives a real in-process cluster: the leader is found
// among dead and live endpoints, and every Target method works on it.
func TestTargetCluster(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	leader := c.Leader()
	ln := deadAddr(t)
	eps := append([]string{ln}, c.Endpoints()...)
	got, err := FindLeader(t.Context(), eps)
	if err != nil || got != c.GRPCAddr(leader) {
		t.Fatalf("FindLeader = %q, %v; want %s", got, err, c.GRPCAddr(leader))
	}
	if _, err := FindLeader(t.Context(), []string{ln}); err == nil {
		t.Errorf("FindLeader of a dead endpoint succeeded")
	}

	tg, err := Dialer([]string{got})(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	key := loadgen.Key(1, 8)
	if err := tg.Put(t.Context(), key, []byte("v1")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := tg.Txn(t.Context(), key, []byte("v2")); err != nil {
		t.Fatalf("Txn: %v", err)
	}
	for _, cons := range []loadgen.Consistency{loadgen.Linearizable, loadgen.Serializable} {
		if err := tg.Get(t.Context(), key, cons); err != nil {
			t.Fatalf("Get %v: %v", cons, err)
		}
	}
	resp, err := c.Client().Get(t.Context(), &kvpb.GetRequest{Key: key})
	if err != nil || string(resp.GetKv().GetValue()) != "v2" {
		t.Errorf("after Put and Txn the key holds %q (%v), want v2: the compare must hold", resp.GetKv().GetValue(), err)
	}
}

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
