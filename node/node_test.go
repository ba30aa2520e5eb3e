package node_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/node"
	"github.com/raftkv/raftkv/node/nodetest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// put writes k=v and returns its revision. A put whose outcome is unknown
// (leadership lost mid-commit on a loaded machine) is repeated: writing the
// same value again is idempotent for these tests, and only the acknowledged
// write counts.
func put(t *testing.T, cl *client.Client, k, v string) int64 {
	t.Helper()
	for attempt := 1; ; attempt++ {
		resp, err := cl.Put(ctxT(t, 10*time.Second), &kvpb.PutRequest{Key: []byte(k), Value: []byte(v)})
		if err == nil {
			return resp.GetHeader().GetRevision()
		}
		if !errors.Is(err, client.ErrOutcomeUnknown) || attempt == 3 {
			t.Fatalf("put %q (attempt %d): %v", k, attempt, err)
		}
		t.Logf("put %q: outcome unknown, repeating: %v", k, err)
	}
}

func getLocal(t *testing.T, c *nodetest.Cluster, i int, k string) (string, bool) {
	t.Helper()
	resp, err := c.Members[i].Node.Get(context.Background(), &kvpb.GetRequest{Key: []byte(k), Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
	if err != nil {
		t.Fatalf("serializable get %q on %s: %v", k, c.Members[i].ID, err)
	}
	return string(resp.GetKv().GetValue()), resp.GetFound()
}

func TestWritesReachEveryNode(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	cl := c.Client()
	var last int64
	for i := 0; i < 50; i++ {
		last = put(t, cl, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i))
	}
	c.WaitForApplied(uint64(last))
	for i := range c.Members {
		for k := 0; k < 50; k++ {
			got, ok := getLocal(t, c, i, fmt.Sprintf("k%02d", k))
			if want := fmt.Sprintf("v%d", k); !ok || got != want {
				t.Fatalf("%s: k%02d = %q (found %v), want %q", c.Members[i].ID, k, got, ok, want)
			}
		}
	}
	c.WaitForConvergence()
}

func TestLeaderFailoverKeepsAcknowledgedWrites(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	cl := c.Client()
	for i := 0; i < 100; i++ {
		put(t, cl, fmt.Sprintf("k%03d", i), "before")
	}
	old := c.Leader()
	c.Stop(old)
	newLeader := c.WaitForLeader()
	if newLeader == old {
		t.Fatalf("leader is still the stopped member %d", old)
	}
	survivors := c.Followers()
	survivors = append(survivors, newLeader)
	cl2 := c.Client(survivors...)
	resp, err := cl2.Range(ctxT(t, 10*time.Second), &kvpb.RangeRequest{Key: []byte("k"), Prefix: true})
	if err != nil {
		t.Fatalf("linearizable range after failover: %v", err)
	}
	if resp.GetCount() != 100 {
		t.Fatalf("after failover: %d keys, want 100", resp.GetCount())
	}
	put(t, cl2, "after", "failover")
	c.Restart(old)
	c.WaitForConvergence()
	if got, ok := getLocal(t, c, old, "after"); !ok || got != "failover" {
		t.Fatalf("restarted old leader: after = %q (found %v), want failover", got, ok)
	}
}

func TestStoppedFollowerCatchesUp(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	cl := c.Client()
	f := c.Followers()[0]
	c.Stop(f)
	var last int64
	for i := 0; i < 50; i++ {
		last = put(t, cl, fmt.Sprintf("k%d", i), "v")
	}
	c.Restart(f)
	c.WaitForApplied(uint64(last), f)
	if _, ok := getLocal(t, c, f, "k49"); !ok {
		t.Fatalf("restarted follower lacks k49")
	}
	c.WaitForConvergence()
}

func TestFarBehindFollowerInstallsSnapshot(t *testing.T) {
	c := nodetest.NewCluster(t, 3, func(cfg *node.Config) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
	})
	cl := c.Client()
	f := c.Followers()[0]
	c.Stop(f)
	var last int64
	for i := 0; i < 200; i++ {
		last = put(t, cl, fmt.Sprintf("k%03d", i), "v")
	}
	leader := c.Leader()
	if err := c.Members[leader].Node.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	// The log entries the follower misses are gone from the leader's log.
	first, err := c.Members[leader].Node.FirstLogIndex()
	if err != nil || first <= 10 {
		t.Fatalf("leader first log index = %d (err %v), want compacted past the follower's log", first, err)
	}
	c.Restart(f)
	c.WaitForApplied(uint64(last), f)
	if n := c.Members[f].Node.SnapshotsRestored(); n == 0 {
		t.Fatalf("follower caught up without installing a snapshot")
	}
	c.WaitForConvergence()
}

func TestFollowerForwardsWritesAndLinearizableReads(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	f := c.Followers()[0]
	cl := c.Client(f) // talks to the follower only
	resp, err := cl.Put(ctxT(t, 10*time.Second), &kvpb.PutRequest{Key: []byte("fwd"), Value: []byte("1")})
	if err != nil {
		t.Fatalf("put via follower: %v", err)
	}
	leaderID := c.Members[c.Leader()].ID
	if got := resp.GetHeader().GetNodeId(); got != leaderID {
		t.Fatalf("put answered by %q, want the leader %q", got, leaderID)
	}
	get, err := cl.Get(ctxT(t, 10*time.Second), &kvpb.GetRequest{Key: []byte("fwd")})
	if err != nil {
		t.Fatalf("linearizable get via follower: %v", err)
	}
	if !get.GetFound() || string(get.GetKv().GetValue()) != "1" {
		t.Fatalf("linearizable get via follower = %v, want value 1", get)
	}
	if got := get.GetHeader().GetNodeId(); got != c.Members[f].ID {
		t.Fatalf("read served by %q, want the follower %q", got, c.Members[f].ID)
	}
}

func TestPartitionedFollowerServesSerializableReads(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	cl := c.Client()
	rev := put(t, cl, "k", "v1")
	c.WaitForApplied(uint64(rev))
	f := c.Followers()[0]
	c.Partition(f)
	t.Cleanup(func() { c.Heal(f) })
	put(t, c.Client(c.Leader()), "k", "v2")

	fc := c.Client(f)
	ctx := ctxT(t, 2*time.Second)
	resp, err := fc.Get(ctx, &kvpb.GetRequest{Key: []byte("k"), Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
	if err != nil {
		t.Fatalf("serializable get on partitioned follower: %v", err)
	}
	if got := string(resp.GetKv().GetValue()); got != "v1" {
		t.Fatalf("serializable get on partitioned follower = %q, want the stale v1", got)
	}
	_, err = fc.Get(ctxT(t, 500*time.Millisecond), &kvpb.GetRequest{Key: []byte("k")})
	if err == nil {
		t.Fatalf("linearizable get on a partitioned follower succeeded; it cannot have reached v2")
	}
	c.Heal(f)
	c.WaitForConvergence()
}

func TestLimitsRejectAndWriteNothing(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	cl := c.Client()
	put(t, cl, "seed", "x")
	n := c.Members[0].Node
	before := n.Raft().LastIndex()
	big := func(size int) []byte { return make([]byte, size) }
	tooManyOps := &kvpb.TxnRequest{}
	for i := 0; i < 129; i++ {
		tooManyOps.Success = append(tooManyOps.Success, &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: []byte("a"), Value: []byte("b")}}})
	}
	cases := []struct {
		name string
		call func(ctx context.Context) error
		want codes.Code
	}{
		{"empty key", func(ctx context.Context) error {
			_, err := cl.Put(ctx, &kvpb.PutRequest{Key: nil, Value: []byte("v")})
			return err
		}, codes.InvalidArgument},
		{"key over 4 KiB", func(ctx context.Context) error {
			_, err := cl.Put(ctx, &kvpb.PutRequest{Key: big(4<<10 + 1), Value: []byte("v")})
			return err
		}, codes.InvalidArgument},
		{"value over 1 MiB", func(ctx context.Context) error {
			_, err := cl.Put(ctx, &kvpb.PutRequest{Key: []byte("k"), Value: big(1<<20 + 1)})
			return err
		}, codes.InvalidArgument},
		{"request over 1.5 MiB", func(ctx context.Context) error {
			_, err := cl.Txn(ctx, &kvpb.TxnRequest{Success: []*kvpb.RequestOp{
				{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: []byte("a"), Value: big(1 << 20)}}},
				{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: []byte("b"), Value: big(1 << 20)}}},
			}})
			return err
		}, codes.ResourceExhausted},
		{"txn with too many ops", func(ctx context.Context) error {
			_, err := cl.Txn(ctx, tooManyOps)
			return err
		}, codes.InvalidArgument},
		{"empty get key", func(ctx context.Context) error {
			_, err := cl.Get(ctx, &kvpb.GetRequest{})
			return err
		}, codes.InvalidArgument},
		{"delete with prefix and range end", func(ctx context.Context) error {
			_, err := cl.Delete(ctx, &kvpb.DeleteRequest{Key: []byte("a"), Prefix: true, RangeEnd: []byte("b")})
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctxT(t, 5*time.Second))
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code = %s (err %v), want %s", got, err, tc.want)
			}
			if errors.Is(err, client.ErrOutcomeUnknown) {
				t.Fatalf("a rejected request must not be reported as outcome unknown: %v", err)
			}
		})
	}
	if after := n.Raft().LastIndex(); after != before {
		t.Fatalf("rejected requests appended raft entries: last index %d -> %d", before, after)
	}
	// At the limits exactly, requests succeed.
	if _, err := cl.Put(ctxT(t, 5*time.Second), &kvpb.PutRequest{Key: big(4 << 10), Value: big(1 << 20)}); err != nil {
		t.Fatalf("put at the key and value limits: %v", err)
	}
}

func TestBinaryKeysRoundTrip(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	cl := c.Client()
	keys := [][]byte{{0x00}, {0xff}, {0x00, 0xff, 0x00}, []byte("a\x00b"), {0xff, 0xff}}
	for i, k := range keys {
		v := append([]byte{0xff, 0x00}, byte(i))
		if _, err := cl.Put(ctxT(t, 5*time.Second), &kvpb.PutRequest{Key: k, Value: v}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
		got, err := cl.Get(ctxT(t, 5*time.Second), &kvpb.GetRequest{Key: k})
		if err != nil || !got.GetFound() || string(got.GetKv().GetKey()) != string(k) || string(got.GetKv().GetValue()) != string(v) {
			t.Fatalf("get %q = %v (err %v), want value %q", k, got, err, v)
		}
	}
	all, err := cl.Range(ctxT(t, 5*time.Second), &kvpb.RangeRequest{Key: nil, Prefix: true})
	if err != nil || all.GetCount() != int64(len(keys)) {
		t.Fatalf("range over everything: count %d err %v, want %d", all.GetCount(), err, len(keys))
	}
	ff, err := cl.Range(ctxT(t, 5*time.Second), &kvpb.RangeRequest{Key: []byte{0xff}, Prefix: true})
	if err != nil || ff.GetCount() != 2 {
		t.Fatalf("prefix \\xff: count %d err %v, want 2", ff.GetCount(), err)
	}
}
