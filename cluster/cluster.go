package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// StatsFetcher asks one server for its raft statistics. Package node
// implements it over the Admin.Status RPC. It is called from the
// reconciler goroutine and from admin request handlers, concurrently; it
// must return when ctx ends. id is the raft server id; grpcAddr is the
// address from gossip metadata and may be empty, in which case the
// implementation finds the address itself.
type StatsFetcher interface {
	FetchStats(ctx context.Context, id, grpcAddr string) (ServerStats, error)
}

// ServerStats is one server's report about itself.
type ServerStats struct {
	// RaftState is Leader, Follower, Candidate or Shutdown.
	RaftState    string
	Term         uint64
	LastIndex    uint64
	CommitIndex  uint64
	AppliedIndex uint64
	// LastContact is how long ago the server last heard from a leader: 0
	// on the leader, negative when never.
	LastContact time.Duration
}

// Deps are a Cluster's collaborators.
type Deps struct {
	// Raft is the node's raft instance; only its public API is used.
	Raft *raft.Raft
	// LeaderCh is the channel set as Raft's raft.Config.NotifyCh. Cluster
	// drains it from Start on; raft blocks on it, so it must be buffered.
	LeaderCh <-chan bool
	// Stats fetches server statistics for health checks.
	Stats StatsFetcher
	// Logger receives cluster and memberlist logs; nil discards them.
	Logger *slog.Logger
}

// hold is an operator's decision about one boot of a server.
type hold struct {
	boot     string
	nonvoter bool // don't promote
	out      bool // don't re-add
}

// Cluster is a node's membership: gossip, bootstrap-expect, the
// leader-side reconciler and the manual membership changes. Only the
// leader ever changes the raft configuration.
type Cluster struct {
	cfg    Config
	raft   *raft.Raft
	stats  StatsFetcher
	logger *slog.Logger
	now    func() time.Time

	gossip   *gossip // nil when gossip is off
	leaderCh <-chan bool

	metaMu sync.Mutex
	meta   Meta

	isLeader      atomic.Bool
	leaderChanged chan struct{}

	// Leader-only state, reset on every change of leadership.
	mu           sync.Mutex
	healthySince map[string]time.Time
	downSince    map[string]time.Time
	holds        map[string]hold

	stop      chan struct{}
	wg        sync.WaitGroup
	started   atomic.Bool
	closeOnce sync.Once
}

// NewBootID returns a random id for Meta.Boot.
func NewBootID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// New validates cfg and meta and, when gossip is on, starts memberlist on
// cfg.GossipAddr. Call Start to join and run the reconciler, Close to stop.
func New(cfg Config, meta Meta, deps Deps) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid cluster config: %w", err)
	}
	if cfg.GossipEnabled() {
		if err := meta.Validate(); err != nil {
			return nil, fmt.Errorf("invalid node metadata: %w", err)
		}
	}
	if deps.Raft == nil || deps.Stats == nil {
		return nil, errors.New("cluster needs raft and a stats fetcher")
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		cfg:           cfg,
		raft:          deps.Raft,
		stats:         deps.Stats,
		logger:        logger.With("component", "cluster"),
		now:           time.Now,
		leaderCh:      deps.LeaderCh,
		meta:          meta,
		leaderChanged: make(chan struct{}, 1),
		healthySince:  map[string]time.Time{},
		downSince:     map[string]time.Time{},
		holds:         map[string]hold{},
		stop:          make(chan struct{}),
	}
	if cfg.GossipEnabled() {
		g, err := newGossip(cfg, meta, logger.With("component", "gossip"))
		if err != nil {
			return nil, err
		}
		c.gossip = g
	}
	return c, nil
}

// Start joins gossip (in the background, retrying) and starts the
// leadership watcher and the reconciler.
func (c *Cluster) Start() {
	if !c.started.CompareAndSwap(false, true) {
		return
	}
	if c.leaderCh != nil {
		c.wg.Add(1)
		go c.watchLeadership()
	}
	if c.gossip != nil {
		c.wg.Add(2)
		go func() {
			defer c.wg.Done()
			c.gossip.joinLoop(c.stop, c.cfg.Join, c.cfg.JoinBackoff)
		}()
		go c.runReconciler()
		c.logger.Info("gossip started", "gossip_addr", c.gossip.addr(), "join", strings.Join(c.cfg.Join, ","),
			"encrypted", len(c.cfg.Key) > 0)
	}
}

// GossipAddr returns the advertised gossip address, or "" with gossip off.
func (c *Cluster) GossipAddr() string {
	if c.gossip == nil {
		return ""
	}
	return c.gossip.addr()
}

// GossipEnabled reports whether this node gossips.
func (c *Cluster) GossipEnabled() bool { return c.gossip != nil }

// Leave announces a graceful departure from gossip and waits up to timeout
// for it to spread. The raft configuration is not touched: removing the
// node is the leader's job (see the node's leave-on-terminate).
func (c *Cluster) Leave(timeout time.Duration) error {
	if c.gossip == nil {
		return nil
	}
	c.metaMu.Lock()
	c.meta.Leaving = true
	m := c.meta
	c.metaMu.Unlock()
	if err := c.gossip.updateMeta(m); err != nil {
		c.logger.Warn("announce leave in gossip metadata", "err", err)
	}
	return c.gossip.leave(timeout)
}

// Close stops the reconciler and gossip (without a leave: the others will
// see this node fail). It is safe to call more than once.
func (c *Cluster) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		if c.gossip != nil {
			err = c.gossip.shutdown()
		}
	})
	return err
}

// Members returns every server gossip has seen, with its gossip status.
// Empty with gossip off.
func (c *Cluster) Members() []Member {
	if c.gossip == nil {
		return nil
	}
	return c.gossip.memberList()
}

// watchLeadership drains raft's NotifyCh at once (raft blocks on it) and
// wakes the reconciler.
func (c *Cluster) watchLeadership() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case v := <-c.leaderCh:
			c.isLeader.Store(v)
			select {
			case c.leaderChanged <- struct{}{}:
			default:
			}
		}
	}
}

func (c *Cluster) localMeta() Meta {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	return c.meta
}

func (c *Cluster) setFresh(fresh bool) {
	c.metaMu.Lock()
	c.meta.Fresh = fresh
	m := c.meta
	c.metaMu.Unlock()
	if c.gossip != nil {
		if err := c.gossip.updateMeta(m); err != nil {
			c.logger.Warn("update gossip metadata", "err", err)
		}
	}
}

func (c *Cluster) policy() Policy {
	return Policy{StabilizationTime: c.cfg.StabilizationTime, DeadServerCleanup: c.cfg.DeadServerCleanup, MinQuorum: c.cfg.MinQuorum}
}

// statsResult is one server's stats or the error fetching them.
type statsResult struct {
	stats ServerStats
	err   error
}

// fetchAll asks every server in want (id → grpc address, possibly empty)
// for its stats, concurrently, within StatsTimeout.
func (c *Cluster) fetchAll(ctx context.Context, want map[string]string) map[string]statsResult {
	timeout := c.cfg.StatsTimeout
	if dl, ok := ctx.Deadline(); ok {
		// Leave the caller time to use the answers: a server that doesn't
		// answer becomes a row with an error, not a failed member list.
		timeout = min(timeout, time.Until(dl)*3/4)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := make(map[string]statsResult, len(want))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, addr := range want {
		wg.Go(func() {
			st, err := c.stats.FetchStats(ctx, id, addr)
			mu.Lock()
			out[id] = statsResult{st, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// view is a snapshot of the configuration, gossip and stats.
type view struct {
	config  raft.Configuration
	index   uint64
	members map[string]Member
	stats   map[string]statsResult
	// refApplied is the highest applied index any server reported.
	refApplied uint64
	selfID     string
	leaderID   string
}

func (c *Cluster) snapshot(ctx context.Context, includeGossipOnly bool) (*view, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("get raft configuration: %w", err)
	}
	_, leaderID := c.raft.LeaderWithID()
	v := &view{config: f.Configuration(), index: f.Index(), members: map[string]Member{},
		selfID: c.localMeta().ID, leaderID: string(leaderID)}
	for _, m := range c.Members() {
		if m.MetaErr == nil {
			v.members[m.Name] = m
		}
	}
	want := map[string]string{}
	for _, s := range v.config.Servers {
		want[string(s.ID)] = v.members[string(s.ID)].Meta.GRPCAddr
	}
	if includeGossipOnly {
		for id, m := range v.members {
			if _, ok := want[id]; !ok && m.Status == GossipAlive {
				want[id] = m.Meta.GRPCAddr
			}
		}
	}
	want[v.selfID] = ""
	v.stats = c.fetchAll(ctx, want)
	for _, r := range v.stats {
		if r.err == nil {
			v.refApplied = max(v.refApplied, r.stats.AppliedIndex)
		}
	}
	return v, nil
}

// health judges one server from its stats: reachable, caught up within
// MaxAppliedLag of refApplied, in recent contact with a leader, and (with
// gossip on) alive in gossip. It returns the lag and, when unhealthy, why.
func (c *Cluster) health(v *view, id string) (healthy bool, lag uint64, why string) {
	r, ok := v.stats[id]
	switch {
	case !ok:
		return false, 0, "not asked"
	case r.err != nil:
		return false, 0, "unreachable: " + r.err.Error()
	}
	if v.refApplied > r.stats.AppliedIndex {
		lag = v.refApplied - r.stats.AppliedIndex
	}
	if c.gossip != nil && id != v.selfID {
		if m, ok := v.members[id]; !ok || m.Status != GossipAlive {
			return false, lag, "not alive in gossip"
		}
	}
	switch {
	case r.stats.RaftState == raft.Leader.String():
	case r.stats.LastContact < 0:
		return false, lag, "never heard from a leader"
	case r.stats.LastContact > c.cfg.LastContactThreshold:
		return false, lag, fmt.Sprintf("last contact %s ago", r.stats.LastContact.Round(time.Millisecond))
	}
	if lag > c.cfg.MaxAppliedLag {
		return false, lag, fmt.Sprintf("applied index %d entries behind", lag)
	}
	return true, lag, ""
}

// states turns a view into planner input, updating the leader's
// healthy-since and down-since records.
func (c *Cluster) states(v *view) []ServerState {
	now := c.now()
	byID := map[string]*ServerState{}
	var order []string
	get := func(id string) *ServerState {
		if s, ok := byID[id]; ok {
			return s
		}
		s := &ServerState{ID: id, Leader: id == v.selfID}
		byID[id] = s
		order = append(order, id)
		return s
	}
	for _, srv := range v.config.Servers {
		s := get(string(srv.ID))
		s.InConfig, s.Suffrage, s.ConfigAddr = true, srv.Suffrage, string(srv.Address)
	}
	for id, m := range v.members {
		if m.Status == GossipAlive || byID[id] != nil {
			s := get(id)
			s.Gossip, s.GossipRaftAddr, s.RestartedEmpty = m.Status, m.Meta.RaftAddr, m.RestartedEmpty
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ServerState, 0, len(order))
	for _, id := range order {
		s := byID[id]
		if s.Leader {
			s.Gossip = GossipAlive
		}
		if s.InConfig {
			s.Healthy, _, _ = c.health(v, id)
			if s.Leader {
				s.Healthy = true
			}
		}
		if s.Healthy {
			if _, ok := c.healthySince[id]; !ok {
				c.healthySince[id] = now
			}
			s.HealthyFor = now.Sub(c.healthySince[id])
		} else {
			delete(c.healthySince, id)
		}
		if c.gossip != nil && s.Gossip != GossipAlive {
			since, ok := c.downSince[id]
			if !ok {
				since = now
				if m, ok := v.members[id]; ok && m.Since.Before(now) {
					since = m.Since
				}
				c.downSince[id] = since
			}
			s.DownFor = now.Sub(since)
		} else {
			delete(c.downSince, id)
		}
		if h, ok := c.holds[id]; ok {
			if m, ok := v.members[id]; ok && h.boot != "" && m.Meta.Boot != h.boot {
				delete(c.holds, id) // restarted: the operator's decision was about the old boot
			} else {
				s.HoldNonvoter, s.HoldOut = h.nonvoter, h.out
			}
		}
		out = append(out, *s)
	}
	return out
}

func (c *Cluster) resetLeaderState() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.healthySince)
	clear(c.downSince)
	clear(c.holds)
}

// MemberInfo is one row of the member list.
type MemberInfo struct {
	ID string
	// Suffrage is Voter, Nonvoter or Staging, or None for a server seen
	// only in gossip (waiting to be added, or held out by an operator).
	Suffrage   string
	RaftAddr   string
	IsLeader   bool
	Gossip     GossipStatus
	GossipAddr string
	// GRPCAddr and Version come from gossip metadata (empty without).
	GRPCAddr string
	Version  string
	// Stats is the server's own report, StatsErr why there is none.
	Stats    ServerStats
	StatsErr error
	// AppliedLag is how far the server's applied index trails the highest
	// one reported.
	AppliedLag uint64
	Healthy    bool
	// Unhealthy says why Healthy is false.
	Unhealthy string
}

// MemberList returns every server of the raft configuration and every
// live server gossip knows, with each one's own stats. It works on any
// node; only the leader's view of last contact is authoritative.
func (c *Cluster) MemberList(ctx context.Context) ([]MemberInfo, error) {
	v, err := c.snapshot(ctx, true)
	if err != nil {
		return nil, err
	}
	var out []MemberInfo
	seen := map[string]bool{}
	row := func(id string) MemberInfo {
		m := v.members[id]
		mi := MemberInfo{ID: id, Suffrage: "None", IsLeader: id == v.leaderID, Gossip: m.Status, GossipAddr: m.Addr,
			GRPCAddr: m.Meta.GRPCAddr, Version: m.Meta.Version, RaftAddr: m.Meta.RaftAddr}
		if id == v.selfID && c.gossip == nil {
			mi.Version = c.localMeta().Version
		}
		if r, ok := v.stats[id]; ok {
			mi.Stats, mi.StatsErr = r.stats, r.err
		}
		mi.Healthy, mi.AppliedLag, mi.Unhealthy = c.health(v, id)
		return mi
	}
	for _, s := range v.config.Servers {
		mi := row(string(s.ID))
		mi.Suffrage, mi.RaftAddr = s.Suffrage.String(), string(s.Address)
		out = append(out, mi)
		seen[string(s.ID)] = true
	}
	ids := make([]string, 0, len(v.members))
	for id := range v.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if !seen[id] && v.members[id].Status == GossipAlive {
			out = append(out, row(id))
		}
	}
	return out, nil
}
