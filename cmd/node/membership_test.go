package main

import (
	"io"
	"strings"
	"testing"
)

func TestMembershipFlags(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		wantGossip    string
		wantBootstrap bool
		wantErr       string
	}{
		{name: "no flags: single node, no gossip", wantBootstrap: true},
		{name: "join turns gossip on at the grpc host", args: []string{"--grpc-addr", "10.0.0.5:7001", "--join", "10.0.0.6:7946"},
			wantGossip: "10.0.0.5:7946"},
		{name: "bootstrap-expect turns gossip on", args: []string{"--bootstrap-expect", "3"}, wantGossip: "127.0.0.1:7946"},
		{name: "explicit gossip addr", args: []string{"--gossip-addr", "127.0.0.1:7004"}, wantGossip: "127.0.0.1:7004"},
		{name: "static cluster with gossip", args: []string{"--gossip-addr", "127.0.0.1:7004", "--bootstrap", "--initial-cluster", "node1=127.0.0.1:7002"},
			wantGossip: "127.0.0.1:7004", wantBootstrap: true},
		{name: "bad key", args: []string{"--join", "a:1", "--gossip-key", "not-base64!"}, wantErr: "gossip-key"},
		{name: "short key", args: []string{"--join", "a:1", "--gossip-key", "c2hvcnQ="}, wantErr: "want 16, 24 or 32"},
		{name: "bad join", args: []string{"--join", "nohostport"}, wantErr: "join address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if cfg.Cluster.GossipAddr != tt.wantGossip || cfg.Bootstrap != tt.wantBootstrap {
				t.Fatalf("gossip addr %q, bootstrap %v; want %q, %v", cfg.Cluster.GossipAddr, cfg.Bootstrap, tt.wantGossip, tt.wantBootstrap)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}
