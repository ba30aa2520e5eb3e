package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/api/kvpb"
)

// ErrNoLeaderKnown means no endpoint could name a leader.
var ErrNoLeaderKnown = errors.New("no endpoint knows a leader")

// Backup returns a client of the Backup service of one specific node.
// Backup calls are streams or act on one node's backup directory, so they
// neither retry nor move to another endpoint: the caller picks the node
// (see Leader) and decides what a failure means. endpoint need not be in
// the pool and is not added to it.
func (c *Client) Backup(endpoint string) (kvpb.BackupClient, error) {
	cc, err := c.conn(endpoint)
	if err != nil {
		return nil, err
	}
	return kvpb.NewBackupClient(cc), nil
}

// Leader asks the endpoints, in pool order, for their status and returns
// the gRPC address of the leader the first answering node knows. A node
// that is the leader names itself.
func (c *Client) Leader(ctx context.Context) (string, error) {
	var errs []error
	for _, ep := range c.Endpoints() {
		st, err := c.Status(ctx, ep)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if addr := st.GetLeaderGrpcAddr(); addr != "" {
			return addr, nil
		}
		if st.GetRaftState() == "Leader" {
			return ep, nil
		}
		errs = append(errs, fmt.Errorf("%s: knows no leader", ep))
	}
	return "", fmt.Errorf("find leader: %w: %w", ErrNoLeaderKnown, errors.Join(errs...))
}
