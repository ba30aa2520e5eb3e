package main

import (
	"context"
	"flag"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

var txnSpec = commandSpec{
	name:     "txn",
	synopsis: "txn KEY VALUE CONDITION",
	summary:  "compare-and-swap one key",
	help: `Atomically write VALUE to KEY if the condition holds (one Txn: on success
put KEY VALUE, on failure read KEY). A VALUE of "-" reads standard input.
CONDITION is exactly one of:

  --if-version N   KEY's version is N (writes since creation)
  --if-value V     KEY's current value is V
  --if-missing     KEY does not exist

Prints SUCCEEDED, or FAILED and KEY's current key-value pair. The exit status
is 0 either way; -o json prints the Txn response, whose "succeeded" says which.`,
	new: func(e *env) command { return newTxnCommand(e) },
}

// txnCommand implements `raftkvctl txn` as a compare-and-swap. A richer
// multi-op txn can grow here by building a different kvpb.TxnRequest; the
// printer already prints any TxnResponse.
type txnCommand struct {
	env       *env
	fs        *flag.FlagSet
	ifVersion int64
	ifValue   string
	ifMissing bool
}

func newTxnCommand(e *env) *txnCommand {
	c := &txnCommand{env: e, fs: newFlagSet("txn")}
	c.fs.Int64Var(&c.ifVersion, "if-version", 0, "swap only if KEY's version is `N`")
	c.fs.StringVar(&c.ifValue, "if-value", "", "swap only if KEY's value is `V`")
	c.fs.BoolVar(&c.ifMissing, "if-missing", false, "swap only if KEY does not exist")
	return c
}

func (c *txnCommand) flags() *flag.FlagSet { return c.fs }

func (c *txnCommand) run(ctx context.Context, args []string) error {
	if err := wantArgs(args, 2, 2, "KEY VALUE"); err != nil {
		return err
	}
	key, err := keyArg(args[0])
	if err != nil {
		return err
	}
	cond, err := c.condition(key)
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
	resp, err := cli.Txn(ctx, compareAndSwap(key, value, cond))
	if err != nil {
		return err
	}
	return c.env.printer().txn(resp)
}

// condition returns the compare selected by the --if-* flags; exactly one
// must be set.
func (c *txnCommand) condition(key []byte) (*kvpb.Compare, error) {
	var conds []*kvpb.Compare
	c.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "if-version":
			conds = append(conds, client.CompareVersion(key, kvpb.Compare_EQUAL, c.ifVersion))
		case "if-value":
			conds = append(conds, client.CompareValue(key, kvpb.Compare_EQUAL, []byte(c.ifValue)))
		case "if-missing":
			if c.ifMissing {
				conds = append(conds, client.CompareExists(key, false))
			}
		}
	})
	if len(conds) != 1 {
		return nil, usageErrorf("exactly one of --if-version, --if-value and --if-missing is required")
	}
	return conds[0], nil
}

// compareAndSwap builds the Txn: if cond holds put key=value, else read key.
func compareAndSwap(key, value []byte, cond *kvpb.Compare) *kvpb.TxnRequest {
	return &kvpb.TxnRequest{
		Compare: []*kvpb.Compare{cond},
		Success: []*kvpb.RequestOp{client.OpPut(key, value)},
		Failure: []*kvpb.RequestOp{client.OpGet(key)},
	}
}
