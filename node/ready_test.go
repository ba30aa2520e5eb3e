package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/node/nodetest"
)

// readyz is a parsed /readyz answer.
type readyz struct {
	code   int
	Status string `json:"status"`
	Reason string `json:"reason"`
	NodeID string `json:"node_id"`
}

func getReadyz(c *nodetest.Cluster, i int) (readyz, error) {
	var r readyz
	resp, err := httpClient.Get("http://" + c.HTTPAddr(i) + "/readyz")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("/readyz body %q: %w", b, err)
	}
	r.code = resp.StatusCode
	return r, nil
}

// wantReadyz polls member i's /readyz until it answers code.
func wantReadyz(t *testing.T, c *nodetest.Cluster, i, code int) readyz {
	t.Helper()
	var last readyz
	c.Eventually(fmt.Sprintf("%s /readyz answers %d", c.Members[i].ID, code), func() error {
		r, err := getReadyz(c, i)
		if err != nil {
			return err
		}
		last = r
		if r.code != code {
			return fmt.Errorf("status %d %+v", r.code, r)
		}
		return nil
	})
	return last
}

func healthClient(t *testing.T, addr string) (healthpb.HealthClient, *grpc.ClientConn) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn), conn
}

// wantHealth polls the gRPC health status of service on member i.
func wantHealth(t *testing.T, c *nodetest.Cluster, hc healthpb.HealthClient, i int, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	c.Eventually(fmt.Sprintf("%s gRPC health of %q is %s", c.Members[i].ID, service, want), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err
		}
		if resp.GetStatus() != want {
			return fmt.Errorf("status %s", resp.GetStatus())
		}
		return nil
	})
}

// TestReadyzFollowsPartition: a follower cut off from the leader turns
// unready (HTTP 503 with a JSON reason, gRPC health NOT_SERVING for the KV
// service) while staying live, and ready again once healed.
func TestReadyzFollowsPartition(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	f := c.Followers()[0]
	kv := kvpb.KV_ServiceDesc.ServiceName
	hc, _ := healthClient(t, c.GRPCAddr(f))
	for i := range c.Members {
		if r := wantReadyz(t, c, i, http.StatusOK); r.Status != "ready" || r.NodeID != c.Members[i].ID {
			t.Errorf("%s /readyz = %+v, want status ready and its own node id", c.Members[i].ID, r)
		}
	}
	wantHealth(t, c, hc, f, kv, healthpb.HealthCheckResponse_SERVING)

	c.Partition(f)
	r := wantReadyz(t, c, f, http.StatusServiceUnavailable)
	if r.Status != "not ready" || r.Reason == "" {
		t.Errorf("partitioned /readyz = %+v, want status \"not ready\" and a reason", r)
	}
	t.Logf("partitioned follower: %+v", r)
	wantHealth(t, c, hc, f, kv, healthpb.HealthCheckResponse_NOT_SERVING)
	// Liveness is unaffected: the process is still serving.
	wantHealth(t, c, hc, f, "", healthpb.HealthCheckResponse_SERVING)
	resp, err := httpClient.Get("http://" + c.HTTPAddr(f) + "/healthz")
	if err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("partitioned /healthz = %d, want 200", resp.StatusCode)
	}
	// The majority side keeps a leader and stays ready.
	for _, i := range []int{0, 1, 2} {
		if i != f {
			wantReadyz(t, c, i, http.StatusOK)
		}
	}

	c.Heal(f)
	wantReadyz(t, c, f, http.StatusOK)
	wantHealth(t, c, hc, f, kv, healthpb.HealthCheckResponse_SERVING)
}

// TestGRPCReflection: grpcurl-style clients can list the services without
// the .proto files.
func TestGRPCReflection(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	_, conn := healthClient(t, c.GRPCAddr(0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("reflection stream: %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("send list services: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("list services: %v", err)
	}
	var got []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		got = append(got, s.GetName())
	}
	for _, want := range []string{
		kvpb.KV_ServiceDesc.ServiceName, kvpb.Admin_ServiceDesc.ServiceName,
		healthpb.Health_ServiceDesc.ServiceName, "grpc.reflection.v1.ServerReflection",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("reflection lists %v, want it to include %s", got, want)
		}
	}
	// The file descriptors resolve too (what grpcurl describe needs).
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: kvpb.KV_ServiceDesc.ServiceName},
	}); err != nil {
		t.Fatalf("send file containing symbol: %v", err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatalf("file containing symbol: %v", err)
	}
	if n := len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()); n == 0 {
		t.Errorf("no file descriptor for %s: %v", kvpb.KV_ServiceDesc.ServiceName, resp.GetErrorResponse())
	}
}
