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
		{"a", "1", w2Acked}, {"b", "2", w2Acked}, {"c", "3", w2Unknown}, {"d", "4", w2Unknown}, {"e", "5", w2Failed},
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
