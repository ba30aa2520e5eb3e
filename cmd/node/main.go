// Command raftkvd runs one raftkv node.
//
// Every flag can also be set through an environment variable named
// RAFTKV_ plus the flag name in upper case with dashes as underscores
// (--data-dir is RAFTKV_DATA_DIR); a flag on the command line wins.
// Run with no flags, raftkvd is a working single-node store on 127.0.0.1
// with its data in ./raftkv-data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/raftkv/raftkv/node"
)

// Exit codes of raftkvd.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	setGCPercent()
	os.Exit(run(os.Args[1:], os.Stderr))
}

// defaultGCPercent is the garbage collector's target unless GOGC says
// otherwise. A node's live heap is small (the store is an mmap'd file, the
// read cache is bounded), and at Go's default of 100 the collector took
// 10-15% of the leader's CPU under write load; at 400 the server CPU per
// put fell by 10-20% (docs/bench.md). GOMEMLIMIT still caps the heap.
const defaultGCPercent = 400

// setGCPercent applies defaultGCPercent when GOGC is not set.
func setGCPercent() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func run(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return runHealthcheck(args[1:], stderr)
	}
	cfg, logFormat, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "raftkvd: %v\n", err)
		return exitUsage
	}
	logger, err := newLogger(stderr, logFormat, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "raftkvd: %v\n", err)
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "raftkvd: invalid configuration: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := node.New(cfg, node.Deps{Logger: logger, Registry: newRegistry()})
	if err != nil {
		logger.Error("start node", "err", err)
		return exitError
	}
	if err := n.Run(ctx); err != nil {
		logger.Error("shutdown", "err", err)
		return exitError
	}
	return exitOK
}

func parseFlags(args []string, stderr io.Writer) (node.Config, string, error) {
	cfg := node.DefaultConfig()
	fs := flag.NewFlagSet("raftkvd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: raftkvd [flags]\n       raftkvd healthcheck [--http-addr ADDR] [--path /readyz]\n\nRuns one raftkv node. Every flag may also be set as RAFTKV_<FLAG> (e.g. RAFTKV_DATA_DIR).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var initial, peerOverrides, grpcOverrides, logLevel, logFormat string
	fs.StringVar(&cfg.ID, "id", cfg.ID, "unique, stable id of this node in the raft configuration")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the raft log, snapshots and the local store")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "listen address of the client and admin gRPC API")
	fs.StringVar(&cfg.GRPCAdvertise, "grpc-advertise", "", "gRPC address other nodes and clients use (default: --grpc-addr)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "listen address of the raft peer port")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", "", "raft address peers dial (default: --raft-addr)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "listen address of the HTTP endpoints /healthz, /readyz and /metrics (empty disables it)")
	fs.Uint64Var(&cfg.ReadyMaxLag, "ready-max-lag", cfg.ReadyMaxLag, "/readyz fails while the applied index trails the known commit index by more entries than this")
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", false, "bootstrap a new cluster from --initial-cluster if the data dir has no raft state (implied when none of --initial-cluster, --join, --gossip-addr and --bootstrap-expect is given)")
	fs.StringVar(&initial, "initial-cluster", "", "servers of a new cluster: id=raft-host:port,... (this node included)")
	fs.StringVar(&peerOverrides, "raft-peer-override", "", "dial these raft peers at another address than the raft configuration holds: id=host:port,... (a testing and NAT aid; the fault-injection suite puts a proxy on every link this way)")
	fs.StringVar(&grpcOverrides, "grpc-peer-override", "", "forward writes and ReadIndex calls to these peers, as leader, at another gRPC address than they registered: id=host:port,... (a testing and NAT aid, like --raft-peer-override)")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", cfg.HeartbeatTimeout, "raft heartbeat timeout")
	fs.DurationVar(&cfg.ElectionTimeout, "election-timeout", cfg.ElectionTimeout, "raft election timeout")
	fs.DurationVar(&cfg.LeaderLeaseTimeout, "leader-lease-timeout", cfg.LeaderLeaseTimeout, "raft leader lease timeout")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", cfg.SnapshotThreshold, "log entries since the last snapshot that trigger a new one")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", cfg.SnapshotInterval, "how often raft checks whether to snapshot")
	fs.Uint64Var(&cfg.TrailingLogs, "trailing-logs", cfg.TrailingLogs, "log entries kept after a snapshot for slow followers")
	fs.IntVar(&cfg.SnapshotRetain, "snapshot-retain", cfg.SnapshotRetain, "snapshots kept on disk")
	fs.IntVar(&cfg.MaxAppendEntries, "max-append-entries", cfg.MaxAppendEntries, "entries per AppendEntries RPC and FSM batch (1..1024)")
	fs.IntVar(&cfg.CoalesceMaxPuts, "coalesce-max-puts", cfg.CoalesceMaxPuts, "most client Puts the leader coalesces into one raft log entry when Puts queue behind earlier ones; 0 or 1 gives every Put its own entry")
	fs.IntVar(&cfg.CoalesceInflight, "coalesce-inflight", cfg.CoalesceInflight, "raft log entries of Puts the leader keeps in flight before further Puts queue and coalesce")
	fs.DurationVar(&cfg.StoreSyncInterval, "store-sync-interval", cfg.StoreSyncInterval, "how often the FSM fsyncs its store; batches in between commit without fsync (the fsynced raft log is the durable record; after a crash the store is rebuilt from the raft snapshot and log). 0 fsyncs every applied batch")
	fs.DurationVar(&cfg.StoreCommitDelay, "store-commit-delay", cfg.StoreCommitDelay, "how long applied batches may share one commit of the store, so a page several batches dirty is written once; any read of the store commits first. 0 commits every batch; no effect with --store-sync-interval 0 (at most 1s)")
	fs.StringVar(&cfg.BackupDir, "backup-dir", "", "directory for backups this node takes (raftkvctl backup create without --out, scheduled backups); nodes may share one (default: <data-dir>/backups)")
	fs.DurationVar(&cfg.BackupInterval, "backup-interval", cfg.BackupInterval, "take a scheduled backup on the leader every interval, at multiples of it; 0 disables")
	fs.IntVar(&cfg.BackupRetain, "backup-retain", cfg.BackupRetain, "scheduled backups kept in --backup-dir (older ones are pruned; 0 keeps all)")
	fs.IntVar(&cfg.Limits.MaxKeyBytes, "max-key-size", cfg.Limits.MaxKeyBytes, "largest key in bytes")
	fs.IntVar(&cfg.Limits.MaxValueBytes, "max-value-size", cfg.Limits.MaxValueBytes, "largest value in bytes")
	fs.IntVar(&cfg.Limits.MaxRequestBytes, "max-request-size", cfg.Limits.MaxRequestBytes, "largest request message in bytes (larger ones get ResourceExhausted)")
	fs.IntVar(&cfg.Limits.MaxTxnOps, "max-txn-ops", cfg.Limits.MaxTxnOps, "most compares, and most ops per branch, in one Txn")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "deadline of a request that arrives without one")
	registerCacheFlags(fs, &cfg)
	fs.BoolVar(&cfg.EnablePprof, "enable-pprof", false, "serve Go's profiling endpoints under /debug/pprof/ on --http-addr")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	mf := registerMembershipFlags(fs, &cfg)

	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return cfg, "", err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected arguments %q (raftkvd takes flags only)", fs.Args())
	}
	peers, err := node.ParseInitialCluster(initial)
	if err != nil {
		return cfg, "", err
	}
	cfg.InitialCluster = peers
	if cfg.RaftPeerOverrides, err = node.ParsePeerOverrides(peerOverrides); err != nil {
		return cfg, "", fmt.Errorf("--raft-peer-override: %w", err)
	}
	if cfg.GRPCPeerOverrides, err = node.ParsePeerOverrides(grpcOverrides); err != nil {
		return cfg, "", fmt.Errorf("--grpc-peer-override: %w", err)
	}
	if err := mf.apply(&cfg); err != nil {
		return cfg, "", err
	}
	// Alone, a node bootstraps itself; one that joins others or waits for
	// --bootstrap-expect must not start a cluster of its own.
	if len(peers) == 0 && !mf.gossipOn(&cfg) {
		cfg.Bootstrap = true
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, "", fmt.Errorf("--log-level %q: %w", logLevel, err)
	}
	return cfg, logFormat, nil
}

// applyEnv sets every flag whose RAFTKV_* variable is present, so values
// given on the command line (parsed afterwards) win.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := "RAFTKV_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
