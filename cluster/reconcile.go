package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// maxChangesPerPass bounds the configuration changes one reconcile pass
// makes before it waits for the next trigger.
const maxChangesPerPass = 8

// runReconciler is the leader-side loop (STYLE.md §1): when this node
// becomes leader it runs a barrier, so its FSM and configuration are
// current, and a full reconcile; after that every gossip event batch and
// every ReconcileInterval trigger another full pass. On other nodes a pass
// only keeps the gossip bookkeeping current.
func (c *Cluster) runReconciler() {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.ReconcileInterval)
	defer tick.Stop()
	wasLeader := false
	changed := c.gossip.changes()
	for {
		select {
		case <-c.stop:
			return
		case <-c.leaderChanged:
		case <-changed:
		case <-tick.C:
		}
		// Taken before the pass, so an event during it triggers another.
		changed = c.gossip.changes()
		leader := c.raft.State() == raft.Leader
		if leader && !wasLeader {
			c.resetLeaderState()
			if err := c.raft.Barrier(c.cfg.ReconcileInterval * 5).Error(); err != nil {
				c.logger.Warn("barrier after gaining leadership failed; reconcile postponed", "err", err)
				continue
			}
			c.logger.Info("leader: reconciling gossip members against the raft configuration", "term", c.raft.CurrentTerm())
		}
		if !leader && wasLeader {
			c.resetLeaderState()
		}
		wasLeader = leader
		c.pass(leader)
	}
}

// pass runs one reconcile: plan against the latest configuration, apply
// the first change, and plan again.
func (c *Cluster) pass(leader bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for range maxChangesPerPass {
		f := c.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			c.logger.Warn("reconcile: get raft configuration", "err", err)
			return
		}
		c.pruneRestartedEmpty(f.Configuration())
		if !leader || c.raft.State() != raft.Leader {
			return
		}
		v, err := c.snapshot(ctx, false)
		if err != nil {
			c.logger.Warn("reconcile: snapshot", "err", err)
			return
		}
		acts := Plan(c.states(v), c.policy())
		if len(acts) == 0 {
			return
		}
		a := acts[0]
		idx, err := c.apply(a, v.index, c.cfg.ReconcileInterval*5)
		if err != nil {
			c.logger.Warn("reconcile: configuration change failed", "action", a.Kind.String(), "peer", a.ID, "reason", a.Reason, "err", err)
			return
		}
		c.logger.Info("reconcile: configuration changed", "action", a.Kind.String(), "peer", a.ID, "raft_addr", a.Addr,
			"reason", a.Reason, "raft_index", idx)
	}
}

// pruneRestartedEmpty drops the restarted-empty mark of servers that are no
// longer voters: they were demoted (or removed), and promotion later is
// the ordinary, safe path.
func (c *Cluster) pruneRestartedEmpty(cfg raft.Configuration) {
	voters := map[string]bool{}
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			voters[string(s.ID)] = true
		}
	}
	for _, m := range c.gossip.memberList() {
		if m.RestartedEmpty && !voters[m.Name] {
			c.gossip.clearRestartedEmpty(m.Name)
		}
	}
}

// apply makes one configuration change through raft, conditional on the
// configuration still being at prevIndex.
func (c *Cluster) apply(a Action, prevIndex uint64, timeout time.Duration) (uint64, error) {
	id := raft.ServerID(a.ID)
	var f raft.IndexFuture
	switch a.Kind {
	case ActAddNonvoter:
		f = c.raft.AddNonvoter(id, raft.ServerAddress(a.Addr), prevIndex, timeout)
	case ActAddVoter:
		f = c.raft.AddVoter(id, raft.ServerAddress(a.Addr), prevIndex, timeout)
	case ActDemote:
		f = c.raft.DemoteVoter(id, prevIndex, timeout)
	case ActRemove:
		f = c.raft.RemoveServer(id, prevIndex, timeout)
	case ActUpdateAddress:
		// Both keep the suffrage of a server already in the configuration
		// and only change its address (raft's nextConfiguration).
		f = c.raft.AddNonvoter(id, raft.ServerAddress(a.Addr), prevIndex, timeout)
	default:
		return 0, fmt.Errorf("unknown action %v", a.Kind)
	}
	if err := f.Error(); err != nil {
		return 0, err
	}
	return f.Index(), nil
}

// ChangeResult describes a manual change that was made.
type ChangeResult struct {
	// Index is the raft index of the new configuration (0 when nothing
	// needed to change).
	Index uint64
	// Warning notes a legal but questionable result (an even number of
	// voters, a no-op).
	Warning string
}

// Change makes an operator's configuration change on the leader: add a
// server (ActAddVoter or ActAddNonvoter with Addr), promote (ActAddVoter
// without Addr), demote, or remove. Unless force is set it refuses, with
// an error wrapping ErrUnsafe, whatever Check refuses. On a follower it
// returns raft.ErrNotLeader.
func (c *Cluster) Change(ctx context.Context, a Action, force bool) (ChangeResult, error) {
	if c.raft.State() != raft.Leader {
		return ChangeResult{}, raft.ErrNotLeader
	}
	v, err := c.snapshot(ctx, false)
	if err != nil {
		return ChangeResult{}, err
	}
	states := c.states(v)
	var cur *ServerState
	for i := range states {
		if states[i].ID == a.ID {
			cur = &states[i]
		}
	}
	inConfig := cur != nil && cur.InConfig
	switch a.Kind {
	case ActAddVoter:
		if a.Addr == "" { // promote
			if !inConfig {
				return ChangeResult{}, fmt.Errorf("%w: %s", ErrUnknownServer, a.ID)
			}
			if cur.Suffrage == raft.Voter {
				c.setHold(v, a.ID, hold{})
				return ChangeResult{Warning: a.ID + " is already a voter"}, nil
			}
			a.Addr = cur.ConfigAddr
		}
	case ActAddNonvoter:
		if inConfig && cur.Suffrage == raft.Voter {
			return ChangeResult{}, fmt.Errorf("%w: %s is already a voter (use member demote)", ErrUnsafe, a.ID)
		}
	case ActDemote:
		if inConfig && cur.Suffrage != raft.Voter {
			c.setHold(v, a.ID, hold{nonvoter: true})
			return ChangeResult{Warning: a.ID + " is already a non-voter"}, nil
		}
	}
	if (a.Kind == ActAddVoter || a.Kind == ActAddNonvoter) && inConfig && cur.ConfigAddr != a.Addr {
		if holder := addrHolder(states, a.Addr, a.ID); holder != "" {
			return ChangeResult{}, fmt.Errorf("%w: raft address %s belongs to %s", ErrUnsafe, a.Addr, holder)
		}
	}
	if (a.Kind == ActAddVoter || a.Kind == ActAddNonvoter) && !inConfig {
		if holder := addrHolder(states, a.Addr, a.ID); holder != "" {
			return ChangeResult{}, fmt.Errorf("%w: raft address %s belongs to %s (remove it first)", ErrUnsafe, a.Addr, holder)
		}
	}
	if err := Check(states, a, c.cfg.MinQuorum); err != nil {
		if !force || errors.Is(err, ErrUnknownServer) {
			if errors.Is(err, ErrUnsafe) {
				return ChangeResult{}, fmt.Errorf("%w (use --force to do it anyway)", err)
			}
			return ChangeResult{}, err
		}
		c.logger.Warn("forced membership change", "action", a.Kind.String(), "peer", a.ID, "refused_because", err.Error())
	}
	idx, err := c.apply(a, v.index, timeoutFrom(ctx, 10*time.Second))
	if err != nil {
		return ChangeResult{}, fmt.Errorf("%s %s: %w", a.Kind, a.ID, err)
	}
	switch a.Kind {
	case ActRemove:
		c.setHold(v, a.ID, hold{out: true})
	case ActDemote, ActAddNonvoter:
		c.setHold(v, a.ID, hold{nonvoter: true})
	case ActAddVoter:
		c.setHold(v, a.ID, hold{})
	}
	c.logger.Info("membership changed by operator", "action", a.Kind.String(), "peer", a.ID, "raft_addr", a.Addr,
		"forced", force, "raft_index", idx)
	res := ChangeResult{Index: idx}
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		voters := 0
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		res.Warning = parityWarning(voters)
	}
	return res, nil
}

// setHold records (or with a zero hold clears) an operator decision for the
// server's current boot.
func (c *Cluster) setHold(v *view, id string, h hold) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !h.nonvoter && !h.out {
		delete(c.holds, id)
		return
	}
	h.boot = v.members[id].Meta.Boot
	c.holds[id] = h
}

// TransferLeadership hands leadership to the voter to, or with to empty to
// the most up-to-date other voter. Unless force is set it refuses a target
// that is not healthy, or when no other voter is. It returns the id of the
// server leadership went to, when known.
func (c *Cluster) TransferLeadership(ctx context.Context, to string, force bool) (string, error) {
	if c.raft.State() != raft.Leader {
		return "", raft.ErrNotLeader
	}
	v, err := c.snapshot(ctx, false)
	if err != nil {
		return "", err
	}
	var f raft.Future
	if to != "" {
		var target *raft.Server
		for i, s := range v.config.Servers {
			if string(s.ID) == to {
				target = &v.config.Servers[i]
			}
		}
		switch {
		case target == nil:
			return "", fmt.Errorf("%w: %s", ErrUnknownServer, to)
		case target.Suffrage != raft.Voter:
			return "", fmt.Errorf("%w: %s is not a voter and cannot lead", ErrUnsafe, to)
		case to == v.selfID:
			return to, nil
		}
		if ok, _, why := c.health(v, to); !ok && !force {
			return "", fmt.Errorf("%w: %s is not healthy (%s) and may not be able to take over (use --force to do it anyway)", ErrUnsafe, to, why)
		}
		f = c.raft.LeadershipTransferToServer(target.ID, target.Address)
	} else {
		healthy := 0
		others := 0
		for _, s := range v.config.Servers {
			if s.Suffrage != raft.Voter || string(s.ID) == v.selfID {
				continue
			}
			others++
			if ok, _, _ := c.health(v, string(s.ID)); ok {
				healthy++
			}
		}
		if others == 0 {
			return "", fmt.Errorf("%w: no other voter to take over", ErrUnsafe)
		}
		if healthy == 0 && !force {
			return "", fmt.Errorf("%w: no other voter is healthy enough to take over (use --force to do it anyway)", ErrUnsafe)
		}
		f = c.raft.LeadershipTransfer()
	}
	if err := f.Error(); err != nil {
		return "", fmt.Errorf("leadership transfer: %w", err)
	}
	c.logger.Info("leadership transferred by operator", "to", to, "forced", force)
	if to != "" {
		return to, nil
	}
	return c.awaitOtherLeader(ctx, v.selfID), nil
}

// awaitOtherLeader returns the id of the leader once it is known and not
// self, or "" when ctx ends or a second has passed first.
func (c *Cluster) awaitOtherLeader(ctx context.Context, self string) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	obs := make(chan raft.Observation, 1)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	c.raft.RegisterObserver(o)
	defer c.raft.DeregisterObserver(o)
	for {
		if _, id := c.raft.LeaderWithID(); id != "" && string(id) != self {
			return string(id)
		}
		select {
		case <-ctx.Done():
			return ""
		case <-obs:
		}
	}
}

func timeoutFrom(ctx context.Context, def time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return def
}
