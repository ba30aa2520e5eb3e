package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/raftkv/raftkv/api/kvpb"
)

// Membership changes go to the leader: a follower answers NOT_LEADER with a
// hint, which the client follows. They are treated as writes, so a change
// whose outcome is unknown is reported as ErrOutcomeUnknown rather than
// retried. A change the leader refuses for safety fails with
// FailedPrecondition, reason UNSAFE_CHANGE (kvpb.ReasonUnsafeChange); set
// Force in the request to override it.

// MemberAdd adds a server to the raft configuration.
func (c *Client) MemberAdd(ctx context.Context, req *kvpb.MemberAddRequest) (*kvpb.MemberChangeResponse, error) {
	return invoke(ctx, c, "member add", true, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.MemberChangeResponse, error) {
		return kvpb.NewAdminClient(cc).MemberAdd(ctx, req)
	})
}

// MemberRemove removes a server from the raft configuration.
func (c *Client) MemberRemove(ctx context.Context, req *kvpb.MemberRemoveRequest) (*kvpb.MemberChangeResponse, error) {
	return invoke(ctx, c, "member remove", true, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.MemberChangeResponse, error) {
		return kvpb.NewAdminClient(cc).MemberRemove(ctx, req)
	})
}

// MemberPromote makes a non-voter a voter.
func (c *Client) MemberPromote(ctx context.Context, req *kvpb.MemberPromoteRequest) (*kvpb.MemberChangeResponse, error) {
	return invoke(ctx, c, "member promote", true, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.MemberChangeResponse, error) {
		return kvpb.NewAdminClient(cc).MemberPromote(ctx, req)
	})
}

// MemberDemote makes a voter a non-voter.
func (c *Client) MemberDemote(ctx context.Context, req *kvpb.MemberDemoteRequest) (*kvpb.MemberChangeResponse, error) {
	return invoke(ctx, c, "member demote", true, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.MemberChangeResponse, error) {
		return kvpb.NewAdminClient(cc).MemberDemote(ctx, req)
	})
}

// LeaderTransfer hands leadership to another voter (req.ToId, or the most
// up-to-date one when empty).
func (c *Client) LeaderTransfer(ctx context.Context, req *kvpb.LeaderTransferRequest) (*kvpb.LeaderTransferResponse, error) {
	return invoke(ctx, c, "leader transfer", true, func(ctx context.Context, cc *grpc.ClientConn) (*kvpb.LeaderTransferResponse, error) {
		return kvpb.NewAdminClient(cc).LeaderTransfer(ctx, req)
	})
}
