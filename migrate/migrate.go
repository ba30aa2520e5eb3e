package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// Migration runs one Config. Create it with New, run it once with Run, and
// poll Stats from any goroutine while it runs.
type Migration struct {
	cfg Config
	log *slog.Logger

	read, copied, skipped, failed, bytes atomic.Int64
	total                                atomic.Int64 // -1: unknown
	phase                                atomic.Value // string
	started                              time.Time

	canExpire bool // of the target, known once it is opened

	report    *reportWriter
	priorDone atomic.Int64  // records handled by earlier runs of a resumed migration
	ttlDrops  int64         // written by the copy goroutine only
	prior     time.Duration // time spent by earlier runs of a resumed migration
}

// Stats is a snapshot of a running migration, for progress displays.
type Stats struct {
	// Phase is "copy" or "verify".
	Phase string
	// Read counts the source records read so far, in this run.
	Read int64
	// Copied, Skipped and Failed count records by fate, Bytes the keys and
	// values copied, all including earlier runs of a resumed migration.
	Copied, Skipped, Failed, Bytes int64
	// Total estimates the records the whole migration handles, or -1.
	Total int64
	// Prior counts the records earlier runs of a resumed migration handled
	// (they are in Copied, Skipped and Failed), so rates can leave them out.
	Prior int64
	// Elapsed is the time since Run started.
	Elapsed time.Duration
}

// Summary is the result of a migration.
type Summary struct {
	Source  string `json:"source"`
	Target  string `json:"target"`
	DryRun  bool   `json:"dry_run"`
	Resumed bool   `json:"resumed"`
	// Copied counts records written (in a dry run: that would be written).
	Copied  int64 `json:"copied"`
	Skipped int64 `json:"skipped"`
	Failed  int64 `json:"failed"`
	// Bytes sums the keys and values copied.
	Bytes int64 `json:"bytes"`
	// TTLDropped counts records copied without their expiry (--ttl drop).
	TTLDropped int64 `json:"ttl_dropped"`
	// SkippedBy counts skipped records by reason.
	SkippedBy       map[string]int64 `json:"skipped_by_reason"`
	Duration        time.Duration    `json:"-"`
	DurationSeconds float64          `json:"duration_seconds"`
	// Verified is true when --verify ran and found no difference.
	Verified bool `json:"verified"`
	// SkippedKeys and FailedKeys list the first skipped and failed records.
	SkippedKeys  []KeyNote     `json:"skipped_keys"`
	FailedKeys   []KeyNote     `json:"failed_keys"`
	Consistency  *Consistency  `json:"source_consistency,omitempty"`
	Verification *Verification `json:"verification,omitempty"`
}

// KeyNote is one listed key and why it is listed.
type KeyNote struct {
	Key    []byte `json:"key"`
	Reason string `json:"reason"`
}

// OK reports whether nothing failed and verification, if it ran, matched.
func (s *Summary) OK() bool {
	return s.Failed == 0 && (s.Verification == nil || s.Verification.Match)
}

// ErrInterrupted is returned when ctx ends a migration early.
var ErrInterrupted = errors.New("migration interrupted")

// New validates cfg and returns a Migration. logger may be nil.
func New(cfg Config, logger *slog.Logger) (*Migration, error) {
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid migration config: %w", err)
	}
	m := &Migration{cfg: cfg, log: orDiscard(logger).With("component", "migrate")}
	m.total.Store(-1)
	m.phase.Store("copy")
	return m, nil
}

// Stats returns a snapshot of the progress. It is safe to call at any time.
func (m *Migration) Stats() Stats {
	s := Stats{
		Phase:   m.phase.Load().(string),
		Read:    m.read.Load(),
		Copied:  m.copied.Load(),
		Skipped: m.skipped.Load(),
		Failed:  m.failed.Load(),
		Bytes:   m.bytes.Load(),
		Total:   m.total.Load(),
		Prior:   m.priorDone.Load(),
	}
	if !m.started.IsZero() {
		s.Elapsed = time.Since(m.started)
	}
	return s
}

// Run copies, then verifies when asked. It returns the summary whenever
// the copy got under way, also together with an error. A nil error with
// Summary.OK false means records failed or verification found differences.
//
// Both sides are opened, and must be reachable, before anything is
// written. With a checkpoint, progress is saved after batches; when ctx
// ends, Run saves a last checkpoint and returns an error wrapping
// ErrInterrupted.
func (m *Migration) Run(ctx context.Context) (*Summary, error) {
	m.started = time.Now()
	cfg := m.cfg
	sum := &Summary{Source: display(cfg.From, cfg.Endpoints), Target: display(cfg.To, cfg.Endpoints), DryRun: cfg.DryRun, SkippedBy: map[string]int64{},
		SkippedKeys: []KeyNote{}, FailedKeys: []KeyNote{}}

	var ck *checkpoint
	if cfg.Checkpoint != "" {
		var err error
		if ck, err = loadCheckpoint(cfg.Checkpoint, m.jobID()); err != nil {
			return nil, err
		}
		if ck != nil {
			sum.Resumed = true
			ck.restore(sum)
			m.copied.Store(sum.Copied)
			m.skipped.Store(sum.Skipped)
			m.failed.Store(sum.Failed)
			m.bytes.Store(sum.Bytes)
			m.ttlDrops = sum.TTLDropped
			m.prior = ck.elapsed()
			m.priorDone.Store(sum.Copied + sum.Skipped + sum.Failed)
		}
	}
	if ck != nil && ck.Done {
		m.log.Info("checkpoint says the migration is complete; nothing to copy", "checkpoint", cfg.Checkpoint)
		sum.Duration = ck.elapsed()
		sum.DurationSeconds = sum.Duration.Seconds()
		sum.Consistency = ck.Consistency
		if cfg.Verify {
			if err := m.verifyInto(ctx, sum); err != nil {
				return sum, err
			}
		}
		return sum, nil
	}

	var srcAfter, tgtResume string
	if ck != nil {
		srcAfter, tgtResume = ck.SourcePosition, ck.TargetPosition
	}
	src, err := OpenSource(ctx, cfg.From, SourceOptions{
		Prefix: cfg.Prefix, After: srcAfter, Batch: cfg.Batch,
		RequestTimeout: cfg.RequestTimeout, Endpoints: cfg.Endpoints, Logger: m.log,
	})
	if err != nil {
		return nil, err
	}
	tgt, err := OpenTarget(ctx, cfg.To, TargetOptions{
		Resume: tgtResume, Replace: cfg.ReplaceFile || ck != nil,
		RequestTimeout: cfg.RequestTimeout, Endpoints: cfg.Endpoints,
		TxnConcurrency: cfg.TxnConcurrency, Logger: m.log,
	})
	if err != nil {
		_ = src.Close()
		return nil, err
	}
	m.canExpire = tgt.CanExpire()
	if err := checkOverlap(ctx, src, tgt, cfg); err != nil {
		_ = src.Close()
		_ = tgt.Close()
		return nil, err
	}
	if !cfg.DryRun {
		if err := tgt.Prepare(ctx); err != nil {
			_ = src.Close()
			_ = tgt.Close()
			return nil, fmt.Errorf("prepare target %s: %w", Redact(cfg.To), err)
		}
	}
	if cfg.Report != "" {
		if m.report, err = openReport(cfg.Report, ck != nil); err != nil {
			_ = src.Close()
			_ = tgt.Close()
			return nil, err
		}
		defer m.report.close()
	}

	estCtx, stopEstimate := context.WithCancel(ctx)
	defer stopEstimate()
	if est, ok := src.(Estimator); ok && srcAfter == "" {
		go func() {
			n, err := est.Estimate(estCtx)
			if err != nil {
				m.log.Debug("estimate source size", "err", err)
				return
			}
			m.total.Store(n)
		}()
	}

	copyErr := m.copy(ctx, src, tgt, ck, sum)
	stopEstimate()
	if cr, ok := src.(CutReporter); ok {
		sum.Consistency = cr.Cut()
	}
	srcErr := src.Close()
	tgtErr := tgt.Close()
	sum.TTLDropped = m.ttlDrops
	sum.Copied, sum.Skipped, sum.Failed, sum.Bytes = m.copied.Load(), m.skipped.Load(), m.failed.Load(), m.bytes.Load()
	sum.Duration = m.prior + time.Since(m.started)
	sum.DurationSeconds = sum.Duration.Seconds()
	if copyErr != nil {
		return sum, copyErr
	}
	if tgtErr != nil {
		return sum, fmt.Errorf("close target %s: %w", Redact(cfg.To), tgtErr)
	}
	if srcErr != nil {
		m.log.Warn("close source", "err", srcErr)
	}
	if cfg.Checkpoint != "" {
		// The target is closed, so a file target is complete and synced.
		done := newCheckpoint(m, sum, "", "", true)
		if err := done.save(cfg.Checkpoint); err != nil {
			return sum, err
		}
	}
	if cfg.Verify {
		if err := m.verifyInto(ctx, sum); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// batch is what the reader hands the writer: records to write, records
// already decided (skipped or failed while reading), and the source
// position after the last of them.
type batch struct {
	recs       []Record
	ttlDropped []bool // parallel to recs
	notes      []note
	superseded []Record // duplicates of a later record in recs: copied by it
	pos        string
	err        error // the source failed after the records above
}

type note struct {
	key    []byte
	status Status
	reason string
}

// copy runs the reader and the writer until the source ends, an error, or
// ctx ends.
func (m *Migration) copy(ctx context.Context, src Source, tgt Target, ck *checkpoint, sum *Summary) error {
	cfg := m.cfg
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan *batch, 2)
	go m.readBatches(rctx, src, tgt, ch)
	defer func() {
		cancel()
		for range ch { // let the reader finish
		}
	}()

	var (
		window  int    // records still to write with OnlyIfChanged
		pos     string // source position of the last committed batch
		sinceCk int    // records written since the last checkpoint
		lastCk  = time.Now()
		pace    = pacer{rate: cfg.Rate, start: time.Now()}
	)
	if ck != nil {
		window, pos = ck.Window, ck.SourcePosition
		if window > 0 {
			m.log.Info("resuming: records right after the checkpoint are compared before they are written",
				"window", window)
		}
	}
	save := func() error {
		if cfg.Checkpoint == "" {
			return nil
		}
		tpos, err := tgt.Sync(ctx)
		if err != nil {
			return fmt.Errorf("sync target for checkpoint: %w", err)
		}
		sum.TTLDropped = m.ttlDrops
		sum.Copied, sum.Skipped, sum.Failed, sum.Bytes = m.copied.Load(), m.skipped.Load(), m.failed.Load(), m.bytes.Load()
		c := newCheckpoint(m, sum, pos, tpos, false)
		if err := c.save(cfg.Checkpoint); err != nil {
			return err
		}
		sinceCk, lastCk = 0, time.Now()
		return nil
	}
	interrupted := func() error {
		if err := save(); err != nil {
			m.log.Warn("save checkpoint after interrupt", "err", err)
		}
		return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
	}

	for b := range ch {
		if ctx.Err() != nil {
			return interrupted()
		}
		if len(b.recs) > 0 {
			if cfg.DryRun {
				for i, r := range b.recs {
					m.account(sum, r, Outcome{Status: Copied}, b.ttlDropped[i])
				}
			} else {
				if cfg.Checkpoint != "" && sinceCk+len(b.recs) > cfg.ReplayWindow {
					if err := save(); err != nil {
						return err
					}
				}
				if err := pace.wait(ctx, len(b.recs)); err != nil {
					return interrupted()
				}
				outs, err := tgt.Write(ctx, b.recs, WriteOptions{Mode: cfg.Mode, OnlyIfChanged: window > 0})
				if err != nil {
					if ctx.Err() != nil {
						return interrupted()
					}
					if serr := save(); serr != nil {
						m.log.Warn("save checkpoint after a failed write", "err", serr)
					}
					return fmt.Errorf("write to %s: %w", Redact(cfg.To), err)
				}
				if len(outs) != len(b.recs) {
					return fmt.Errorf("target returned %d outcomes for %d records", len(outs), len(b.recs))
				}
				window -= len(b.recs)
				sinceCk += len(b.recs)
				for i, r := range b.recs {
					m.account(sum, r, outs[i], b.ttlDropped[i])
				}
			}
			for _, r := range b.superseded {
				m.account(sum, r, Outcome{Status: Copied}, false)
			}
		}
		for _, n := range b.notes {
			m.account(sum, Record{Key: n.key}, Outcome{Status: n.status, Reason: n.reason}, false)
		}
		pos = b.pos
		if b.err != nil {
			if errors.Is(b.err, context.Canceled) && ctx.Err() != nil {
				return interrupted()
			}
			if err := save(); err != nil {
				m.log.Warn("save checkpoint after a source error", "err", err)
			}
			return fmt.Errorf("read from %s: %w", Redact(cfg.From), b.err)
		}
		if cfg.Checkpoint != "" && !cfg.DryRun && time.Since(lastCk) >= cfg.CheckpointInterval {
			if err := save(); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return interrupted()
	}
	return nil
}

// readBatches reads src, decides what can be decided without the target,
// and sends batches to ch, which it closes at the end.
func (m *Migration) readBatches(ctx context.Context, src Source, tgt Target, ch chan<- *batch) {
	defer close(ch)
	cfg := m.cfg
	b := &batch{}
	bytes := 0
	index := map[string]int{} // key -> position in b.recs
	send := func() bool {
		b.pos = src.Position()
		select {
		case ch <- b:
		case <-ctx.Done():
			return false
		}
		b, bytes = &batch{}, 0
		clear(index)
		return true
	}
	for {
		rec, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			send()
			return
		}
		if err != nil {
			b.err = err
			send()
			return
		}
		m.read.Add(1)
		if n, ok := m.decide(&rec, tgt.Check, time.Now()); !ok {
			b.notes = append(b.notes, n)
		} else {
			dropped := !rec.ExpireAt.IsZero() && !m.canExpire
			if dropped {
				rec.ExpireAt = time.Time{}
			}
			if i, dup := index[string(rec.Key)]; dup {
				// A later line of a dump for the same key wins, as if
				// both were written in order.
				b.superseded = append(b.superseded, b.recs[i])
				b.recs[i], b.ttlDropped[i] = rec, dropped
			} else {
				index[string(rec.Key)] = len(b.recs)
				b.recs = append(b.recs, rec)
				b.ttlDropped = append(b.ttlDropped, dropped)
			}
			bytes += len(rec.Key) + len(rec.Value)
		}
		if len(b.recs)+len(b.notes) >= cfg.Batch || bytes >= cfg.MaxBatchBytes {
			if !send() {
				return
			}
		}
	}
}

// decide applies the source-side rules to rec: skips reported by the
// source, expired records, the TTL policy, renaming and the target's
// Check. It returns ok with rec ready to write, or the note that decides
// the record's fate.
func (m *Migration) decide(rec *Record, check func(Record) error, now time.Time) (note, bool) {
	if rec.Skip != "" {
		return note{rec.Key, Skipped, rec.Skip}, false
	}
	if !rec.ExpireAt.IsZero() && !rec.ExpireAt.After(now) {
		return note{rec.Key, Skipped, "expired"}, false
	}
	rec.Key = m.cfg.rename(rec.Key)
	if !rec.ExpireAt.IsZero() && !m.canExpire {
		switch m.cfg.TTL {
		case TTLKeep:
			return note{rec.Key, Failed, "has a TTL the target cannot store (use --ttl drop or --ttl skip)"}, false
		case TTLSkip:
			return note{rec.Key, Skipped, "has a TTL"}, false
		}
	}
	if err := check(*rec); err != nil {
		return note{rec.Key, Failed, err.Error()}, false
	}
	return note{}, true
}

// account counts one record's fate and lists it when it is notable.
func (m *Migration) account(sum *Summary, r Record, o Outcome, ttlDropped bool) {
	switch o.Status {
	case Copied:
		m.copied.Add(1)
		m.bytes.Add(r.size())
		if ttlDropped {
			m.ttlDrops++
		}
		return
	case Skipped:
		m.skipped.Add(1)
		sum.SkippedBy[o.Reason]++
		if len(sum.SkippedKeys) < m.cfg.ListLimit {
			sum.SkippedKeys = append(sum.SkippedKeys, KeyNote{Key: r.Key, Reason: o.Reason})
		}
	case Failed:
		m.failed.Add(1)
		if len(sum.FailedKeys) < m.cfg.ListLimit {
			sum.FailedKeys = append(sum.FailedKeys, KeyNote{Key: r.Key, Reason: o.Reason})
		}
		m.log.Debug("record failed", "key", KeyString(r.Key), "reason", o.Reason)
	}
	if m.report != nil {
		m.report.add(r.Key, o)
	}
}

// pacer spaces writes so that no more than rate records per second go out
// on average since start.
type pacer struct {
	rate  float64
	start time.Time
	sent  int64
}

// wait blocks until n more records may be sent. Waiting here is the rate
// limit itself, not synchronisation.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p.rate <= 0 {
		return nil
	}
	due := p.start.Add(time.Duration(float64(p.sent) / p.rate * float64(time.Second)))
	p.sent += int64(n)
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
