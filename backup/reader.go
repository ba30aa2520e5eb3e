package backup

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// Reader reads a backup file: NewReader checks the header and manifest,
// then Verify or Extract reads and checks the whole payload.
type Reader struct {
	r    io.Reader
	m    Manifest
	used bool
}

// NewReader reads and checks the header and the manifest of the backup in
// r (the magic, the format version, the manifest checksum and its fields).
// It does not read the payload. Errors wrap ErrNotBackup,
// ErrUnsupportedVersion or ErrCorrupt.
func NewReader(r io.Reader) (*Reader, error) {
	m, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, m: m}, nil
}

// Manifest returns the manifest read by NewReader. Until Verify or Extract
// succeeded, nothing in it has been checked against the payload.
func (r *Reader) Manifest() Manifest { return r.m }

// Verify reads the whole payload and checks it against the manifest: its
// size and SHA-256, that it decompresses, that the FSM snapshot inside
// decodes with a valid checksum, and that its key count, applied index and
// cluster id are the manifest's. It also checks that nothing follows the
// payload. Errors wrap ErrCorrupt (or ErrUnsupportedVersion).
func (r *Reader) Verify() error { return r.Extract(io.Discard) }

// Extract is Verify that also writes the decompressed FSM snapshot stream
// to w as it goes, for a restore. w receives data before the verdict: when
// Extract returns an error, discard what it wrote.
func (r *Reader) Extract(w io.Writer) error {
	if r.used {
		return errors.New("backup: payload already read")
	}
	r.used = true
	m := r.m
	h := sha256.New()
	limited := &io.LimitedReader{R: r.r, N: m.CompressedSize}
	hashed := io.TeeReader(limited, h)

	st, decErr := decompressAndDecode(hashed, w)
	// Hash whatever the decoder left, so a damaged payload is reported as
	// the checksum mismatch it is rather than as whichever decode error it
	// happened to cause.
	if _, err := io.Copy(io.Discard, hashed); err != nil {
		return fmt.Errorf("%w: read payload: %w", ErrCorrupt, err)
	}
	if read := m.CompressedSize - limited.N; read != m.CompressedSize {
		return fmt.Errorf("%w: truncated: payload is %d bytes, the manifest says %d", ErrCorrupt, read, m.CompressedSize)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != m.SHA256 {
		return fmt.Errorf("%w: payload sha256 %s, the manifest says %s", ErrCorrupt, sum, m.SHA256)
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.r, one[:]); n > 0 {
		return fmt.Errorf("%w: data after the payload", ErrCorrupt)
	}
	if decErr != nil {
		return decErr
	}
	switch {
	case st.raw != m.UncompressedSize:
		return fmt.Errorf("%w: payload decompresses to %d bytes, the manifest says %d", ErrCorrupt, st.raw, m.UncompressedSize)
	case st.keys != m.KeyCount:
		return fmt.Errorf("%w: payload holds %d keys, the manifest says %d", ErrCorrupt, st.keys, m.KeyCount)
	case st.members != m.MemberCount:
		return fmt.Errorf("%w: payload holds %d members, the manifest says %d", ErrCorrupt, st.members, m.MemberCount)
	case st.index != m.AppliedIndex:
		return fmt.Errorf("%w: payload is at applied index %d, the manifest says %d", ErrCorrupt, st.index, m.AppliedIndex)
	case st.clusterID != m.ClusterID:
		return fmt.Errorf("%w: payload is of cluster %q, the manifest says %q", ErrCorrupt, st.clusterID, m.ClusterID)
	case st.version != m.PayloadVersion:
		return fmt.Errorf("%w: payload snapshot version %d, the manifest says %d", ErrCorrupt, st.version, m.PayloadVersion)
	}
	return nil
}

// VerifyChecksum reads the whole payload and checks only its size and
// SHA-256 against the manifest, and that nothing follows it: it proves the
// file holds the bytes its writer hashed, without decompressing them. Use
// it where the writer already checked the snapshot (Prepare decodes it
// while compressing), for example after a transfer; Verify is the complete
// check.
func (r *Reader) VerifyChecksum() error {
	if r.used {
		return errors.New("backup: payload already read")
	}
	r.used = true
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r.r, r.m.CompressedSize))
	if err != nil {
		return fmt.Errorf("%w: read payload: %w", ErrCorrupt, err)
	}
	if n != r.m.CompressedSize {
		return fmt.Errorf("%w: truncated: payload is %d bytes, the manifest says %d", ErrCorrupt, n, r.m.CompressedSize)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != r.m.SHA256 {
		return fmt.Errorf("%w: payload sha256 %s, the manifest says %s", ErrCorrupt, sum, r.m.SHA256)
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.r, one[:]); n > 0 {
		return fmt.Errorf("%w: data after the payload", ErrCorrupt)
	}
	return nil
}

type extractStats struct {
	payloadStats
	raw int64 // decompressed bytes
}

func decompressAndDecode(compressed io.Reader, w io.Writer) (extractStats, error) {
	var st extractStats
	// gzip reads through a ByteReader as is; give it ours so bytes it did
	// not consume can be checked below.
	br := bufio.NewReaderSize(compressed, 64<<10)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return st, fmt.Errorf("%w: payload: %w", ErrCorrupt, noEOF(err))
	}
	zr.Multistream(false)
	cw := &countWriter{w: w}
	st.payloadStats, err = decodePayload(io.TeeReader(zr, cw))
	st.raw = cw.n
	if err != nil {
		return st, err
	}
	// decodePayload read to the end of the gzip stream, which checked the
	// gzip CRC and length; nothing may follow it inside the payload.
	if _, err := br.ReadByte(); err == nil {
		return st, fmt.Errorf("%w: data after the compressed payload", ErrCorrupt)
	}
	return st, nil
}

// ReadManifest reads the manifest of the backup in r, checking the header
// and the manifest's own checksum but not the payload.
func ReadManifest(r io.Reader) (Manifest, error) {
	return readHeader(r)
}

// VerifyFile verifies the backup file at path completely (see
// Reader.Verify) and returns its manifest. It also checks the file's size.
func VerifyFile(path string) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		return Manifest{}, err
	}
	if err := r.Verify(); err != nil {
		return r.Manifest(), err
	}
	return r.Manifest(), nil
}
