package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftkv/raftkv/cluster"
	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/transport"
)

// Version is the raftkv release this binary implements.
const Version = "0.4.0"

// Deps are the collaborators of a node that are not plain configuration.
// Every field is optional.
type Deps struct {
	// Logger receives every log line of the node, raft's included; nil
	// discards them.
	Logger *slog.Logger
	// RaftListener, GRPCListener and HTTPListener are already-bound
	// listeners (the test harness binds 127.0.0.1:0 to avoid a pick-then-bind
	// race). When nil the node listens on the configured addresses.
	RaftListener net.Listener
	GRPCListener net.Listener
	HTTPListener net.Listener
	// RaftDial overrides how raft peers are dialed (fault injection in tests).
	RaftDial transport.DialFunc
	// Registry receives the node's Prometheus metrics and is served at
	// /metrics. Give every node its own: its collectors stay registered
	// after Close, so a node restarted in the same process needs a new
	// one. nil means a fresh registry.
	Registry *prometheus.Registry
}

// Node is one running raftkv server.
type Node struct {
	cfg    Config
	logger *slog.Logger

	fsm       *fsm.FSM
	logStore  *raftboltdb.BoltStore
	raft      *raft.Raft
	raftTrans *raft.NetworkTransport
	grpc      *transport.Server
	peers     *transport.Peers
	http      *http.Server
	backups   *backupState

	grpcLn net.Listener
	httpLn net.Listener

	// cache is the read cache, nil when it is off (cache.go).
	cache *readCache

	// cluster is gossip, bootstrap-expect and the membership reconciler;
	// leaderCh is raft's NotifyCh, which it drains.
	cluster  *cluster.Cluster
	leaderCh chan bool

	registry  *prometheus.Registry
	metrics   *metrics
	leaderObs *raft.Observer

	// readyTerm is the term in which this node, as leader, has applied a
	// barrier: only then is its commit index safe for ReadIndex.
	readyTerm atomic.Uint64
	// readIndex batches the leader's read index confirmations, remoteRead
	// a follower's ReadIndex calls to the leader (readindex.go).
	readIndex  readIndexBatcher
	remoteRead readIndexBatcher
	// coalescer batches the leader's concurrent Puts into shared log
	// entries (coalesce.go); nil when coalescing is off.
	coalescer *putCoalescer
	// gate caches whether every voter runs a release new enough for an op
	// (versiongate.go).
	gate versionGate
	// nonFSMGap memoizes onlyNonFSMEntries: the last gap of committed
	// no-op or barrier entries found past the FSM's applied index.
	nonFSMGap atomic.Pointer[logGap]
	// openedAppliedIndex is the FSM's applied index when the node opened its
	// store, before raft replayed anything.
	openedAppliedIndex uint64

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New opens the node's stores, starts raft and the servers, and bootstraps a
// new cluster when configured to and no raft state exists. On error every
// resource opened so far is closed again.
//
// The cleanups below close over the local n, not a named result: a
// `return nil, err` sets named results before deferred calls run, and
// cleanups that dereferenced a nil result turned every start error after
// the FSM opened into a nil-pointer panic.
func New(cfg Config, deps Deps) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, logger: logger.With("node_id", cfg.ID), stop: make(chan struct{}),
		registry: deps.Registry, metrics: newMetrics(),
		coalescer: newPutCoalescer(cfg.CoalesceMaxPuts, cfg.CoalesceInflight)}
	if n.registry == nil {
		n.registry = prometheus.NewRegistry()
	}
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()

	raftDir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o750); err != nil {
		return nil, fmt.Errorf("create raft dir: %w", err)
	}

	if n.cache, err = newReadCache(cfg, n.logger); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { n.cache.close() })
	var inv fsm.Invalidator // a nil *readCache must not become a non-nil interface
	if n.cache != nil {
		inv = n.cache
	}
	n.fsm, err = fsm.New(fsm.Config{Dir: cfg.DataDir, SyncInterval: cfg.StoreSyncInterval, CommitDelay: cfg.StoreCommitDelay}, fsm.Deps{Logger: n.logger, Invalidator: inv})
	if err != nil {
		return nil, fmt.Errorf("open fsm: %w", err)
	}
	cleanups = append(cleanups, func() { n.fsm.Close() })
	n.cache.setFSM(n.fsm)
	n.openedAppliedIndex = n.fsm.AppliedIndex()

	// fsync stays on: the raft log is the durable record of every
	// acknowledged write.
	n.logStore, err = openLogStore(filepath.Join(raftDir, "raft.db"))
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { n.logStore.Close() })
	cachedLogs, err := raft.NewLogCache(512, timedLogStore{LogStore: n.logStore, h: n.metrics.logAppend})
	if err != nil {
		return nil, fmt.Errorf("create log cache: %w", err)
	}
	hlog := newHCLog(n.logger, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, cfg.SnapshotRetain, hlog)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}

	raftLn := deps.RaftListener
	if raftLn == nil {
		if raftLn, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			return nil, fmt.Errorf("listen raft %s: %w", cfg.RaftAddr, err)
		}
	}
	adv, err := net.ResolveTCPAddr("tcp", cfg.raftAdvertise())
	if err != nil {
		raftLn.Close()
		return nil, fmt.Errorf("resolve raft advertise address: %w", err)
	}
	stream, err := transport.NewStreamLayer(raftLn, transport.StreamConfig{Advertise: adv, Dial: deps.RaftDial})
	if err != nil {
		raftLn.Close()
		return nil, err
	}
	ntc := &raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hlog,
		// 1 turns raft's pipelined replication off. Its pipeline can
		// deadlock (hashicorp/raft#612): when a response with a newer term
		// or Success=false ends pipelineDecode, the send loop may still
		// issue one more AppendEntries, which parks on the pipeline's
		// in-progress channel while the response decoder parks on the done
		// channel nobody reads; the deferred pipeline.Close never runs. The
		// replication goroutine is then stuck for good: a follower gets no
		// more entries (heartbeats still flow, so no election heals it),
		// and raft.Shutdown waits for that goroutine forever. The fault
		// suite hit the shutdown hang after healing an isolated leader
		// (e2e/faults F4). Without pipelining each follower has one
		// AppendEntries in flight, each carrying up to MaxAppendEntries
		// entries.
		MaxRPCsInFlight: 1,
	}
	if len(cfg.RaftPeerOverrides) > 0 {
		ntc.ServerAddressProvider = newPeerOverrides(cfg.ID, adv.String(), cfg.RaftPeerOverrides)
		n.logger.Warn("dialing raft peers through address overrides", "overrides", cfg.RaftPeerOverrides)
	}
	n.raftTrans = raft.NewNetworkTransportWithConfig(ntc)
	cleanups = append(cleanups, func() { n.raftTrans.Close() })

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	// The FSM store is persistent and records its applied index with the
	// data, so restoring the last snapshot at start would only throw that
	// work away; raft replays entries after the snapshot and the FSM skips
	// those it already has.
	rc.NoSnapshotRestoreOnStart = true
	// Leadership changes reach the membership reconciler here (STYLE.md
	// §1). raft blocks on the channel; the cluster drains it at once.
	n.leaderCh = make(chan bool, 16)
	rc.NotifyCh = n.leaderCh

	if err := n.catchUpFromSnapshot(snaps); err != nil {
		return nil, err
	}

	hasState, err := raft.HasExistingState(cachedLogs, n.logStore, snaps)
	if err != nil {
		return nil, fmt.Errorf("check existing raft state: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, instrumentedFSM{FSM: n.fsm, m: n.metrics}, cachedLogs, n.logStore, snaps, n.raftTrans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	cleanups = append(cleanups, func() { n.raft.Shutdown().Error() })
	n.cache.setRaft(n.raft)
	n.leaderObs = n.metrics.countLeaderChanges()
	n.raft.RegisterObserver(n.leaderObs)
	if err := n.registerMetrics(); err != nil {
		return nil, err
	}
	if !hasState && cfg.Bootstrap {
		if err := n.bootstrap(); err != nil {
			return nil, err
		}
	}

	n.peers = transport.NewPeers()
	cleanups = append(cleanups, func() { n.peers.Close() })
	n.grpcLn = deps.GRPCListener
	if n.grpcLn == nil {
		if n.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("listen grpc %s: %w", cfg.GRPCAddr, err)
		}
	}
	n.grpc, err = transport.NewServer(transport.ServerConfig{Limits: cfg.Limits, DefaultTimeout: cfg.RequestTimeout}, n, n, n, n.logger, n.registry)
	if err != nil {
		return nil, err
	}
	if err := n.startBackups(); err != nil {
		return nil, err
	}
	if err := n.newCluster(hasState); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { n.cluster.Close() })

	// Serve only once every component a handler may touch exists.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(n.grpcLn); err != nil {
			n.logger.Error("grpc server stopped", "err", err)
		}
	}()
	cleanups = append(cleanups, func() { n.grpc.Stop(time.Second) })

	if cfg.HTTPAddr != "" || deps.HTTPListener != nil {
		n.httpLn = deps.HTTPListener
		if n.httpLn == nil {
			if n.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
				return nil, fmt.Errorf("listen http %s: %w", cfg.HTTPAddr, err)
			}
		}
		n.http = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.http.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.logger.Error("http server stopped", "err", err)
			}
		}()
	}

	n.wg.Add(2)
	go n.runMembership()
	go n.runHealth()
	n.wg.Add(1)
	go n.runBackups()
	n.wg.Add(1)
	go n.runExpiry()
	if n.coalescer != nil {
		n.wg.Add(1)
		go n.runCoalescer()
	}
	n.logger.Info("node started", "grpc_addr", n.GRPCAddr(), "raft_addr", string(n.raftTrans.LocalAddr()),
		"raft_index", n.openedAppliedIndex, "bootstrapped", !hasState && cfg.Bootstrap, "version", Version)
	return n, nil
}

// catchUpFromSnapshot restores raft's newest snapshot into the FSM when the
// store is behind it (for example store.db was lost or replaced by an older
// copy). raft runs with NoSnapshotRestoreOnStart and replays only the
// entries after its newest snapshot, so a store behind that snapshot would
// otherwise silently miss the entries in between.
func (n *Node) catchUpFromSnapshot(snaps raft.SnapshotStore) error {
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil
	}
	latest := metas[0]
	_, rc, err := snaps.Open(latest.ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", latest.ID, err)
	}
	idx, err := fsm.SnapshotIndex(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("read snapshot %s: %w", latest.ID, err)
	}
	applied := n.fsm.AppliedIndex()
	if idx <= applied {
		return nil
	}
	n.logger.Warn("store is behind the newest raft snapshot; restoring it", "raft_index", applied, "snapshot_index", idx, "snapshot", latest.ID)
	if _, rc, err = snaps.Open(latest.ID); err != nil {
		return fmt.Errorf("open snapshot %s: %w", latest.ID, err)
	}
	if err := n.fsm.Restore(rc); err != nil {
		return fmt.Errorf("restore snapshot %s into a store that is behind it: %w", latest.ID, err)
	}
	return nil
}

func (n *Node) bootstrap() error {
	var servers []raft.Server
	for _, p := range n.cfg.InitialCluster {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	if len(servers) == 0 {
		servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.ID), Address: n.raftTrans.LocalAddr()}}
	}
	// Every member of a new cluster may bootstrap with the same
	// configuration; raft makes that safe.
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap cluster: %w", err)
	}
	n.logger.Info("bootstrapped new cluster", "servers", len(servers))
	return nil
}

// Run blocks until ctx is done, then shuts the node down: a leader first
// transfers leadership, and with LeaveOnTerminate the node leaves gossip
// and the raft configuration before it stops.
func (n *Node) Run(ctx context.Context) error {
	<-ctx.Done()
	n.leave()
	return n.Close()
}

// Close stops the servers, shuts raft down and closes every store. It is
// safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		var errs []error
		n.grpc.Stop(2 * time.Second)
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := n.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop http: %w", err))
			}
			cancel()
		}
		n.raft.DeregisterObserver(n.leaderObs)
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shutdown raft: %w", err))
		}
		// After raft: its shutdown fails the reconciler's pending changes
		// at once.
		if err := n.cluster.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close cluster: %w", err))
		}
		if err := n.raftTrans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft transport: %w", err))
		}
		n.wg.Wait()
		if err := n.peers.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := n.logStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log store: %w", err))
		}
		if err := n.fsm.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close fsm: %w", err))
		}
		if err := n.cache.close(); err != nil {
			errs = append(errs, fmt.Errorf("close redis cache: %w", err))
		}
		n.closeErr = errors.Join(errs...)
		n.logger.Info("node stopped", "err", n.closeErr)
	})
	return n.closeErr
}

// ID returns the node's raft server id.
func (n *Node) ID() string { return n.cfg.ID }

// GRPCAddr returns the address clients and peers use for the gRPC API.
func (n *Node) GRPCAddr() string {
	if n.cfg.GRPCAdvertise != "" {
		return n.cfg.GRPCAdvertise
	}
	return n.grpcLn.Addr().String()
}

// RaftAddr returns the advertised raft peer address.
func (n *Node) RaftAddr() string { return string(n.raftTrans.LocalAddr()) }

// IsLeader reports whether this node currently believes it is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// AppliedIndex returns the FSM's applied index.
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// OpenedAppliedIndex returns the applied index the FSM store had when this
// node opened it, before raft replayed any entry.
func (n *Node) OpenedAppliedIndex() uint64 { return n.openedAppliedIndex }

// Raft exposes the raft handle to tests and tools in this module.
func (n *Node) Raft() *raft.Raft { return n.raft }

// FirstLogIndex returns the first index still in the raft log (entries
// before it were compacted into a snapshot).
func (n *Node) FirstLogIndex() (uint64, error) { return n.logStore.FirstIndex() }

// SnapshotsRestored returns how many snapshots the FSM has restored since the
// node started (installs from the leader and online restores).
func (n *Node) SnapshotsRestored() uint64 { return n.fsm.Restores() }
