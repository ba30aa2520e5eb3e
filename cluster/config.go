package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config is the plain-value configuration of a node's membership: gossip,
// bootstrap and the leader-side reconciler.
type Config struct {
	// GossipAddr is the memberlist bind address (host:port, UDP and TCP).
	// Empty disables gossip: no discovery, no automatic membership, only
	// the manual commands.
	GossipAddr string
	// GossipAdvertise is the address other nodes use to reach this one
	// (default: GossipAddr).
	GossipAdvertise string
	// Join lists gossip addresses of other nodes. The node retries them
	// with JoinBackoff until one answers.
	Join []string
	// JoinBackoff bounds the wait between join attempts.
	JoinBackoff Backoff
	// Key, when set, encrypts gossip with AES (16, 24 or 32 bytes); nodes
	// without the same key can neither read nor join.
	Key []byte
	// GossipProfile selects memberlist's timing: "lan" (default), "wan" or
	// "local" (loopback: faster failure detection).
	GossipProfile string
	// DeadNodeReclaimTime is how long after a node is declared dead another
	// node may take its name from a different address.
	DeadNodeReclaimTime time.Duration

	// BootstrapExpect, when positive, makes a node with no raft state wait
	// until that many servers see each other through gossip; then the one
	// with the lowest id bootstraps the cluster with all of them as voters.
	BootstrapExpect int

	// StabilizationTime is how long a non-voter must stay healthy before
	// the reconciler promotes it.
	StabilizationTime time.Duration
	// DeadServerCleanup is how long a server must have been failed before
	// the reconciler removes it from the raft configuration; 0 disables
	// removal of failed servers (servers that left are still removed).
	DeadServerCleanup time.Duration
	// MinQuorum is the fewest voters that removals and demotions may leave,
	// the automatic ones and (without --force) the manual ones.
	MinQuorum int
	// MaxAppliedLag is how many entries a server's applied index may trail
	// the leader's and still count as caught up.
	MaxAppliedLag uint64
	// LastContactThreshold is how long a follower may go without hearing
	// from the leader and still count as healthy.
	LastContactThreshold time.Duration
	// ReconcileInterval is the period of the leader's full reconcile pass
	// (gossip events trigger one sooner).
	ReconcileInterval time.Duration
	// StatsTimeout bounds one server-stats request.
	StatsTimeout time.Duration
}

// Backoff bounds an exponential backoff: the n-th wait is
// min(Max, Initial*2^n).
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// DefaultConfig returns the defaults, with gossip disabled.
func DefaultConfig() Config {
	return Config{
		JoinBackoff:          Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second},
		GossipProfile:        "lan",
		DeadNodeReclaimTime:  10 * time.Second,
		StabilizationTime:    10 * time.Second,
		MinQuorum:            3,
		MaxAppliedLag:        256,
		LastContactThreshold: 2 * time.Second,
		ReconcileInterval:    2 * time.Second,
		StatsTimeout:         time.Second,
	}
}

// GossipEnabled reports whether the node takes part in gossip.
func (c Config) GossipEnabled() bool { return c.GossipAddr != "" }

// Advertise returns the gossip address other nodes use.
func (c Config) Advertise() string {
	if c.GossipAdvertise != "" {
		return c.GossipAdvertise
	}
	return c.GossipAddr
}

// Validate checks every field and the relations between them.
func (c Config) Validate() error {
	var errs []error
	if c.GossipEnabled() {
		for name, addr := range map[string]string{"gossip addr": c.GossipAddr, "gossip advertise": c.Advertise()} {
			if _, _, err := splitHostPort(addr); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
			}
		}
	} else {
		if len(c.Join) > 0 {
			errs = append(errs, errors.New("join needs gossip (a gossip address)"))
		}
		if c.BootstrapExpect > 0 {
			errs = append(errs, errors.New("bootstrap expect needs gossip (a gossip address)"))
		}
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			errs = append(errs, fmt.Errorf("join address %q: %w", j, err))
		}
	}
	if n := len(c.Key); n != 0 && n != 16 && n != 24 && n != 32 {
		errs = append(errs, fmt.Errorf("gossip key is %d bytes; want 16, 24 or 32", n))
	}
	switch c.GossipProfile {
	case "lan", "wan", "local":
	default:
		errs = append(errs, fmt.Errorf("gossip profile %q: want lan, wan or local", c.GossipProfile))
	}
	if c.BootstrapExpect < 0 || c.BootstrapExpect > 99 {
		errs = append(errs, fmt.Errorf("bootstrap expect %d must be in 0..99", c.BootstrapExpect))
	}
	if c.JoinBackoff.Initial <= 0 || c.JoinBackoff.Max < c.JoinBackoff.Initial {
		errs = append(errs, fmt.Errorf("join backoff %+v: want 0 < initial <= max", c.JoinBackoff))
	}
	if c.StabilizationTime < 0 || c.DeadServerCleanup < 0 || c.DeadNodeReclaimTime < 0 {
		errs = append(errs, errors.New("stabilization time, dead server cleanup and dead node reclaim time must not be negative"))
	}
	if c.MinQuorum < 1 {
		errs = append(errs, fmt.Errorf("min quorum %d must be at least 1", c.MinQuorum))
	}
	if c.LastContactThreshold <= 0 || c.ReconcileInterval <= 0 || c.StatsTimeout <= 0 {
		errs = append(errs, errors.New("last contact threshold, reconcile interval and stats timeout must be positive"))
	}
	if c.StatsTimeout >= c.ReconcileInterval*5 {
		errs = append(errs, fmt.Errorf("stats timeout %s should be well below the reconcile interval %s", c.StatsTimeout, c.ReconcileInterval))
	}
	return errors.Join(errs...)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// ParseKey decodes a base64 gossip key (the format of `openssl rand
// -base64 32`). The empty string means no key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key: not base64: %w", err)
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip key decodes to %d bytes; want 16, 24 or 32", n)
	}
	return k, nil
}

// ParseJoin splits a comma-separated list of host:port addresses.
func ParseJoin(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(part); err != nil {
			return nil, fmt.Errorf("join address %q: %w", part, err)
		}
		out = append(out, part)
	}
	return out, nil
}
