package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func TestPeerOverrides(t *testing.T) {
	p := newPeerOverrides("a", "127.0.0.1:9001", map[string]string{"b": "127.0.0.1:9002"})
	// raft asks for its own id when it encodes its address into RPCs.
	if got, err := p.ServerAddr("a"); err != nil || got != "127.0.0.1:9001" {
		t.Fatalf("ServerAddr(a) = %q, %v; want this node's advertised address", got, err)
	}
	if got, err := p.ServerAddr("b"); err != nil || got != "127.0.0.1:9002" {
		t.Fatalf("ServerAddr(b) = %q, %v; want 127.0.0.1:9002, nil", got, err)
	}
	// An error makes raft.NetworkTransport fall back to the configured
	// address.
	if got, err := p.ServerAddr(raft.ServerID("c")); err == nil {
		t.Fatalf("ServerAddr(c) = %q, nil; want an error (no override)", got)
	}
}

func TestParsePeerOverrides(t *testing.T) {
	got, err := ParsePeerOverrides("b=127.0.0.1:1, c=127.0.0.1:2")
	if err != nil || len(got) != 2 || got["b"] != "127.0.0.1:1" || got["c"] != "127.0.0.1:2" {
		t.Fatalf("ParsePeerOverrides = %v, %v; want b and c", got, err)
	}
	if got, err := ParsePeerOverrides(""); err != nil || got != nil {
		t.Fatalf("ParsePeerOverrides(\"\") = %v, %v; want nil, nil", got, err)
	}
	for _, bad := range []string{"b", "b=nohostport", "b=127.0.0.1:1,b=127.0.0.1:2"} {
		if _, err := ParsePeerOverrides(bad); err == nil {
			t.Errorf("ParsePeerOverrides(%q) = nil error, want one", bad)
		}
	}
	cfg := DefaultConfig()
	cfg.RaftPeerOverrides = map[string]string{cfg.ID: "127.0.0.1:1"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "raft peer override") {
		t.Errorf("Validate with an override for this node = %v, want a raft peer override error", err)
	}
}

// TestPipelineReplicationOff pins MaxRPCsInFlight 1: raft's pipelined
// replication can deadlock (see New), so the transport must refuse to
// pipeline.
func TestPipelineReplicationOff(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	n, err := New(cfg, Deps{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer n.Close()
	if _, err := n.raftTrans.AppendEntriesPipeline("peer", "127.0.0.1:1"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline = %v, want raft.ErrPipelineReplicationNotSupported", err)
	}
}

func TestGRPCPeerAddr(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GRPCPeerOverrides = map[string]string{"b": "127.0.0.1:9102"}
	n := &Node{cfg: cfg}
	if got := n.grpcPeerAddr("b", "127.0.0.1:7001"); got != "127.0.0.1:9102" {
		t.Fatalf("grpcPeerAddr(b) = %q, want the override 127.0.0.1:9102", got)
	}
	if got := n.grpcPeerAddr("c", "127.0.0.1:7003"); got != "127.0.0.1:7003" {
		t.Fatalf("grpcPeerAddr(c) = %q, want the registered 127.0.0.1:7003 (no override)", got)
	}
	if got := (&Node{cfg: DefaultConfig()}).grpcPeerAddr("b", "127.0.0.1:7001"); got != "127.0.0.1:7001" {
		t.Fatalf("grpcPeerAddr without overrides = %q, want the registered address", got)
	}

	bad := DefaultConfig()
	bad.GRPCPeerOverrides = map[string]string{bad.ID: "127.0.0.1:1"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "grpc peer override") {
		t.Errorf("Validate with a gRPC override for this node = %v, want a grpc peer override error", err)
	}
	bad.GRPCPeerOverrides = map[string]string{"b": "nohostport"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "grpc peer override") {
		t.Errorf("Validate with a gRPC override without a port = %v, want a grpc peer override error", err)
	}
}
