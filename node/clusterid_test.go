package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/node/nodetest"
)

// TestClusterIDReplicated: the first leader gives the cluster an id through
// raft, every node holds the same one, and a new leader keeps it.
func TestClusterIDReplicated(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	var id string
	c.Eventually("every node has the same cluster id", func() error {
		id = ""
		for i, m := range c.Members {
			got := m.Node.ClusterID()
			if got == "" || (id != "" && got != id) {
				return fmt.Errorf("node %d has cluster id %q, node 0 %q", i, got, id)
			}
			id = got
		}
		return nil
	})
	old := c.Leader()
	c.Stop(old)
	c.WaitForLeader()
	c.Restart(old)
	c.WaitForConvergence()
	for i, m := range c.Members {
		if got := m.Node.ClusterID(); got != id {
			t.Fatalf("after a leader change node %d has cluster id %q, want %q", i, got, id)
		}
	}
}

// TestBackupRoundTripInProcess: a backup downloaded from the leader
// restores through raft on every node, later writes are gone, and a
// linearizable read on a follower right after the restore does not stall.
func TestBackupRoundTripInProcess(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	put := func(k string) {
		t.Helper()
		if _, err := cli.Put(ctx, &kvpb.PutRequest{Key: []byte(k), Value: []byte("v")}); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	put("before")
	bc, err := cli.Backup(c.GRPCAddr(c.Leader()))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := bc.Create(ctx, &kvpb.BackupCreateRequest{Download: true})
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("backup create: %v", err)
		}
		file.Write(msg.GetChunk())
	}
	put("after")

	up, err := bc.Restore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Send(&kvpb.BackupRestoreRequest{Msg: &kvpb.BackupRestoreRequest_Options{Options: &kvpb.BackupRestoreOptions{}}}); err != nil {
		t.Fatal(err)
	}
	for b := file.Bytes(); len(b) > 0; {
		n := min(len(b), 64<<10)
		if err := up.Send(&kvpb.BackupRestoreRequest{Msg: &kvpb.BackupRestoreRequest_Chunk{Chunk: b[:n]}}); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	if _, err := up.CloseAndRecv(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	follower := c.Client(c.Followers()[0])
	for k, want := range map[string]bool{"before": true, "after": false} {
		resp, err := follower.Get(ctx, &kvpb.GetRequest{Key: []byte(k)})
		if err != nil {
			t.Fatalf("linearizable get %s on a follower after the restore: %v", k, err)
		}
		if resp.GetFound() != want {
			t.Fatalf("after the restore %s found = %v, want %v", k, resp.GetFound(), want)
		}
	}
	c.WaitForConvergence()
}
