package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/raftkv/raftkv/loadgen"
)

// scaleResult is what scale measured on one system.
type scaleResult struct {
	System        string  `json:"system"`
	Keys          int64   `json:"keys"`
	LoadSeconds   float64 `json:"load_seconds"`
	LoadOpsPerSec float64 `json:"load_ops_per_sec"`
	// DataDirs and RSSBytes have one entry per node, after the load.
	DataDirs []diskUsage `json:"data_dirs"`
	RSSBytes []int64     `json:"rss_bytes"`
	// SnapshotSeconds is the time to write a snapshot of the whole store
	// through the leader into a file of SnapshotBytes.
	SnapshotSeconds float64 `json:"snapshot_seconds"`
	SnapshotBytes   int64   `json:"snapshot_bytes"`
	// RestartNode (1-based) is the follower killed with SIGKILL and
	// started again; RestartSeconds is from its start until it served a
	// serializable read.
	RestartNode    int     `json:"restart_node"`
	RestartSeconds float64 `json:"restart_seconds"`
}

// runScale loads cfg.scaleKeys keys into each system in turn and measures
// it at rest.
func runScale(ctx context.Context, cfg *config, logger *slog.Logger, systems []system, parent string, rep *report) error {
	for _, s := range systems {
		res, err := scaleOne(ctx, cfg, logger, s, parent)
		if err != nil {
			return fmt.Errorf("scale %s: %w", s.Name(), err)
		}
		rep.Scale = append(rep.Scale, res)
	}
	return nil
}

func scaleOne(ctx context.Context, cfg *config, logger *slog.Logger, s system, parent string) (scaleResult, error) {
	res := scaleResult{System: s.Name(), Keys: cfg.scaleKeys}
	leader, err := s.Leader(ctx)
	if err != nil {
		return res, err
	}
	keySize := max(cfg.keySize, len(loadgen.Key(cfg.scaleKeys-1, 1)))
	logger.Info("loading", "system", s.Name(), "keys", cfg.scaleKeys)
	var last time.Time
	load, err := loadgen.Prefill(ctx, s.Dialer([]string{leader}), 64, min(cfg.conns, 64), cfg.scaleKeys, keySize, cfg.valSize,
		func(p loadgen.Progress) {
			if time.Since(last) >= 10*time.Second {
				last = time.Now()
				logger.Info("loading", "system", s.Name(), "done", p.Ops, "ops_per_sec", int(p.Rate))
			}
		})
	if err != nil {
		return res, err
	}
	res.LoadSeconds, res.LoadOpsPerSec = load.Duration.Seconds(), load.OpsPerSec
	for i, p := range s.Nodes() {
		u, err := dirUsage(s.DataDir(i))
		if err != nil {
			return res, err
		}
		rss, err := p.rssBytes()
		if err != nil {
			return res, err
		}
		res.DataDirs, res.RSSBytes = append(res.DataDirs, u), append(res.RSSBytes, rss)
	}

	snap := filepath.Join(parent, s.Name()+".snapshot")
	start := time.Now()
	if err := s.Snapshot(ctx, snap); err != nil {
		return res, err
	}
	res.SnapshotSeconds = time.Since(start).Seconds()
	fi, err := os.Stat(snap)
	if err != nil {
		return res, fmt.Errorf("snapshot file: %w", err)
	}
	res.SnapshotBytes = fi.Size()
	_ = os.Remove(snap) // it lives in the temporary parent anyway

	i, err := follower(ctx, s)
	if err != nil {
		return res, err
	}
	took, err := restart(ctx, s, i)
	if err != nil {
		return res, err
	}
	res.RestartNode, res.RestartSeconds = i+1, took.Seconds()
	logger.Info("scale measured", "system", s.Name(), "load_ops_per_sec", int(res.LoadOpsPerSec),
		"snapshot", time.Duration(res.SnapshotSeconds*float64(time.Second)).Round(time.Millisecond),
		"restart", took.Round(time.Millisecond))
	return res, nil
}
