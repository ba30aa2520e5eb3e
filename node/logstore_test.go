package node

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// writeLogStore creates a raft.db with some entries and returns its bytes.
func writeLogStore(t *testing.T, path string) []byte {
	t.Helper()
	s, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatalf("create raft.db: %v", err)
	}
	for i := uint64(1); i <= 200; i++ {
		if err := s.StoreLog(&raft.Log{Index: i, Term: 1, Data: bytes.Repeat([]byte("x"), 500)}); err != nil {
			t.Fatalf("store log %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenLogStoreRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	orig := writeLogStore(t, path)
	ps := pageSizeOf(orig)
	corruptMeta := func(b []byte, pages ...int) []byte {
		d := bytes.Clone(b)
		for _, p := range pages {
			copy(d[p*ps+boltPageHeader+20:], []byte("garbage!"))
		}
		return d
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{"intact", orig, false},
		{"one meta page corrupted (bbolt falls back to the other)", corruptMeta(orig, 0), false},
		{"both meta pages corrupted", corruptMeta(orig, 0, 1), true},
		{"truncated to a third", orig[:len(orig)/3], true},
		{"truncated to one page", orig[:ps], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "raft.db")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := openLogStore(p)
			if s != nil {
				s.Close()
			}
			if tt.wantErr != (err != nil) {
				t.Fatalf("openLogStore = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrCorruptLog) {
				t.Fatalf("openLogStore = %v, want it to wrap ErrCorruptLog", err)
			}
		})
	}
}

func pageSizeOf(b []byte) int {
	ps := int(uint32(b[24]) | uint32(b[25])<<8 | uint32(b[26])<<16 | uint32(b[27])<<24)
	return ps
}

// TestNewStartErrorIsAnError checks that a start failure after the FSM
// opened comes back as an error: the cleanups once dereferenced the nil
// named result and panicked instead.
func TestNewStartErrorIsAnError(t *testing.T) {
	dir := t.TempDir()
	raftDir := filepath.Join(dir, "raft")
	if err := os.MkdirAll(raftDir, 0o750); err != nil {
		t.Fatal(err)
	}
	// A directory where raft.db should be: opening it fails.
	if err := os.Mkdir(filepath.Join(raftDir, "raft.db"), 0o750); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.GRPCAddr, cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	n, err := New(cfg, Deps{})
	if err == nil {
		n.Close()
		t.Fatal("New with a directory as raft.db succeeded, want an error")
	}
}

// TestOpenLogStorePreallocates: raft.db is written with zeros up to
// logPreallocBytes at open, keeps every entry across a reopen, and is not
// grown again once it is large enough.
func TestOpenLogStorePreallocates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	for round := range 2 {
		s, err := openLogStore(path)
		if err != nil {
			t.Fatalf("round %d: open: %v", round, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != logPreallocBytes {
			t.Fatalf("round %d: raft.db is %d bytes, want %d", round, fi.Size(), logPreallocBytes)
		}
		if round == 0 {
			for i := uint64(1); i <= 100; i++ {
				if err := s.StoreLog(&raft.Log{Index: i, Term: 1, Data: bytes.Repeat([]byte("y"), 300)}); err != nil {
					t.Fatalf("store log %d: %v", i, err)
				}
			}
		} else {
			last, err := s.LastIndex()
			if err != nil || last != 100 {
				t.Fatalf("after reopen: last index %d err %v, want 100", last, err)
			}
			var l raft.Log
			if err := s.GetLog(57, &l); err != nil || len(l.Data) != 300 {
				t.Fatalf("after reopen: entry 57: %v (%d bytes)", err, len(l.Data))
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
