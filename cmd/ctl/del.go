package main

import (
	"context"
	"flag"

	"github.com/raftkv/raftkv/api/kvpb"
)

var delSpec = commandSpec{
	name:     "del",
	synopsis: "del KEY",
	summary:  "delete a key, a prefix or a range",
	help: `Delete KEY, every key starting with KEY (--prefix), or every key in
[KEY, END) (--range-end END). Table output prints the number of keys deleted.`,
	new: func(e *env) command { return newDelCommand(e) },
}

// delCommand implements `raftkvctl del`.
type delCommand struct {
	env      *env
	fs       *flag.FlagSet
	prefix   bool
	rangeEnd string
	prevKV   bool
}

func newDelCommand(e *env) *delCommand {
	c := &delCommand{env: e, fs: newFlagSet("del")}
	c.fs.BoolVar(&c.prefix, "prefix", false, "delete every key starting with KEY")
	c.fs.StringVar(&c.rangeEnd, "range-end", "", "delete the keys in [KEY, `END`)")
	c.fs.BoolVar(&c.prevKV, "prev-kv", false, "also print the deleted key-value pairs")
	return c
}

func (c *delCommand) flags() *flag.FlagSet { return c.fs }

func (c *delCommand) run(ctx context.Context, args []string) error {
	if err := wantArgs(args, 1, 1, "KEY"); err != nil {
		return err
	}
	key, err := keyArg(args[0])
	if err != nil {
		return err
	}
	if c.prefix && c.rangeEnd != "" {
		return usageErrorf("--prefix and --range-end are mutually exclusive")
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	req := &kvpb.DeleteRequest{Key: key, Prefix: c.prefix, PrevKv: c.prevKV}
	if c.rangeEnd != "" {
		req.RangeEnd = []byte(c.rangeEnd)
	}
	resp, err := cli.Delete(ctx, req)
	if err != nil {
		return err
	}
	return c.env.printer().del(resp)
}
