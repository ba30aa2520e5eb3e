package node_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/node/nodetest"
)

// TestRestartReopensStoreWithoutReplay loads 100k keys, restarts the node and
// checks that the store reopened at its applied index: raft's replay of the
// log is skipped by the FSM rather than re-applied from empty.
func TestRestartReopensStoreWithoutReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100k keys")
	}
	c := nodetest.NewCluster(t, 1)
	cl := c.Client()
	const keys, perTxn = 100_000, 100
	val := make([]byte, 64)
	for b := 0; b < keys/perTxn; b++ {
		txn := &kvpb.TxnRequest{}
		for i := 0; i < perTxn; i++ {
			txn.Success = append(txn.Success, &kvpb.RequestOp{Request: &kvpb.RequestOp_RequestPut{
				RequestPut: &kvpb.PutRequest{Key: []byte(fmt.Sprintf("key/%06d", b*perTxn+i)), Value: val}}})
		}
		if _, err := cl.Txn(ctxT(t, 10*time.Second), txn); err != nil {
			t.Fatalf("load batch %d: %v", b, err)
		}
	}
	before := c.Members[0].Node.AppliedIndex()
	c.Stop(0)
	c.Restart(0)
	if got := c.Members[0].Node.OpenedAppliedIndex(); got != before {
		t.Fatalf("store reopened at applied index %d, want %d (the index it was closed at)", got, before)
	}
	c.WaitForLeader()
	resp, err := c.Client().Range(ctxT(t, 10*time.Second), &kvpb.RangeRequest{Key: []byte("key/"), Prefix: true, CountOnly: true})
	if err != nil || resp.GetCount() != keys {
		t.Fatalf("after restart: count %d err %v, want %d", resp.GetCount(), err, keys)
	}
}

// TestRestartWithLostStoreRestoresSnapshot deletes the FSM store while the
// node is down: the node must rebuild it from raft's newest snapshot plus the
// log after it, not start from the entries after the snapshot alone.
func TestRestartWithLostStoreRestoresSnapshot(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	cl := c.Client()
	for i := 0; i < 100; i++ {
		put(t, cl, fmt.Sprintf("before/%03d", i), "v")
	}
	if err := c.Members[0].Node.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for i := 0; i < 10; i++ {
		put(t, cl, fmt.Sprintf("after/%03d", i), "v")
	}
	c.Stop(0)
	if err := os.Remove(filepath.Join(c.Members[0].Dir, "store.db")); err != nil {
		t.Fatalf("remove store: %v", err)
	}
	c.Restart(0)
	if got := c.Members[0].Node.SnapshotsRestored(); got != 1 {
		t.Fatalf("snapshots restored at start = %d, want 1", got)
	}
	c.WaitForLeader()
	for prefix, want := range map[string]int64{"before/": 100, "after/": 10} {
		resp, err := c.Client().Range(ctxT(t, 10*time.Second), &kvpb.RangeRequest{Key: []byte(prefix), Prefix: true, CountOnly: true})
		if err != nil || resp.GetCount() != want {
			t.Fatalf("%s: count %d err %v, want %d", prefix, resp.GetCount(), err, want)
		}
	}
}

// TestRestartAfterUnsyncedCrashRebuildsStore: the FSM commits without fsync
// between periodic syncs, so after a crash its store.db may be torn. A node
// that finds the unsynced marker must not trust the file, whatever it holds:
// here the file is garbage, and the node must come back with every write,
// rebuilt from the raft snapshot plus the log after it (the entries since
// the snapshot are replayed) and agree with its peers' state hash.
func TestRestartAfterUnsyncedCrashRebuildsStore(t *testing.T) {
	c := nodetest.NewCluster(t, 3, func(cfg *nodetest.NodeConfig) { cfg.StoreSyncInterval = time.Hour })
	cl := c.Client()
	for i := 0; i < 100; i++ {
		put(t, cl, fmt.Sprintf("before/%03d", i), "v")
	}
	victim := c.Followers()[0]
	if err := c.Members[victim].Node.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for i := 0; i < 10; i++ {
		put(t, cl, fmt.Sprintf("after/%03d", i), "v")
	}
	c.Stop(victim)
	// What a crash with unsynced commits leaves: the marker, and a store
	// file bbolt may not even recognise.
	dir := c.Members[victim].Dir
	if err := os.WriteFile(filepath.Join(dir, "store.unsynced"), nil, 0o600); err != nil {
		t.Fatalf("write marker: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "store.db"), bytes.Repeat([]byte{0xAB}, 64<<10), 0o600); err != nil {
		t.Fatalf("tear store: %v", err)
	}
	c.Restart(victim)
	if got := c.Members[victim].Node.SnapshotsRestored(); got != 1 {
		t.Fatalf("snapshots restored at start = %d, want 1", got)
	}
	c.WaitForConvergence()
	for prefix, want := range map[string]int64{"before/": 100, "after/": 10} {
		resp, err := c.Client(victim).Range(ctxT(t, 10*time.Second), &kvpb.RangeRequest{
			Key: []byte(prefix), Prefix: true, CountOnly: true, Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
		if err != nil || resp.GetCount() != want {
			t.Fatalf("%s on the rebuilt node: count %d err %v, want %d", prefix, resp.GetCount(), err, want)
		}
	}
}
