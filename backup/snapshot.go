package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// The FSM snapshot stream, as package fsm writes it (fsm/snapshot.go holds
// the authoritative description; NB: both sides are persisted formats):
//
//	header:  magic "RKVSNAP\x00" | version u32 | applied index u64 | applied term u64
//	records: length u32 (> 0) | tag u8 | body (length-1 bytes)
//	           tag 1 kv, tag 2 member, tag 3 cluster id (version 2 and later),
//	           tag 4 kv with expiry (version 3 and later; tag 1 plus an i64 expiry
//	           after the three revisions)
//	trailer: 0 u32 | record count u64 | sha256 over every byte before it
//
// backup decodes it itself instead of importing fsm: raftkvctl links backup
// for offline verification and must not link server code (STYLE.md §1).
// The tests of this package check this decoder against fsm's writer.
const (
	snapshotMagic     = "RKVSNAP\x00"
	snapshotHeaderLen = len(snapshotMagic) + 4 + 8 + 8

	// PayloadFormat names the payload's format in the manifest.
	PayloadFormat = "raftkv-fsm-snapshot"
	// payloadVersionMin and payloadVersionMax are the FSM snapshot versions
	// this package reads.
	payloadVersionMin = 1
	payloadVersionMax = 3

	tagKV        = 1
	tagMember    = 2
	tagClusterID = 3
	tagKVExpiry  = 4

	// maxRecordLen bounds a record's length field: a kv record with a 32 KiB
	// key (bbolt's limit is lower) and a value of up to 2^31 bytes. It only
	// protects against absurd lengths; the reader grows its buffer with the
	// data actually read.
	maxRecordLen = 1 + 4 + 32<<10 + 32 + (1<<31 - 1)
	// maxClusterIDLen matches fsm.MaxClusterIDLen.
	maxClusterIDLen = 64
)

// payloadStats is what decoding a whole FSM snapshot stream found.
type payloadStats struct {
	version     uint32
	index, term uint64
	clusterID   string
	keys        uint64
	members     uint64
	records     uint64
}

// decodePayload reads a whole FSM snapshot stream from r and verifies its
// structure, record count and checksum, and that nothing follows the
// trailer. Errors wrap ErrCorrupt, or ErrUnsupportedVersion for a snapshot
// version this package does not know.
func decodePayload(r io.Reader) (payloadStats, error) {
	var st payloadStats
	br := bufio.NewReaderSize(r, 64<<10)
	h := sha256.New()
	tee := io.TeeReader(br, h)

	var hdr [snapshotHeaderLen]byte
	if _, err := io.ReadFull(tee, hdr[:]); err != nil {
		return st, fmt.Errorf("%w: payload: read snapshot header: %w", ErrCorrupt, noEOF(err))
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return st, fmt.Errorf("%w: payload is not a raftkv snapshot (magic %q)", ErrCorrupt, hdr[:len(snapshotMagic)])
	}
	st.version = binary.BigEndian.Uint32(hdr[8:12])
	if st.version < payloadVersionMin || st.version > payloadVersionMax {
		return st, fmt.Errorf("%w: payload snapshot version %d (this binary reads %d to %d), upgrade raftkv",
			ErrUnsupportedVersion, st.version, payloadVersionMin, payloadVersionMax)
	}
	st.index = binary.BigEndian.Uint64(hdr[12:20])
	st.term = binary.BigEndian.Uint64(hdr[20:28])

	var body bytes.Buffer
	for {
		var lb [4]byte
		if _, err := io.ReadFull(tee, lb[:]); err != nil {
			return st, fmt.Errorf("%w: payload: read record %d length: %w", ErrCorrupt, st.records, noEOF(err))
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n == 0 {
			return st, checkTrailer(&st, tee, br, h)
		}
		if uint64(n) > maxRecordLen {
			return st, fmt.Errorf("%w: payload: record %d length %d exceeds %d", ErrCorrupt, st.records, n, uint64(maxRecordLen))
		}
		body.Reset()
		if _, err := io.CopyN(&body, tee, int64(n)); err != nil {
			return st, fmt.Errorf("%w: payload: read record %d: %w", ErrCorrupt, st.records, noEOF(err))
		}
		st.records++
		if err := st.record(body.Bytes()); err != nil {
			return st, err
		}
	}
}

// record checks one record (tag and body) and counts it.
func (st *payloadStats) record(b []byte) error {
	tag, body := b[0], b[1:]
	switch tag {
	case tagKV, tagKVExpiry:
		fixed := uint64(24)
		if tag == tagKVExpiry {
			if st.version < 3 {
				return fmt.Errorf("%w: payload: record %d: unexpected kv-with-expiry record", ErrCorrupt, st.records)
			}
			fixed = 32
		}
		if len(body) < 4 {
			return fmt.Errorf("%w: payload: record %d: short kv record", ErrCorrupt, st.records)
		}
		kl := binary.BigEndian.Uint32(body)
		if kl == 0 || uint64(len(body)-4) < uint64(kl)+fixed {
			return fmt.Errorf("%w: payload: record %d: bad key length %d", ErrCorrupt, st.records, kl)
		}
		st.keys++
	case tagMember:
		if len(body) < 4 || uint64(len(body)-4) < uint64(binary.BigEndian.Uint32(body)) {
			return fmt.Errorf("%w: payload: record %d: bad member record", ErrCorrupt, st.records)
		}
		st.members++
	case tagClusterID:
		if st.version < 2 || st.clusterID != "" {
			return fmt.Errorf("%w: payload: record %d: unexpected cluster id record", ErrCorrupt, st.records)
		}
		if err := validClusterID(string(body)); err != nil {
			return fmt.Errorf("%w: payload: record %d: %w", ErrCorrupt, st.records, err)
		}
		st.clusterID = string(body)
	default:
		return fmt.Errorf("%w: payload: record %d: unknown record tag %d", ErrCorrupt, st.records, tag)
	}
	return nil
}

func checkTrailer(st *payloadStats, tee io.Reader, br *bufio.Reader, h hash.Hash) error {
	var cb [8]byte
	if _, err := io.ReadFull(tee, cb[:]); err != nil {
		return fmt.Errorf("%w: payload: read snapshot trailer: %w", ErrCorrupt, noEOF(err))
	}
	want := h.Sum(nil)
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return fmt.Errorf("%w: payload: read snapshot checksum: %w", ErrCorrupt, noEOF(err))
	}
	if !bytes.Equal(sum[:], want) {
		return fmt.Errorf("%w: payload: snapshot checksum mismatch", ErrCorrupt)
	}
	if c := binary.BigEndian.Uint64(cb[:]); c != st.records {
		return fmt.Errorf("%w: payload: snapshot trailer counts %d records, read %d", ErrCorrupt, c, st.records)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("%w: payload: data after the snapshot trailer", ErrCorrupt)
		}
		return fmt.Errorf("%w: payload: after the snapshot trailer: %w", ErrCorrupt, err)
	}
	return nil
}

// validClusterID mirrors fsm.ValidateClusterID.
func validClusterID(id string) error {
	if id == "" || len(id) > maxClusterIDLen {
		return fmt.Errorf("cluster id length %d, want 1 to %d", len(id), maxClusterIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("cluster id byte %d is not printable ASCII", i)
		}
	}
	return nil
}

// noEOF turns a clean EOF in the middle of a stream into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
