package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// ErrCorruptLog means raft.db is damaged: truncated, or with no valid bbolt
// meta page. The node refuses to start on it rather than start with a
// partial (or empty) raft log, which could make it vote for a stale leader
// or lose acknowledged entries.
var ErrCorruptLog = errors.New("raft log store is corrupt")

// openLogStore opens raft.db after checking that the file is whole. bbolt
// trusts its file: on a truncated file or one whose meta pages are damaged
// it can panic (nil dereferences, an "invalid freelist page") or fault on
// the mmap instead of returning an error, and a file cut after its meta
// pages may even open and fail later at run time. So the bbolt header is
// checked first, and a panic or fault during the open becomes an error.
func openLogStore(path string) (*raftboltdb.BoltStore, error) {
	if err := checkBoltFile(path); err != nil {
		return nil, err
	}
	s, err := openBoltLog(path)
	if err != nil {
		return nil, err
	}
	grown, err := preallocateLog(path)
	if err != nil {
		s.Close()
		return nil, err
	}
	if !grown {
		return s, nil
	}
	// bbolt sizes its map from the file at open: reopen to use the space.
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("close raft log store %q to reopen it: %w", path, err)
	}
	return openBoltLog(path)
}

// logPreallocBytes is how much of raft.db is written with zeros ahead of
// use. bbolt grows its file sparsely with ftruncate, so on ext4 every commit
// into new pages also allocates blocks, and its two fdatasyncs then commit
// the filesystem journal too. Into blocks already written they only flush
// data: a one-entry StoreLogs took 232 us instead of 300 us here (the
// follower and the leader each do one per write). etcd preallocates its WAL
// segments (64 MiB) for the same reason.
const logPreallocBytes = 64 << 20

// preallocateLog extends the bbolt file at path with written zeros up to
// logPreallocBytes, while the store is open but idle (bbolt only reads
// pages below its high-water mark, and the new bytes lie above it). It
// reports whether it grew the file.
func preallocateLog(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("preallocate raft log store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("preallocate raft log store: %w", err)
	}
	if fi.Size() >= logPreallocBytes {
		return false, nil
	}
	zeros := make([]byte, 1<<20)
	for off := fi.Size(); off < logPreallocBytes; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), logPreallocBytes-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return false, fmt.Errorf("preallocate raft log store %q: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("preallocate raft log store %q: %w", path, err)
	}
	return true, nil
}

// openBoltLog opens raft.db with raft-boltdb, turning a bbolt panic on a
// damaged file into ErrCorruptLog.
func openBoltLog(path string) (s *raftboltdb.BoltStore, err error) {
	// Turn a fault on the mmap into a panic this goroutine can recover.
	// A recovered open may leak the file handle; the node exits anyway.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("open raft log store %q: %w: bbolt panicked: %v", path, ErrCorruptLog, r)
		}
	}()
	s, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
	if err != nil {
		return nil, fmt.Errorf("open raft log store %q: %w", path, err)
	}
	return s, nil
}

// bbolt file layout this check relies on (go.etcd.io/bbolt, format version
// 2, unchanged since boltdb): pages 0 and 1 are meta pages, each a 16-byte
// page header followed by magic u32 | version u32 | page size u32 | flags
// u32 | root bucket (16) | freelist pgid u64 | high-water pgid u64 | txid u64
// | checksum u64, little-endian on every platform we build for, checksum =
// FNV-64a of the meta bytes before it. The valid meta with the highest txid
// is the current one; every page below its high-water pgid must exist.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltMetaLen    = 64
)

// checkBoltFile returns an error wrapping ErrCorruptLog if the bbolt file at
// path has no valid meta page or is shorter than its current meta says. A
// missing or empty file is fine: bbolt creates it.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open raft log store %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat raft log store %q: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	type meta struct {
		pageSize   uint32
		pgid, txid uint64
	}
	var best *meta
	var problems []string
	// Meta page 1 sits one page size in; take the page size from whichever
	// meta page is valid, trying the common sizes for page 1.
	offsets := []int64{0}
	for _, ps := range []int64{4096, 8192, 16384, 65536} {
		offsets = append(offsets, ps)
	}
	for _, off := range offsets {
		buf := make([]byte, boltPageHeader+boltMetaLen)
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read raft log store %q: %w", path, err)
		}
		if n < len(buf) {
			problems = append(problems, fmt.Sprintf("meta page at offset %d is cut off", off))
			continue
		}
		m := buf[boltPageHeader:]
		le := binary.LittleEndian
		h := fnv.New64a()
		_, _ = h.Write(m[:56])
		switch {
		case le.Uint32(m[0:]) != boltMagic:
			problems = append(problems, fmt.Sprintf("meta page at offset %d has a bad magic number", off))
			continue
		case le.Uint32(m[4:]) != boltVersion:
			problems = append(problems, fmt.Sprintf("meta page at offset %d has version %d", off, le.Uint32(m[4:])))
			continue
		case le.Uint64(m[56:]) != h.Sum64():
			problems = append(problems, fmt.Sprintf("meta page at offset %d fails its checksum", off))
			continue
		}
		cur := &meta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
		if off != 0 && int64(cur.pageSize) != off {
			continue // not meta page 1 for this page size
		}
		if best == nil || cur.txid > best.txid {
			best = cur
		}
	}
	if best == nil {
		return fmt.Errorf("raft log store %q: %w: no valid bbolt meta page (%v); refusing to start on it: restore the file, or remove this node's data directory and add it back as a new member", path, ErrCorruptLog, problems)
	}
	if need := int64(best.pgid) * int64(best.pageSize); size < need {
		return fmt.Errorf("raft log store %q: %w: the file is %d bytes but its last transaction %d needs %d (truncated); refusing to start on it: restore the file, or remove this node's data directory and add it back as a new member", path, ErrCorruptLog, size, best.txid, need)
	}
	return nil
}
