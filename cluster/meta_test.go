package cluster

import (
	"errors"
	"strings"
	"testing"
)

func TestMetaSize(t *testing.T) {
	worst := Meta{
		ID:       strings.Repeat("n", MaxIDLen),
		GRPCAddr: "[" + strings.Repeat("f", MaxAddrLen-8) + "]:65535",
		RaftAddr: "[" + strings.Repeat("f", MaxAddrLen-8) + "]:65535",
		Version:  strings.Repeat("9", MaxVersionLen),
		Expect:   99,
		Boot:     strings.Repeat("b", maxBootLen),
		Fresh:    true,
		Leaving:  true,
	}
	b, err := worst.Encode()
	if err != nil {
		t.Fatalf("encode the largest valid metadata: %v", err)
	}
	if len(b) > MaxMetaSize {
		t.Fatalf("largest valid metadata is %d bytes, memberlist allows %d", len(b), MaxMetaSize)
	}
	t.Logf("largest valid metadata: %d of %d bytes", len(b), MaxMetaSize)

	typical := Meta{ID: "node1", GRPCAddr: "127.0.0.1:7001", RaftAddr: "127.0.0.1:7002", Version: "0.1.0", Expect: 3, Boot: NewBootID()}
	tb, err := typical.Encode()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("typical metadata: %d bytes: %s", len(tb), tb[1:])
	got, err := DecodeMeta(tb)
	if err != nil || got != typical {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, err, typical)
	}

	// Characters JSON escapes six-fold must be refused, not overflow.
	escaped := worst
	escaped.ID = strings.Repeat("<", MaxIDLen)
	escaped.GRPCAddr = strings.Repeat("\x01", MaxAddrLen)
	if _, err := escaped.Encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("metadata with escaped characters: err = %v, want ErrMetaTooLarge", err)
	}
}

func TestMetaValidate(t *testing.T) {
	ok := Meta{ID: "n1", GRPCAddr: "a:1", RaftAddr: "a:2", Version: "0.1.0", Boot: "abc"}
	tests := []struct {
		name string
		edit func(*Meta)
		want string
	}{
		{"valid", func(*Meta) {}, ""},
		{"empty id", func(m *Meta) { m.ID = "" }, "id"},
		{"long id", func(m *Meta) { m.ID = strings.Repeat("x", MaxIDLen+1) }, "id"},
		{"long grpc addr", func(m *Meta) { m.GRPCAddr = strings.Repeat("x", MaxAddrLen+1) }, "grpc address"},
		{"no raft addr", func(m *Meta) { m.RaftAddr = "" }, "raft address"},
		{"expect out of range", func(m *Meta) { m.Expect = 100 }, "bootstrap expect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok
			tt.edit(&m)
			err := m.Validate()
			if tt.want == "" && err != nil {
				t.Fatalf("Validate = %v, want nil", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":          nil,
		"unknown format": append([]byte{9}, `{"id":"n1","r":"a:1"}`...),
		"bad json":       append([]byte{metaFormat}, `{`...),
		"no raft addr":   append([]byte{metaFormat}, `{"id":"n1"}`...),
	} {
		if _, err := DecodeMeta(b); err == nil {
			t.Errorf("%s: DecodeMeta succeeded, want an error", name)
		}
	}
}

// FuzzDecodeMeta feeds DecodeMeta what any host reaching the gossip port
// could send as a node's metadata. It must never panic; what it accepts
// must be valid metadata that encodes back to the same Meta; and anything
// that is not a JSON object of the known format must be refused. The seed
// corpus is in testdata/fuzz/FuzzDecodeMeta; `go test` replays it.
func FuzzDecodeMeta(f *testing.F) {
	good := Meta{ID: "n1", GRPCAddr: "127.0.0.1:7001", RaftAddr: "127.0.0.1:7002", Version: "v1.2.3", Expect: 3, Boot: "0123456789abcdef"}
	if b, err := good.Encode(); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{metaFormat})
	f.Add(append([]byte{metaFormat}, `{"id":"n1","r":"a:1","g":"b:2"}`...))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		if len(b) == 0 || b[0] != metaFormat || len(b) > MaxMetaSize {
			t.Fatalf("DecodeMeta accepted %q (format byte or size wrong)", b)
		}
		if verr := m.Validate(); verr != nil {
			t.Fatalf("DecodeMeta accepted %q as %+v, which is invalid: %v", b, m, verr)
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of decoded %+v: %v", m, err)
		}
		m2, err := DecodeMeta(enc)
		if err != nil || m2 != m {
			t.Fatalf("round trip of %+v: got %+v, %v", m, m2, err)
		}
	})
}
