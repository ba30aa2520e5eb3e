package main

import (
	"context"
	"flag"
	"fmt"
	"sync"

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

// endpointStatus is one endpoint's answer to Status: status or err is set.
type endpointStatus struct {
	endpoint string
	status   *kvpb.StatusResponse
	err      error
}

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
	eps := c.env.globals.endpointList()
	rows := make([]endpointStatus, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			st, err := cli.Status(ctx, ep)
			rows[i] = endpointStatus{endpoint: ep, status: st, err: err}
		})
	}
	wg.Wait()
	if err := c.env.printer().status(rows); err != nil {
		return err
	}
	for _, r := range rows {
		if r.err == nil {
			return nil
		}
	}
	return fmt.Errorf("all %d endpoints failed; first error: %w", len(rows), rows[0].err)
}
