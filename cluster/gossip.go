package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// GossipStatus is a server's state as gossip reports it.
type GossipStatus int

const (
	// GossipNone means gossip has never reported the server (or gossip is
	// off on this node).
	GossipNone GossipStatus = iota
	// GossipAlive means the server answers gossip probes.
	GossipAlive
	// GossipFailed means gossip declared the server dead: it stopped
	// answering without leaving.
	GossipFailed
	// GossipLeft means the server left gossip on purpose (graceful leave).
	GossipLeft
)

// String returns "none", "alive", "failed" or "left".
func (s GossipStatus) String() string {
	switch s {
	case GossipAlive:
		return "alive"
	case GossipFailed:
		return "failed"
	case GossipLeft:
		return "left"
	}
	return "none"
}

// Member is one node as this node's gossip knows it.
type Member struct {
	// Name is the memberlist node name, which is the raft server id.
	Name string
	// Addr is the node's gossip address.
	Addr string
	// Meta is the node's decoded metadata; MetaErr is set when it could not
	// be decoded (not a raftkv node, or an unknown format), and such a
	// member is ignored by bootstrap and reconcile.
	Meta    Meta
	MetaErr error
	// Status is the gossip state and Since when this node observed it
	// begin.
	Status GossipStatus
	Since  time.Time
	// RestartedEmpty is set when this node saw an earlier boot of the
	// member and the current boot started with no raft state (Meta.Fresh):
	// if the member was a voter, it lost the log and votes it had. The
	// reconciler demotes such a voter and clears the mark.
	RestartedEmpty bool
}

// gossip wraps one memberlist instance and tracks every member it has seen,
// including failed and departed ones (memberlist forgets them).
type gossip struct {
	ml     *memberlist.Memberlist
	logger *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	members   map[string]*Member
	localMeta []byte

	// changed is closed (and replaced) after every member event, waking
	// every waiter at once.
	changed chan struct{}
}

// changes returns a channel closed at the next member event.
func (g *gossip) changes() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

func newGossip(cfg Config, meta Meta, logger *slog.Logger) (*gossip, error) {
	b, err := meta.Encode()
	if err != nil {
		return nil, err
	}
	g := &gossip{
		logger:    logger,
		now:       time.Now,
		members:   make(map[string]*Member),
		localMeta: b,
		changed:   make(chan struct{}),
	}
	var mc *memberlist.Config
	switch cfg.GossipProfile {
	case "wan":
		mc = memberlist.DefaultWANConfig()
	case "local":
		mc = memberlist.DefaultLocalConfig()
	default:
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = meta.ID
	host, port, err := splitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip addr %q: %w", cfg.GossipAddr, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if cfg.GossipAdvertise != "" {
		ahost, aport, err := splitHostPort(cfg.GossipAdvertise)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise %q: %w", cfg.GossipAdvertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	} else {
		// memberlist's default AdvertisePort (7946) is wrong for any other
		// bind port; 0 means "the port actually bound".
		mc.AdvertisePort = port
	}
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	if len(cfg.Key) > 0 {
		mc.SecretKey = cfg.Key
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Delegate = metaDelegate{g}
	mc.Events = eventDelegate{g}
	mc.Logger = newMemberlistLogger(logger.Handler())
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.GossipAddr, err)
	}
	g.ml = ml
	return g, nil
}

// addr returns the gossip address this node advertises.
func (g *gossip) addr() string {
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// updateMeta replaces this node's metadata and gossips it.
func (g *gossip) updateMeta(meta Meta) error {
	b, err := meta.Encode()
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.localMeta = b
	g.mu.Unlock()
	if err := g.ml.UpdateNode(5 * time.Second); err != nil {
		return fmt.Errorf("gossip metadata update: %w", err)
	}
	return nil
}

// joinLoop joins the cluster through peers, retrying with backoff until at
// least one peer answers or stop is closed. The node's own address is
// skipped, so every node can be given the same list.
func (g *gossip) joinLoop(stop <-chan struct{}, peers []string, bo Backoff) {
	self := g.addr()
	peers = slices.DeleteFunc(slices.Clone(peers), func(p string) bool { return p == self })
	if len(peers) == 0 {
		return
	}
	for attempt := 0; ; attempt++ {
		n, err := g.ml.Join(peers)
		if n > 0 {
			g.logger.Info("joined gossip", "contacted", n, "peers", strings.Join(peers, ","))
			return
		}
		d := min(bo.Max, bo.Initial<<min(attempt, 20))
		d = d/2 + rand.N(d/2+1)
		switch {
		case attempt == 0:
			g.logger.Info("gossip join failed; retrying", "peers", strings.Join(peers, ","), "err", err)
		case attempt%10 == 9:
			g.logger.Warn("gossip join still failing", "attempts", attempt+1, "peers", strings.Join(peers, ","), "err", err)
		default:
			g.logger.Debug("gossip join failed", "attempt", attempt+1, "wait", d, "err", err)
		}
		t := time.NewTimer(d)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// memberList returns a copy of every member seen, sorted by name.
func (g *gossip) memberList() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// clearRestartedEmpty forgets the RestartedEmpty mark of name's current
// boot.
func (g *gossip) clearRestartedEmpty(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.members[name]; ok {
		m.RestartedEmpty = false
	}
}

// leave announces a graceful departure, waiting up to timeout for it to
// spread.
func (g *gossip) leave(timeout time.Duration) error {
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("leave gossip: %w", err)
	}
	return nil
}

func (g *gossip) shutdown() error {
	if err := g.ml.Shutdown(); err != nil {
		return fmt.Errorf("stop gossip: %w", err)
	}
	return nil
}

// observe records a member event. It runs on memberlist's goroutines, so
// it must not block or call back into memberlist.
func (g *gossip) observe(n *memberlist.Node, status GossipStatus) {
	meta, err := DecodeMeta(n.Meta)
	m := &Member{
		Name:    n.Name,
		Addr:    net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		Meta:    meta,
		MetaErr: err,
		Status:  status,
		Since:   g.now(),
	}
	g.mu.Lock()
	prev := g.members[n.Name]
	if prev != nil {
		if prev.Status == status {
			m.Since = prev.Since
		}
		if err == nil && prev.MetaErr == nil {
			if prev.Meta.Boot == meta.Boot {
				m.RestartedEmpty = prev.RestartedEmpty
			} else if meta.Fresh {
				m.RestartedEmpty = true
			}
		}
	}
	news := prev == nil || prev.Status != status || m.RestartedEmpty != prev.RestartedEmpty || prev.Meta != meta
	g.members[n.Name] = m
	restartedEmpty := m.RestartedEmpty
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
	if news {
		lvl := slog.LevelInfo
		if status == GossipFailed {
			lvl = slog.LevelWarn
		}
		g.logger.Log(context.Background(), lvl, "gossip member "+status.String(), "peer", n.Name, "gossip_addr", m.Addr,
			"raft_addr", meta.RaftAddr, "restarted_empty", restartedEmpty, "err", err)
	}
}

type metaDelegate struct{ g *gossip }

func (d metaDelegate) NodeMeta(limit int) []byte {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	if len(d.g.localMeta) > limit {
		// Encode already refused anything over MaxMetaSize; this is
		// memberlist asking for less than it documents.
		return nil
	}
	return slices.Clone(d.g.localMeta)
}
func (metaDelegate) NotifyMsg([]byte)                           {}
func (metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (metaDelegate) LocalState(join bool) []byte                { return nil }
func (metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

type eventDelegate struct{ g *gossip }

func (d eventDelegate) NotifyJoin(n *memberlist.Node)   { d.g.observe(n, GossipAlive) }
func (d eventDelegate) NotifyUpdate(n *memberlist.Node) { d.g.observe(n, GossipAlive) }
func (d eventDelegate) NotifyLeave(n *memberlist.Node) {
	// n.State is not reliable here: memberlist v0.5 records left-or-dead
	// in its own node state, not in the Node it passes us. A node that
	// leaves on purpose says so in its metadata first.
	if m, err := DecodeMeta(n.Meta); err == nil && m.Leaving {
		d.g.observe(n, GossipLeft)
		return
	}
	d.g.observe(n, GossipFailed)
}
