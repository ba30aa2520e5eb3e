package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"

	"github.com/raftkv/raftkv/loadgen"
)

// etcdMemberCommand is the hidden subcommand the harness re-executes itself
// with to run one etcd member in its own process.
const etcdMemberCommand = "etcd-member"

// etcdCluster is three etcd members, each this program re-executed with
// etcd-member, with etcd's defaults (fsync on, default snapshot count)
// except a large backend quota.
type etcdCluster struct {
	nodes  []*proc
	client []string
	dirs   []string
}

func newEtcd(self, parent string, quota int64) (*etcdCluster, error) {
	addrs, err := freeAddrs(6)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("node%d=http://%s", i+1, addrs[2*i+1]))
	}
	for i := range 3 {
		data, log := nodeDirs(parent, "etcd", i)
		if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
			return nil, fmt.Errorf("etcd dir: %w", err)
		}
		c.client = append(c.client, addrs[2*i])
		c.dirs = append(c.dirs, data)
		c.nodes = append(c.nodes, &proc{name: fmt.Sprintf("etcd node%d", i+1), bin: self, log: log, args: []string{
			etcdMemberCommand, "--name", fmt.Sprintf("node%d", i+1), "--data-dir", data,
			"--client-url", "http://" + addrs[2*i], "--peer-url", "http://" + addrs[2*i+1],
			"--initial-cluster", strings.Join(initial, ","), "--log-file", strings.TrimSuffix(log, ".log") + ".etcd.log",
			"--quota-backend-bytes", strconv.FormatInt(quota, 10),
		}})
	}
	return c, nil
}

func (c *etcdCluster) Name() string          { return "etcd" }
func (c *etcdCluster) Nodes() []*proc        { return c.nodes }
func (c *etcdCluster) Endpoint(i int) string { return c.client[i] }
func (c *etcdCluster) DataDir(i int) string  { return c.dirs[i] }
func (c *etcdCluster) Stop()                 { stopAll(c.nodes) }

func (c *etcdCluster) Dialer(eps []string) loadgen.Dialer { return etcdDialer(eps) }

func (c *etcdCluster) Start(ctx context.Context) error {
	for _, p := range c.nodes {
		if err := p.start(); err != nil {
			c.Stop()
			return err
		}
	}
	_, err := c.Leader(ctx)
	return err
}

// Leader waits until every member answers Status with the same leader and
// returns the leader's client endpoint.
func (c *etcdCluster) Leader(ctx context.Context) (string, error) {
	var leader string
	err := waitFor(ctx, "etcd leader", func(ctx context.Context) error {
		leader = ""
		var id uint64
		for i, ep := range c.client {
			err := withConn(ep, func(cc *grpc.ClientConn) error {
				st, err := pb.NewMaintenanceClient(cc).Status(ctx, &pb.StatusRequest{})
				if err != nil {
					return fmt.Errorf("status %s: %w", ep, err)
				}
				if st.GetLeader() == 0 || (i > 0 && st.GetLeader() != id) {
					return fmt.Errorf("%s sees leader %x", ep, st.GetLeader())
				}
				id = st.GetLeader()
				if st.GetLeader() == st.GetHeader().GetMemberId() {
					leader = ep
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if leader == "" {
			return fmt.Errorf("leader %x is none of the members", id)
		}
		return nil
	})
	return leader, err
}

func (c *etcdCluster) Serve(ctx context.Context, i int) error {
	return waitFor(ctx, "etcd serializable read", func(ctx context.Context) error {
		return withConn(c.client[i], func(cc *grpc.ClientConn) error {
			_, err := pb.NewKVClient(cc).Range(ctx, &pb.RangeRequest{Key: loadgen.Key(0, 16), Serializable: true})
			return err
		})
	})
}

// Snapshot streams the leader's backend through the Maintenance Snapshot
// API into path.
func (c *etcdCluster) Snapshot(ctx context.Context, path string) error {
	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("etcd snapshot file: %w", err)
	}
	err = withConn(leader, func(cc *grpc.ClientConn) error {
		stream, err := pb.NewMaintenanceClient(cc).Snapshot(ctx, &pb.SnapshotRequest{})
		if err != nil {
			return fmt.Errorf("etcd snapshot: %w", err)
		}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("etcd snapshot: %w", err)
			}
			if _, err := f.Write(resp.GetBlob()); err != nil {
				return fmt.Errorf("write etcd snapshot: %w", err)
			}
		}
	})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close etcd snapshot: %w", cerr)
	}
	if err == nil {
		err = syncFile(path)
	}
	return err
}

// syncFile fsyncs path, as raftkvctl does with its backup file.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// runEtcdMember runs one embedded etcd member until SIGTERM or SIGINT.
func runEtcdMember(args []string) error {
	fs := flag.NewFlagSet(etcdMemberCommand, flag.ContinueOnError)
	name := fs.String("name", "", "member name")
	dir := fs.String("data-dir", "", "data directory")
	clientURL := fs.String("client-url", "", "client URL to listen on and advertise")
	peerURL := fs.String("peer-url", "", "peer URL to listen on and advertise")
	initial := fs.String("initial-cluster", "", "name=peer-url,...")
	logFile := fs.String("log-file", "", "etcd's log file")
	quota := fs.Int64("quota-backend-bytes", 8<<30, "backend quota")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cu, err := url.Parse(*clientURL)
	if err != nil {
		return fmt.Errorf("--client-url: %w", err)
	}
	pu, err := url.Parse(*peerURL)
	if err != nil {
		return fmt.Errorf("--peer-url: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = *name, *dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster, cfg.InitialClusterToken = *initial, "raftkv-bench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.QuotaBackendBytes = *quota
	cfg.Logger, cfg.LogLevel, cfg.LogOutputs = "zap", "info", []string{*logFile}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", *name, err)
	}
	defer e.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", *name, err)
	case <-ctx.Done():
		return nil
	case <-time.After(readyTimeout):
		return fmt.Errorf("etcd member %s not ready after %v", *name, readyTimeout)
	}
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", *name, err)
	case <-ctx.Done():
		return nil
	}
}
