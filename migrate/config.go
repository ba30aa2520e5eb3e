package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Config describes one migration. Build it from DefaultConfig.
type Config struct {
	// From and To are the source and target URLs (see Open).
	From, To string
	// Prefix selects the source keys that start with it; empty selects all.
	Prefix []byte
	// Rename, when set, replaces the leading RenameFrom of every key with
	// RenameTo. Every selected key must start with RenameFrom: Validate
	// requires Prefix to start with it, and Normalize sets Prefix to
	// RenameFrom when Prefix is empty.
	Rename               bool
	RenameFrom, RenameTo []byte
	// Batch is the most records written in one step: one SQL statement,
	// one Redis pipeline, or up to ceil(Batch/128) raftkv Txns sent in
	// parallel. A checkpoint always falls between two batches.
	Batch int
	// MaxBatchBytes caps a batch's keys and values, so that batches of
	// large values stay small in memory.
	MaxBatchBytes int
	// Rate caps the records written per second; 0 means no cap.
	Rate float64
	// DryRun reads the source and checks every record against the target's
	// limits, but writes nothing (it creates no table and no file).
	DryRun bool
	// Mode says what to do with keys that exist in the target.
	Mode Mode
	// ReplaceFile allows a file target that exists to be overwritten. The
	// command line sets it for an explicit --overwrite.
	ReplaceFile bool
	// TTL says what to do with expiring records when the target has no TTLs.
	TTL TTLPolicy
	// Checkpoint is the path of the checkpoint file for resuming; empty
	// disables checkpoints.
	Checkpoint string
	// CheckpointInterval is the longest time between two checkpoints.
	CheckpointInterval time.Duration
	// ReplayWindow bounds the records written after the last checkpoint:
	// a new checkpoint is written before a batch would exceed it. After a
	// resume, that many records are written with OnlyIfChanged.
	ReplayWindow int
	// Verify compares source and target after copying (or instead of it,
	// with DryRun).
	Verify bool
	// RequestTimeout bounds each request to a server.
	RequestTimeout time.Duration
	// Endpoints are used for a raftkv URL without hosts ("raftkv://").
	Endpoints []string
	// ListLimit is how many skipped keys, failed keys and differences the
	// summary lists.
	ListLimit int
	// Report, when set, is a file that receives one JSON line per skipped
	// or failed record: the full list the summary only starts.
	Report string
	// TxnConcurrency is how many raftkv Txns of one batch run at once.
	TxnConcurrency int
}

// DefaultConfig returns a Config with batches of 1000 records (at most 8
// MiB), a checkpoint at least every second, a replay window of 16 batches,
// 10s requests, 20 listed keys and 8 concurrent Txns. From and To are empty.
func DefaultConfig() Config {
	return Config{
		Batch:              1000,
		MaxBatchBytes:      8 << 20,
		CheckpointInterval: time.Second,
		ReplayWindow:       16 * 1000,
		RequestTimeout:     10 * time.Second,
		ListLimit:          20,
		TxnConcurrency:     8,
	}
}

// Normalize fills in Prefix from RenameFrom (see Config.Rename), shrinks
// Batch to a quarter second's worth of records when Rate is set (so a rate
// limit paces writes rather than bursting a batch and waiting), and grows
// ReplayWindow to at least two batches.
func (c *Config) Normalize() {
	if c.Rename && len(c.Prefix) == 0 {
		c.Prefix = bytes.Clone(c.RenameFrom)
	}
	if c.Rate > 0 {
		c.Batch = min(c.Batch, max(1, int(math.Ceil(c.Rate/4))))
	}
	if c.ReplayWindow < 2*c.Batch {
		c.ReplayWindow = 2 * c.Batch
	}
}

// Validate checks each field and how the fields relate.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.From) == "" {
		errs = append(errs, errors.New("no source (--from)"))
	}
	if strings.TrimSpace(c.To) == "" {
		errs = append(errs, errors.New("no target (--to)"))
	}
	if c.Batch <= 0 {
		errs = append(errs, fmt.Errorf("batch %d must be positive", c.Batch))
	}
	if c.MaxBatchBytes <= 0 {
		errs = append(errs, fmt.Errorf("max batch bytes %d must be positive", c.MaxBatchBytes))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %v must not be negative", c.Rate))
	}
	if c.Rename && !bytes.HasPrefix(c.Prefix, c.RenameFrom) {
		errs = append(errs, fmt.Errorf("prefix %q does not start with the renamed prefix %q, so some selected keys would not be renamed", c.Prefix, c.RenameFrom))
	}
	if c.Checkpoint != "" && c.CheckpointInterval <= 0 {
		errs = append(errs, fmt.Errorf("checkpoint interval %v must be positive", c.CheckpointInterval))
	}
	if c.Checkpoint != "" && c.ReplayWindow < c.Batch {
		errs = append(errs, fmt.Errorf("replay window %d is below one batch (%d)", c.ReplayWindow, c.Batch))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request timeout %v must be positive", c.RequestTimeout))
	}
	if c.ListLimit < 0 {
		errs = append(errs, fmt.Errorf("list limit %d must not be negative", c.ListLimit))
	}
	if c.TxnConcurrency <= 0 {
		errs = append(errs, fmt.Errorf("txn concurrency %d must be positive", c.TxnConcurrency))
	}
	if c.DryRun && c.Checkpoint != "" {
		errs = append(errs, errors.New("a dry run writes nothing, so it cannot resume or checkpoint"))
	}
	return errors.Join(errs...)
}

// rename applies the Rename rule to key, returning a new slice.
func (c Config) rename(key []byte) []byte {
	if !c.Rename || !bytes.HasPrefix(key, c.RenameFrom) {
		return key
	}
	out := make([]byte, 0, len(key)-len(c.RenameFrom)+len(c.RenameTo))
	out = append(out, c.RenameTo...)
	return append(out, key[len(c.RenameFrom):]...)
}

// targetPrefix is the prefix every copied key has in the target.
func (c Config) targetPrefix() []byte { return c.rename(bytes.Clone(c.Prefix)) }
