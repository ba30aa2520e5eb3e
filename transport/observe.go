package transport

import (
	"fmt"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/raftkv/raftkv/api/kvpb"
)

// newServerMetrics builds the gRPC server metrics (go-grpc-middleware's
// Prometheus provider) with the raftkv_ prefix and registers them with reg:
// raftkv_grpc_server_started_total, raftkv_grpc_server_handled_total (by
// method and code), raftkv_grpc_server_handling_seconds (by method), and
// the stream message counters. A nil reg disables them.
func newServerMetrics(reg prometheus.Registerer) (*grpcprom.ServerMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace("raftkv")),
		grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramNamespace("raftkv"),
			// 0.5 ms to about 8 s: a local serializable read up to a write
			// waiting out an election.
			grpcprom.WithHistogramBuckets(prometheus.ExponentialBuckets(0.0005, 2, 15)),
		),
	)
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("register grpc metrics: %w", err)
	}
	return m, nil
}

// interceptorOptions returns the server options that install m's
// interceptors outermost, so they time everything the server does.
func interceptorOptions(m *grpcprom.ServerMetrics, unary ...grpc.UnaryServerInterceptor) []grpc.ServerOption {
	if m == nil {
		return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...)}
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{m.UnaryServerInterceptor()}, unary...)...),
		grpc.ChainStreamInterceptor(m.StreamServerInterceptor()),
	}
}

// registerHealthAndReflection adds the standard gRPC health service and
// server reflection (so grpcurl works without the .proto files). The
// overall status ("") is SERVING while the server runs; the KV service's
// status follows SetServing.
func (s *Server) registerHealthAndReflection() {
	s.health = health.NewServer()
	s.health.SetServingStatus(kvpb.KV_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
}

// SetServing sets the gRPC health status of the KV service (the node's
// readiness; package node keeps it current). The overall status stays
// SERVING until Stop.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(kvpb.KV_ServiceDesc.ServiceName, st)
}
