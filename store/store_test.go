package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), Options{})
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(t *testing.T, s *Store, kvs ...KeyValue) {
	t.Helper()
	err := s.Update(func(tx *WriteTx) error {
		for _, kv := range kvs {
			if err := tx.Put(kv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update(put): got error %v, want nil", err)
	}
}

func kvEqual(a, b KeyValue) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) &&
		a.CreateRevision == b.CreateRevision && a.ModRevision == b.ModRevision && a.Version == b.Version
}

func fmtKVs(kvs []KeyValue) string {
	var sb strings.Builder
	for _, kv := range kvs {
		fmt.Fprintf(&sb, "{%q=%q c%d m%d v%d} ", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}
	return sb.String()
}

func TestPutGetDelete(t *testing.T) {
	type step struct {
		op      string // put, del, get
		kv      KeyValue
		wantOK  bool // get: found; del: existed
		wantErr error
	}
	k := func(s string) []byte { return []byte(s) }
	tests := []struct {
		name  string
		steps []step
	}{
		{"put then get", []step{
			{op: "put", kv: KeyValue{Key: k("a"), Value: k("1"), CreateRevision: 2, ModRevision: 2, Version: 1}},
			{op: "get", kv: KeyValue{Key: k("a"), Value: k("1"), CreateRevision: 2, ModRevision: 2, Version: 1}, wantOK: true},
		}},
		{"get missing", []step{
			{op: "get", kv: KeyValue{Key: k("nope")}, wantOK: false},
		}},
		{"overwrite keeps what caller says", []step{
			{op: "put", kv: KeyValue{Key: k("a"), Value: k("1"), CreateRevision: 2, ModRevision: 2, Version: 1}},
			{op: "put", kv: KeyValue{Key: k("a"), Value: k("2"), CreateRevision: 2, ModRevision: 5, Version: 2}},
			{op: "get", kv: KeyValue{Key: k("a"), Value: k("2"), CreateRevision: 2, ModRevision: 5, Version: 2}, wantOK: true},
		}},
		{"empty value round trips", []step{
			{op: "put", kv: KeyValue{Key: k("e"), Value: nil, CreateRevision: 1, ModRevision: 1, Version: 1}},
			{op: "get", kv: KeyValue{Key: k("e"), Value: []byte{}, CreateRevision: 1, ModRevision: 1, Version: 1}, wantOK: true},
		}},
		{"binary keys", []step{
			{op: "put", kv: KeyValue{Key: k("\x00"), Value: k("zero"), Version: 1}},
			{op: "put", kv: KeyValue{Key: k("\xff\xff"), Value: k("ff"), Version: 1}},
			{op: "get", kv: KeyValue{Key: k("\x00"), Value: k("zero"), Version: 1}, wantOK: true},
			{op: "get", kv: KeyValue{Key: k("\xff\xff"), Value: k("ff"), Version: 1}, wantOK: true},
			{op: "get", kv: KeyValue{Key: k("\xff")}, wantOK: false},
		}},
		{"delete existing then missing", []step{
			{op: "put", kv: KeyValue{Key: k("a"), Value: k("1"), Version: 1}},
			{op: "del", kv: KeyValue{Key: k("a")}, wantOK: true},
			{op: "del", kv: KeyValue{Key: k("a")}, wantOK: false},
			{op: "get", kv: KeyValue{Key: k("a")}, wantOK: false},
		}},
		{"empty key refused", []step{
			{op: "put", kv: KeyValue{Key: nil, Value: k("1")}, wantErr: ErrKeyRequired},
			{op: "get", kv: KeyValue{Key: nil}, wantOK: false},
			{op: "del", kv: KeyValue{Key: nil}, wantOK: false},
		}},
		{"key size limit", []step{
			{op: "put", kv: KeyValue{Key: bytes.Repeat(k("k"), MaxKeySize), Value: k("1")}},
			{op: "put", kv: KeyValue{Key: bytes.Repeat(k("k"), MaxKeySize+1), Value: k("1")}, wantErr: ErrKeyTooLarge},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			for i, st := range tt.steps {
				switch st.op {
				case "put":
					err := s.Update(func(tx *WriteTx) error { return tx.Put(st.kv) })
					if !errors.Is(err, st.wantErr) {
						t.Fatalf("step %d put %q: got error %v, want %v", i, st.kv.Key, err, st.wantErr)
					}
				case "del":
					var existed bool
					err := s.Update(func(tx *WriteTx) (err error) {
						existed, err = tx.Delete(st.kv.Key)
						return err
					})
					if err != nil || existed != st.wantOK {
						t.Fatalf("step %d delete %q: got (%v, %v), want (%v, nil)", i, st.kv.Key, existed, err, st.wantOK)
					}
				case "get":
					var got KeyValue
					var ok bool
					err := s.View(func(tx *ReadTx) (err error) {
						got, ok, err = tx.Get(st.kv.Key)
						return err
					})
					if err != nil || ok != st.wantOK {
						t.Fatalf("step %d get %q: got (found=%v, err=%v), want (found=%v, nil)", i, st.kv.Key, ok, err, st.wantOK)
					}
					if ok && !kvEqual(got, st.kv) {
						t.Fatalf("step %d get %q: got %s, want %s", i, st.kv.Key, fmtKVs([]KeyValue{got}), fmtKVs([]KeyValue{st.kv}))
					}
				}
			}
		})
	}
}

func TestRange(t *testing.T) {
	keys := []string{"\x00", "\x00\x00", "a", "a\x00", "ab", "a\xff", "b", "\xff", "\xff\xff"} // sorted
	s := openTemp(t)
	var kvs []KeyValue
	for i, k := range keys {
		kvs = append(kvs, KeyValue{Key: []byte(k), Value: []byte("v" + k), CreateRevision: int64(i + 1), ModRevision: int64(i + 1), Version: 1})
	}
	put(t, s, kvs...)

	b := func(s string) []byte { return []byte(s) }
	tests := []struct {
		name      string
		start     []byte
		end       []byte
		opts      RangeOptions
		wantKeys  []string
		wantMore  bool
		wantCount int64
	}{
		{"everything (nil, nil)", nil, nil, RangeOptions{}, keys, false, 9},
		{"everything (empty, empty)", b(""), b(""), RangeOptions{}, keys, false, 9},
		{"from a to end", b("a"), nil, RangeOptions{}, keys[2:], false, 7},
		{"[a, b)", b("a"), b("b"), RangeOptions{}, []string{"a", "a\x00", "ab", "a\xff"}, false, 4},
		{"[a, a\\x00) is exactly a", b("a"), b("a\x00"), RangeOptions{}, []string{"a"}, false, 1},
		{"[\\x00, \\x01)", b("\x00"), b("\x01"), RangeOptions{}, []string{"\x00", "\x00\x00"}, false, 2},
		{"[\\xff, end)", b("\xff"), nil, RangeOptions{}, []string{"\xff", "\xff\xff"}, false, 2},
		{"[\\xff\\xff\\xff, end) empty", b("\xff\xff\xff"), nil, RangeOptions{}, nil, false, 0},
		{"end == start is empty", b("a"), b("a"), RangeOptions{}, nil, false, 0},
		{"end < start is empty", b("b"), b("a"), RangeOptions{}, nil, false, 0},
		{"start between keys", b("aa"), b("b"), RangeOptions{}, []string{"ab", "a\xff"}, false, 2},
		{"end between keys", b("a"), b("aa"), RangeOptions{}, []string{"a", "a\x00"}, false, 2},
		{"limit 2 of 4 counts up to the first key left out", b("a"), b("b"), RangeOptions{Limit: 2}, []string{"a", "a\x00"}, true, 3},
		{"limit 2 of 4 with CountRest", b("a"), b("b"), RangeOptions{Limit: 2, CountRest: true}, []string{"a", "a\x00"}, true, 4},
		{"limit equal to count", b("a"), b("b"), RangeOptions{Limit: 4}, []string{"a", "a\x00", "ab", "a\xff"}, false, 4},
		{"limit above count", b("a"), b("b"), RangeOptions{Limit: 100}, []string{"a", "a\x00", "ab", "a\xff"}, false, 4},
		{"negative limit is no limit", b("a"), b("b"), RangeOptions{Limit: -1}, []string{"a", "a\x00", "ab", "a\xff"}, false, 4},
		{"count only", b("a"), b("b"), RangeOptions{CountOnly: true}, nil, false, 4},
		{"count only everything", nil, nil, RangeOptions{CountOnly: true}, nil, false, 9},
		{"keys only with limit", nil, nil, RangeOptions{KeysOnly: true, Limit: 1}, []string{"\x00"}, true, 2},
		{"keys only with limit and CountRest", nil, nil, RangeOptions{KeysOnly: true, Limit: 1, CountRest: true}, []string{"\x00"}, true, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res RangeResult
			err := s.View(func(tx *ReadTx) (err error) {
				res, err = tx.Range(tt.start, tt.end, tt.opts)
				return err
			})
			if err != nil {
				t.Fatalf("Range: got error %v, want nil", err)
			}
			var gotKeys []string
			for _, kv := range res.KVs {
				gotKeys = append(gotKeys, string(kv.Key))
				want := kvs[indexOf(keys, string(kv.Key))]
				if tt.opts.KeysOnly {
					if kv.Value != nil {
						t.Errorf("keys-only %q: got value %q, want nil", kv.Key, kv.Value)
					}
					want.Value = nil
				}
				if !kvEqual(kv, want) {
					t.Errorf("Range kv: got %s, want %s", fmtKVs([]KeyValue{kv}), fmtKVs([]KeyValue{want}))
				}
			}
			if fmt.Sprintf("%q", gotKeys) != fmt.Sprintf("%q", tt.wantKeys) {
				t.Errorf("keys: got %q, want %q", gotKeys, tt.wantKeys)
			}
			if res.More != tt.wantMore || res.Count != tt.wantCount {
				t.Errorf("(more, count): got (%v, %d), want (%v, %d)", res.More, res.Count, tt.wantMore, tt.wantCount)
			}

			// ForEach walks the same keys as an unlimited Range.
			var walked []string
			err = s.View(func(tx *ReadTx) error {
				return tx.ForEach(tt.start, tt.end, func(kv KeyValue) error {
					walked = append(walked, string(kv.Key))
					return nil
				})
			})
			if err != nil {
				t.Fatalf("ForEach: got error %v, want nil", err)
			}
			if tt.opts.Limit > 0 && !tt.opts.CountRest {
				return // Count stopped early; nothing to compare ForEach with
			}
			if int64(len(walked)) != tt.wantCount {
				t.Errorf("ForEach: got %d keys %q, want %d", len(walked), walked, tt.wantCount)
			}
		})
	}
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

func TestKeyCount(t *testing.T) {
	s := openTemp(t)
	kv := func(k string) KeyValue { return KeyValue{Key: []byte(k), Value: []byte("v")} }
	steps := []struct {
		name string
		fn   func(tx *WriteTx) error
		want int64
	}{
		{"create 3", func(tx *WriteTx) error {
			for _, k := range []string{"a", "b", "c"} {
				if err := tx.Put(kv(k)); err != nil {
					return err
				}
			}
			return nil
		}, 3},
		{"overwrite does not count", func(tx *WriteTx) error { return tx.Put(kv("a")) }, 3},
		{"put twice in one tx counts once", func(tx *WriteTx) error {
			if err := tx.Put(kv("d")); err != nil {
				return err
			}
			return tx.Put(kv("d"))
		}, 4},
		{"delete existing", func(tx *WriteTx) error { _, err := tx.Delete([]byte("b")); return err }, 3},
		{"delete missing", func(tx *WriteTx) error { _, err := tx.Delete([]byte("zzz")); return err }, 3},
		{"put then delete in one tx", func(tx *WriteTx) error {
			if err := tx.Put(kv("e")); err != nil {
				return err
			}
			_, err := tx.Delete([]byte("e"))
			return err
		}, 3},
		{"failed tx changes nothing", func(tx *WriteTx) error {
			if err := tx.Put(kv("f")); err != nil {
				return err
			}
			return errors.New("boom")
		}, 3},
	}
	for _, st := range steps {
		var inTx int64
		err := s.Update(func(tx *WriteTx) error {
			if err := st.fn(tx); err != nil {
				return err
			}
			var err error
			inTx, err = tx.KeyCount()
			return err
		})
		if err != nil && err.Error() != "boom" {
			t.Fatalf("%s: Update: got error %v, want nil", st.name, err)
		}
		if err == nil && inTx != st.want {
			t.Errorf("%s: KeyCount inside tx: got %d, want %d", st.name, inTx, st.want)
		}
		stats, err := s.Stats()
		if err != nil {
			t.Fatalf("%s: Stats: got error %v, want nil", st.name, err)
		}
		var scanned int64
		_ = s.View(func(tx *ReadTx) error {
			return tx.ForEach(nil, nil, func(KeyValue) error { scanned++; return nil })
		})
		if stats.KeyCount != st.want || scanned != st.want {
			t.Errorf("%s: key count: got stats %d, scan %d, want %d", st.name, stats.KeyCount, scanned, st.want)
		}
		if stats.SizeBytes <= 0 {
			t.Errorf("%s: SizeBytes: got %d, want > 0", st.name, stats.SizeBytes)
		}
	}
}

func TestUpdateErrorAndPanicRollBack(t *testing.T) {
	s := openTemp(t)
	put(t, s, KeyValue{Key: []byte("a"), Value: []byte("1")})
	wantErr := errors.New("caller error")
	err := s.Update(func(tx *WriteTx) error {
		_ = tx.Put(KeyValue{Key: []byte("b"), Value: []byte("2")})
		tx.SetApplied(9, 9)
		return wantErr
	})
	if err != wantErr { //nolint:errorlint // Update promises to return fn's error unchanged
		t.Fatalf("Update: got error %v, want the callback's error unchanged", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = s.Update(func(tx *WriteTx) error {
			_ = tx.Put(KeyValue{Key: []byte("c"), Value: []byte("3")})
			tx.SetApplied(10, 10)
			panic("boom")
		})
	}()
	if idx, term := s.Applied(); idx != 0 || term != 0 {
		t.Errorf("Applied: got (%d, %d), want (0, 0)", idx, term)
	}
	var n int64
	_ = s.View(func(tx *ReadTx) (err error) { n, err = tx.KeyCount(); return err })
	if n != 1 {
		t.Errorf("KeyCount after rolled back txs: got %d, want 1", n)
	}
	// The store is still writable after a panicking Update.
	put(t, s, KeyValue{Key: []byte("d"), Value: []byte("4")})
}

func TestReopenKeepsDataAndApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	err = s.Update(func(tx *WriteTx) error {
		if err := tx.Put(KeyValue{Key: []byte("k"), Value: []byte("v"), CreateRevision: 3, ModRevision: 7, Version: 2}); err != nil {
			return err
		}
		if err := tx.SetMember("n1", "127.0.0.1:1"); err != nil {
			return err
		}
		tx.SetApplied(7, 2)
		return nil
	})
	if err != nil {
		t.Fatalf("Update: got error %v, want nil", err)
	}
	if idx, term := s.Applied(); idx != 7 || term != 2 {
		t.Fatalf("Applied before reopen: got (%d, %d), want (7, 2)", idx, term)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: got error %v, want nil", err)
	}
	if err := s.View(func(*ReadTx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("View after Close: got error %v, want ErrClosed", err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: got error %v, want nil", err)
	}
	defer s.Close()
	if idx, term := s.Applied(); idx != 7 || term != 2 {
		t.Errorf("Applied after reopen: got (%d, %d), want (7, 2)", idx, term)
	}
	err = s.View(func(tx *ReadTx) error {
		kv, ok, err := tx.Get([]byte("k"))
		want := KeyValue{Key: []byte("k"), Value: []byte("v"), CreateRevision: 3, ModRevision: 7, Version: 2}
		if err != nil || !ok || !kvEqual(kv, want) {
			t.Errorf("Get after reopen: got (%s, %v, %v), want (%s, true, nil)", fmtKVs([]KeyValue{kv}), ok, err, fmtKVs([]KeyValue{want}))
		}
		m, err := tx.Members()
		if err != nil || len(m) != 1 || m["n1"] != "127.0.0.1:1" {
			t.Errorf("Members after reopen: got (%v, %v), want map[n1:127.0.0.1:1]", m, err)
		}
		idx, term, err := tx.Applied()
		if err != nil || idx != 7 || term != 2 {
			t.Errorf("ReadTx.Applied: got (%d, %d, %v), want (7, 2, nil)", idx, term, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: got error %v, want nil", err)
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	setFormat := func(t *testing.T, path string, v []byte) {
		t.Helper()
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("Open: got error %v, want nil", err)
		}
		_ = s.Close()
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatalf("bolt.Open: got error %v, want nil", err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaFormatVersion, v) })
		if err != nil {
			t.Fatalf("set format: got error %v, want nil", err)
		}
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr error
	}{
		{"unknown format version", func(t *testing.T, path string) {
			setFormat(t, path, binary.BigEndian.AppendUint64(nil, FormatVersion+1))
		}, ErrUnknownFormat},
		{"malformed format version", func(t *testing.T, path string) {
			setFormat(t, path, []byte{1})
		}, ErrCorrupt},
		{"garbage file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("not a bolt file "), 1024), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt},
		{"truncated file", func(t *testing.T, path string) {
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			if err := os.Truncate(path, 100); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt},
		{"foreign bbolt file", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.db")
			tt.prepare(t, path)
			s, err := Open(path, Options{})
			if err == nil {
				_ = s.Close()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open: got error %v, want one wrapping %v", err, tt.wantErr)
			}
		})
	}
}

// TestOpenCorruptNeverPanics flips random bytes of a populated store: Open
// may succeed (bbolt does not checksum data pages) but must never panic.
func TestOpenCorruptNeverPanics(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.db")
	// A minimal mapping keeps the file small (bbolt grows a file mapped
	// beyond its allocation step in 16 MiB chunks).
	s, err := Open(clean, Options{InitialMmapSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		var kvs []KeyValue
		for j := 0; j < 50; j++ {
			kvs = append(kvs, KeyValue{Key: fmt.Appendf(nil, "key-%03d-%03d", i, j), Value: bytes.Repeat([]byte{byte(j)}, 100)})
		}
		put(t, s, kvs...)
	}
	_ = s.Close()
	orig, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := 0; i < 40; i++ {
		b := bytes.Clone(orig)
		// Corrupt a run of bytes, biased towards the first pages where the
		// meta, freelist and bucket roots live.
		off := rng.IntN(len(b))
		if i%2 == 0 {
			off = rng.IntN(4 * 4096)
		}
		for j := 0; j < 64 && off+j < len(b); j++ {
			b[off+j] = byte(rng.Uint32())
		}
		path := filepath.Join(dir, fmt.Sprintf("corrupt-%d.db", i))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("corruption %d at offset %d: Open panicked: %v", i, off, r)
				}
			}()
			s, err := Open(path, Options{LockTimeout: -1})
			if err == nil {
				_ = s.Close()
			}
			_ = os.Remove(path)
		}()
	}
}

func TestBeginReadIsASnapshot(t *testing.T) {
	s := openTemp(t)
	put(t, s, KeyValue{Key: []byte("a"), Value: []byte("old")})
	rtx, err := s.BeginRead()
	if err != nil {
		t.Fatalf("BeginRead: got error %v, want nil", err)
	}
	put(t, s, KeyValue{Key: []byte("a"), Value: []byte("new")}, KeyValue{Key: []byte("b"), Value: []byte("new")})
	kv, ok, err := rtx.Get([]byte("a"))
	if err != nil || !ok || string(kv.Value) != "old" {
		t.Errorf("snapshot Get(a): got (%q, %v, %v), want (\"old\", true, nil)", kv.Value, ok, err)
	}
	if n, _ := rtx.KeyCount(); n != 1 {
		t.Errorf("snapshot KeyCount: got %d, want 1", n)
	}
	if err := rtx.Rollback(); err != nil {
		t.Errorf("Rollback: got error %v, want nil", err)
	}
	if err := rtx.Rollback(); err != nil {
		t.Errorf("second Rollback: got error %v, want nil", err)
	}
}

func TestValuesOutliveTransaction(t *testing.T) {
	s := openTemp(t)
	put(t, s, KeyValue{Key: []byte("a"), Value: bytes.Repeat([]byte("x"), 1000)})
	var got KeyValue
	_ = s.View(func(tx *ReadTx) (err error) { got, _, err = tx.Get([]byte("a")); return err })
	// Grow the file well past its mapping so bbolt remaps; a value aliasing
	// the old mapping would now point at unmapped memory.
	for i := 0; i < 4; i++ {
		var kvs []KeyValue
		for j := 0; j < 200; j++ {
			kvs = append(kvs, KeyValue{Key: fmt.Appendf(nil, "grow-%d-%d", i, j), Value: make([]byte, 4096)})
		}
		put(t, s, kvs...)
	}
	if !bytes.Equal(got.Value, bytes.Repeat([]byte("x"), 1000)) || string(got.Key) != "a" {
		t.Errorf("value read in a closed tx changed: got key %q, %d value bytes", got.Key, len(got.Value))
	}
}

func TestRenameKeepsStoreOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "tmp.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, KeyValue{Key: []byte("a"), Value: []byte("1")})
	dst := filepath.Join(dir, "store.db")
	if err := os.WriteFile(dst, []byte("old file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(dst); err != nil {
		t.Fatalf("Rename: got error %v, want nil", err)
	}
	if s.Path() != dst {
		t.Errorf("Path: got %q, want %q", s.Path(), dst)
	}
	put(t, s, KeyValue{Key: []byte("b"), Value: []byte("2")})
	_ = s.Close()
	s2, err := Open(dst, Options{})
	if err != nil {
		t.Fatalf("Open renamed: got error %v, want nil", err)
	}
	defer s2.Close()
	st, _ := s2.Stats()
	if st.KeyCount != 2 {
		t.Errorf("KeyCount of renamed store: got %d, want 2", st.KeyCount)
	}
}

func TestMembers(t *testing.T) {
	s := openTemp(t)
	steps := []struct {
		id, addr string
		wantErr  error
		want     map[string]string
	}{
		{"n1", "a:1", nil, map[string]string{"n1": "a:1"}},
		{"n2", "b:2", nil, map[string]string{"n1": "a:1", "n2": "b:2"}},
		{"n1", "c:3", nil, map[string]string{"n1": "c:3", "n2": "b:2"}},
		{"", "x", ErrKeyRequired, map[string]string{"n1": "c:3", "n2": "b:2"}},
	}
	for i, st := range steps {
		err := s.Update(func(tx *WriteTx) error { return tx.SetMember(st.id, st.addr) })
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("step %d SetMember: got error %v, want %v", i, err, st.wantErr)
		}
		var got map[string]string
		_ = s.View(func(tx *ReadTx) (err error) { got, err = tx.Members(); return err })
		if fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Errorf("step %d Members: got %v, want %v", i, got, st.want)
		}
	}
}
