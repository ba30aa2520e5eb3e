package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/loadgen"
	"github.com/raftkv/raftkv/loadgen/kvtarget"
)

// raftkvCluster is three raftkvd processes bootstrapped from
// --initial-cluster, with every other setting at its default (fsync on).
type raftkvCluster struct {
	ctl   string // raftkvctl binary, for backups
	nodes []*proc
	grpc  []string
	dirs  []string
}

func newRaftkv(bin, ctl, parent string) (*raftkvCluster, error) {
	addrs, err := freeAddrs(9)
	if err != nil {
		return nil, err
	}
	c := &raftkvCluster{ctl: ctl}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("node%d=%s", i+1, addrs[3*i+1]))
	}
	for i := range 3 {
		data, log := nodeDirs(parent, "raftkv", i)
		if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
			return nil, fmt.Errorf("raftkv dir: %w", err)
		}
		c.grpc = append(c.grpc, addrs[3*i])
		c.dirs = append(c.dirs, data)
		c.nodes = append(c.nodes, &proc{name: fmt.Sprintf("raftkv node%d", i+1), bin: bin, log: log, args: []string{
			"--id", fmt.Sprintf("node%d", i+1), "--data-dir", data,
			"--grpc-addr", addrs[3*i], "--raft-addr", addrs[3*i+1], "--http-addr", addrs[3*i+2],
			"--bootstrap", "--initial-cluster", strings.Join(initial, ","),
		}})
	}
	return c, nil
}

func (c *raftkvCluster) Name() string          { return "raftkv" }
func (c *raftkvCluster) Nodes() []*proc        { return c.nodes }
func (c *raftkvCluster) Endpoint(i int) string { return c.grpc[i] }
func (c *raftkvCluster) DataDir(i int) string  { return c.dirs[i] }
func (c *raftkvCluster) Stop()                 { stopAll(c.nodes) }

func (c *raftkvCluster) Dialer(eps []string) loadgen.Dialer { return kvtarget.Dialer(eps) }

func (c *raftkvCluster) Start(ctx context.Context) error {
	for _, p := range c.nodes {
		if err := p.start(); err != nil {
			c.Stop()
			return err
		}
	}
	return waitFor(ctx, "raftkv cluster ready", func(ctx context.Context) error {
		var leader string
		for i, ep := range c.grpc {
			st, err := raftkvStatus(ctx, ep)
			if err != nil {
				return err
			}
			if st.GetLeaderId() == "" || (i > 0 && st.GetLeaderId() != leader) {
				return fmt.Errorf("%s sees leader %q", ep, st.GetLeaderId())
			}
			leader = st.GetLeaderId()
		}
		return nil
	})
}

// raftkvStatus asks one node for its Status over a fresh connection.
func raftkvStatus(ctx context.Context, ep string) (st *kvpb.StatusResponse, err error) {
	err = withConn(ep, func(cc *grpc.ClientConn) error {
		st, err = kvpb.NewAdminClient(cc).Status(ctx, &kvpb.StatusRequest{})
		if err != nil {
			return fmt.Errorf("status %s: %w", ep, err)
		}
		return nil
	})
	return st, err
}

func (c *raftkvCluster) Leader(ctx context.Context) (string, error) {
	var leader string
	err := waitFor(ctx, "raftkv leader", func(ctx context.Context) (err error) {
		leader, err = kvtarget.FindLeader(ctx, c.grpc)
		return err
	})
	return leader, err
}

// Serve polls node i with serializable reads, each on a fresh connection
// that fails fast (as etcdCluster.Serve does), so the restart time is not
// rounded up to gRPC's reconnect backoff.
func (c *raftkvCluster) Serve(ctx context.Context, i int) error {
	return waitFor(ctx, "raftkv serializable read", func(ctx context.Context) error {
		return withConn(c.grpc[i], func(cc *grpc.ClientConn) error {
			_, err := kvpb.NewKVClient(cc).Get(ctx, &kvpb.GetRequest{Key: loadgen.Key(0, 16), Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
			return err
		})
	})
}

// Snapshot takes a backup through the leader with `raftkvctl backup
// create --out`: raft snapshot, streamed and checksummed into one file.
func (c *raftkvCluster) Snapshot(ctx context.Context, path string) error {
	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, c.ctl, "--endpoints", leader, "--timeout", "30m",
		"backup", "create", "--out", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("raftkvctl backup create: %w: %s", err, out)
	}
	if _, err := os.Stat(path); err != nil {
		return errors.Join(fmt.Errorf("raftkvctl backup create wrote no file: %s", out), err)
	}
	return nil
}
