package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/raftkv/raftkv/cache"
	"github.com/raftkv/raftkv/cache/rediscache"
	"github.com/raftkv/raftkv/cluster"
	"github.com/raftkv/raftkv/transport"
)

// Peer is one server of an initial cluster.
type Peer struct {
	// ID is the raft server id.
	ID string
	// RaftAddr is the address of the peer's raft port.
	RaftAddr string
}

// Config is the plain-value configuration of one node. cmd/node fills it from
// flags; tests fill it directly.
type Config struct {
	// ID is this node's raft server id; unique and stable for the node's life.
	ID string
	// DataDir holds raft/raft.db, raft/snapshots and the FSM store.
	DataDir string
	// GRPCAddr is the client API listen address; GRPCAdvertise the address
	// other nodes and clients use (defaults to GRPCAddr).
	GRPCAddr      string
	GRPCAdvertise string
	// RaftAddr is the raft peer listen address; RaftAdvertise the address
	// peers dial (defaults to RaftAddr).
	RaftAddr      string
	RaftAdvertise string
	// HTTPAddr serves /healthz, /readyz and /metrics; empty disables the
	// HTTP server.
	HTTPAddr string
	// ReadyMaxLag is how many entries the FSM's applied index may trail the
	// commit index this node knows of while /readyz still reports ready.
	ReadyMaxLag uint64
	// RaftPeerOverrides maps a peer's raft server id to the address this
	// node dials to reach it, instead of the address the raft configuration
	// holds for it. It changes only where this node connects, never the
	// configuration or what the peer advertises. It exists for tests that
	// put a fault-injecting proxy on each directed link (e2e/faults) and for
	// NAT setups where a peer is reachable from here under another address.
	RaftPeerOverrides map[string]string
	// GRPCPeerOverrides maps a peer's server id to the gRPC address this
	// node dials when it forwards a write or a ReadIndex call to that peer
	// as leader, instead of the address the peer registered. Like
	// RaftPeerOverrides it changes only where this node connects: the
	// member registry, Status and the leader hints given to clients keep
	// the registered address. It exists for e2e/faults, whose proxies cut
	// forwarding along with raft traffic in a partition.
	GRPCPeerOverrides map[string]string

	// Bootstrap starts a new cluster from InitialCluster (or this node alone
	// when InitialCluster is empty) if the data dir holds no raft state.
	// Existing state is never overwritten.
	Bootstrap bool
	// InitialCluster lists every server of a new cluster, this one included.
	InitialCluster []Peer
	// Cluster configures gossip, bootstrap-expect and the membership
	// reconciler (package cluster). Gossip, and with it everything
	// automatic, is off while Cluster.GossipAddr is empty.
	Cluster cluster.Config
	// LeaveOnTerminate makes Run, when its context ends, leave gossip and
	// ask the leader to remove this node from the raft configuration
	// before stopping. Without it a stopped node stays a member (shown as
	// failed) and is expected back.
	LeaveOnTerminate bool

	// Raft timing. Defaults suit a LAN; the test harness shortens them.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot,
	// SnapshotInterval how often raft checks, TrailingLogs how many entries
	// stay in the log after a snapshot (for slow followers), SnapshotRetain
	// how many snapshots stay on disk.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	SnapshotRetain    int
	// MaxAppendEntries caps entries per AppendEntries RPC and per FSM batch.
	MaxAppendEntries int
	// CoalesceMaxPuts caps how many client Puts the leader coalesces into
	// one raft log entry, CoalesceInflight how many such entries it keeps
	// in raft at once (node/coalesce.go). CoalesceMaxPuts of 0 or 1 turns
	// coalescing off: every Put is its own entry.
	CoalesceMaxPuts  int
	CoalesceInflight int
	// StoreSyncInterval is how often the FSM fsyncs its store file; applied
	// batches are committed without fsync in between, since the raft log
	// is the durable record (fsm/durability.go, docs/write-path.md). Zero
	// fsyncs every applied batch.
	StoreSyncInterval time.Duration
	// StoreCommitDelay is how long applied batches may share one commit of
	// the store (fsm.Config.CommitDelay); 0 commits every batch. It has no
	// effect when StoreSyncInterval is 0.
	StoreCommitDelay time.Duration

	// BackupDir is where this node keeps backups (`raftkvctl backup create`
	// without --out, and scheduled ones); empty means DataDir/backups.
	// Nodes may share one directory.
	BackupDir string
	// BackupInterval is how often the leader takes a scheduled backup (at
	// multiples of it); zero turns scheduled backups off. BackupRetain is
	// how many scheduled backups the directory keeps; zero keeps them all.
	BackupInterval time.Duration
	BackupRetain   int

	// Limits bounds request sizes.
	Limits transport.Limits
	// ExpiryInterval is how often the leader deletes keys whose TTL passed
	// (docs/ttl.md); zero means 500ms.
	ExpiryInterval time.Duration
	// RequestTimeout is the deadline of a request that arrives without one.
	RequestTimeout time.Duration
	// LogLevel is the level of this node's logs, raft's included.
	LogLevel slog.Level
	// EnablePprof serves Go's profiling endpoints under /debug/pprof/ on
	// HTTPAddr (how the CPU profiles behind docs/bench.md were taken).
	EnablePprof bool

	// Cache is the in-process read cache (MaxBytes 0 turns it off) and
	// CacheRedis the optional shared Redis tier behind it (empty URL: none).
	// See the README's cache section for which reads use which tier.
	Cache      cache.Config
	CacheRedis rediscache.Config
}

// maxStoreCommitDelay bounds Config.StoreCommitDelay: staged writes are
// held in memory, and a reader after a long delay pays for a large commit.
const maxStoreCommitDelay = time.Second

// DefaultConfig returns a working single-node configuration on 127.0.0.1 with
// data in ./raftkv-data.
func DefaultConfig() Config {
	return Config{
		ID:                 "node1",
		DataDir:            "raftkv-data",
		GRPCAddr:           "127.0.0.1:7001",
		RaftAddr:           "127.0.0.1:7002",
		HTTPAddr:           "127.0.0.1:7003",
		Bootstrap:          true,
		Cluster:            cluster.DefaultConfig(),
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   30 * time.Second,
		TrailingLogs:       10240,
		SnapshotRetain:     2,
		MaxAppendEntries:   256,
		StoreSyncInterval:  time.Second,
		StoreCommitDelay:   100 * time.Millisecond,
		CoalesceMaxPuts:    256,
		CoalesceInflight:   1,
		BackupRetain:       7,
		Limits:             transport.DefaultLimits(),
		RequestTimeout:     10 * time.Second,
		Cache:              cache.DefaultConfig(),
		CacheRedis:         rediscache.DefaultConfig(),
		ReadyMaxLag:        1000,
		LogLevel:           slog.LevelInfo,
	}
}

// Validate checks every field and the relations between them.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" || strings.ContainsAny(c.ID, ", =") {
		errs = append(errs, fmt.Errorf("id %q must be non-empty without commas, spaces or '='", c.ID))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must be set"))
	}
	for name, addr := range map[string]string{"grpc addr": c.GRPCAddr, "raft addr": c.RaftAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("http addr %q: %w", c.HTTPAddr, err))
		}
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("leader lease timeout %s must not exceed heartbeat timeout %s", c.LeaderLeaseTimeout, c.HeartbeatTimeout))
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("election timeout %s must be at least heartbeat timeout %s", c.ElectionTimeout, c.HeartbeatTimeout))
	}
	if c.CommitTimeout <= 0 || c.SnapshotInterval <= 0 || c.SnapshotThreshold == 0 || c.SnapshotRetain < 1 {
		errs = append(errs, errors.New("commit timeout, snapshot interval, snapshot threshold and snapshot retain must be positive"))
	}
	if c.BackupInterval < 0 || (c.BackupInterval > 0 && c.BackupInterval < time.Second) {
		errs = append(errs, fmt.Errorf("backup interval %s must be 0 (off) or at least 1s", c.BackupInterval))
	}
	if c.BackupRetain < 0 {
		errs = append(errs, fmt.Errorf("backup retain %d must not be negative", c.BackupRetain))
	}
	if c.CoalesceMaxPuts < 0 || c.CoalesceInflight < 0 {
		errs = append(errs, fmt.Errorf("coalesce max puts %d and inflight %d must not be negative", c.CoalesceMaxPuts, c.CoalesceInflight))
	}
	if c.StoreSyncInterval < 0 {
		errs = append(errs, fmt.Errorf("store sync interval %v must not be negative", c.StoreSyncInterval))
	}
	if c.StoreCommitDelay < 0 || c.StoreCommitDelay > maxStoreCommitDelay {
		errs = append(errs, fmt.Errorf("store commit delay %v must be between 0 and %v", c.StoreCommitDelay, maxStoreCommitDelay))
	}
	if c.MaxAppendEntries <= 0 || c.MaxAppendEntries > 1024 {
		errs = append(errs, fmt.Errorf("max append entries %d must be in 1..1024", c.MaxAppendEntries))
	}
	if c.ExpiryInterval < 0 {
		errs = append(errs, fmt.Errorf("expiry interval %s must not be negative", c.ExpiryInterval))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, errors.New("request timeout must be positive"))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(c.Cache.Validate(), c.CacheRedis.Validate()); err != nil {
		errs = append(errs, err)
	}
	if c.CacheRedis.URL != "" && c.Cache.MaxBytes == 0 {
		// The local cache's write index is what vets Redis entries.
		errs = append(errs, errors.New("the redis cache tier needs the local cache (cache max bytes > 0)"))
	}
	errs = append(errs, c.validateOverrides("raft", c.RaftPeerOverrides)...)
	errs = append(errs, c.validateOverrides("grpc", c.GRPCPeerOverrides)...)
	if err := c.validateMembership(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	self := false
	for _, p := range c.InitialCluster {
		if p.ID == "" || p.RaftAddr == "" {
			errs = append(errs, fmt.Errorf("initial cluster entry %+v needs id and address", p))
		}
		if seen[p.ID] {
			errs = append(errs, fmt.Errorf("initial cluster lists %q twice", p.ID))
		}
		seen[p.ID] = true
		if p.ID == c.ID {
			self = true
			if p.RaftAddr != c.raftAdvertise() {
				errs = append(errs, fmt.Errorf("initial cluster gives %s the address %s but its raft advertise address is %s", p.ID, p.RaftAddr, c.raftAdvertise()))
			}
		}
	}
	if len(c.InitialCluster) > 0 && !self {
		errs = append(errs, fmt.Errorf("initial cluster does not include this node %q", c.ID))
	}
	return errors.Join(errs...)
}

func (c Config) raftAdvertise() string {
	if c.RaftAdvertise != "" {
		return c.RaftAdvertise
	}
	return c.RaftAddr
}

func (c Config) grpcAdvertise() string {
	if c.GRPCAdvertise != "" {
		return c.GRPCAdvertise
	}
	return c.GRPCAddr
}

// validateOverrides checks RaftPeerOverrides or GRPCPeerOverrides (kind
// "raft" or "grpc"): each names another server and a host:port.
func (c Config) validateOverrides(kind string, overrides map[string]string) []error {
	var errs []error
	for id, addr := range overrides {
		if id == "" || id == c.ID {
			errs = append(errs, fmt.Errorf("%s peer override for %q: want the id of another server", kind, id))
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s peer override for %q: %w", kind, id, err))
		}
	}
	return errs
}

// ParseInitialCluster parses "id=host:port,id=host:port".
func ParseInitialCluster(s string) ([]Peer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var peers []Peer
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("initial cluster entry %q: want id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("initial cluster entry %q: %w", part, err)
		}
		peers = append(peers, Peer{ID: id, RaftAddr: addr})
	}
	return peers, nil
}

// ParsePeerOverrides parses "id=host:port,id=host:port" into
// Config.RaftPeerOverrides or Config.GRPCPeerOverrides.
func ParsePeerOverrides(s string) (map[string]string, error) {
	peers, err := ParseInitialCluster(s)
	if err != nil {
		return nil, fmt.Errorf("peer override: %w", err)
	}
	if len(peers) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(peers))
	for _, p := range peers {
		if _, dup := m[p.ID]; dup {
			return nil, fmt.Errorf("peer override lists %q twice", p.ID)
		}
		m[p.ID] = p.RaftAddr
	}
	return m, nil
}
