package store

import (
	"fmt"
	"testing"
)

// TestExpiryIndex checks the index through put, overwrite and delete, its
// order and limit, and the refusal of a negative expiry.
func TestExpiryIndex(t *testing.T) {
	s := openTemp(t)
	kv := func(k string, at int64) KeyValue {
		return KeyValue{Key: []byte(k), Value: []byte("v"), CreateRevision: 1, ModRevision: 1, Version: 1, ExpireAtUnixMs: at}
	}
	put(t, s, kv("c", 300), kv("a", 100), kv("b", 200), kv("n", 0))
	index := func(at int64, limit int) string {
		var out string
		err := s.View(func(tx *ReadTx) error {
			ex, err := tx.ExpiredBefore(at, limit)
			for _, e := range ex {
				out += fmt.Sprintf("%d:%s ", e.ExpireAtUnixMs, e.Key)
			}
			return err
		})
		if err != nil {
			t.Fatalf("ExpiredBefore: %v", err)
		}
		return out
	}
	for _, tt := range []struct {
		at    int64
		limit int
		want  string
	}{
		{99, 0, ""},
		{100, 0, "100:a "},
		{250, 0, "100:a 200:b "},
		{1000, 0, "100:a 200:b 300:c "},
		{1000, 2, "100:a 200:b "},
	} {
		if got := index(tt.at, tt.limit); got != tt.want {
			t.Errorf("ExpiredBefore(%d, %d): got %q, want %q", tt.at, tt.limit, got, tt.want)
		}
	}
	put(t, s, kv("a", 500), kv("c", 0))
	if err := s.Update(func(tx *WriteTx) error { _, err := tx.Delete([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	if got, want := index(1000, 0), "500:a "; got != want {
		t.Errorf("after overwrite, clear and delete: got %q, want %q", got, want)
	}
	err := s.View(func(tx *ReadTx) error {
		if i, k := tx.ExpiryCount(); i != 1 || k != 1 {
			t.Errorf("ExpiryCount: got (%d, %d), want (1, 1)", i, k)
		}
		got, _, err := tx.Get([]byte("a"))
		if got.ExpireAtUnixMs != 500 {
			t.Errorf("Get a: expiry %d, want 500", got.ExpireAtUnixMs)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *WriteTx) error { return tx.Put(kv("x", -1)) }); err == nil {
		t.Errorf("Put with a negative expiry: got nil error, want one")
	}
}
