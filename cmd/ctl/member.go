package main

import (
	"context"
	"flag"

	"github.com/raftkv/raftkv/api/kvpb"
)

var memberSpec = commandSpec{
	name:     "member",
	synopsis: "member list|add|remove|promote|demote",
	summary:  "list or change the raft members",
	help: `member list
    every server of the raft configuration, and every live server gossip knows
    that is not in it (suffrage None): id, suffrage, a * on the leader, its own
    raft state, gossip status (alive, failed, left, none), health, time since
    it last heard from the leader, applied index and lag behind the most
    advanced server, and its gRPC, raft and gossip addresses.
member add ID RAFT_ADDR [--nonvoter]
    add a server (as a voter unless --nonvoter). With gossip, servers are
    added by the leader on their own; this is for servers without it.
member remove ID
    remove a server. A server still alive in gossip is added back as a
    non-voter when it restarts; stop it with --leave-on-terminate instead.
member promote ID
    make a non-voter a voter.
member demote ID
    make a voter a non-voter.

Changes are made by the leader. Each refuses, without --force, what could
cost the cluster its quorum: removing or demoting the leader, leaving fewer
voters than the leader's --min-quorum, or leaving fewer healthy voters than
a quorum; the error says why.`,
	new: func(e *env) command { return newMemberCommand(e) },
}

// memberCommand implements `raftkvctl member SUBCOMMAND`.
type memberCommand struct {
	env      *env
	fs       *flag.FlagSet
	nonvoter bool
	force    bool
}

func newMemberCommand(e *env) *memberCommand {
	c := &memberCommand{env: e, fs: newFlagSet("member")}
	c.fs.BoolVar(&c.nonvoter, "nonvoter", false, "member add: add the server without a vote")
	c.fs.BoolVar(&c.force, "force", false, "make the change even if it could cost the cluster its quorum")
	return c
}

func (c *memberCommand) flags() *flag.FlagSet { return c.fs }

func (c *memberCommand) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("missing subcommand: list, add, remove, promote or demote")
	}
	sub, args := args[0], args[1:]
	if c.nonvoter && sub != "add" {
		return usageErrorf("--nonvoter only goes with member add")
	}
	if c.force && sub == "list" {
		return usageErrorf("--force does not go with member list")
	}
	switch sub {
	case "list":
		if err := wantArgs(args, 0, 0, "no arguments after list"); err != nil {
			return err
		}
	case "add":
		if err := wantArgs(args, 2, 2, "ID RAFT_ADDR"); err != nil {
			return err
		}
	case "remove", "promote", "demote":
		if err := wantArgs(args, 1, 1, "ID"); err != nil {
			return err
		}
	default:
		return usageErrorf("unknown subcommand %q (want list, add, remove, promote or demote)", sub)
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	var resp *kvpb.MemberChangeResponse
	switch sub {
	case "list":
		resp, err := cli.MemberList(ctx)
		if err != nil {
			return err
		}
		return c.env.printer().memberList(resp)
	case "add":
		resp, err = cli.MemberAdd(ctx, &kvpb.MemberAddRequest{Id: args[0], RaftAddr: args[1], Nonvoter: c.nonvoter, Force: c.force})
	case "remove":
		resp, err = cli.MemberRemove(ctx, &kvpb.MemberRemoveRequest{Id: args[0], Force: c.force})
	case "promote":
		resp, err = cli.MemberPromote(ctx, &kvpb.MemberPromoteRequest{Id: args[0], Force: c.force})
	case "demote":
		resp, err = cli.MemberDemote(ctx, &kvpb.MemberDemoteRequest{Id: args[0], Force: c.force})
	}
	if err != nil {
		return err // the client's error names the operation, the server's why
	}
	return c.env.printer().memberChange(sub, args[0], resp)
}
