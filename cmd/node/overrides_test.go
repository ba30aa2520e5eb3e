package main

import (
	"io"
	"strings"
	"testing"
)

func TestPeerOverrideFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{
		"--raft-peer-override", "n2=127.0.0.1:9002",
		"--grpc-peer-override", "n2=127.0.0.1:9102,n3=127.0.0.1:9103",
	}, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if got := cfg.RaftPeerOverrides["n2"]; got != "127.0.0.1:9002" {
		t.Errorf("raft override of n2 = %q, want 127.0.0.1:9002", got)
	}
	if len(cfg.GRPCPeerOverrides) != 2 || cfg.GRPCPeerOverrides["n3"] != "127.0.0.1:9103" {
		t.Errorf("grpc overrides = %v, want n2 and n3", cfg.GRPCPeerOverrides)
	}
	t.Setenv("RAFTKV_GRPC_PEER_OVERRIDE", "n2=127.0.0.1:9202")
	if cfg, _, err = parseFlags(nil, io.Discard); err != nil || cfg.GRPCPeerOverrides["n2"] != "127.0.0.1:9202" {
		t.Errorf("RAFTKV_GRPC_PEER_OVERRIDE: overrides %v, err %v; want n2=127.0.0.1:9202", cfg.GRPCPeerOverrides, err)
	}
	if _, _, err := parseFlags([]string{"--grpc-peer-override", "n2"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--grpc-peer-override") {
		t.Errorf("a malformed --grpc-peer-override: err %v, want one naming the flag", err)
	}
}
