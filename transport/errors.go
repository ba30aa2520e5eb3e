package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
)

var (
	// ErrNoLeader means the cluster has no known, reachable leader; nothing
	// was proposed, so the request is safe to retry.
	ErrNoLeader = errors.New("no leader")
	// ErrOutcomeUnknown means a write was proposed but its fate is unknown
	// (leadership lost, shutdown or a broken forward while in flight). The
	// write may or may not be applied.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrInvalidArgument marks a request rejected by validation; nothing was
	// proposed.
	ErrInvalidArgument = errors.New("invalid argument")
)

// NotLeaderError means this node is not the leader and did not propose the
// request (it was already forwarded once). LeaderID and LeaderAddr hint at
// the current leader when known.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

// Error implements error.
func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return "not the leader"
	}
	return fmt.Sprintf("not the leader; leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, raft.ErrNotLeader) hold for a NotLeaderError.
func (e *NotLeaderError) Is(target error) bool { return target == raft.ErrNotLeader }

// ToStatus maps err to the gRPC status a handler returns. It is the single
// place where errors become statuses. Errors that already are gRPC statuses
// (an answer relayed from the leader) pass through unchanged.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var notLeader *NotLeaderError
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return withReason(codes.InvalidArgument, err, kvpb.ReasonInvalidArgument, nil)
	case errors.Is(err, ErrUnsafeChange):
		return withReason(codes.FailedPrecondition, err, kvpb.ReasonUnsafeChange, nil)
	case errors.As(err, &notLeader):
		md := map[string]string{}
		if notLeader.LeaderAddr != "" {
			md[kvpb.MetadataLeaderID] = notLeader.LeaderID
			md[kvpb.MetadataLeaderAddr] = notLeader.LeaderAddr
		}
		return withReason(codes.FailedPrecondition, err, kvpb.ReasonNotLeader, md)
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, raft.ErrLeadershipLost):
		return withReason(codes.Unavailable, err, kvpb.ReasonOutcomeUnknown, nil)
	case errors.Is(err, ErrNoLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return withReason(codes.Unavailable, err, kvpb.ReasonNoLeader, nil)
	case errors.Is(err, raft.ErrNotLeader):
		return withReason(codes.FailedPrecondition, err, kvpb.ReasonNotLeader, nil)
	case errors.Is(err, raft.ErrRaftShutdown):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

func withReason(code codes.Code, err error, reason string, md map[string]string) error {
	st := status.New(code, err.Error())
	detailed, derr := st.WithDetails(&errdetails.ErrorInfo{Domain: kvpb.ErrorDomain, Reason: reason, Metadata: md})
	if derr != nil {
		return st.Err()
	}
	return detailed.Err()
}

// Reason returns the raftkv ErrorInfo reason carried by a gRPC status error,
// or "" when there is none.
func Reason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == kvpb.ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

// ClassifyForwardError turns the error of a call forwarded to the leader
// into what the original caller should see. Statuses with a raftkv reason,
// and answers of the leader itself, pass through. A connection that failed
// before the request was sent becomes ErrNoLeader (safe to retry); any other
// transport failure of a write becomes ErrOutcomeUnknown, since the leader
// may have applied it.
func ClassifyForwardError(err error, write bool) error {
	if err == nil {
		return nil
	}
	if Reason(err) != "" {
		return err
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		if write && ok && st.Code() == codes.DeadlineExceeded {
			return fmt.Errorf("forward to leader: %w: %w", ErrOutcomeUnknown, err)
		}
		return err
	}
	// grpc-go reports a failure to connect (nothing sent) only through the
	// message text; there is no typed error to test for. A leader whose
	// name stopped resolving (a killed container drops out of Docker's DNS)
	// was never reached either.
	if strings.Contains(st.Message(), "while dialing") || strings.Contains(st.Message(), "connection refused") ||
		strings.Contains(st.Message(), "name resolver error") {
		return fmt.Errorf("forward to leader: %w: %w", ErrNoLeader, err)
	}
	if write {
		return fmt.Errorf("forward to leader: %w: %w", ErrOutcomeUnknown, err)
	}
	return fmt.Errorf("forward to leader: %w: %w", ErrNoLeader, err)
}
