package main

import (
	"context"
	"flag"

	"github.com/raftkv/raftkv/api/kvpb"
)

var scanSpec = commandSpec{
	name:     "scan",
	synopsis: "scan [PREFIX]",
	summary:  "list keys in key order",
	help: `List the keys starting with PREFIX in key order; without PREFIX, every key.
With --range-end END, list the keys in [PREFIX, END) instead (PREFIX is then the
start key; without it the range starts at the first key).

When --limit cuts the result short, a note after the table says so.`,
	new: func(e *env) command { return newScanCommand(e) },
}

// scanCommand implements `raftkvctl scan`.
type scanCommand struct {
	env         *env
	fs          *flag.FlagSet
	rangeEnd    string
	limit       int64
	keysOnly    bool
	countOnly   bool
	consistency *consistencyFlag
}

func newScanCommand(e *env) *scanCommand {
	c := &scanCommand{env: e, fs: newFlagSet("scan")}
	c.fs.StringVar(&c.rangeEnd, "range-end", "", "list the keys in [PREFIX, `END`)")
	c.fs.Int64Var(&c.limit, "limit", 0, "return at most `N` keys (0: no limit)")
	c.fs.BoolVar(&c.keysOnly, "keys-only", false, "print keys without values")
	c.fs.BoolVar(&c.countOnly, "count-only", false, "print only the number of keys")
	c.consistency = newConsistencyFlag(c.fs)
	return c
}

func (c *scanCommand) flags() *flag.FlagSet { return c.fs }

func (c *scanCommand) run(ctx context.Context, args []string) error {
	if err := wantArgs(args, 0, 1, "at most one PREFIX"); err != nil {
		return err
	}
	if c.limit < 0 {
		return usageErrorf("--limit must not be negative, got %d", c.limit)
	}
	req := &kvpb.RangeRequest{
		Limit:       c.limit,
		KeysOnly:    c.keysOnly,
		CountOnly:   c.countOnly,
		Consistency: c.consistency.c,
		// The note under a cut-short table says how many keys there are.
		CountTotal: c.limit > 0,
	}
	if len(args) == 1 {
		req.Key = []byte(args[0])
	}
	switch {
	case c.rangeEnd == "":
		// An empty key with prefix ranges over every key.
		req.Prefix = true
	case len(req.Key) == 0:
		// Keys are never empty, so "\x00" is the first possible key.
		req.Key = []byte{0}
		req.RangeEnd = []byte(c.rangeEnd)
	default:
		req.RangeEnd = []byte(c.rangeEnd)
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	resp, err := cli.Range(ctx, req)
	if err != nil {
		return err
	}
	return c.env.printer().scan(resp, scanView{keysOnly: c.keysOnly, countOnly: c.countOnly})
}
