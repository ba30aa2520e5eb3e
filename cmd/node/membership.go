package main

import (
	"flag"
	"fmt"
	"net"

	"github.com/raftkv/raftkv/cluster"
	"github.com/raftkv/raftkv/node"
)

// defaultGossipPort is memberlist's usual port, used on the gRPC host when
// gossip is on without --gossip-addr.
const defaultGossipPort = "7946"

// membershipFlags are the gossip and membership flags; apply copies them
// into node.Config after parsing.
type membershipFlags struct {
	gossipAddr string
	join       string
	key        string
}

func registerMembershipFlags(fs *flag.FlagSet, cfg *node.Config) *membershipFlags {
	mf := &membershipFlags{}
	c := &cfg.Cluster
	fs.StringVar(&mf.gossipAddr, "gossip-addr", "", "memberlist gossip address, UDP and TCP (default: port "+defaultGossipPort+" on the --grpc-addr host once gossip is on; --join or --bootstrap-expect turn it on)")
	fs.StringVar(&c.GossipAdvertise, "gossip-advertise", "", "gossip address other nodes use (default: --gossip-addr)")
	fs.StringVar(&mf.join, "join", "", "gossip addresses of other nodes, host:port,...; retried with backoff until one answers")
	fs.StringVar(&mf.key, "gossip-key", "", "base64 AES key (16, 24 or 32 bytes, e.g. `openssl rand -base64 32`) encrypting gossip; nodes without it can't join (prefer RAFTKV_GOSSIP_KEY)")
	fs.StringVar(&c.GossipProfile, "gossip-profile", c.GossipProfile, "memberlist timing: lan, wan or local (loopback, faster failure detection)")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "start a new cluster once this many servers see each other through gossip; the lowest id bootstraps it with all of them as voters (instead of --bootstrap/--initial-cluster)")
	fs.DurationVar(&c.StabilizationTime, "server-stabilization-time", c.StabilizationTime, "how long a new server must stay healthy as a non-voter before it is promoted to voter")
	fs.DurationVar(&c.DeadServerCleanup, "dead-server-cleanup", 0, "remove a server gossip has reported failed for this long from the raft configuration (0: never; failed servers are only shown)")
	fs.IntVar(&c.MinQuorum, "min-quorum", c.MinQuorum, "fewest voters automatic removals, and manual removals and demotions without --force, may leave")
	fs.Uint64Var(&c.MaxAppliedLag, "max-applied-lag", c.MaxAppliedLag, "entries a server's applied index may trail the leader's and still count as caught up")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", c.ReconcileInterval, "period of the leader's full membership reconcile (gossip events trigger one sooner)")
	fs.BoolVar(&cfg.LeaveOnTerminate, "leave-on-terminate", false, "on SIGTERM/SIGINT also leave gossip and remove this node from the raft configuration (a leader always transfers leadership first)")
	return mf
}

// gossipOn reports whether any flag asks for gossip.
func (mf *membershipFlags) gossipOn(cfg *node.Config) bool {
	return mf.gossipAddr != "" || mf.join != "" || cfg.Cluster.BootstrapExpect > 0
}

// apply fills cfg.Cluster from the parsed flags.
func (mf *membershipFlags) apply(cfg *node.Config) error {
	var err error
	if cfg.Cluster.Join, err = cluster.ParseJoin(mf.join); err != nil {
		return err
	}
	if cfg.Cluster.Key, err = cluster.ParseKey(mf.key); err != nil {
		return fmt.Errorf("--gossip-key: %w", err)
	}
	cfg.Cluster.GossipAddr = mf.gossipAddr
	if cfg.Cluster.GossipAddr == "" && mf.gossipOn(cfg) {
		host, _, err := net.SplitHostPort(cfg.GRPCAddr)
		if err != nil {
			return fmt.Errorf("--grpc-addr %q: %w", cfg.GRPCAddr, err)
		}
		cfg.Cluster.GossipAddr = net.JoinHostPort(host, defaultGossipPort)
	}
	return nil
}
