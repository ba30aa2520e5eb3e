package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/node/nodetest"
)

func fastExpiry(cfg *nodetest.NodeConfig) { cfg.ExpiryInterval = 20 * time.Millisecond }

// getOn reads key on member i only (serializable: that node's own state).
func getOn(ctx context.Context, c *nodetest.Cluster, i int, key string) (*kvpb.GetResponse, error) {
	return c.Members[i].Node.Get(ctx, &kvpb.GetRequest{Key: []byte(key), Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
}

// waitGoneEverywhere polls every running member until key is absent.
func waitGoneEverywhere(t *testing.T, c *nodetest.Cluster, key string) {
	t.Helper()
	c.Eventually("key "+key+" expired on every node", func() error {
		for i, m := range c.Members {
			if m.Node == nil {
				continue
			}
			resp, err := getOn(context.Background(), c, i, key)
			if err != nil {
				return err
			}
			if resp.GetFound() {
				return fmt.Errorf("node %s still has %q (expire_at %d, now %d)", m.ID, key, resp.GetKv().GetExpireAtUnixMs(), time.Now().UnixMilli())
			}
		}
		return nil
	})
}

func TestTTLExpiresOnEveryNodeAcrossLeaderChange(t *testing.T) {
	c := nodetest.NewCluster(t, 3, fastExpiry)
	cl := c.Client()
	ctx := ctxT(t, 10*time.Second)

	before := time.Now().UnixMilli()
	if _, err := cl.Put(ctx, &kvpb.PutRequest{Key: []byte("short"), Value: []byte("v"), TtlMs: 300}); err != nil {
		t.Fatalf("put with ttl: %v", err)
	}
	if _, err := cl.Put(ctx, &kvpb.PutRequest{Key: []byte("keep"), Value: []byte("v")}); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := cl.Get(ctx, &kvpb.GetRequest{Key: []byte("short")})
	if err != nil || !resp.GetFound() {
		t.Fatalf("get right after put: found=%v err=%v, want found", resp.GetFound(), err)
	}
	if at := resp.GetKv().GetExpireAtUnixMs(); at < before+300 || at > time.Now().UnixMilli()+300 {
		t.Fatalf("expire_at_unix_ms: got %d, want within [%d, %d]", at, before+300, time.Now().UnixMilli()+300)
	}
	waitGoneEverywhere(t, c, "short")
	for i := range c.Members {
		r, err := getOn(ctx, c, i, "keep")
		if err != nil || !r.GetFound() || r.GetKv().GetExpireAtUnixMs() != 0 {
			t.Fatalf("node %d: key without ttl: found=%v expire_at=%d err=%v, want found, 0", i, r.GetFound(), r.GetKv().GetExpireAtUnixMs(), err)
		}
	}

	// A put without ttl clears the expiry (Redis SET semantics).
	if _, err := cl.Put(ctx, &kvpb.PutRequest{Key: []byte("cleared"), Value: []byte("v"), TtlMs: 200}); err != nil {
		t.Fatalf("put: %v", err)
	}
	if _, err := cl.Put(ctx, &kvpb.PutRequest{Key: []byte("cleared"), Value: []byte("v2")}); err != nil {
		t.Fatalf("put: %v", err)
	}

	// Leadership moves: the new leader keeps expiring.
	old := c.Leader()
	c.Stop(old)
	c.WaitForLeader()
	cl2 := c.Client(c.Followers()...)
	if _, err := cl2.Put(ctx, &kvpb.PutRequest{Key: []byte("after"), Value: []byte("v"), TtlMs: 200}); err != nil {
		t.Fatalf("put after leader change: %v", err)
	}
	waitGoneEverywhere(t, c, "after")
	// Expiring "after" took longer than "cleared"'s old ttl: it survived.
	r, err := cl2.Get(ctx, &kvpb.GetRequest{Key: []byte("cleared")})
	if err != nil || !r.GetFound() || string(r.GetKv().GetValue()) != "v2" {
		t.Fatalf("re-put key without ttl: found=%v value=%q err=%v, want found v2", r.GetFound(), r.GetKv().GetValue(), err)
	}

	// The stopped node catches up and applies the same deletes.
	c.Restart(old)
	c.WaitForConvergence()
	waitGoneEverywhere(t, c, "after")
}

func TestPutRejectsNegativeTTL(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	_, err := c.Client().Put(ctxT(t, 5*time.Second), &kvpb.PutRequest{Key: []byte("k"), Value: []byte("v"), TtlMs: -1})
	if err == nil {
		t.Fatalf("put with ttl_ms -1: got nil error, want InvalidArgument")
	}
}

// TestExportIsAConsistentCut exports while another goroutine deletes and
// rewrites keys. Every write stores its own expected generation, so the
// state at any index is known: the export must equal the state at the
// index in its header, exactly.
func TestExportIsAConsistentCut(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t, 60*time.Second)
	const n = 3000
	for i := 0; i < n; i += 100 {
		var ops []*kvpb.RequestOp
		for j := i; j < i+100; j++ {
			ops = append(ops, opPut(fmt.Sprintf("k%05d", j), "gen0"))
		}
		if _, err := cl.Txn(ctx, &kvpb.TxnRequest{Success: ops}); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	// history[rev] is the write made at revision rev.
	type write struct {
		key    string
		value  string
		delete bool
	}
	history := make(chan map[int64]write, 1)
	stop := make(chan struct{})
	go func() {
		h := map[int64]write{}
		defer func() { history <- h }()
		for g := 1; ; g++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprintf("k%05d", (g*7919)%n)
			if g%3 == 0 {
				r, err := cl.Delete(ctx, &kvpb.DeleteRequest{Key: []byte(k)})
				if err != nil {
					return
				}
				h[r.GetHeader().GetRevision()] = write{key: k, delete: true}
				continue
			}
			v := fmt.Sprintf("gen%d", g)
			r, err := cl.Put(ctx, &kvpb.PutRequest{Key: []byte(k), Value: []byte(v)})
			if err != nil {
				return
			}
			h[r.GetHeader().GetRevision()] = write{key: k, value: v}
		}
	}()

	// Small pages, and a pause between receives, so the writer runs
	// during the export.
	var loadIndex int64
	if r, err := cl.Get(ctx, &kvpb.GetRequest{Key: []byte("k00000")}); err == nil {
		loadIndex = r.GetHeader().GetRevision()
	}
	stream, err := kvpb.NewKVClient(dial(t, c.GRPCAddr(0))).Export(ctx, &kvpb.ExportRequest{Key: []byte("k"), Prefix: true, PageSize: 50})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	got := map[string]string{}
	var cutIndex int64
	for pages := 0; ; pages++ {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("export recv: %v", err)
		}
		if pages == 0 {
			cutIndex = resp.GetHeader().GetRevision()
		}
		for _, kv := range resp.GetKvs() {
			got[string(kv.GetKey())] = string(kv.GetValue())
		}
		if pages%10 == 0 {
			// Let writes commit behind the cut (poll the applied index,
			// not a sleep).
			target := c.Members[0].Node.AppliedIndex() + 3
			c.Eventually("writes during export", func() error {
				if c.Members[0].Node.AppliedIndex() < target {
					return errors.New("waiting")
				}
				return nil
			})
		}
	}
	close(stop)
	h := <-history
	if cutIndex < loadIndex {
		t.Fatalf("cut index %d, want after the load (%d)", cutIndex, loadIndex)
	}
	want := map[string]string{}
	for i := 0; i < n; i++ {
		want[fmt.Sprintf("k%05d", i)] = "gen0"
	}
	after := 0
	for _, rev := range slices.Sorted(maps.Keys(h)) {
		w := h[rev]
		if rev > cutIndex {
			after++
			continue
		}
		if w.delete {
			delete(want, w.key)
		} else {
			want[w.key] = w.value
		}
	}
	if after == 0 {
		t.Fatalf("no write committed after the cut at %d: the test did not exercise the cut", cutIndex)
	}
	if len(got) != len(want) {
		t.Errorf("export has %d keys, state at %d has %d", len(got), cutIndex, len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("key %s: export has %q, state at index %d has %q", k, got[k], cutIndex, v)
		}
	}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestExportCancelReleasesTheCut abandons an export after one page; the
// node must close the read transaction, or stopping it (which closes the
// store) would hang.
func TestExportCancelReleasesTheCut(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t, 30*time.Second)
	for i := 0; i < 500; i += 100 {
		var ops []*kvpb.RequestOp
		for j := i; j < i+100; j++ {
			ops = append(ops, opPut(fmt.Sprintf("k%05d", j), "v"))
		}
		if _, err := cl.Txn(ctx, &kvpb.TxnRequest{Success: ops}); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	stream, err := kvpb.NewKVClient(dial(t, c.GRPCAddr(0))).Export(sctx, &kvpb.ExportRequest{Key: []byte("k"), Prefix: true, PageSize: 10})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first page: %v", err)
	}
	cancel()
	if _, err := stream.Recv(); err == nil {
		// Pages already in flight may arrive; the stream must end soon.
		for err == nil {
			_, err = stream.Recv()
		}
	}
	stopped := make(chan struct{})
	go func() {
		c.Stop(0)
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(nodetest.WaitTimeout):
		t.Fatalf("node did not stop within %s after an abandoned export: read transaction leaked", nodetest.WaitTimeout)
	}
}
