package main

import (
	"context"
	"flag"
)

var memberSpec = commandSpec{
	name:     "member",
	synopsis: "member list",
	summary:  "list the raft members",
	help: `member list prints the servers of the raft configuration: id, raft address,
gRPC address, suffrage, and a * on the leader.`,
	new: func(e *env) command { return newMemberCommand(e) },
}

// memberCommand implements `raftkvctl member SUBCOMMAND`; only list exists.
type memberCommand struct {
	env *env
	fs  *flag.FlagSet
}

func newMemberCommand(e *env) *memberCommand {
	return &memberCommand{env: e, fs: newFlagSet("member")}
}

func (c *memberCommand) flags() *flag.FlagSet { return c.fs }

func (c *memberCommand) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("missing subcommand: list")
	}
	if args[0] != "list" {
		return usageErrorf("unknown subcommand %q (want list)", args[0])
	}
	if err := wantArgs(args[1:], 0, 0, "no arguments after list"); err != nil {
		return err
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return err
	}
	return c.env.printer().memberList(resp)
}
