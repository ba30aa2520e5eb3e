package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// tWriter sends log output through t.Log, so it shows only on failure.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newFSM opens an FSM in dir (a fresh temp dir if empty) and closes it at
// the end of the test. It runs as a node does by default, with unsynced
// commits, except that neither the sync nor the staged commit ever happens
// on a timer: every applied batch stays staged until something reads the
// store, so each test also checks that reads see staged batches.
func newFSM(t testing.TB, dir string, inv fsm.Invalidator) *fsm.FSM {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	f, err := fsm.New(fsm.Config{Dir: dir, SyncInterval: time.Hour, CommitDelay: time.Hour}, fsm.Deps{Logger: testLogger(t), Invalidator: inv})
	if err != nil {
		t.Fatalf("fsm.New(%q): got error %v, want nil", dir, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func mustEncode(t testing.TB, cmd *fsmpb.Command) []byte {
	t.Helper()
	b, err := fsm.EncodeCommand(cmd)
	if err != nil {
		t.Fatalf("EncodeCommand: got error %v, want nil", err)
	}
	return b
}

func cmdLog(t testing.TB, index uint64, cmd *fsmpb.Command) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: mustEncode(t, cmd)}
}

// apply applies one command at index and returns its *fsm.Result.
func apply(t testing.TB, f *fsm.FSM, index uint64, cmd *fsmpb.Command) *fsm.Result {
	t.Helper()
	r, ok := f.Apply(cmdLog(t, index, cmd)).(*fsm.Result)
	if !ok {
		t.Fatalf("Apply(%d): response is not a *fsm.Result", index)
	}
	if r.Index != index {
		t.Fatalf("Apply(%d): got Result.Index %d, want %d", index, r.Index, index)
	}
	return r
}

// Command builders.

func putCmd(k, v string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Key: []byte(k), Value: []byte(v)}}}
}

func putPrevCmd(k, v string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Key: []byte(k), Value: []byte(v), PrevKv: true}}}
}

func delCmd(k, end string, prev bool) *fsmpb.Command {
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteRange{DeleteRange: &fsmpb.DeleteRange{Key: []byte(k), RangeEnd: e, PrevKv: prev}}}
}

func memberCmd(id, addr string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetMember{SetMember: &fsmpb.SetMember{Id: id, GrpcAddr: addr}}}
}

func txnCmd(cmps []*fsmpb.Compare, success, failure []*fsmpb.Op) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_Txn{Txn: &fsmpb.Txn{Compare: cmps, Success: success, Failure: failure}}}
}

func opPut(k, v string, prev bool) *fsmpb.Op {
	return &fsmpb.Op{Op: &fsmpb.Op_Put{Put: &fsmpb.Put{Key: []byte(k), Value: []byte(v), PrevKv: prev}}}
}

func opDel(k, end string, prev bool) *fsmpb.Op {
	return &fsmpb.Op{Op: &fsmpb.Op_DeleteRange{DeleteRange: delCmd(k, end, prev).GetDeleteRange()}}
}

func opRange(k, end string, limit int64) *fsmpb.Op {
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	return &fsmpb.Op{Op: &fsmpb.Op_Range{Range: &fsmpb.Range{Key: []byte(k), RangeEnd: e, Limit: limit}}}
}

func cmp(target fsmpb.Compare_Target, result fsmpb.Compare_Result, key string) *fsmpb.Compare {
	return &fsmpb.Compare{Target: target, Result: result, Key: []byte(key)}
}

func fmtKV(kv fsm.KeyValue) string {
	return fmt.Sprintf("{%q=%q c%d m%d v%d}", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
}

func fmtKVs(kvs []fsm.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = fmtKV(kv)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// fmtResult renders a Result canonically (nil and empty slices alike) so
// results can be compared as strings with readable diffs.
func fmtResult(r *fsm.Result) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "idx=%d", r.Index)
	if r.Err != nil {
		fmt.Fprintf(&sb, " err=%v", r.Err)
	}
	if r.Put != nil {
		sb.WriteString(" " + fmtPut(r.Put))
	}
	if r.Delete != nil {
		sb.WriteString(" " + fmtDel(r.Delete))
	}
	if r.Txn != nil {
		fmt.Fprintf(&sb, " txn(ok=%v", r.Txn.Succeeded)
		for _, o := range r.Txn.Ops {
			switch {
			case o.Range != nil:
				sb.WriteString(" " + fmtRange(*o.Range))
			case o.Put != nil:
				sb.WriteString(" " + fmtPut(o.Put))
			case o.Delete != nil:
				sb.WriteString(" " + fmtDel(o.Delete))
			default:
				sb.WriteString(" <empty op>")
			}
		}
		sb.WriteString(")")
	}
	if r.Batch != nil {
		sb.WriteString(" batch(")
		for i, b := range r.Batch {
			if i > 0 {
				sb.WriteString("; ")
			}
			sb.WriteString(fmtResult(b))
		}
		sb.WriteString(")")
	}
	return sb.String()
}

func fmtPut(p *fsm.PutResult) string {
	if p.PrevKV == nil {
		return "put(prev=nil)"
	}
	return "put(prev=" + fmtKV(*p.PrevKV) + ")"
}

func fmtDel(d *fsm.DeleteResult) string {
	return fmt.Sprintf("del(n=%d prev=%s)", d.Deleted, fmtKVs(d.PrevKVs))
}

func fmtRange(r fsm.RangeResult) string {
	return fmt.Sprintf("range(count=%d more=%v kvs=%s)", r.Count, r.More, fmtKVs(r.KVs))
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, canceled bool
	failAfter        int // fail writes after this many bytes if > 0
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, fmt.Errorf("disk full")
	}
	return s.Buffer.Write(p)
}

// snapshotBytes takes a snapshot of f and persists it into memory.
func snapshotBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: got error %v, want nil", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: got error %v, want nil", err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("Persist: sink (closed, canceled) = (%v, %v), want (true, false)", sink.closed, sink.canceled)
	}
	return sink.Bytes()
}

func mustHash(t testing.TB, f *fsm.FSM) (uint64, []byte) {
	t.Helper()
	idx, sum, err := f.Hash()
	if err != nil {
		t.Fatalf("Hash: got error %v, want nil", err)
	}
	return idx, sum
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// recordingInvalidator records calls, and the FSM's applied index at each
// call (to check invalidation happens before the index is published).
type recordingInvalidator struct {
	mu      sync.Mutex
	f       *fsm.FSM
	calls   []string
	applied []uint64
}

func (r *recordingInvalidator) record(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	if r.f != nil {
		r.applied = append(r.applied, r.f.AppliedIndex())
	}
}

func (r *recordingInvalidator) Invalidate(key []byte, rev uint64, kv *fsm.KeyValue) {
	if kv != nil {
		r.record(fmt.Sprintf("key %q@%d=%q", key, rev, kv.Value))
		return
	}
	r.record(fmt.Sprintf("key %q@%d", key, rev))
}
func (r *recordingInvalidator) InvalidateRange(start, end []byte, rev uint64) {
	if end == nil {
		r.record(fmt.Sprintf("range %q..end@%d", start, rev))
		return
	}
	r.record(fmt.Sprintf("range %q..%q@%d", start, end, rev))
}
func (r *recordingInvalidator) Purge(rev uint64) { r.record(fmt.Sprintf("purge@%d", rev)) }

func (r *recordingInvalidator) take() ([]string, []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, a := r.calls, r.applied
	r.calls, r.applied = nil, nil
	return c, a
}

// goldenCommand is one entry of a release's golden log: name.bin in the
// release's testdata directory holds cmd as that release encoded it.
type goldenCommand struct {
	name string
	cmd  *fsmpb.Command
}

// writeGoldenCommands writes every command of table to dir/name.bin (run
// with -update only when creating a new release's files).
func writeGoldenCommands(t *testing.T, dir string, table []goldenCommand) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, g := range table {
		if err := os.WriteFile(filepath.Join(dir, g.name+".bin"), mustEncode(t, g.cmd), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkGoldenCommands reads each golden entry of table from dir and checks,
// forever, that it decodes to the same command, that encoding the command
// gives the same bytes, and that it still applies to f (at indexes 1, 2, ...).
func checkGoldenCommands(t *testing.T, f *fsm.FSM, dir string, table []goldenCommand) {
	t.Helper()
	for i, g := range table {
		t.Run(g.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, g.name+".bin"))
			if err != nil {
				t.Fatalf("read golden file: got error %v, want nil", err)
			}
			got, err := fsm.DecodeCommand(b)
			if err != nil {
				t.Fatalf("DecodeCommand: got error %v, want nil", err)
			}
			if !proto.Equal(got, g.cmd) {
				t.Errorf("DecodeCommand:\n got %v\nwant %v", got, g.cmd)
			}
			// The encoding itself is stable too (deterministic marshal).
			if enc := mustEncode(t, g.cmd); string(enc) != string(b) {
				t.Errorf("EncodeCommand: got %x, want golden %x", enc, b)
			}
			r := f.Apply(&raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: b}).(*fsm.Result)
			if r.Err != nil {
				t.Errorf("Apply golden entry: got Result.Err %v, want nil", r.Err)
			}
		})
	}
}
