package kvtarget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/loadgen"
)

// Target is one gRPC connection to a raftkv node. It is safe for
// concurrent use.
type Target struct {
	endpoint string
	cc       *grpc.ClientConn
	kv       kvpb.KVClient
}

var _ loadgen.Target = (*Target)(nil)

// Dial connects to endpoint and waits until the connection is ready or ctx
// ends, so that no measured request pays for the TCP and HTTP/2 setup.
func Dial(ctx context.Context, endpoint string) (*Target, error) {
	cc, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", endpoint, err)
	}
	if err := WaitReady(ctx, cc); err != nil {
		_ = cc.Close()
		return nil, fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	return &Target{endpoint: endpoint, cc: cc, kv: kvpb.NewKVClient(cc)}, nil
}

// WaitReady connects cc and waits until it is Ready or ctx ends. The etcd
// side of the bench harness uses it too, so both systems start measuring
// on established connections.
func WaitReady(ctx context.Context, cc *grpc.ClientConn) error {
	cc.Connect()
	for {
		s := cc.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.Idle:
			cc.Connect()
		}
		if !cc.WaitForStateChange(ctx, s) {
			return fmt.Errorf("connection %s: %w", s, ctx.Err())
		}
	}
}

// Dialer returns a loadgen.Dialer that places connection i on
// endpoints[i mod len(endpoints)].
func Dialer(endpoints []string) loadgen.Dialer {
	return func(ctx context.Context, i int) (loadgen.Target, error) {
		if len(endpoints) == 0 {
			return nil, errors.New("no endpoints")
		}
		return Dial(ctx, endpoints[i%len(endpoints)])
	}
}

// Put writes value under key.
func (t *Target) Put(ctx context.Context, key, value []byte) error {
	_, err := t.kv.Put(ctx, &kvpb.PutRequest{Key: key, Value: value})
	return err
}

// Get reads key with consistency c.
func (t *Target) Get(ctx context.Context, key []byte, c loadgen.Consistency) error {
	cons := kvpb.Consistency_CONSISTENCY_LINEARIZABLE
	if c == loadgen.Serializable {
		cons = kvpb.Consistency_CONSISTENCY_SERIALIZABLE
	}
	_, err := t.kv.Get(ctx, &kvpb.GetRequest{Key: key, Consistency: cons})
	return err
}

// Txn puts value under key if key's mod revision is below math.MaxInt64,
// else reads key (loadgen.Target's compare-and-put).
func (t *Target) Txn(ctx context.Context, key, value []byte) error {
	_, err := t.kv.Txn(ctx, &kvpb.TxnRequest{
		Compare: []*kvpb.Compare{{
			Key: key, Target: kvpb.Compare_MOD, Result: kvpb.Compare_LESS,
			TargetUnion: &kvpb.Compare_ModRevision{ModRevision: math.MaxInt64},
		}},
		Success: []*kvpb.RequestOp{{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: key, Value: value}}}},
		Failure: []*kvpb.RequestOp{{Request: &kvpb.RequestOp_RequestRange{RequestRange: &kvpb.RangeRequest{Key: key}}}},
	})
	return err
}

// Ping asks the node's standard gRPC health service for the overall
// status: a call that touches neither raft nor the store.
func (t *Target) Ping(ctx context.Context) error { return Ping(ctx, t.cc) }

// Ping is Target.Ping on any connection to a server that registers the
// standard health service (raftkv and etcd both do).
func Ping(ctx context.Context, cc grpc.ClientConnInterface) error {
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// Close closes the connection.
func (t *Target) Close() error { return t.cc.Close() }

// ErrorKind names err by its gRPC code and, for raftkv's own errors, the
// reason: "Unavailable", "FailedPrecondition/NOT_LEADER", "DeadlineExceeded".
func (t *Target) ErrorKind(err error) string { return ErrorKind(err) }

// ErrorKind is Target.ErrorKind as a function, for other gRPC clients.
func ErrorKind(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			// Named like the gRPC codes of the same failures.
			return status.FromContextError(err).Code().String()
		}
		return loadgen.DefaultErrorKind(err)
	}
	kind := st.Code().String()
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == kvpb.ErrorDomain && info.GetReason() != "" {
			kind += "/" + info.GetReason()
		}
	}
	return kind
}

// FindLeader asks every endpoint for its Status, each with its own deadline
// of ctx, and returns the endpoint (as given) that says it is the leader;
// failing that, the leader's advertised gRPC address as a follower reports
// it. It fails when no endpoint knows a leader.
func FindLeader(ctx context.Context, endpoints []string) (string, error) {
	type answer struct {
		st  *kvpb.StatusResponse
		err error
	}
	answers := make([]answer, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() {
			cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				answers[i].err = fmt.Errorf("dial %s: %w", ep, err)
				return
			}
			defer cc.Close()
			st, err := kvpb.NewAdminClient(cc).Status(ctx, &kvpb.StatusRequest{})
			if err != nil {
				err = fmt.Errorf("status %s: %w", ep, err)
			}
			answers[i] = answer{st, err}
		})
	}
	wg.Wait()
	var errs []error
	for i, a := range answers {
		if a.err == nil && a.st.GetRaftState() == "Leader" {
			return endpoints[i], nil
		}
		errs = append(errs, a.err)
	}
	for _, a := range answers {
		if a.err == nil && a.st.GetLeaderGrpcAddr() != "" {
			return a.st.GetLeaderGrpcAddr(), nil
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("no endpoint knows a leader: %w", err)
	}
	return "", fmt.Errorf("none of %d endpoints knows a leader", len(endpoints))
}
