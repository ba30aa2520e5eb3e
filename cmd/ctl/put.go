package main

import (
	"context"
	"flag"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
)

var putSpec = commandSpec{
	name:     "put",
	synopsis: "put [--ttl D] KEY VALUE",
	summary:  "write a key (VALUE - reads stdin)",
	help: `Write VALUE to KEY. A VALUE of "-" reads the value from standard input.

With --ttl (e.g. 30s, 5m, 1h) the key expires that long after the leader
applies the put: the leader deletes it through the log within about half a
second (docs/ttl.md). A put without --ttl removes any expiry the key had,
as Redis SET does.

Table output prints OK and the revision of the write. A put that fails with
"write outcome unknown" may or may not have been applied: read the key.`,
	new: func(e *env) command { return newPutCommand(e) },
}

// putCommand implements `raftkvctl put`.
type putCommand struct {
	env    *env
	fs     *flag.FlagSet
	prevKV bool
	ttl    time.Duration
}

func newPutCommand(e *env) *putCommand {
	c := &putCommand{env: e, fs: newFlagSet("put")}
	c.fs.BoolVar(&c.prevKV, "prev-kv", false, "also print the key-value pair before the put")
	c.fs.DurationVar(&c.ttl, "ttl", 0, "expire the key after `D` (at least 1ms; 0: never, and clear any expiry)")
	return c
}

func (c *putCommand) flags() *flag.FlagSet { return c.fs }

func (c *putCommand) run(ctx context.Context, args []string) error {
	if err := wantArgs(args, 2, 2, "KEY VALUE"); err != nil {
		return err
	}
	if c.ttl < 0 || (c.ttl > 0 && c.ttl < time.Millisecond) {
		return usageErrorf("--ttl must be 0 or at least 1ms, got %s", c.ttl)
	}
	key, err := keyArg(args[0])
	if err != nil {
		return err
	}
	value, err := c.env.readValue(args[1])
	if err != nil {
		return err
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	resp, err := cli.Put(ctx, &kvpb.PutRequest{Key: key, Value: value, PrevKv: c.prevKV, TtlMs: c.ttl.Milliseconds()})
	if err != nil {
		return err
	}
	return c.env.printer().put(resp)
}
