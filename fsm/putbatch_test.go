package fsm_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
	"github.com/raftkv/raftkv/store"
)

func putBatchCmd(puts ...*fsmpb.Put) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_PutBatch{PutBatch: &fsmpb.PutBatch{Puts: puts}}}
}

func bput(k, v string, prev bool) *fsmpb.Put {
	return &fsmpb.Put{Key: []byte(k), Value: []byte(v), PrevKv: prev}
}

// TestPutBatch applies PutBatch commands: every Put applies as its own
// command at the entry's index, one that fails validation fails alone, and
// the result lists one outcome per Put, in order.
func TestPutBatch(t *testing.T) {
	tests := []struct {
		name   string
		before []*fsmpb.Command // applied at 1, 2, ...
		batch  *fsmpb.Command   // applied next
		want   string           // fmtResult of the batch
		state  string           // every key afterwards
	}{
		{
			name:  "new keys",
			batch: putBatchCmd(bput("a", "1", false), bput("b", "2", true)),
			want:  "idx=1 batch(idx=1 put(prev=nil); idx=1 put(prev=nil))",
			state: `{"a"="1" c1 m1 v1} {"b"="2" c1 m1 v1}`,
		},
		{
			name:   "prev kv and versions",
			before: []*fsmpb.Command{putCmd("a", "0")},
			batch:  putBatchCmd(bput("a", "1", true), bput("b", "2", true)),
			want:   `idx=2 batch(idx=2 put(prev={"a"="0" c1 m1 v1}); idx=2 put(prev=nil))`,
			state:  `{"a"="1" c1 m2 v2} {"b"="2" c2 m2 v1}`,
		},
		{
			name:  "an invalid put fails alone",
			batch: putBatchCmd(bput("a", "1", false), bput("", "x", false), bput("c", "3", false)),
			want:  "idx=1 batch(idx=1 put(prev=nil); idx=1 err=store: key required; idx=1 put(prev=nil))",
			state: `{"a"="1" c1 m1 v1} {"c"="3" c1 m1 v1}`,
		},
		{
			name:  "an oversize key fails alone",
			batch: putBatchCmd(bput(strings.Repeat("k", store.MaxKeySize+1), "1", false), bput("b", "2", false)),
			want:  fmt.Sprintf("idx=1 batch(idx=1 err=store: key too large: %d bytes, max %d; idx=1 put(prev=nil))", store.MaxKeySize+1, store.MaxKeySize),
			state: `{"b"="2" c1 m1 v1}`,
		},
		{
			name:  "a repeated key applies in order",
			batch: putBatchCmd(bput("a", "1", false), bput("a", "2", true)),
			want:  `idx=1 batch(idx=1 put(prev=nil); idx=1 put(prev={"a"="1" c1 m1 v1}))`,
			state: `{"a"="2" c1 m1 v2}`,
		},
		{
			name:  "empty",
			batch: putBatchCmd(),
			want:  "idx=1 batch()",
			state: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t, "", nil)
			for i, c := range tt.before {
				apply(t, f, uint64(i+1), c)
			}
			idx := uint64(len(tt.before) + 1)
			got := fmtResult(apply(t, f, idx, tt.batch))
			if got != tt.want {
				t.Errorf("result:\n got %s\nwant %s", got, tt.want)
			}
			if got := rangeAll(t, f); got != tt.state {
				t.Errorf("state:\n got %s\nwant %s", got, tt.state)
			}
		})
	}
}

// TestPutBatchInvalidatesCache checks that every Put of a batch reaches the
// read cache with its new state, at the entry's index.
func TestPutBatchInvalidatesCache(t *testing.T) {
	inv := &recordingInvalidator{}
	f := newFSM(t, "", inv)
	inv.f = f
	inv.take() // opening purges the cache
	apply(t, f, 1, putBatchCmd(bput("a", "1", false), bput("", "bad", false), bput("b", "2", false)))
	calls, applied := inv.take()
	if want := []string{`key "a"@1="1"`, `key "b"@1="2"`}; !slices.Equal(calls, want) {
		t.Errorf("invalidations: got %q, want %q", calls, want)
	}
	// Both before the batch's index is published.
	if want := []uint64{0, 0}; !slices.Equal(applied, want) {
		t.Errorf("applied index at each invalidation: got %v, want %v", applied, want)
	}
}

// TestPutBatchRepeatedKeyDropsCachedState: a key written twice in one
// batch reaches the cache without its new state (the cache would keep the
// first state it learns at a revision), so the cache drops it; other keys
// carry their state.
func TestPutBatchRepeatedKeyDropsCachedState(t *testing.T) {
	inv := &recordingInvalidator{}
	f := newFSM(t, "", inv)
	inv.take() // opening purges the cache
	apply(t, f, 1, putBatchCmd(bput("a", "1", false), bput("b", "1", false), bput("a", "2", false)))
	calls, _ := inv.take()
	if want := []string{`key "a"@1`, `key "b"@1="1"`, `key "a"@1`}; !slices.Equal(calls, want) {
		t.Errorf("invalidations: got %q, want %q", calls, want)
	}
	// The next command is not affected.
	apply(t, f, 2, putCmd("a", "3"))
	if calls, _ := inv.take(); !slices.Equal(calls, []string{`key "a"@2="3"`}) {
		t.Errorf("invalidations after the batch: got %q", calls)
	}
}

// TestPutBatchReplaySkipped checks that a PutBatch at or below the applied
// index is skipped on replay, like any other entry.
func TestPutBatchReplaySkipped(t *testing.T) {
	dir := t.TempDir()
	f := newFSM(t, dir, nil)
	apply(t, f, 1, putBatchCmd(bput("a", "1", false)))
	apply(t, f, 2, putCmd("a", "2"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := newFSM(t, dir, nil)
	if r := apply(t, g, 1, putBatchCmd(bput("a", "1", false))); r.Batch != nil {
		t.Errorf("replayed batch returned results %s, want none", fmtResult(r))
	}
	if got, want := rangeAll(t, g), `{"a"="2" c1 m2 v2}`; got != want {
		t.Errorf("after replay: got %s, want %s", got, want)
	}
}

// rangeAll renders every key of f in order.
func rangeAll(t *testing.T, f *fsm.FSM) string {
	t.Helper()
	res, err := f.Range(&fsmpb.Range{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	return strings.Trim(fmtKVs(res.KVs), "[]")
}

// goldenV040 is the command v0.4.0 added: PutBatch.
//
// NB: as goldenV010: never edit this table or testdata/v0.4.0 once
// released.
var goldenV040 = []goldenCommand{
	{"put_batch", putBatchCmd(bput("batch/1", "v1", false), bput("batch/2", "v2", true),
		&fsmpb.Put{Key: []byte("batch/3"), Value: []byte("v3"), ExpireAtUnixMs: 1767225600000})},
}

// TestGoldenV040 decodes and applies the v0.4.0 golden commands.
func TestGoldenV040(t *testing.T) {
	const dir = "testdata/v0.4.0"
	if *update {
		writeGoldenCommands(t, dir, goldenV040)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("golden directory: %v (run with -update once for a new release)", err)
	}
	f := newFSM(t, "", nil)
	checkGoldenCommands(t, f, dir, goldenV040)
	if keys, index := expiryState(t, f); keys != "batch/1=v1 batch/2=v2 batch/3=v3@1767225600000" || index != "1767225600000:batch/3" {
		t.Errorf("after the golden log: keys %q index %q", keys, index)
	}
}
