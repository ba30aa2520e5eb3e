package migrate

import (
	"context"
	"time"
)

// Record is one key-value pair on its way from a Source to a Target.
type Record struct {
	// Key is never empty when it reaches a Target: empty keys fail Check.
	Key []byte
	// Value may be empty; a Source never returns a nil Value for a key that
	// has an empty value, but Targets must treat nil and empty alike.
	Value []byte
	// ExpireAt is when the key expires; the zero time means never.
	ExpireAt time.Time
	// Skip, when set, says why the source cannot turn this key into a
	// record (a Redis hash, say); the engine counts the key as skipped with
	// this reason and lists it, so nothing is dropped silently.
	Skip string
}

// size is what a record counts for in the bytes column: key plus value.
func (r Record) size() int64 { return int64(len(r.Key) + len(r.Value)) }

// Source yields records. The engine calls every method from one goroutine.
type Source interface {
	// Next returns the next record, or io.EOF after the last one. Any other
	// error is fatal for the migration; Position still describes the last
	// record returned without error.
	Next(ctx context.Context) (Record, error)
	// Position returns an opaque token that, passed back as
	// SourceOptions.After, makes a new Source continue right after the last
	// record Next returned. It is stored in checkpoint files, so its format
	// is a compatibility promise of each backend.
	Position() string
	// Sorted reports whether records come in ascending byte order of their
	// keys, each key at most once. Verification streams sorted sources and
	// sorts the others in memory.
	Sorted() bool
	// Close releases connections and files. It is called exactly once.
	Close() error
}

// Estimator is implemented by sources that can tell, cheaply, how many
// records they are going to return. The engine calls it on its own
// goroutine, concurrently with Next, to drive the progress bar's ETA.
type Estimator interface {
	Estimate(ctx context.Context) (records int64, err error)
}

// CutReporter is implemented by sources that can say how consistent the
// copy they returned is. The engine calls it after the last Next.
type CutReporter interface {
	Cut() *Consistency
}

// Consistency describes how close a copy out of a live source is to a
// single point-in-time snapshot.
type Consistency struct {
	// Model is "snapshot" when the copy is one point in time (a single SQL
	// statement, one raftkv Export stream), or "per-run" when a resumed
	// raftkv copy read one cut per run, each a
	// consistent, linearizable read of their own.
	Model string `json:"model"`
	// StartRevision and EndRevision are the raftkv revisions (raft indexes)
	// the first and the last page were read at; 0 for other sources.
	StartRevision int64 `json:"start_revision,omitempty"`
	EndRevision   int64 `json:"end_revision,omitempty"`
	// Modified counts copied keys whose mod_revision is above
	// StartRevision: they changed while the copy ran, and the copy holds
	// their newer value. ModifiedKeys lists the first of them.
	Modified     int64    `json:"modified_during_copy"`
	ModifiedKeys [][]byte `json:"modified_keys,omitempty"`
	// Exact is true when nothing was written to the source cluster at all
	// between the first and the last page (the revisions are equal), so
	// the copy is the state at StartRevision.
	Exact bool `json:"exact"`
	// Note says in one sentence what the copy does not guarantee.
	Note string `json:"note"`
}

// Target stores records. The engine calls every method from one goroutine;
// Write may use several goroutines internally.
type Target interface {
	// Prepare makes the target ready for writes: it creates a missing SQL
	// table, or creates (or truncates, when resuming) a dump file. It is
	// called once, after both sides were opened successfully, and never in
	// a dry run, so an unreachable source leaves the target untouched.
	Prepare(ctx context.Context) error
	// Check reports why the target can never store r (a key over the size
	// limit, a key a text column cannot hold), or nil. The engine counts
	// such records as failed without sending them.
	Check(r Record) error
	// CanExpire reports whether the target stores expiry times.
	CanExpire() bool
	// Write stores recs, whose keys are distinct, and returns one Outcome
	// per record in the same order. An error means the batch may be
	// partly written and the migration must stop; per-record rejections
	// are Outcomes, not errors.
	Write(ctx context.Context, recs []Record, opts WriteOptions) ([]Outcome, error)
	// Sync makes everything written so far durable and returns an opaque
	// token for TargetOptions.Resume (a file offset; "" for targets whose
	// writes are durable when Write returns).
	Sync(ctx context.Context) (string, error)
	// Close flushes and releases the target. It is called exactly once.
	Close() error
}

// WriteOptions modify one Write.
type WriteOptions struct {
	// Mode says what to do with keys that exist in the target.
	Mode Mode
	// OnlyIfChanged asks the target to leave alone keys that already hold
	// exactly this value, and to count them as copied. The engine sets it
	// for the records right after a resumed checkpoint, which an earlier,
	// killed run may have written already.
	OnlyIfChanged bool
}

// Status is the fate of one record.
type Status uint8

// Record fates.
const (
	Copied Status = iota
	Skipped
	Failed
)

// Outcome is what a Target did with one record.
type Outcome struct {
	Status Status
	// Reason explains Skipped and Failed outcomes.
	Reason string
}

// Mode selects what happens to keys that already exist in the target.
type Mode int

const (
	// Overwrite replaces existing keys (an upsert). It is the default.
	Overwrite Mode = iota
	// SkipExisting leaves existing keys alone and counts them as skipped.
	SkipExisting
)

func (m Mode) String() string {
	if m == SkipExisting {
		return "skip-existing"
	}
	return "overwrite"
}

// TTLPolicy selects what happens to records with an expiry time when the
// target cannot store one (SQL tables).
type TTLPolicy int

const (
	// TTLKeep keeps expiry times; a record with one that the target cannot
	// keep fails, so nothing loses its TTL silently. It is the default.
	TTLKeep TTLPolicy = iota
	// TTLDrop copies such records without their expiry and counts them.
	TTLDrop
	// TTLSkip skips such records.
	TTLSkip
)

func (p TTLPolicy) String() string {
	switch p {
	case TTLDrop:
		return "drop"
	case TTLSkip:
		return "skip"
	}
	return "keep"
}

// ParseTTLPolicy parses keep, drop or skip.
func ParseTTLPolicy(s string) (TTLPolicy, bool) {
	switch s {
	case "keep":
		return TTLKeep, true
	case "drop":
		return TTLDrop, true
	case "skip":
		return TTLSkip, true
	}
	return TTLKeep, false
}
