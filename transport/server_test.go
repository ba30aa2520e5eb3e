package transport

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/raftkv/raftkv/api/kvpb"
)

// blockingKV is a KV whose Put blocks until release is closed, ignoring its
// context, like a handler parked on a raft future.
type blockingKV struct {
	KV
	entered chan struct{}
	release chan struct{}
}

func (b *blockingKV) Put(context.Context, *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	close(b.entered)
	<-b.release
	return &kvpb.PutResponse{}, nil
}

// TestStopDoesNotWaitForParkedHandlers: Stop returns soon after its grace
// period although a handler is still running. grpc's GracefulStop waits for
// handlers even after Stop, and node shuts raft down (which unblocks such
// handlers) only after Stop returned: waiting would hang the shutdown.
func TestStopDoesNotWaitForParkedHandlers(t *testing.T) {
	kv := &blockingKV{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(kv.release)
	s, err := NewServer(ServerConfig{Limits: DefaultLimits(), DefaultTimeout: time.Minute}, kv, nil, nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	go func() {
		_, _ = kvpb.NewKVClient(cc).Put(context.Background(), &kvpb.PutRequest{Key: []byte("k")})
	}()
	select {
	case <-kv.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the Put never reached the handler")
	}
	stopped := make(chan struct{})
	start := time.Now()
	go func() { s.Stop(100 * time.Millisecond); close(stopped) }()
	select {
	case <-stopped:
		t.Logf("Stop returned after %v with a handler still parked", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("Stop(100ms) still blocked after 5s by a parked handler")
	}
}
