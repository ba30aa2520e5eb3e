package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// bootstrapPoll is how often Bootstrap looks again when no gossip event
// woke it.
const bootstrapPoll = 500 * time.Millisecond

// BootstrapDecision is what one node should do about bootstrap-expect,
// given the live servers it sees.
type BootstrapDecision struct {
	// Servers are the voters of the new cluster, set when this node is the
	// one to bootstrap (after it has checked that none of them has raft
	// state).
	Servers []raft.Server
	// Wait says why this node does not bootstrap now.
	Wait string
}

// DecideBootstrap is the pure part of bootstrap-expect. Among the live
// gossip members with valid metadata, it waits until expect of them are
// there, refuses while any of them expects a different number, and picks
// the expect servers with the lowest ids; the lowest of those bootstraps
// the cluster with all of them as voters, everyone else waits to be
// contacted by it. The choice is the same on every node that sees the
// same members, so exactly one node bootstraps.
func DecideBootstrap(self string, expect int, members []Member) BootstrapDecision {
	var live []Member
	for _, m := range members {
		if m.Status == GossipAlive && m.MetaErr == nil {
			live = append(live, m)
		}
	}
	slices.SortFunc(live, func(a, b Member) int { return strings.Compare(a.Meta.ID, b.Meta.ID) })
	for _, m := range live {
		if m.Meta.Expect != expect {
			return BootstrapDecision{Wait: fmt.Sprintf("%s expects %d servers, this node %d: every node must be started with the same --bootstrap-expect", m.Meta.ID, m.Meta.Expect, expect)}
		}
	}
	if len(live) < expect {
		return BootstrapDecision{Wait: fmt.Sprintf("%d of %d expected servers seen", len(live), expect)}
	}
	chosen := live[:expect]
	if chosen[0].Meta.ID != self {
		return BootstrapDecision{Wait: fmt.Sprintf("%s (the lowest id) bootstraps", chosen[0].Meta.ID)}
	}
	servers := make([]raft.Server, 0, expect)
	for _, m := range chosen {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.Meta.ID), Address: raft.ServerAddress(m.Meta.RaftAddr)})
	}
	return BootstrapDecision{Servers: servers}
}

// ErrExistingCluster means bootstrap-expect found a server that already
// has raft state, so this node must join that cluster instead.
var ErrExistingCluster = errors.New("found a server with existing raft state")

// Bootstrap implements --bootstrap-expect for a node with no raft state.
// It returns once this node has raft state, either because it bootstrapped
// the cluster or because the bootstrapping node (or the leader of an
// existing cluster) reached it, or with ctx's error. Before bootstrapping
// it asks every chosen server for its raft stats and gives up on
// bootstrapping for good if any of them already has state: an existing
// cluster is joined through the reconciler, never bootstrapped again.
// raft's BootstrapCluster itself refuses to overwrite existing state.
func (c *Cluster) Bootstrap(ctx context.Context) error {
	expect := c.cfg.BootstrapExpect
	if c.gossip == nil || expect <= 0 {
		return errors.New("bootstrap expect needs gossip")
	}
	self := c.localMeta().ID
	lastWait := ""
	gaveUp := false
	for {
		changed := c.gossip.changes()
		if c.raft.LastIndex() > 0 {
			if !gaveUp {
				c.logger.Info("bootstrap: this node has raft state now", "raft_index", c.raft.LastIndex())
			}
			return nil
		}
		if !gaveUp {
			d := DecideBootstrap(self, expect, c.gossip.memberList())
			if d.Wait != "" && d.Wait != lastWait {
				c.logger.Info("bootstrap: waiting", "why", d.Wait)
				lastWait = d.Wait
			}
			if d.Servers != nil {
				err := c.bootstrapWith(ctx, d.Servers)
				switch {
				case err == nil:
					return nil
				case errors.Is(err, ErrExistingCluster):
					c.logger.Info("bootstrap: not bootstrapping, waiting to be added by the existing cluster's leader", "err", err)
					gaveUp = true
				default:
					c.logger.Warn("bootstrap: not yet", "err", err)
				}
			}
		}
		t := time.NewTimer(bootstrapPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-c.stop:
			t.Stop()
			return errors.New("cluster closed")
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// StartBootstrap runs Bootstrap in the background until it returns; Close
// stops it and waits for it.
func (c *Cluster) StartBootstrap() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.Bootstrap(context.Background()); err != nil {
			c.logger.Debug("bootstrap wait ended", "err", err)
		}
	}()
}

func (c *Cluster) bootstrapWith(ctx context.Context, servers []raft.Server) error {
	want := map[string]string{}
	members := map[string]Member{}
	for _, m := range c.gossip.memberList() {
		members[m.Name] = m
	}
	self := c.localMeta().ID
	for _, s := range servers {
		if string(s.ID) != self {
			want[string(s.ID)] = members[string(s.ID)].Meta.GRPCAddr
		}
	}
	for id, r := range c.fetchAll(ctx, want) {
		if r.err != nil {
			return fmt.Errorf("ask %s for its raft state: %w", id, r.err)
		}
		if r.stats.LastIndex > 0 || r.stats.Term > 0 {
			return fmt.Errorf("%w: %s is at term %d, index %d", ErrExistingCluster, id, r.stats.Term, r.stats.LastIndex)
		}
	}
	if err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return nil // state appeared meanwhile: someone reached us
		}
		return fmt.Errorf("bootstrap cluster: %w", err)
	}
	ids := make([]string, len(servers))
	for i, s := range servers {
		ids[i] = string(s.ID)
	}
	c.logger.Info("bootstrapped new cluster", "voters", strings.Join(ids, ","))
	c.setFresh(false)
	return nil
}
