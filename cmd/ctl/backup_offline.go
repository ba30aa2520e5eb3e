package main

// The offline backup commands: they touch only files, through package
// backup, and never the network (STYLE.md §11, the etcdctl/etcdutl split).

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/backup"
)

// verifyFile implements `backup verify FILE`.
func (c *backupCommand) verifyFile(path string) error {
	m, err := backup.VerifyFile(path)
	if err != nil {
		return backupError(fmt.Errorf("%s: %w", path, err))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	info := manifestInfo(m, fi.Size(), "verified")
	if c.env.globals.output == "json" {
		return c.printInfo(info, path)
	}
	fmt.Fprintf(c.env.stdout, "%s: OK\n", path)
	return c.printInfo(info, "")
}

// manifestInfo describes a local backup file like a node describes a stored
// one.
func manifestInfo(m backup.Manifest, size int64, status string) *kvpb.BackupInfo {
	return &kvpb.BackupInfo{
		Id:               m.ID,
		ClusterId:        m.ClusterID,
		NodeId:           m.NodeID,
		RaftIndex:        m.RaftIndex,
		RaftTerm:         m.RaftTerm,
		AppliedIndex:     m.AppliedIndex,
		CreatedUnixMs:    m.Created.UnixMilli(),
		Trigger:          m.Trigger,
		KeyCount:         m.KeyCount,
		UncompressedSize: m.UncompressedSize,
		CompressedSize:   m.CompressedSize,
		FileSize:         size,
		Sha256:           m.SHA256,
		FormatVersion:    m.FormatVersion,
		Status:           status,
	}
}

// restoreOffline implements `backup restore FILE --data-dir DIR --id ID
// --initial-cluster ...`: seed one node of a new cluster.
func (c *backupCommand) restoreOffline(path string) error {
	if c.dataDir == "" || c.id == "" || c.initial == "" {
		return usageErrorf("an offline restore needs --data-dir, --id and --initial-cluster")
	}
	if c.yes || c.force {
		return usageErrorf("--yes and --force are for an online restore; an offline restore only seeds an empty data dir")
	}
	if path == "-" {
		return usageErrorf("an offline restore reads a FILE, not standard input")
	}
	servers, err := parseInitialCluster(c.initial)
	if err != nil {
		return usageErrorf("--initial-cluster: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := backup.Seed(f, backup.SeedConfig{DataDir: c.dataDir, NodeID: c.id, Servers: servers})
	if err != nil {
		return backupError(fmt.Errorf("%s: %w", path, err))
	}
	if c.env.globals.output == "json" {
		fi, _ := f.Stat()
		return c.printInfo(manifestInfo(m, fi.Size(), "verified"), path)
	}
	fmt.Fprintf(c.env.stdout, "seeded %s for node %s of a new %d-node cluster from backup %s (cluster %s, %d keys, applied index %d)\n",
		c.dataDir, c.id, len(servers), m.ID, m.ClusterID, m.KeyCount, m.AppliedIndex)
	fmt.Fprintf(c.env.stdout, "seed every node the same way, then start each with --data-dir, --id and the same --initial-cluster\n")
	return nil
}

// parseInitialCluster parses "id=host:port,id=host:port" as raftkvd's
// --initial-cluster does.
func parseInitialCluster(s string) ([]raft.Server, error) {
	var out []raft.Server
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("%q: want ID=HOST:PORT", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("server %q listed twice", id)
		}
		seen[id] = true
		out = append(out, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no servers")
	}
	return out, nil
}
