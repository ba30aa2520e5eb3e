package main

import (
	"context"
	"flag"

	"github.com/raftkv/raftkv/api/kvpb"
)

var leaderSpec = commandSpec{
	name:     "leader",
	synopsis: "leader transfer [--to ID]",
	summary:  "hand leadership to another voter",
	help: `leader transfer asks the leader to hand leadership to the voter --to, or,
without --to, to the most up-to-date other voter, and prints who leads now.
Without --force it refuses a target that is not healthy (unreachable, behind,
or out of contact with the leader), or when no other voter is healthy.`,
	new: func(e *env) command { return newLeaderCommand(e) },
}

// leaderCommand implements `raftkvctl leader transfer`.
type leaderCommand struct {
	env   *env
	fs    *flag.FlagSet
	to    string
	force bool
}

func newLeaderCommand(e *env) *leaderCommand {
	c := &leaderCommand{env: e, fs: newFlagSet("leader")}
	c.fs.StringVar(&c.to, "to", "", "`ID` of the voter to hand leadership to (default: the most up-to-date one)")
	c.fs.BoolVar(&c.force, "force", false, "transfer even to a server that does not look healthy")
	return c
}

func (c *leaderCommand) flags() *flag.FlagSet { return c.fs }

func (c *leaderCommand) run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "transfer" {
		return usageErrorf("want subcommand transfer")
	}
	if err := wantArgs(args[1:], 0, 0, "no arguments after transfer"); err != nil {
		return err
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	resp, err := cli.LeaderTransfer(ctx, &kvpb.LeaderTransferRequest{ToId: c.to, Force: c.force})
	if err != nil {
		return err
	}
	return c.env.printer().leaderTransfer(resp)
}
