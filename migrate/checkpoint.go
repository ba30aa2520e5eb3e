package migrate

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"time"
)

// checkpointVersion is the format of checkpoint files.
//
// NB: a checkpoint written by one raftkvctl release is resumed by the next;
// add fields, never change the meaning of one.
const checkpointVersion = 1

// checkpoint is the state a killed migration resumes from. Everything
// before SourcePosition is in the target; up to Window records after it
// may be too.
type checkpoint struct {
	Version int    `json:"version"`
	Job     string `json:"job"` // jobID of the migration that wrote it
	From    string `json:"from"`
	To      string `json:"to"`
	// SourcePosition and TargetPosition are the Source.Position and
	// Target.Sync tokens of the last committed batch.
	SourcePosition string `json:"source_position"`
	TargetPosition string `json:"target_position"`
	// Window bounds the records written after SourcePosition before the
	// run stopped.
	Window      int              `json:"window"`
	Copied      int64            `json:"copied"`
	Skipped     int64            `json:"skipped"`
	Failed      int64            `json:"failed"`
	Bytes       int64            `json:"bytes"`
	TTLDropped  int64            `json:"ttl_dropped"`
	SkippedBy   map[string]int64 `json:"skipped_by_reason"`
	SkippedKeys []KeyNote        `json:"skipped_keys"`
	FailedKeys  []KeyNote        `json:"failed_keys"`
	Consistency *Consistency     `json:"source_consistency,omitempty"`
	// Elapsed is the time all runs so far spent, in seconds.
	Elapsed float64   `json:"elapsed_seconds"`
	Done    bool      `json:"done"`
	Updated time.Time `json:"updated"`
}

// jobID identifies what a migration copies, so that a checkpoint is never
// resumed by a different migration. Batch sizes and rates may change
// between runs; the data selected and how it is written may not. The
// endpoints of a raftkv URL are left out: the nodes a resumed run talks to
// may change (a node is down) while the cluster stays the same.
func (m *Migration) jobID() string {
	c := m.cfg
	h := sha256.New()
	for _, part := range [][]byte{
		[]byte(jobURL(c.From)), []byte(jobURL(c.To)), c.Prefix,
		fmt.Appendf(nil, "%t", c.Rename), c.RenameFrom, c.RenameTo,
		[]byte(c.Mode.String()), []byte(c.TTL.String()),
	} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// jobURL is rawURL without the host list of a raftkv URL.
func jobURL(rawURL string) string {
	if kind, _, err := splitScheme(rawURL); err == nil && kind == "raftkv" {
		return "raftkv://"
	}
	return rawURL
}

func newCheckpoint(m *Migration, sum *Summary, srcPos, tgtPos string, done bool) *checkpoint {
	return &checkpoint{
		Version:        checkpointVersion,
		Job:            m.jobID(),
		From:           Redact(m.cfg.From),
		To:             Redact(m.cfg.To),
		SourcePosition: srcPos,
		TargetPosition: tgtPos,
		Window:         m.cfg.ReplayWindow,
		Copied:         sum.Copied,
		Skipped:        sum.Skipped,
		Failed:         sum.Failed,
		Bytes:          sum.Bytes,
		TTLDropped:     sum.TTLDropped,
		SkippedBy:      maps.Clone(sum.SkippedBy),
		SkippedKeys:    sum.SkippedKeys,
		FailedKeys:     sum.FailedKeys,
		Consistency:    sum.Consistency,
		Elapsed:        (m.prior + time.Since(m.started)).Seconds(),
		Done:           done,
		Updated:        time.Now().UTC(),
	}
}

// loadCheckpoint reads path; a missing file is no checkpoint (nil, nil).
func loadCheckpoint(path, job string) (*checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var c checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s is damaged: %w", path, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint %s has version %d; this raftkvctl reads version %d", path, c.Version, checkpointVersion)
	}
	if c.Job != job {
		return nil, fmt.Errorf("checkpoint %s belongs to another migration (from %s to %s); use another --resume file, or delete it to start over", path, c.From, c.To)
	}
	return &c, nil
}

func (c *checkpoint) restore(sum *Summary) {
	sum.Copied, sum.Skipped, sum.Failed, sum.Bytes = c.Copied, c.Skipped, c.Failed, c.Bytes
	sum.TTLDropped = c.TTLDropped
	maps.Copy(sum.SkippedBy, c.SkippedBy)
	if c.SkippedKeys != nil {
		sum.SkippedKeys = c.SkippedKeys
	}
	if c.FailedKeys != nil {
		sum.FailedKeys = c.FailedKeys
	}
}

func (c *checkpoint) elapsed() time.Duration {
	return time.Duration(c.Elapsed * float64(time.Second))
}

// save replaces path atomically: a crash leaves the old or the new file,
// never a torn one.
func (c *checkpoint) save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// reportWriter writes one JSON line per skipped or failed record.
type reportWriter struct {
	f   *os.File
	w   *bufio.Writer
	enc *json.Encoder
}

type reportLine struct {
	Key    []byte `json:"key"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

func openReport(path string, appendTo bool) (*reportWriter, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open report: %w", err)
	}
	w := bufio.NewWriter(f)
	return &reportWriter{f: f, w: w, enc: json.NewEncoder(w)}, nil
}

func (r *reportWriter) add(key []byte, o Outcome) {
	status := "skipped"
	if o.Status == Failed {
		status = "failed"
	}
	// An encoding error here can only be a write error, which close reports.
	_ = r.enc.Encode(reportLine{Key: key, Status: status, Reason: o.Reason})
}

func (r *reportWriter) close() error {
	err := r.w.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}
