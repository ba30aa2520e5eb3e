package backup

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"
)

// Info is what the caller of Prepare knows about a snapshot; everything
// else in the manifest comes from the snapshot itself.
type Info struct {
	// ID is the backup id (see NewID).
	ID string
	// NodeID is the node taking the backup.
	NodeID string
	// RaftIndex and RaftTerm are the raft snapshot's (raft.SnapshotMeta).
	RaftIndex, RaftTerm uint64
	// Created is the creation time; the zero value means now.
	Created time.Time
	// Trigger is TriggerManual (the default) or TriggerScheduled.
	Trigger string
	// RaftkvVersion is the release writing the backup.
	RaftkvVersion string
	// CompressionLevel is a compress/gzip level; 0 means gzip.BestSpeed,
	// which keeps a backup close to disk speed. Not persisted: any level
	// decodes the same.
	CompressionLevel int
}

// Prepared is a backup whose payload has been compressed into a temporary
// file and whose manifest is final. Write it out with WriteTo (any number of
// times), then Close it to delete the temporary file.
type Prepared struct {
	m    Manifest
	file *os.File
}

// Prepare reads a whole FSM snapshot stream from src (raft.Snapshot().Open()
// gives one), checks it completely (structure, record count, checksum),
// gzip-compresses it into a temporary file in tmpDir while hashing it, and
// returns the backup ready to be written. progress, if not nil, is called
// now and then with the number of snapshot bytes consumed.
//
// A snapshot that does not decode is an error wrapping ErrCorrupt; nothing
// is left behind on any error.
func Prepare(src io.Reader, info Info, tmpDir string, progress func(n int64)) (p *Prepared, err error) {
	if err := ValidateID(info.ID); err != nil {
		return nil, err
	}
	level := info.CompressionLevel
	if level == 0 {
		level = gzip.BestSpeed
	}
	f, err := os.CreateTemp(tmpDir, ".tmp-payload-*")
	if err != nil {
		return nil, fmt.Errorf("create payload temp file: %w", err)
	}
	// The file is only ever read through the descriptor we hold.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlink payload temp file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()

	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	zw, err := gzip.NewWriterLevel(cw, level)
	if err != nil {
		return nil, fmt.Errorf("gzip writer: %w", err)
	}
	cr := &countReader{r: src, progress: progress}
	// The decoder pulls the snapshot through the compressor, so the stream
	// is read once and checked while it is compressed.
	st, err := decodePayload(io.TeeReader(cr, zw))
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	// decodePayload stops at the end of the snapshot; anything after it is
	// an error it reported, so cr has been read to EOF.
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress payload: %w", err)
	}
	if progress != nil {
		progress(cr.n)
	}
	created := info.Created
	if created.IsZero() {
		created = time.Now()
	}
	trigger := info.Trigger
	if trigger == "" {
		trigger = TriggerManual
	}
	m := Manifest{
		FormatVersion:    FormatVersion,
		ID:               info.ID,
		ClusterID:        st.clusterID,
		NodeID:           info.NodeID,
		RaftIndex:        max(info.RaftIndex, st.index),
		RaftTerm:         info.RaftTerm,
		AppliedIndex:     st.index,
		Created:          created.UTC().Round(time.Millisecond),
		Trigger:          trigger,
		KeyCount:         st.keys,
		MemberCount:      st.members,
		UncompressedSize: cr.n,
		CompressedSize:   cw.n,
		Compression:      CompressionGzip,
		PayloadFormat:    PayloadFormat,
		PayloadVersion:   st.version,
		SHA256:           hex.EncodeToString(h.Sum(nil)),
		RaftkvVersion:    info.RaftkvVersion,
	}
	if err := m.check(FormatVersion); err != nil {
		return nil, err
	}
	return &Prepared{m: m, file: f}, nil
}

// Manifest returns the backup's manifest.
func (p *Prepared) Manifest() Manifest { return p.m }

// Size is the size of the complete backup file.
func (p *Prepared) Size() int64 { return p.m.FileSize() }

// WriteTo writes the complete backup file to w.
func (p *Prepared) WriteTo(w io.Writer) (int64, error) {
	n, err := writeHeader(w, p.m)
	if err != nil {
		return n, fmt.Errorf("write backup header: %w", err)
	}
	m, err := io.Copy(w, io.NewSectionReader(p.file, 0, p.m.CompressedSize))
	n += m
	if err != nil {
		return n, fmt.Errorf("write backup payload: %w", err)
	}
	if m != p.m.CompressedSize {
		return n, fmt.Errorf("write backup payload: copied %d of %d bytes", m, p.m.CompressedSize)
	}
	return n, nil
}

// Close releases the temporary payload file.
func (p *Prepared) Close() error {
	if p.file == nil {
		return nil
	}
	err := p.file.Close()
	p.file = nil
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// countReader counts bytes read and reports progress every progressStep.
type countReader struct {
	r        io.Reader
	n        int64
	next     int64
	progress func(int64)
}

const progressStep = 4 << 20

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && c.n >= c.next {
		c.progress(c.n)
		c.next = c.n + progressStep
	}
	return n, err
}
