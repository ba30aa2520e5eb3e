package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/raftkv/raftkv/api/kvpb"
)

var getSpec = commandSpec{
	name:     "get",
	synopsis: "get KEY",
	summary:  "read a key (exit 3 if missing)",
	help: `Read KEY and print its value and revisions.

A missing key prints "key not found" on stderr and exits with status 3; with
-o json the response (found: false) is still printed on stdout.`,
	new: func(e *env) command { return newGetCommand(e) },
}

// getCommand implements `raftkvctl get`.
type getCommand struct {
	env         *env
	fs          *flag.FlagSet
	consistency *consistencyFlag
	valueOnly   bool
	noCache     bool
}

func newGetCommand(e *env) *getCommand {
	c := &getCommand{env: e, fs: newFlagSet("get")}
	c.consistency = newConsistencyFlag(c.fs)
	c.fs.BoolVar(&c.valueOnly, "print-value-only", false, "print only the raw value bytes and a newline, whatever -o says")
	c.fs.BoolVar(&c.noCache, "no-cache", false, "read the node's store directly, bypassing its read cache (the answer is the same)")
	return c
}

func (c *getCommand) flags() *flag.FlagSet { return c.fs }

func (c *getCommand) run(ctx context.Context, args []string) error {
	if err := wantArgs(args, 1, 1, "KEY"); err != nil {
		return err
	}
	key, err := keyArg(args[0])
	if err != nil {
		return err
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	resp, err := cli.Get(ctx, &kvpb.GetRequest{Key: key, Consistency: c.consistency.c, NoCache: c.noCache})
	if err != nil {
		return err
	}
	switch {
	case !resp.GetFound():
		if !c.valueOnly && c.env.globals.output == "json" {
			if err := c.env.printer().get(resp); err != nil {
				return err
			}
		}
		return fmt.Errorf("%w: %s", errKeyNotFound, strconv.Quote(args[0]))
	case c.valueOnly:
		if _, err := c.env.stdout.Write(append(resp.GetKv().GetValue(), '\n')); err != nil {
			return fmt.Errorf("write value: %w", err)
		}
		return nil
	}
	return c.env.printer().get(resp)
}
