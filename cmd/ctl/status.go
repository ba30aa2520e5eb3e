package main

import (
	"context"
	"flag"

	"github.com/raftkv/raftkv/api/kvpb"
)

var statusSpec = commandSpec{
	name:     "status",
	synopsis: "status",
	summary:  "show each endpoint's raft status",
	help: `Ask every endpoint of --endpoints for its status, concurrently, and print one
row per endpoint. An unreachable endpoint is a row with its error; the command
fails (exit 1) only when every endpoint fails.`,
	new: func(e *env) command { return newStatusCommand(e) },
}

// endpointStatus is one endpoint's answer to Status: resp or err is set.
type endpointStatus = endpointAnswer[*kvpb.StatusResponse]

// statusCommand implements `raftkvctl status`.
type statusCommand struct {
	env *env
	fs  *flag.FlagSet
}

func newStatusCommand(e *env) *statusCommand {
	return &statusCommand{env: e, fs: newFlagSet("status")}
}

func (c *statusCommand) flags() *flag.FlagSet { return c.fs }

func (c *statusCommand) run(ctx context.Context, args []string) error {
	if err := wantArgs(args, 0, 0, "no arguments"); err != nil {
		return err
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	rows := askEach(ctx, c.env.globals.endpointList(), cli.Status)
	if err := c.env.printer().status(rows); err != nil {
		return err
	}
	return allFailed(rows)
}
