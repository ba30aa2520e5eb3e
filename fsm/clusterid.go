package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/raftkv/raftkv/store"
)

// ClusterID returns the replicated cluster id, or "" while the cluster has
// none (before its first leader set one) or when the store cannot be read.
//
// The id is set once through raft by a SetClusterID command (the first one
// applied wins), is part of snapshots, and is replaced only by restoring a
// snapshot that carries another one.
func (f *FSM) ClusterID() string {
	var id string
	err := f.view(func(tx *store.ReadTx) error {
		id = tx.ClusterID()
		return nil
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		f.logger.Warn("read cluster id", "err", err)
	}
	return id
}

// SnapshotInfo describes a snapshot stream, as returned by
// RewriteClusterID.
type SnapshotInfo struct {
	// Index and Term are the applied index and term in the stream's header.
	Index, Term uint64
	// ClusterID is the cluster id the source stream carried ("" if none).
	ClusterID string
	// Records is the number of records copied, the new cluster id included.
	Records uint64
}

// RewriteClusterID copies the snapshot stream src to dst with its cluster id
// replaced by id (or added, for a stream without one), in the source's
// format version (at least 2, the first with a cluster id), with a new record count and checksum. Everything else,
// header index and term included, is copied unchanged.
//
// src is fully verified while it is copied, but the verdict comes only at its
// end: when RewriteClusterID returns an error (wrapping ErrBadSnapshot for
// a bad src), whatever it wrote to dst must be discarded.
//
// Restoring a backup of another cluster with --force uses it so that the
// cluster keeps its own identity.
func RewriteClusterID(dst io.Writer, src io.Reader, id string) (SnapshotInfo, error) {
	var info SnapshotInfo
	if err := ValidateClusterID(id); err != nil {
		return info, err
	}
	sr, err := newSnapshotReader(src)
	if err != nil {
		return info, err
	}
	info.Index, info.Term = sr.index, sr.term

	h := sha256.New()
	bw := bufio.NewWriterSize(dst, 256<<10)
	hw := io.MultiWriter(bw, h)
	hdr := make([]byte, 0, snapshotHeaderLen)
	hdr = append(hdr, snapshotMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, max(sr.version, snapshotVersionNoExpiry))
	hdr = binary.BigEndian.AppendUint64(hdr, sr.index)
	hdr = binary.BigEndian.AppendUint64(hdr, sr.term)
	if _, err := hw.Write(hdr); err != nil {
		return info, err
	}
	rec := appendClusterIDRecord(nil, id)
	if _, err := hw.Write(rec); err != nil {
		return info, err
	}
	info.Records = 1
	for {
		tag, body, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, err
		}
		if tag == recordClusterID {
			info.ClusterID = string(body)
			continue
		}
		rec = binary.BigEndian.AppendUint32(rec[:0], uint32(1+len(body)))
		rec = append(rec, tag)
		rec = append(rec, body...)
		if _, err := hw.Write(rec); err != nil {
			return info, err
		}
		info.Records++
	}
	trailer := binary.BigEndian.AppendUint32(nil, 0)
	trailer = binary.BigEndian.AppendUint64(trailer, info.Records)
	if _, err := hw.Write(trailer); err != nil {
		return info, err
	}
	if _, err := bw.Write(h.Sum(nil)); err != nil {
		return info, err
	}
	if err := bw.Flush(); err != nil {
		return info, fmt.Errorf("fsm: rewrite cluster id: %w", err)
	}
	return info, nil
}
