package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// A backup file (NB: persisted; docs/backup.md is the full description, and
// testdata/v1/ holds a golden file that must always verify):
//
//	magic "RKVBACK\x00" | format version u32 | manifest length u32
//	manifest (JSON, manifest length bytes) | sha256 of the manifest bytes
//	payload: the FSM snapshot stream, gzip-compressed (manifest.CompressedSize bytes)
//
// Integers are big-endian. Nothing may follow the payload.
const (
	magic = "RKVBACK\x00"

	// FormatVersion is the backup file format this binary writes, and the
	// newest it reads.
	//
	// NB: persisted. A change to the layout or the manifest's meaning needs
	// a new version; keep reading the old ones.
	FormatVersion uint32 = 1

	headerLen = len(magic) + 4 + 4
	// maxManifestLen bounds the manifest length field, so a corrupt or
	// foreign file cannot make a reader allocate much.
	maxManifestLen = 64 << 10

	// CompressionGzip is the only compression format version 1 knows.
	CompressionGzip = "gzip"

	// FileExt is the extension of backup files in a backup directory.
	FileExt = ".rkvbak"
)

// Trigger values of Manifest.Trigger.
const (
	// TriggerManual marks a backup an operator asked for.
	TriggerManual = "manual"
	// TriggerScheduled marks a backup the scheduler took; retention prunes
	// only these.
	TriggerScheduled = "scheduled"
)

var (
	// ErrNotBackup means the data does not start like a raftkv backup.
	ErrNotBackup = errors.New("not a raftkv backup file")
	// ErrUnsupportedVersion means the backup (or its payload) uses a format
	// version this binary does not read, usually because a newer raftkv
	// wrote it.
	ErrUnsupportedVersion = errors.New("unsupported backup format version")
	// ErrCorrupt means the backup is damaged: truncated, a checksum or size
	// mismatch, or an undecodable manifest or payload.
	ErrCorrupt = errors.New("backup is corrupt")
	// ErrClusterMismatch means a backup belongs to another cluster than the
	// one it is being restored into.
	ErrClusterMismatch = errors.New("backup belongs to another cluster")
	// ErrNotFound means no backup has the requested id.
	ErrNotFound = errors.New("backup not found")
	// ErrInvalidID means a string cannot be a backup id.
	ErrInvalidID = errors.New("invalid backup id")
)

// Manifest describes a backup. It is stored, as JSON, at the start of the
// backup file and protected by its own SHA-256.
//
// NB: the JSON field names are part of format version 1.
type Manifest struct {
	// FormatVersion is the backup file format version (the header's).
	FormatVersion uint32 `json:"format_version"`
	// ID identifies the backup; it is also its file name in a backup
	// directory (ID + FileExt).
	ID string `json:"id"`
	// ClusterID is the id of the cluster the data came from ("" for a
	// cluster that had none).
	ClusterID string `json:"cluster_id"`
	// NodeID is the node that took the snapshot.
	NodeID string `json:"node_id"`
	// RaftIndex and RaftTerm are those of the raft snapshot the backup was
	// made from: every log entry up to RaftIndex is in it, none after.
	RaftIndex uint64 `json:"raft_index"`
	RaftTerm  uint64 `json:"raft_term"`
	// AppliedIndex is the index of the last entry that changed the state
	// (the FSM's applied index, <= RaftIndex): the highest revision in it.
	AppliedIndex uint64 `json:"applied_index"`
	// Created is when the backup was taken (UTC).
	Created time.Time `json:"created"`
	// Trigger is TriggerManual or TriggerScheduled.
	Trigger string `json:"trigger"`
	// KeyCount and MemberCount count the payload's kv and member records.
	KeyCount    uint64 `json:"key_count"`
	MemberCount uint64 `json:"member_count"`
	// UncompressedSize and CompressedSize are the payload's sizes in bytes
	// before and after compression.
	UncompressedSize int64 `json:"uncompressed_size"`
	CompressedSize   int64 `json:"compressed_size"`
	// Compression is the payload compression, CompressionGzip.
	Compression string `json:"compression"`
	// PayloadFormat and PayloadVersion name the uncompressed payload's
	// format: PayloadFormat, FSM snapshot version 1, 2 or 3.
	PayloadFormat  string `json:"payload_format"`
	PayloadVersion uint32 `json:"payload_version"`
	// SHA256 is the hex SHA-256 of the compressed payload bytes.
	SHA256 string `json:"sha256"`
	// RaftkvVersion is the release of raftkv that wrote the backup.
	RaftkvVersion string `json:"raftkv_version"`
}

// FileSize is the size a complete backup file with this manifest has.
func (m Manifest) FileSize() int64 {
	b, _ := m.encode()
	return int64(headerLen+len(b)+sha256.Size) + m.CompressedSize
}

func (m Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// writeHeader writes the header, manifest and manifest checksum.
func writeHeader(w io.Writer, m Manifest) (int64, error) {
	mb, err := m.encode()
	if err != nil {
		return 0, err
	}
	if len(mb) > maxManifestLen {
		return 0, fmt.Errorf("manifest is %d bytes, max %d", len(mb), maxManifestLen)
	}
	b := make([]byte, 0, headerLen+len(mb)+sha256.Size)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, m.FormatVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(mb)))
	b = append(b, mb...)
	sum := sha256.Sum256(mb)
	b = append(b, sum[:]...)
	n, err := w.Write(b)
	return int64(n), err
}

// readHeader reads and checks the header, manifest and manifest checksum,
// leaving r at the first payload byte. It checks what the manifest says
// about itself, not the payload.
func readHeader(r io.Reader) (Manifest, error) {
	var m Manifest
	var hdr [headerLen]byte
	n, err := io.ReadFull(r, hdr[:])
	if n < len(magic) || string(hdr[:len(magic)]) != magic {
		if err != nil && n == 0 {
			return m, fmt.Errorf("%w: empty file", ErrNotBackup)
		}
		return m, fmt.Errorf("%w: it does not start with %q", ErrNotBackup, magic)
	}
	if err != nil {
		return m, fmt.Errorf("%w: truncated header: %w", ErrCorrupt, noEOF(err))
	}
	version := binary.BigEndian.Uint32(hdr[len(magic):])
	if version < 1 || version > FormatVersion {
		return m, fmt.Errorf("%w: file has format version %d, this binary reads 1 to %d; upgrade raftkv",
			ErrUnsupportedVersion, version, FormatVersion)
	}
	ml := binary.BigEndian.Uint32(hdr[len(magic)+4:])
	if ml == 0 || ml > maxManifestLen {
		return m, fmt.Errorf("%w: manifest length %d out of range (1 to %d)", ErrCorrupt, ml, maxManifestLen)
	}
	buf := make([]byte, int(ml)+sha256.Size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return m, fmt.Errorf("%w: truncated manifest: %w", ErrCorrupt, noEOF(err))
	}
	mb, want := buf[:ml], buf[ml:]
	if sum := sha256.Sum256(mb); !bytes.Equal(sum[:], want) {
		return m, fmt.Errorf("%w: manifest checksum mismatch", ErrCorrupt)
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		return m, fmt.Errorf("%w: decode manifest: %w", ErrCorrupt, err)
	}
	if err := m.check(version); err != nil {
		return m, err
	}
	return m, nil
}

// check validates a decoded manifest against itself and the header.
func (m Manifest) check(version uint32) error {
	switch {
	case m.FormatVersion != version:
		return fmt.Errorf("%w: manifest says format version %d, header %d", ErrCorrupt, m.FormatVersion, version)
	case m.Compression != CompressionGzip:
		return fmt.Errorf("%w: compression %q (this binary reads %q)", ErrUnsupportedVersion, m.Compression, CompressionGzip)
	case m.PayloadFormat != PayloadFormat:
		return fmt.Errorf("%w: payload format %q (this binary reads %q)", ErrUnsupportedVersion, m.PayloadFormat, PayloadFormat)
	case m.PayloadVersion < payloadVersionMin || m.PayloadVersion > payloadVersionMax:
		return fmt.Errorf("%w: payload snapshot version %d (this binary reads %d to %d); upgrade raftkv",
			ErrUnsupportedVersion, m.PayloadVersion, payloadVersionMin, payloadVersionMax)
	case m.CompressedSize <= 0 || m.UncompressedSize < int64(snapshotHeaderLen):
		return fmt.Errorf("%w: manifest sizes %d/%d out of range", ErrCorrupt, m.CompressedSize, m.UncompressedSize)
	case len(m.SHA256) != 2*sha256.Size:
		return fmt.Errorf("%w: manifest sha256 %q is not a SHA-256", ErrCorrupt, m.SHA256)
	case m.AppliedIndex > m.RaftIndex:
		return fmt.Errorf("%w: applied index %d above raft index %d", ErrCorrupt, m.AppliedIndex, m.RaftIndex)
	}
	if err := ValidateID(m.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return nil
}

// CheckCluster returns nil if a backup with manifest m may be restored into
// the cluster with id clusterID: the ids match, or either is empty (a
// cluster or backup from before cluster ids), or force is set. Otherwise it
// returns an error wrapping ErrClusterMismatch that says how to override.
func CheckCluster(m Manifest, clusterID string, force bool) error {
	if force || m.ClusterID == "" || clusterID == "" || m.ClusterID == clusterID {
		return nil
	}
	return fmt.Errorf("%w: backup %s is of cluster %s, this cluster is %s; use --force to restore it anyway",
		ErrClusterMismatch, m.ID, m.ClusterID, clusterID)
}
