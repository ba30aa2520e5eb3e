package backup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// A node's data directory, as package node lays it out. Seed must write
// what node reads; the e2e offline-restore test starts real nodes on seeded
// directories to keep the two in step.
const (
	raftDirName   = "raft"     // raft.db (log and stable store) and snapshots/
	storeFileName = "store.db" // the FSM's store
)

// SeedConfig says where an offline restore writes and for which node.
type SeedConfig struct {
	// DataDir is the new node's --data-dir. It may exist but must hold no
	// raft state and no store.
	DataDir string
	// NodeID is the node's --id; it must be one of Servers.
	NodeID string
	// Servers is the new cluster's raft configuration (its
	// --initial-cluster), the same for every node seeded.
	Servers []raft.Server
}

// ErrDataDirInUse means an offline restore was pointed at a data directory
// that already holds a node's state.
var ErrDataDirInUse = errors.New("data dir already holds raft state or a store")

// Seed verifies the backup in r completely and writes it into cfg.DataDir
// as the node's only raft snapshot, with cfg.Servers as its configuration.
// Started on that directory, the node restores the snapshot into its empty
// store, and raft starts from the snapshot as a member of a new cluster
// (it does not bootstrap, whatever --bootstrap says). Seed every member of
// the new cluster from the same backup with the same servers, then start
// them all. This is the offline, disaster-recovery restore: for when no
// quorum is left to restore through raft.
//
// The snapshot is written at the backup's applied index in term 1, so the
// new cluster's log continues right after the backup's last write and its
// terms start over. On any error nothing is left in cfg.DataDir.
func Seed(r io.Reader, cfg SeedConfig) (Manifest, error) {
	var m Manifest
	if cfg.DataDir == "" {
		return m, errors.New("seed: data dir is required")
	}
	self := false
	for _, s := range cfg.Servers {
		if s.ID == "" || s.Address == "" {
			return m, fmt.Errorf("seed: server %q at %q: id and address are required", s.ID, s.Address)
		}
		if string(s.ID) == cfg.NodeID {
			self = true
		}
	}
	if !self {
		return m, fmt.Errorf("seed: node id %q is not one of the %d servers of the initial cluster", cfg.NodeID, len(cfg.Servers))
	}
	raftDir := filepath.Join(cfg.DataDir, raftDirName)
	if err := checkEmptyDataDir(cfg.DataDir, raftDir); err != nil {
		return m, err
	}

	br, err := NewReader(r)
	if err != nil {
		return m, err
	}
	m = br.Manifest()

	created, err := mkdirs(cfg.DataDir, raftDir)
	if err != nil {
		return m, err
	}
	ok := false
	defer func() {
		if !ok {
			for i := len(created) - 1; i >= 0; i-- {
				_ = os.RemoveAll(created[i])
			}
		}
	}()

	snaps, err := raft.NewFileSnapshotStore(raftDir, 1, io.Discard)
	if err != nil {
		return m, fmt.Errorf("seed: open snapshot store: %w", err)
	}
	// The snapshot store records the configuration both as such and, for
	// old readers, as peers encoded by a transport; any transport encodes a
	// peer as its address.
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	index := max(m.AppliedIndex, 1)
	conf := raft.Configuration{Servers: cfg.Servers}
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, 1, conf, index, trans)
	if err != nil {
		return m, fmt.Errorf("seed: create snapshot: %w", err)
	}
	if err := br.Extract(sink); err != nil {
		_ = sink.Cancel()
		return m, err
	}
	if err := sink.Close(); err != nil {
		return m, fmt.Errorf("seed: write snapshot: %w", err)
	}
	ok = true
	return m, nil
}

func checkEmptyDataDir(dataDir, raftDir string) error {
	for _, p := range []string{filepath.Join(raftDir, "raft.db"), filepath.Join(dataDir, storeFileName)} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%w: %s exists (seed only a new, empty data dir)", ErrDataDirInUse, p)
		}
	}
	des, err := os.ReadDir(filepath.Join(raftDir, "snapshots"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("seed: read snapshot dir: %w", err)
	}
	if len(des) > 0 {
		return fmt.Errorf("%w: %s is not empty (seed only a new, empty data dir)", ErrDataDirInUse, filepath.Join(raftDir, "snapshots"))
	}
	return nil
}

// mkdirs creates each missing directory of dirs, in order, and returns
// those it created.
func mkdirs(dirs ...string) ([]string, error) {
	var created []string
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			continue
		}
		if err := os.MkdirAll(d, 0o750); err != nil {
			for i := len(created) - 1; i >= 0; i-- {
				_ = os.RemoveAll(created[i])
			}
			return nil, fmt.Errorf("seed: create %s: %w", d, err)
		}
		created = append(created, d)
	}
	return created, nil
}
