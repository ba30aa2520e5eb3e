package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
)

// action is what the retry loop does after a failed try.
type action int

const (
	// actReturn returns the error to the caller as it is.
	actReturn action = iota
	// actNext retries on the endpoint after the failed one.
	actNext
	// actRedirect retries at the hinted leader address.
	actRedirect
	// actUnknown returns the error wrapped in ErrOutcomeUnknown.
	actUnknown
)

// invoke runs call against one endpoint after another until it succeeds,
// fails in a way that must not be retried, or ctx ends. write selects the
// write retry policy (see the package documentation).
func invoke[T any](ctx context.Context, c *Client, op string, write bool, call func(context.Context, *grpc.ClientConn) (T, error)) (T, error) {
	var zero T
	ep := c.first(write)
	var lastErr error     // "ENDPOINT: ERR" of the last failed try
	waits := 0            // backoff waits so far; sets the next wait's length
	mustWait := false     // wait before the next try
	freeRedirect := false // the try that just failed followed a redirect without waiting
	for {
		if mustWait {
			if err := c.wait(ctx, waits); err != nil {
				return zero, fmt.Errorf("%s: %w (last error from %w)", op, err, lastErr)
			}
			waits++
		}
		if err := ctx.Err(); err != nil {
			if lastErr == nil {
				return zero, fmt.Errorf("%s: %w", op, err)
			}
			return zero, fmt.Errorf("%s: %w (last error from %w)", op, err, lastErr)
		}
		cc, err := c.conn(ep)
		if err != nil {
			return zero, fmt.Errorf("%s: %w", op, err)
		}
		resp, err := call(ctx, cc)
		if err == nil {
			c.succeeded(ep, write)
			return resp, nil
		}
		lastErr = fmt.Errorf("%s: %w", ep, err)
		act, hint := classify(err, write)
		switch act {
		case actReturn:
			if ctxErr := ctxError(ctx, err); ctxErr != nil {
				return zero, fmt.Errorf("%s: %w (last error from %w)", op, ctxErr, lastErr)
			}
			return zero, fmt.Errorf("%s %w", op, lastErr)
		case actUnknown:
			c.failed(ep)
			if ctxErr := ctxError(ctx, err); ctxErr != nil {
				return zero, fmt.Errorf("%s %s: %w: %w (%w)", op, ep, ErrOutcomeUnknown, ctxErr, err)
			}
			return zero, fmt.Errorf("%s %s: %w: %w", op, ep, ErrOutcomeUnknown, err)
		case actRedirect:
			c.learnLeader(hint)
			// A hint is news, so follow it at once; but two redirects in a
			// row without a wait could ping-pong between stale hints during
			// an election.
			mustWait = hint == ep || freeRedirect
			freeRedirect = !mustWait
			ep = hint
		case actNext:
			ep = c.failed(ep)
			mustWait, freeRedirect = true, false
		}
	}
}

// ctxError returns the context error behind a failed try, so that
// errors.Is(err, context.DeadlineExceeded) holds for the caller although grpc
// reports deadlines as a status. The server's copy of the deadline can fire
// a moment before ctx's own timer, hence the status check.
func ctxError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if status.Code(err) == codes.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return nil
}

// wait sleeps the n-th backoff, or fails at once if ctx ends first or its
// deadline is too close for the wait to end before it.
func (c *Client) wait(ctx context.Context, n int) error {
	d := c.cfg.RetryBackoff.Initial << min(n, 30)
	if d <= 0 || d > c.cfg.RetryBackoff.Max {
		d = c.cfg.RetryBackoff.Max
	}
	d = d/2 + rand.N(d/2+1)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// classify decides what to do after a try failed with err. hint is the
// leader address for actRedirect.
func classify(err error, write bool) (act action, hint string) {
	st, ok := status.FromError(err)
	if !ok {
		return actReturn, ""
	}
	if info := errorInfo(st); info != nil {
		switch info.GetReason() {
		case kvpb.ReasonNotLeader:
			if addr := info.GetMetadata()[kvpb.MetadataLeaderAddr]; addr != "" {
				return actRedirect, addr
			}
			return actNext, ""
		case kvpb.ReasonNoLeader:
			return actNext, ""
		case kvpb.ReasonOutcomeUnknown:
			if write {
				return actUnknown, ""
			}
			return actNext, ""
		}
		// Any other reason is decided by its code below.
	}
	switch st.Code() {
	case codes.Unavailable:
		if !write || neverSent(st) {
			return actNext, ""
		}
		return actUnknown, ""
	case codes.DeadlineExceeded, codes.Canceled:
		// The request may have reached the leader before the caller gave up.
		if write {
			return actUnknown, ""
		}
	}
	return actReturn, ""
}

// errorInfo returns the raftkv ErrorInfo detail of st, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == kvpb.ErrorDomain {
			return info
		}
	}
	return nil
}

// neverSent reports whether an Unavailable status says the request never
// left this process because no connection could be had.
//
// A string check is unavoidable here: grpc-go fails a fail-fast RPC on a
// channel in TRANSIENT_FAILURE with codes.Unavailable and, as the whole
// message, the text of the subchannel's last connection error
// (`connection error: desc = "transport: Error while dialing: dial tcp ...:
// connect: connection refused"`) or of the resolver's error
// ("name resolver error: ..."). It offers no typed error or status detail to
// tell that apart from a connection that broke in flight, which is also
// Unavailable. The check is deliberately narrow: it matches those message
// prefixes only, so a server's own message that merely mentions a dial
// failure (say, of its forward to the leader) does not count. A miss is safe
// (the write is reported as ErrOutcomeUnknown), and TestDeadEndpointNeverSent
// pins the grpc-go wording so an upgrade that changes it fails there.
func neverSent(st *status.Status) bool {
	msg := st.Message()
	return strings.HasPrefix(msg, `connection error: desc = "transport: Error while dialing`) ||
		strings.HasPrefix(msg, "name resolver error")
}
