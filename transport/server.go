package transport

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/raftkv/raftkv/api/kvpb"
)

// KV serves client data requests. Package node implements it. Methods are
// called concurrently from gRPC handler goroutines with a ctx that carries
// the caller's deadline; requests have already passed Limits validation.
// Errors should be from this package's vocabulary (or wrap raft's errors);
// Server maps them to statuses.
type KV interface {
	Get(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error)
	Put(ctx context.Context, req *kvpb.PutRequest) (*kvpb.PutResponse, error)
	Delete(ctx context.Context, req *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error)
	Range(ctx context.Context, req *kvpb.RangeRequest) (*kvpb.RangeResponse, error)
	Txn(ctx context.Context, req *kvpb.TxnRequest) (*kvpb.TxnResponse, error)
}

// Admin serves operator requests. Package node implements it; same calling
// contract as KV.
type Admin interface {
	Status(ctx context.Context) (*kvpb.StatusResponse, error)
	MemberList(ctx context.Context) (*kvpb.MemberListResponse, error)
	// StateHash hashes the node's whole replicated state; it reads the
	// entire store.
	StateHash(ctx context.Context) (*kvpb.StateHashResponse, error)
	// Membership changes; see Membership.
	Membership
}

// Internal serves node-to-node requests. Only a leader answers them; others
// return a *NotLeaderError.
type Internal interface {
	// ReadIndex returns an index at which a linearizable read may be served
	// once the caller's applied index reaches it, and the leader's term.
	ReadIndex(ctx context.Context) (index, term uint64, err error)
	// RegisterMember records id's gRPC address through raft.
	RegisterMember(ctx context.Context, id, grpcAddr string) (index uint64, err error)
}

// ServerConfig configures the gRPC server.
type ServerConfig struct {
	// Limits bounds request sizes.
	Limits Limits
	// DefaultTimeout is the deadline given to a request that has none.
	DefaultTimeout time.Duration
	// Creds, when set, secures the server (the seam for mTLS; nil means
	// plaintext).
	Creds credentials.TransportCredentials
}

// Server is the gRPC server of one node.
type Server struct {
	grpc     *grpc.Server
	cfg      ServerConfig
	kv       KV
	admin    Admin
	internal Internal
	logger   *slog.Logger
	health   *health.Server
}

// NewServer builds the gRPC server and registers the KV, Admin and Internal
// services, the standard health service and server reflection. Its request
// metrics go to reg (nil disables them). Call Serve to start it.
func NewServer(cfg ServerConfig, kv KV, admin Admin, internal Internal, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	s := &Server{cfg: cfg, kv: kv, admin: admin, internal: internal, logger: logger.With("component", "grpc")}
	metrics, err := newServerMetrics(reg)
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{
		// Oversize messages are refused with ResourceExhausted from the
		// length prefix, before any decoding.
		grpc.MaxRecvMsgSize(cfg.Limits.MaxRequestBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
	opts = append(opts, interceptorOptions(metrics, s.deadlineInterceptor)...)
	if cfg.Creds != nil {
		opts = append(opts, grpc.Creds(cfg.Creds))
	}
	s.grpc = grpc.NewServer(opts...)
	kvpb.RegisterKVServer(s.grpc, kvServer{s: s})
	kvpb.RegisterAdminServer(s.grpc, adminServer{s: s})
	kvpb.RegisterInternalServer(s.grpc, internalServer{s: s})
	s.registerHealthAndReflection()
	return s, nil
}

// GRPC exposes the underlying server so other services (health, reflection)
// can register on the same port.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Serve accepts connections on ln until Stop. It returns nil after Stop.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.grpc.Serve(ln); err != nil && err != grpc.ErrServerStopped {
		return err
	}
	return nil
}

// Stop drains in-flight requests for up to grace, then closes every
// connection and returns, even if some handlers are still running: they
// finish on their own (their answers go nowhere) once what they wait for
// (raft, shut down next) gives up.
func (s *Server) Stop(grace time.Duration) {
	// Health watchers and checkers see NOT_SERVING while the server drains.
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		// Stop closes every connection, but grpc's GracefulStop goroutine
		// still waits for every running handler to return. A handler parked
		// on a raft future (an apply waiting for commit, a VerifyLeader)
		// returns only once raft shuts down, which node does after this
		// Stop: waiting for it here would hang the shutdown for good.
		s.grpc.Stop()
	}
}

func (s *Server) deadlineInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok && s.cfg.DefaultTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.DefaultTimeout)
		defer cancel()
	}
	return handler(ctx, req)
}

type forwardedKey struct{}

// IsForwarded reports whether the request in ctx was forwarded by another
// node, in which case it must not be forwarded again.
func IsForwarded(ctx context.Context) bool {
	if v, ok := ctx.Value(forwardedKey{}).(bool); ok {
		return v
	}
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(kvpb.ForwardedHeader)) > 0
}

// ForwardContext marks an outgoing request as forwarded by this node.
func ForwardContext(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kvpb.ForwardedHeader, "1")
}

type kvServer struct {
	kvpb.UnimplementedKVServer
	s *Server
}

func (h kvServer) Get(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	if err := h.s.cfg.Limits.ValidateGet(req); err != nil {
		return nil, ToStatus(err)
	}
	resp, err := h.s.kv.Get(ctx, req)
	return resp, ToStatus(err)
}

func (h kvServer) Put(ctx context.Context, req *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	if err := h.s.cfg.Limits.ValidatePut(req); err != nil {
		return nil, ToStatus(err)
	}
	resp, err := h.s.kv.Put(ctx, req)
	return resp, ToStatus(err)
}

func (h kvServer) Delete(ctx context.Context, req *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error) {
	if err := h.s.cfg.Limits.ValidateDelete(req); err != nil {
		return nil, ToStatus(err)
	}
	resp, err := h.s.kv.Delete(ctx, req)
	return resp, ToStatus(err)
}

func (h kvServer) Range(ctx context.Context, req *kvpb.RangeRequest) (*kvpb.RangeResponse, error) {
	if err := h.s.cfg.Limits.ValidateRange(req); err != nil {
		return nil, ToStatus(err)
	}
	resp, err := h.s.kv.Range(ctx, req)
	return resp, ToStatus(err)
}

func (h kvServer) Txn(ctx context.Context, req *kvpb.TxnRequest) (*kvpb.TxnResponse, error) {
	if err := h.s.cfg.Limits.ValidateTxn(req); err != nil {
		return nil, ToStatus(err)
	}
	resp, err := h.s.kv.Txn(ctx, req)
	return resp, ToStatus(err)
}

type adminServer struct {
	kvpb.UnimplementedAdminServer
	s *Server
}

func (h adminServer) Status(ctx context.Context, _ *kvpb.StatusRequest) (*kvpb.StatusResponse, error) {
	resp, err := h.s.admin.Status(ctx)
	return resp, ToStatus(err)
}

func (h adminServer) MemberList(ctx context.Context, _ *kvpb.MemberListRequest) (*kvpb.MemberListResponse, error) {
	resp, err := h.s.admin.MemberList(ctx)
	return resp, ToStatus(err)
}

func (h adminServer) StateHash(ctx context.Context, _ *kvpb.StateHashRequest) (*kvpb.StateHashResponse, error) {
	resp, err := h.s.admin.StateHash(ctx)
	return resp, ToStatus(err)
}

type internalServer struct {
	kvpb.UnimplementedInternalServer
	s *Server
}

func (h internalServer) ReadIndex(ctx context.Context, _ *kvpb.ReadIndexRequest) (*kvpb.ReadIndexResponse, error) {
	idx, term, err := h.s.internal.ReadIndex(context.WithValue(ctx, forwardedKey{}, true))
	if err != nil {
		return nil, ToStatus(err)
	}
	return &kvpb.ReadIndexResponse{Index: idx, Term: term}, nil
}

func (h internalServer) RegisterMember(ctx context.Context, req *kvpb.RegisterMemberRequest) (*kvpb.RegisterMemberResponse, error) {
	if req.GetId() == "" || req.GetGrpcAddr() == "" {
		return nil, ToStatus(fmtInvalid("register member needs id and grpc_addr"))
	}
	idx, err := h.s.internal.RegisterMember(context.WithValue(ctx, forwardedKey{}, true), req.GetId(), req.GetGrpcAddr())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &kvpb.RegisterMemberResponse{Index: idx}, nil
}
