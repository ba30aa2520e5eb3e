package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"

	"github.com/raftkv/raftkv/api/kvpb"
)

var hashSpec = commandSpec{
	name:     "hash",
	synopsis: "hash",
	summary:  "show each endpoint's state hash and applied index",
	help: `Ask every endpoint of --endpoints for a SHA-256 over its whole replicated
state (members and every key with its value and revisions) and the applied
index it reflects, concurrently, and print one row per endpoint. Nodes at the
same applied index must report the same hash; the command fails (exit 1) if
two of them do not, or if every endpoint fails. Each node reads its whole
store: use it for consistency checks, not for monitoring loops.`,
	new: func(e *env) command { return newHashCommand(e) },
}

// endpointHash is one endpoint's answer to StateHash: resp or err is set.
type endpointHash = endpointAnswer[*kvpb.StateHashResponse]

// hashCommand implements `raftkvctl hash`.
type hashCommand struct {
	env *env
	fs  *flag.FlagSet
}

func newHashCommand(e *env) *hashCommand {
	return &hashCommand{env: e, fs: newFlagSet("hash")}
}

func (c *hashCommand) flags() *flag.FlagSet { return c.fs }

func (c *hashCommand) run(ctx context.Context, args []string) error {
	if err := wantArgs(args, 0, 0, "no arguments"); err != nil {
		return err
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	rows := askEach(ctx, c.env.globals.endpointList(), cli.StateHash)
	if err := c.env.printer().hash(rows); err != nil {
		return err
	}
	return checkHashes(rows)
}

// checkHashes fails when every endpoint failed, or when two endpoints at the
// same applied index report different hashes.
func checkHashes(rows []endpointHash) error {
	byIndex := map[uint64]endpointHash{}
	for _, r := range rows {
		if r.err != nil {
			continue
		}
		idx := r.resp.GetAppliedIndex()
		if prev, seen := byIndex[idx]; seen && !bytes.Equal(prev.resp.GetSha256(), r.resp.GetSha256()) {
			return fmt.Errorf("state diverged: %s and %s are both at applied index %d with different hashes", prev.endpoint, r.endpoint, idx)
		}
		byIndex[idx] = r
	}
	return allFailed(rows)
}
