package transport

import (
	"context"
	"errors"

	"github.com/raftkv/raftkv/api/kvpb"
)

// ErrUnsafeChange marks a membership change the server refused because it
// could cost the cluster its quorum; nothing changed. It maps to
// FailedPrecondition with reason UNSAFE_CHANGE.
var ErrUnsafeChange = errors.New("refused")

// Membership serves the operator's membership changes. Package node
// implements it; same calling contract as KV. Only the leader makes
// changes: others return a *NotLeaderError (with a hint) or ErrNoLeader.
// A change refused for safety returns an error wrapping ErrUnsafeChange
// whose message says why.
type Membership interface {
	MemberAdd(ctx context.Context, req *kvpb.MemberAddRequest) (*kvpb.MemberChangeResponse, error)
	MemberRemove(ctx context.Context, req *kvpb.MemberRemoveRequest) (*kvpb.MemberChangeResponse, error)
	MemberPromote(ctx context.Context, req *kvpb.MemberPromoteRequest) (*kvpb.MemberChangeResponse, error)
	MemberDemote(ctx context.Context, req *kvpb.MemberDemoteRequest) (*kvpb.MemberChangeResponse, error)
	LeaderTransfer(ctx context.Context, req *kvpb.LeaderTransferRequest) (*kvpb.LeaderTransferResponse, error)
}

func (h adminServer) MemberAdd(ctx context.Context, req *kvpb.MemberAddRequest) (*kvpb.MemberChangeResponse, error) {
	if req.GetId() == "" || req.GetRaftAddr() == "" {
		return nil, ToStatus(fmtInvalid("member add needs id and raft_addr"))
	}
	resp, err := h.s.admin.MemberAdd(ctx, req)
	return resp, ToStatus(err)
}

func (h adminServer) MemberRemove(ctx context.Context, req *kvpb.MemberRemoveRequest) (*kvpb.MemberChangeResponse, error) {
	if req.GetId() == "" {
		return nil, ToStatus(fmtInvalid("member remove needs id"))
	}
	resp, err := h.s.admin.MemberRemove(ctx, req)
	return resp, ToStatus(err)
}

func (h adminServer) MemberPromote(ctx context.Context, req *kvpb.MemberPromoteRequest) (*kvpb.MemberChangeResponse, error) {
	if req.GetId() == "" {
		return nil, ToStatus(fmtInvalid("member promote needs id"))
	}
	resp, err := h.s.admin.MemberPromote(ctx, req)
	return resp, ToStatus(err)
}

func (h adminServer) MemberDemote(ctx context.Context, req *kvpb.MemberDemoteRequest) (*kvpb.MemberChangeResponse, error) {
	if req.GetId() == "" {
		return nil, ToStatus(fmtInvalid("member demote needs id"))
	}
	resp, err := h.s.admin.MemberDemote(ctx, req)
	return resp, ToStatus(err)
}

func (h adminServer) LeaderTransfer(ctx context.Context, req *kvpb.LeaderTransferRequest) (*kvpb.LeaderTransferResponse, error) {
	resp, err := h.s.admin.LeaderTransfer(ctx, req)
	return resp, ToStatus(err)
}
