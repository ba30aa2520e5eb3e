package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/internal/failpoint"
	"github.com/raftkv/raftkv/store"
)

// Snapshot stream format (NB: persisted in raft snapshots and backups, and
// sent to followers, possibly of another release; never change it in
// place, add a new SnapshotVersion and keep reading the old ones):
//
//	header:  magic "RKVSNAP\x00" | version u32 | applied index u64 | applied term u64
//	records: length u32 (> 0) | tag u8 | body (length-1 bytes)
//	           tag 1, kv:         key length u32 | key | create_revision i64 | mod_revision i64 | version i64 | value
//	           tag 2, member:     id length u32 | id | grpc address
//	           tag 3, cluster id: the id (version 2 and later; at most one)
//	           tag 4, kv with expiry (version 3 and later): key length u32 | key |
//	                  create_revision i64 | mod_revision i64 | version i64 | expire_at_unix_ms i64 | value
//	trailer: 0 u32 | record count u64 | sha256 over every byte before it
//
// Integers are big-endian. The cluster id (if the cluster has one) comes
// first, then members, then kvs in key order (tag 1 for a key without an
// expiry, tag 4 for one with). Version 1 (v0.1.0) is version 2 without tag
// 3, and version 2 (v0.2.0) is version 3 without tag 4; all three are read.
// A store without any expiry is still written as version 2, so clusters and
// backups that do not use TTLs stay readable by v0.2.0. Package backup reads this format
// too, independently (raftkvctl links backup but not fsm), and its tests
// check it against this writer.
const (
	snapshotMagic = "RKVSNAP\x00"

	// SnapshotVersion is the FSM snapshot format this binary writes. It is
	// separate from raft's SnapshotMeta.Version.
	//
	// NB: persisted; see the format above.
	SnapshotVersion uint32 = 3

	// snapshotVersionNoExpiry is written when the store holds no expiry,
	// so the stream is exactly what v0.2.0 wrote and reads.
	snapshotVersionNoExpiry uint32 = 2

	// snapshotVersionMin is the oldest snapshot format Restore reads.
	snapshotVersionMin uint32 = 1

	snapshotHeaderLen = len(snapshotMagic) + 4 + 8 + 8
	recordKV          = byte(1)
	recordMember      = byte(2)
	recordClusterID   = byte(3)
	recordKVExpiry    = byte(4)
	// maxRecordLen bounds a record's length field: the largest kv record.
	maxRecordLen = 1 + 4 + store.MaxKeySize + 32 + store.MaxValueSize

	// restoreChunkBytes is how much record data Restore writes per store
	// transaction: large enough to amortize commits, small enough to bound
	// the memory of bbolt's dirty pages.
	restoreChunkBytes = 32 << 20
)

// ErrBadSnapshot means a snapshot stream is corrupt, truncated, or of an
// unknown format version. Restore returns it wrapped and leaves the FSM
// unchanged.
var ErrBadSnapshot = errors.New("fsm: invalid snapshot")

// Snapshot captures a read view of the store, cheaply, on the FSM goroutine;
// Persist streams it later, concurrently with Apply. The caller must call
// Release (raft always does).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	tx, err := f.beginRead()
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &snapshot{tx: tx, logger: f.logger}, nil
}

// snapshot is a raft.FSMSnapshot over one store read transaction.
type snapshot struct {
	tx     *store.ReadTx
	logger *slog.Logger
	once   sync.Once
}

// Persist streams the snapshot into sink and closes it, or cancels it on any
// error. It may run concurrently with Apply; it does not take the FSM lock.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: persist snapshot: close sink: %w", err)
	}
	return nil
}

// Release ends the read transaction. It is safe to call more than once.
func (s *snapshot) Release() {
	s.once.Do(func() {
		if err := s.tx.Rollback(); err != nil {
			s.logger.Warn("release snapshot", "err", err)
		}
	})
}

func (s *snapshot) write(w io.Writer) error {
	index, term, err := s.tx.Applied()
	if err != nil {
		return err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(w, 256<<10)
	hw := io.MultiWriter(bw, h)

	hdr := make([]byte, 0, snapshotHeaderLen)
	hdr = append(hdr, snapshotMagic...)
	version := SnapshotVersion
	if idx, perKey := s.tx.ExpiryCount(); idx == 0 && perKey == 0 {
		version = snapshotVersionNoExpiry
	}
	hdr = binary.BigEndian.AppendUint32(hdr, version)
	hdr = binary.BigEndian.AppendUint64(hdr, index)
	hdr = binary.BigEndian.AppendUint64(hdr, term)
	if _, err := hw.Write(hdr); err != nil {
		return err
	}

	var count uint64
	err = writeRecords(s.tx, func(rec []byte) error {
		count++
		if _, err := hw.Write(rec); err != nil {
			return err
		}
		if count == 1 && failpoint.Armed() {
			// Test-only crash point: leave a partial snapshot on disk.
			_ = bw.Flush()
			failpoint.Inject(failpoint.FSMSnapshotPersist)
		}
		return nil
	})
	if err != nil {
		return err
	}

	trailer := binary.BigEndian.AppendUint32(nil, 0)
	trailer = binary.BigEndian.AppendUint64(trailer, count)
	if _, err := hw.Write(trailer); err != nil {
		return err
	}
	if _, err := bw.Write(h.Sum(nil)); err != nil {
		return err
	}
	return bw.Flush()
}

// writeRecords calls emit with every encoded record of tx: members in id
// order, then kvs in key order. The slice passed to emit is reused.
func writeRecords(tx *store.ReadTx, emit func(rec []byte) error) error {
	var buf []byte
	if id := tx.ClusterID(); id != "" {
		if err := emit(appendClusterIDRecord(buf, id)); err != nil {
			return err
		}
	}
	members, err := tx.Members()
	if err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(members)) {
		buf = appendMemberRecord(buf[:0], id, members[id])
		if err := emit(buf); err != nil {
			return err
		}
	}
	return tx.ForEach(nil, nil, func(kv store.KeyValue) error {
		buf = appendKVRecord(buf[:0], kv)
		return emit(buf)
	})
}

func appendKVRecord(b []byte, kv store.KeyValue) []byte {
	tag, fixed := recordKV, 24
	if kv.ExpireAtUnixMs != 0 {
		tag, fixed = recordKVExpiry, 32
	}
	b = binary.BigEndian.AppendUint32(b, uint32(1+4+len(kv.Key)+fixed+len(kv.Value)))
	b = append(b, tag)
	b = binary.BigEndian.AppendUint32(b, uint32(len(kv.Key)))
	b = append(b, kv.Key...)
	b = binary.BigEndian.AppendUint64(b, uint64(kv.CreateRevision))
	b = binary.BigEndian.AppendUint64(b, uint64(kv.ModRevision))
	b = binary.BigEndian.AppendUint64(b, uint64(kv.Version))
	if tag == recordKVExpiry {
		b = binary.BigEndian.AppendUint64(b, uint64(kv.ExpireAtUnixMs))
	}
	return append(b, kv.Value...)
}

func appendMemberRecord(b []byte, id, addr string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+4+len(id)+len(addr)))
	b = append(b, recordMember)
	b = binary.BigEndian.AppendUint32(b, uint32(len(id)))
	b = append(b, id...)
	return append(b, addr...)
}

func appendClusterIDRecord(b []byte, id string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(id)))
	b = append(b, recordClusterID)
	return append(b, id...)
}

// snapshotReader decodes a snapshot stream, hashing everything it reads so
// the trailer can be checked.
type snapshotReader struct {
	br    *bufio.Reader
	h     hash.Hash
	tee   io.Reader // br through h
	body  bytes.Buffer
	count uint64

	version     uint32
	index, term uint64
	clusterIDs  int // cluster id records seen
}

// SnapshotIndex reads only the header of a snapshot stream written by
// Persist and returns the FSM applied index it was taken at. The node uses it
// at start to tell whether its store is behind raft's newest snapshot.
func SnapshotIndex(r io.Reader) (uint64, error) {
	sr, err := newSnapshotReader(r)
	if err != nil {
		return 0, err
	}
	return sr.index, nil
}

// Restores returns how many snapshots this FSM has restored since New.
func (f *FSM) Restores() uint64 { return f.restores.Load() }

func newSnapshotReader(r io.Reader) (*snapshotReader, error) {
	sr := &snapshotReader{br: bufio.NewReaderSize(r, 256<<10), h: sha256.New()}
	sr.tee = io.TeeReader(sr.br, sr.h)
	var hdr [snapshotHeaderLen]byte
	if _, err := io.ReadFull(sr.tee, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: read header: %w", ErrBadSnapshot, err)
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, hdr[:len(snapshotMagic)])
	}
	rest := hdr[len(snapshotMagic):]
	sr.version = binary.BigEndian.Uint32(rest[0:4])
	if sr.version < snapshotVersionMin || sr.version > SnapshotVersion {
		return nil, fmt.Errorf("%w: unknown format version %d (this binary reads %d to %d), upgrade this node",
			ErrBadSnapshot, sr.version, snapshotVersionMin, SnapshotVersion)
	}
	sr.index = binary.BigEndian.Uint64(rest[4:12])
	sr.term = binary.BigEndian.Uint64(rest[12:20])
	return sr, nil
}

// next returns the next record's tag and body (valid until the next call),
// or io.EOF once the trailer has been read and verified.
func (sr *snapshotReader) next() (tag byte, body []byte, err error) {
	var lb [4]byte
	if _, err := io.ReadFull(sr.tee, lb[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: read record %d length: %w", ErrBadSnapshot, sr.count, noEOF(err))
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 {
		return 0, nil, sr.trailer()
	}
	if uint64(n) > maxRecordLen {
		return 0, nil, fmt.Errorf("%w: record %d: length %d exceeds %d", ErrBadSnapshot, sr.count, n, uint64(maxRecordLen))
	}
	// Grow with the data actually read, so a corrupt length cannot make us
	// allocate gigabytes up front.
	sr.body.Reset()
	if _, err := io.CopyN(&sr.body, sr.tee, int64(n)); err != nil {
		return 0, nil, fmt.Errorf("%w: read record %d: %w", ErrBadSnapshot, sr.count, noEOF(err))
	}
	sr.count++
	b := sr.body.Bytes()
	if b[0] == recordKVExpiry && sr.version < 3 {
		return 0, nil, fmt.Errorf("%w: record %d: unexpected kv-with-expiry record (format version %d)", ErrBadSnapshot, sr.count, sr.version)
	}
	if b[0] == recordClusterID {
		sr.clusterIDs++
		if sr.version < 2 || sr.clusterIDs > 1 {
			return 0, nil, fmt.Errorf("%w: record %d: unexpected cluster id record (format version %d)", ErrBadSnapshot, sr.count, sr.version)
		}
		if err := ValidateClusterID(string(b[1:])); err != nil {
			return 0, nil, fmt.Errorf("%w: record %d: %w", ErrBadSnapshot, sr.count, err)
		}
	}
	return b[0], b[1:], nil
}

func (sr *snapshotReader) trailer() error {
	var cb [8]byte
	if _, err := io.ReadFull(sr.tee, cb[:]); err != nil {
		return fmt.Errorf("%w: read trailer: %w", ErrBadSnapshot, noEOF(err))
	}
	want := sr.h.Sum(nil)
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(sr.br, sum[:]); err != nil {
		return fmt.Errorf("%w: read checksum: %w", ErrBadSnapshot, noEOF(err))
	}
	if !bytes.Equal(sum[:], want) {
		return fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	if c := binary.BigEndian.Uint64(cb[:]); c != sr.count {
		return fmt.Errorf("%w: trailer counts %d records, read %d", ErrBadSnapshot, c, sr.count)
	}
	if _, err := sr.br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("%w: data after trailer", ErrBadSnapshot)
		}
		return fmt.Errorf("%w: after trailer: %w", ErrBadSnapshot, err)
	}
	return io.EOF
}

// noEOF turns a clean EOF in the middle of a stream into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeKVRecord decodes the body of a kv record (tag 1) or, with
// withExpiry, of a kv-with-expiry record (tag 4).
func decodeKVRecord(body []byte, withExpiry bool) (store.KeyValue, error) {
	if len(body) < 4 {
		return store.KeyValue{}, fmt.Errorf("%w: short kv record", ErrBadSnapshot)
	}
	fixed := 24
	if withExpiry {
		fixed = 32
	}
	kl := binary.BigEndian.Uint32(body)
	body = body[4:]
	if uint64(len(body)) < uint64(kl)+uint64(fixed) {
		return store.KeyValue{}, fmt.Errorf("%w: kv record key length %d overruns record", ErrBadSnapshot, kl)
	}
	kv := store.KeyValue{Key: body[:kl]}
	body = body[kl:]
	kv.CreateRevision = int64(binary.BigEndian.Uint64(body[0:8]))
	kv.ModRevision = int64(binary.BigEndian.Uint64(body[8:16]))
	kv.Version = int64(binary.BigEndian.Uint64(body[16:24]))
	if withExpiry {
		kv.ExpireAtUnixMs = int64(binary.BigEndian.Uint64(body[24:32]))
		if kv.ExpireAtUnixMs <= 0 {
			return store.KeyValue{}, fmt.Errorf("%w: kv record expiry %d", ErrBadSnapshot, kv.ExpireAtUnixMs)
		}
	}
	kv.Value = body[fixed:]
	return kv, nil
}

func decodeMemberRecord(body []byte) (id, addr string, err error) {
	if len(body) < 4 {
		return "", "", fmt.Errorf("%w: short member record", ErrBadSnapshot)
	}
	il := binary.BigEndian.Uint32(body)
	body = body[4:]
	if uint64(len(body)) < uint64(il) {
		return "", "", fmt.Errorf("%w: member record id length %d overruns record", ErrBadSnapshot, il)
	}
	return string(body[:il]), string(body[il:]), nil
}

// Restore replaces the FSM's whole state with the snapshot in rc. Raft calls
// it on the FSM goroutine, not concurrently with Apply or Snapshot.
//
// The snapshot is decoded into a new store file next to the current one and
// fully verified (format version, record count, checksum) before anything
// changes: a corrupt or truncated snapshot returns an error wrapping
// ErrBadSnapshot and leaves the current state untouched. Then, under the FSM
// write lock, the new file is renamed over the old one (and the directory
// fsynced), swapped in, and the cache purged. The old store is closed once
// every snapshot still reading it has been released.
//
// WARNING: Restore discards the current state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if f.closed.Load() {
		return ErrClosed
	}
	start := time.Now()

	tf, err := os.CreateTemp(f.cfg.Dir, restorePattern)
	if err != nil {
		return fmt.Errorf("fsm: restore: create temp file: %w", err)
	}
	tmpPath := tf.Name()
	_ = tf.Close()
	swapped := false
	defer func() {
		if !swapped {
			_ = os.Remove(tmpPath)
		}
	}()

	if err := loadSnapshot(rc, tmpPath); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	ns, err := store.Open(tmpPath, f.cfg.storeOptions())
	if err != nil {
		return fmt.Errorf("fsm: restore: reopen restored store: %w", err)
	}
	old, err := f.swap(ns)
	if err != nil {
		_ = ns.Close()
		return fmt.Errorf("fsm: restore: %w", err)
	}
	swapped = true
	f.restores.Add(1)

	f.bg.Add(1)
	go func() {
		defer f.bg.Done()
		// Blocks until snapshots reading the old store are released.
		if err := old.Close(); err != nil {
			f.logger.Warn("close replaced store", "err", err)
		}
	}()

	idx, term := ns.Applied()
	stats := f.Stats()
	f.logger.Info("restored snapshot", "raft_index", idx, "term", term,
		"key_count", stats.KeyCount, "size_bytes", stats.SizeBytes, "duration", time.Since(start))
	return nil
}

// swap installs ns as the current store under the write lock and returns
// the previous one. If the rename fails nothing has changed. If the rename
// happened but could not be made durable, it panics: the file on disk is
// the new state, and carrying on with either store risks divergence after a
// crash.
func (f *FSM) swap(ns *store.Store) (*store.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed.Load() {
		return nil, ErrClosed
	}
	dst := filepath.Join(f.cfg.Dir, storeFile)
	if err := ns.Rename(dst); err != nil {
		if ns.Path() != dst {
			return nil, err
		}
		f.st = ns
		idx, _ := ns.Applied()
		f.fatal(idx, "restore: store file replaced but not durable", err)
	}
	old := f.st
	f.st = ns
	idx, _ := ns.Applied()
	if f.inv != nil {
		f.inv.Purge(idx)
	}
	f.applied.Store(idx)
	f.notify()
	return old, nil
}

// loadSnapshot decodes a snapshot stream into a new store at path, verifying
// it completely. The store is written without fsync per transaction and
// synced once at the end.
func loadSnapshot(r io.Reader, path string) (err error) {
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	sr, err := newSnapshotReader(r)
	if err != nil {
		return err
	}
	for done := false; !done; {
		err := st.Update(func(tx *store.WriteTx) error {
			for written := 0; written < restoreChunkBytes; {
				tag, body, err := sr.next()
				if errors.Is(err, io.EOF) {
					tx.SetApplied(sr.index, sr.term)
					done = true
					return nil
				}
				if err != nil {
					return err
				}
				written += len(body)
				switch tag {
				case recordKV, recordKVExpiry:
					kv, err := decodeKVRecord(body, tag == recordKVExpiry)
					if err != nil {
						return fmt.Errorf("record %d: %w", sr.count, err)
					}
					if err := tx.Put(kv); err != nil {
						return fmt.Errorf("%w: record %d: %w", ErrBadSnapshot, sr.count, err)
					}
				case recordMember:
					id, addr, err := decodeMemberRecord(body)
					if err != nil {
						return fmt.Errorf("record %d: %w", sr.count, err)
					}
					if err := tx.SetMember(id, addr); err != nil {
						return fmt.Errorf("%w: record %d: %w", ErrBadSnapshot, sr.count, err)
					}
				case recordClusterID:
					if err := tx.SetClusterID(string(body)); err != nil {
						return fmt.Errorf("%w: record %d: %w", ErrBadSnapshot, sr.count, err)
					}
				default:
					return fmt.Errorf("%w: record %d: unknown tag %d", ErrBadSnapshot, sr.count, tag)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return st.Sync()
}
