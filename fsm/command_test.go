package fsm_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/ for the current release (never for an old one)")

// goldenV010 are the commands of release v0.1.0, one per op and option.
//
// NB: testdata/v0.1.0/*.bin were written from this table by that release.
// Never edit this table or those files: they prove that entries in old raft
// logs still decode. A new release adds a new directory and table.
var goldenV010 = []goldenCommand{
	{"put", &fsmpb.Command{RequestId: "req-1", Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Key: []byte("k"), Value: []byte("v")}}}},
	{"put_prev_kv_binary", &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Key: []byte("\x00\xff"), Value: []byte{}, PrevKv: true}}}},
	{"delete_key", &fsmpb.Command{RequestId: "req-2", Op: &fsmpb.Command_DeleteRange{DeleteRange: &fsmpb.DeleteRange{Key: []byte("k"), PrevKv: true}}}},
	{"delete_range", &fsmpb.Command{Op: &fsmpb.Command_DeleteRange{DeleteRange: &fsmpb.DeleteRange{Key: []byte("a"), RangeEnd: []byte("c")}}}},
	{"delete_prefix", &fsmpb.Command{Op: &fsmpb.Command_DeleteRange{DeleteRange: &fsmpb.DeleteRange{Key: []byte("app/"), RangeEnd: []byte("app0")}}}},
	{"delete_all", &fsmpb.Command{Op: &fsmpb.Command_DeleteRange{DeleteRange: &fsmpb.DeleteRange{Key: []byte{0}, RangeEnd: []byte{0}}}}},
	{"txn", &fsmpb.Command{RequestId: "req-3", Op: &fsmpb.Command_Txn{Txn: &fsmpb.Txn{
		Compare: []*fsmpb.Compare{
			{Result: fsmpb.Compare_EQUAL, Target: fsmpb.Compare_VALUE, Key: []byte("k"), Value: []byte("v")},
			{Result: fsmpb.Compare_NOT_EQUAL, Target: fsmpb.Compare_VERSION, Key: []byte("k"), Number: 3},
			{Result: fsmpb.Compare_GREATER, Target: fsmpb.Compare_CREATE, Key: []byte("k"), Number: 1},
			{Result: fsmpb.Compare_LESS, Target: fsmpb.Compare_MOD, Key: []byte("k"), Number: 100},
			{Result: fsmpb.Compare_EQUAL, Target: fsmpb.Compare_EXISTS, Key: []byte("other"), Exists: true},
		},
		Success: []*fsmpb.Op{
			{Op: &fsmpb.Op_Range{Range: &fsmpb.Range{Key: []byte("a"), RangeEnd: []byte("b"), Limit: 10, KeysOnly: true}}},
			{Op: &fsmpb.Op_Range{Range: &fsmpb.Range{Key: []byte("a"), CountOnly: true}}},
			{Op: &fsmpb.Op_Put{Put: &fsmpb.Put{Key: []byte("k"), Value: []byte("v2"), PrevKv: true}}},
			{Op: &fsmpb.Op_DeleteRange{DeleteRange: &fsmpb.DeleteRange{Key: []byte("x"), RangeEnd: []byte("y"), PrevKv: true}}},
		},
		Failure: []*fsmpb.Op{
			{Op: &fsmpb.Op_Range{Range: &fsmpb.Range{Key: []byte("k")}}},
		},
	}}}},
	{"set_member", &fsmpb.Command{Op: &fsmpb.Command_SetMember{SetMember: &fsmpb.SetMember{Id: "node-1", GrpcAddr: "10.0.0.1:9000"}}}},
}

const goldenDir = "testdata/v0.1.0"

// TestGoldenV010 checks that v0.1.0 log entries decode, forever, to the same
// commands, and still apply. Run with -update only when creating the files
// for the current release.
func TestGoldenV010(t *testing.T) {
	if *update {
		writeGolden(t)
	}
	checkGoldenCommands(t, newFSM(t, "", nil), goldenDir, goldenV010)
}

func writeGolden(t *testing.T) {
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join("testdata", "fuzz", "FuzzDecodeCommand")
	if err := os.MkdirAll(corpus, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSeed := func(name string, b []byte) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(corpus, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range goldenV010 {
		b := mustEncode(t, g.cmd)
		if err := os.WriteFile(filepath.Join(goldenDir, g.name+".bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		writeSeed("v0.1.0-"+g.name, b)
	}
	for name, b := range map[string][]byte{
		"empty":            {},
		"envelope-only":    {fsm.EnvelopeV1},
		"unknown-envelope": {2, 0x12, 0x00},
		"zero-envelope":    {0},
		"bad-varint":       {fsm.EnvelopeV1, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"truncated-field":  {fsm.EnvelopeV1, 0x12, 0x05, 0x0a},
		"unknown-field":    {fsm.EnvelopeV1, 0xfa, 0x06, 0x01, 0x00},
		"wrong-wire-type":  {fsm.EnvelopeV1, 0x10, 0x01},
	} {
		writeSeed(name, b)
	}
	t.Logf("rewrote %s and the fuzz seed corpus", goldenDir)
}

func TestDecodeCommandErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{"nil", nil, fsm.ErrMalformedCommand},
		{"empty", []byte{}, fsm.ErrMalformedCommand},
		{"zero envelope", []byte{0}, fsm.ErrUnknownEnvelope},
		{"future envelope", []byte{2, 0x12, 0x00}, fsm.ErrUnknownEnvelope},
		{"bad proto", []byte{fsm.EnvelopeV1, 0x12, 0x05, 0x0a}, fsm.ErrMalformedCommand},
		{"envelope only is an empty command", []byte{fsm.EnvelopeV1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := fsm.DecodeCommand(tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeCommand(%x): got error %v, want %v", tt.data, err, tt.wantErr)
			}
			if (err == nil) != (cmd != nil) {
				t.Errorf("DecodeCommand(%x): got (%v, %v), want exactly one of command and error", tt.data, cmd, err)
			}
		})
	}
}

// FuzzDecodeCommand: DecodeCommand never panics, fails only with its two
// sentinels, and what it decodes re-encodes to an equal command.
func FuzzDecodeCommand(f *testing.F) {
	for _, g := range slices.Concat(goldenV010, goldenV020, goldenV030, goldenV040) {
		b, err := fsm.EncodeCommand(g.cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := fsm.DecodeCommand(b)
		if err != nil {
			if cmd != nil {
				t.Fatalf("DecodeCommand(%x): got a command and error %v", b, err)
			}
			if !errors.Is(err, fsm.ErrMalformedCommand) && !errors.Is(err, fsm.ErrUnknownEnvelope) {
				t.Fatalf("DecodeCommand(%x): got error %v, want ErrMalformedCommand or ErrUnknownEnvelope", b, err)
			}
			return
		}
		enc, err := fsm.EncodeCommand(cmd)
		if err != nil {
			t.Fatalf("EncodeCommand(decoded %x): got error %v, want nil", b, err)
		}
		again, err := fsm.DecodeCommand(enc)
		if err != nil {
			t.Fatalf("DecodeCommand(re-encoded %x): got error %v, want nil", enc, err)
		}
		if !proto.Equal(cmd, again) {
			t.Fatalf("round trip of %x:\n got %v\nwant %v", b, again, cmd)
		}
	})
}
