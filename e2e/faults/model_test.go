package faults

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// W1 is a register per key: get, put and compare-and-swap (a Txn comparing
// the value, then putting). Every written value is unique, so a read names
// the one write it saw.

// regOp is the kind of a W1 operation.
type regOp int

const (
	opGet regOp = iota
	opPut
	opCAS
)

// regInput is a W1 request. For a CAS, expect is the value compared with
// ("" means: the key must not exist) and value the one written on success.
type regInput struct {
	op     regOp
	key    string
	value  string
	expect string
}

// regOutput is a W1 response. unknown marks a write whose outcome is
// unknown (timeout, leadership lost): it may or may not have happened, and
// its return time is +infinity. Failed reads are not recorded at all;
// writes that failed for certain (nothing was proposed) are not recorded
// either.
type regOutput struct {
	found   bool   // get: the key existed
	value   string // get: its value
	ok      bool   // cas: the compare held and the put ran
	unknown bool
}

// checkTimeout bounds one porcupine check; a check that times out fails.
const checkTimeout = 60 * time.Second

// infinity is the return time of an operation whose outcome is unknown.
const infinity = int64(math.MaxInt64)

// registerModel is a nondeterministic register model partitioned by key.
// The state is the register's value, "" for a missing key. A write whose
// outcome is unknown leads to both states, applied and not, so it may be
// linearized anywhere after its call, or not at all.
var registerModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(regInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []interface{} { return []interface{}{""} },
	Step: func(state, input, output interface{}) []interface{} {
		s := state.(string)
		in := input.(regInput)
		out := output.(regOutput)
		switch in.op {
		case opGet:
			if out.found == (s != "") && out.value == s {
				return []interface{}{s}
			}
			return nil
		case opPut:
			if out.unknown {
				return []interface{}{s, in.value}
			}
			return []interface{}{in.value}
		case opCAS:
			holds := s == in.expect
			switch {
			case out.unknown && holds:
				return []interface{}{s, in.value}
			case out.unknown:
				return []interface{}{s}
			case out.ok && holds:
				return []interface{}{in.value}
			case !out.ok && !holds:
				return []interface{}{s}
			}
			return nil
		}
		return nil
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
	Hash: func(state interface{}) uint64 {
		// FNV-1a.
		h := uint64(14695981039346656037)
		for _, c := range []byte(state.(string)) {
			h ^= uint64(c)
			h *= 1099511628211
		}
		return h
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(regInput), output.(regOutput)
		suffix := ""
		if out.unknown {
			suffix = " (outcome unknown)"
		}
		switch in.op {
		case opGet:
			if !out.found {
				return fmt.Sprintf("get(%s) -> missing", in.key)
			}
			return fmt.Sprintf("get(%s) -> %s", in.key, out.value)
		case opPut:
			return fmt.Sprintf("put(%s, %s)%s", in.key, in.value, suffix)
		default:
			res := "failed"
			if out.ok {
				res = "ok"
			}
			if out.unknown {
				res = "?"
			}
			return fmt.Sprintf("cas(%s, %q -> %s) %s%s", in.key, in.expect, in.value, res, suffix)
		}
	},
	DescribeState: func(state interface{}) string {
		if state.(string) == "" {
			return "(missing)"
		}
		return state.(string)
	},
}

// checkResult is the outcome of a linearizability check.
type checkResult struct {
	ok       bool
	timedOut bool
	checked  int    // operations given to porcupine
	pruned   int    // unobserved indeterminate writes left out (pruneUnobserved)
	visual   string // HTML visualization, written on failure
}

// checkLinearizable checks history against the register model within
// timeout. A check that times out is a failure. On failure the porcupine
// visualization is written into dir.
func checkLinearizable(history []porcupine.Operation, timeout time.Duration, dir string) (checkResult, error) {
	history, pruned := pruneUnobserved(history)
	model := registerModel.ToModel()
	res, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	cr := checkResult{ok: res == porcupine.Ok, timedOut: res == porcupine.Unknown, checked: len(history), pruned: pruned}
	if cr.ok {
		return cr, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cr, fmt.Errorf("create artifact dir: %w", err)
	}
	cr.visual = filepath.Join(dir, "linearizability.html")
	if err := porcupine.VisualizePath(model, info, cr.visual); err != nil {
		return cr, fmt.Errorf("write porcupine visualization: %w", err)
	}
	return cr, nil
}

// pruneUnobserved drops the writes of unknown outcome whose value no
// operation ever observed, and returns the rest and how many it dropped.
//
// An indeterminate write stays concurrent with everything after its call
// (return time +infinity), so each one multiplies porcupine's search; a long
// soak can have thousands. Dropping an unobserved one changes no verdict:
// values are unique, so if the write took effect, every operation between it
// and the next overwrite neither read its value (a get, or a failed CAS that
// reports the current value) nor compared against it (a successful CAS
// names the value it expected). Those operations are then blind writes or
// other unknown writes, which fit the state before it just as well; and
// "never happened" is one of the outcomes the model allows anyway.
func pruneUnobserved(history []porcupine.Operation) ([]porcupine.Operation, int) {
	observed := map[string]bool{}
	for _, op := range history {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		switch {
		case out.unknown:
		case in.op == opGet && out.found:
			observed[in.key+"\x00"+out.value] = true
		case in.op == opCAS && out.ok && in.expect != "":
			observed[in.key+"\x00"+in.expect] = true
		case in.op == opCAS && !out.ok && out.found:
			observed[in.key+"\x00"+out.value] = true
		}
	}
	kept := make([]porcupine.Operation, 0, len(history))
	for _, op := range history {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if out.unknown && !observed[in.key+"\x00"+in.value] {
			continue
		}
		kept = append(kept, op)
	}
	return kept, len(history) - len(kept)
}

// w2Result is the durability check of the W2 set.
type w2Result struct {
	acked, unknown, failed int
	lost                   []string // acknowledged, missing or with another value
	phantom                []string // present but never attempted, or failed for certain
}

func (r w2Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d acknowledged, %d unknown, %d failed; %d lost, %d phantom", r.acked, r.unknown, r.failed, len(r.lost), len(r.phantom))
	for i, k := range r.lost {
		if i == 10 {
			b.WriteString("\n  ...")
			break
		}
		fmt.Fprintf(&b, "\n  lost: %s", k)
	}
	for i, k := range r.phantom {
		if i == 10 {
			b.WriteString("\n  ...")
			break
		}
		fmt.Fprintf(&b, "\n  phantom: %s", k)
	}
	return b.String()
}

// w2Attempt is one W2 insert: a fresh key and its value.
type w2Attempt struct {
	key, value string
	outcome    w2Outcome
	call, ret  int64 // since the cluster's time zero
}

type w2Outcome int

const (
	w2Acked w2Outcome = iota
	w2Unknown
	w2Failed // failed for certain: nothing was proposed
)

// checkW2 compares the W2 attempts with what the cluster holds under the W2
// prefix. Every acknowledged key must be present with its value; every key
// present must have been attempted with that value and not have failed for
// certain; unknown ones may be either.
func checkW2(attempts []w2Attempt, present map[string]string) w2Result {
	var r w2Result
	tried := make(map[string]w2Attempt, len(attempts))
	for _, a := range attempts {
		tried[a.key] = a
		switch a.outcome {
		case w2Acked:
			r.acked++
			if v, ok := present[a.key]; !ok || v != a.value {
				r.lost = append(r.lost, fmt.Sprintf("%s (want %q, have %q, present %v)", a.key, a.value, v, ok))
			}
		case w2Unknown:
			r.unknown++
		case w2Failed:
			r.failed++
		}
	}
	for k, v := range present {
		a, ok := tried[k]
		switch {
		case !ok:
			r.phantom = append(r.phantom, k+" (never attempted)")
		case a.value != v:
			r.phantom = append(r.phantom, fmt.Sprintf("%s (value %q, attempted %q)", k, v, a.value))
		case a.outcome == w2Failed:
			r.phantom = append(r.phantom, k+" (the write failed for certain, yet it was applied)")
		}
	}
	sort.Strings(r.lost)
	sort.Strings(r.phantom)
	return r
}

// The tests below check the checker, so a green fault suite can't come from
// a checker that accepts everything. They run without the e2e tag.

func op(client int, in regInput, call, ret int64, out regOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func TestRegisterModel(t *testing.T) {
	put := func(v string) regInput { return regInput{op: opPut, key: "k", value: v} }
	get := regInput{op: opGet, key: "k"}
	cas := func(expect, v string) regInput { return regInput{op: opCAS, key: "k", expect: expect, value: v} }
	read := func(v string) regOutput { return regOutput{found: v != "", value: v} }
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    bool
	}{
		{"read your write", []porcupine.Operation{
			op(0, put("a"), 0, 10, regOutput{}), op(1, get, 20, 30, read("a")),
		}, true},
		{"stale read", []porcupine.Operation{
			op(0, put("a"), 0, 10, regOutput{}), op(0, put("b"), 11, 20, regOutput{}), op(1, get, 30, 40, read("a")),
		}, false},
		{"read of a never-written value", []porcupine.Operation{
			op(1, get, 0, 10, read("zzz")),
		}, false},
		{"unknown put may have happened", []porcupine.Operation{
			op(0, put("a"), 0, infinity, regOutput{unknown: true}), op(1, get, 20, 30, read("a")),
		}, true},
		{"unknown put may not have happened", []porcupine.Operation{
			op(0, put("a"), 0, infinity, regOutput{unknown: true}), op(1, get, 20, 30, read("")),
		}, true},
		{"unknown put cannot flip back", []porcupine.Operation{
			op(0, put("a"), 0, infinity, regOutput{unknown: true}), op(1, get, 20, 30, read("a")), op(1, get, 40, 50, read("")),
		}, false},
		{"cas ok needs a matching value", []porcupine.Operation{
			op(0, put("a"), 0, 10, regOutput{}), op(1, cas("x", "b"), 20, 30, regOutput{ok: true}),
		}, false},
		{"cas chain", []porcupine.Operation{
			op(0, put("a"), 0, 10, regOutput{}), op(1, cas("a", "b"), 20, 30, regOutput{ok: true}),
			op(2, cas("a", "c"), 40, 50, regOutput{ok: false}), op(2, get, 60, 70, read("b")),
		}, true},
		{"lost acknowledged cas", []porcupine.Operation{
			op(0, put("a"), 0, 10, regOutput{}), op(1, cas("a", "b"), 20, 30, regOutput{ok: true}), op(2, get, 40, 50, read("a")),
		}, false},
		{"unknown cas observed later", []porcupine.Operation{
			op(0, put("a"), 0, 10, regOutput{}), op(1, cas("a", "b"), 20, infinity, regOutput{unknown: true}),
			op(2, get, 40, 50, read("b")), op(2, get, 60, 70, read("b")),
		}, true},
		{"unobserved unknown cas cannot explain a stale read", []porcupine.Operation{
			op(0, put("a"), 0, 10, regOutput{}), op(1, cas("a", "b"), 20, infinity, regOutput{unknown: true}),
			op(0, put("c"), 30, 40, regOutput{}), op(2, get, 50, 60, read("a")),
		}, false},
		{"create via cas on a missing key", []porcupine.Operation{
			op(1, cas("", "b"), 0, 10, regOutput{ok: true}), op(2, get, 20, 30, read("b")),
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := checkLinearizable(tt.history, 5*time.Second, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if res.ok != tt.want {
				t.Fatalf("linearizable = %v, want %v", res.ok, tt.want)
			}
			if !res.ok {
				if _, err := os.Stat(res.visual); err != nil {
					t.Fatalf("visualization of a failed check: %v", err)
				}
			}
		})
	}
}

func TestPruneUnobserved(t *testing.T) {
	put := func(v string) regInput { return regInput{op: opPut, key: "k", value: v} }
	h := []porcupine.Operation{
		op(0, put("seen"), 0, infinity, regOutput{unknown: true}),
		op(0, put("unseen"), 5, infinity, regOutput{unknown: true}),
		op(0, put("acked"), 6, 8, regOutput{}),
		op(1, regInput{op: opGet, key: "k"}, 10, 20, regOutput{found: true, value: "seen"}),
		op(1, regInput{op: opCAS, key: "k", expect: "acked", value: "x"}, 30, infinity, regOutput{unknown: true}),
	}
	kept, dropped := pruneUnobserved(h)
	if dropped != 2 || len(kept) != 3 {
		t.Fatalf("pruneUnobserved kept %d, dropped %d; want the unseen put and the unknown cas dropped", len(kept), dropped)
	}
	for _, o := range kept {
		if v := o.Input.(regInput).value; v == "unseen" || v == "x" {
			t.Fatalf("kept the unobserved unknown write of %q", v)
		}
	}
}

func TestCheckW2(t *testing.T) {
	attempts := []w2Attempt{
		{key: "a", value: "1", outcome: w2Acked}, {key: "b", value: "2", outcome: w2Acked}, {key: "c", value: "3", outcome: w2Unknown},
		{key: "d", value: "4", outcome: w2Unknown}, {key: "e", value: "5", outcome: w2Failed},
	}
	r := checkW2(attempts, map[string]string{"a": "1", "b": "2", "c": "3"})
	if len(r.lost) != 0 || len(r.phantom) != 0 {
		t.Fatalf("clean set: %v", r)
	}
	r = checkW2(attempts, map[string]string{"a": "1", "b": "x", "e": "5", "z": "0"})
	if len(r.lost) != 1 || len(r.phantom) != 3 {
		t.Fatalf("bad set: got %v; want b lost (and phantom with its other value), e and z phantom", r)
	}
}

// serialRead is one serializable get of a W1 key, at the node the client is
// pinned to. gen is that node's generation (its start count) during the
// read.
type serialRead struct {
	client, node, gen int
	key               string
	call, ret         int64
	found             bool
	value             string
	modRev            int64
}

// serialResult is the check of the serializable reads of one epoch.
type serialResult struct {
	reads       int
	unwritten   []string // a value no write of the key could have written
	regressed   []string // older than what the same client saw before at the same node generation
	revMismatch []string // one value seen at two mod revisions
}

func (r serialResult) violations() int {
	return len(r.unwritten) + len(r.regressed) + len(r.revMismatch)
}

func (r serialResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d serializable reads; %d unwritten values, %d regressions, %d revision mismatches",
		r.reads, len(r.unwritten), len(r.regressed), len(r.revMismatch))
	for _, list := range [][]string{r.unwritten, r.regressed, r.revMismatch} {
		for i, v := range list {
			if i == 10 {
				b.WriteString("\n  ...")
				break
			}
			fmt.Fprintf(&b, "\n  %s", v)
		}
	}
	return b.String()
}

// checkSerial checks serializable reads, which may be stale, apart from the
// linearizable W1 history:
//
//   - every value read was written: written holds key+"\x00"+value for each
//     write of the epoch that did not fail for certain (acknowledged or of
//     unknown outcome), plus the epoch's initial values;
//   - per client, per key, within one generation of the node it reads
//     (a restart, a wipe or a restore starts a new one), reads never go
//     back: the write order is the raft index each value was applied at,
//     its mod revision, so a read's mod revision never drops below the
//     previous read's, and a key once seen never reads as missing (the
//     workload deletes nothing);
//   - a value is applied once, so every read of it reports the same mod
//     revision.
func checkSerial(reads []serialRead, written map[string]bool) serialResult {
	r := serialResult{reads: len(reads)}
	type stream struct {
		client, gen int
		key         string
	}
	last := map[stream]serialRead{}
	rev := map[string]int64{}
	sorted := append([]serialRead(nil), reads...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].call < sorted[j].call })
	for _, rd := range sorted {
		if rd.found {
			kv := rd.key + "\x00" + rd.value
			if !written[kv] {
				r.unwritten = append(r.unwritten, fmt.Sprintf("client %d read %s = %q, which no write of this epoch wrote", rd.client, rd.key, rd.value))
			}
			if prev, ok := rev[kv]; ok && prev != rd.modRev {
				r.revMismatch = append(r.revMismatch, fmt.Sprintf("%s = %q seen at mod revision %d and %d", rd.key, rd.value, prev, rd.modRev))
			}
			rev[kv] = rd.modRev
		}
		st := stream{rd.client, rd.gen, rd.key}
		if prev, ok := last[st]; ok && prev.found && (!rd.found || rd.modRev < prev.modRev) {
			r.regressed = append(r.regressed, fmt.Sprintf("client %d at node %d (start %d): %s went from %q (rev %d) back to %q (rev %d, found %v)",
				rd.client, rd.node, rd.gen, rd.key, prev.value, prev.modRev, rd.value, rd.modRev, rd.found))
		}
		last[st] = rd
	}
	return r
}

func TestCheckSerial(t *testing.T) {
	written := map[string]bool{"k\x00a": true, "k\x00b": true}
	read := func(client, gen int, call int64, v string, rev int64) serialRead {
		return serialRead{client: client, gen: gen, key: "k", call: call, found: v != "", value: v, modRev: rev}
	}
	ok := []serialRead{read(0, 1, 1, "", 0), read(0, 1, 2, "a", 5), read(0, 1, 3, "b", 9), read(1, 1, 1, "a", 5),
		// A new generation (the node restarted) may start over.
		read(0, 2, 4, "", 0), read(0, 2, 5, "a", 5)}
	if r := checkSerial(ok, written); r.violations() != 0 {
		t.Fatalf("clean reads: %v", r)
	}
	tests := []struct {
		name  string
		reads []serialRead
	}{
		{"unwritten value", []serialRead{read(0, 1, 1, "zzz", 3)}},
		{"back to an older value", []serialRead{read(0, 1, 1, "b", 9), read(0, 1, 2, "a", 5)}},
		{"back to missing", []serialRead{read(0, 1, 1, "a", 5), read(0, 1, 2, "", 0)}},
		{"one value at two revisions", []serialRead{read(0, 1, 1, "a", 5), read(1, 1, 2, "a", 6)}},
	}
	for _, tt := range tests {
		if r := checkSerial(tt.reads, written); r.violations() != 1 {
			t.Errorf("%s: %d violations, want 1: %v", tt.name, r.violations(), r)
		}
	}
}
