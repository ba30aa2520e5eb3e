package faults

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// simulatedHistory returns a linearizable W1 history of n operations on 16
// keys: each operation takes effect at its own point in one global order,
// its call and return straddle that point by up to 30 ticks (so neighbours
// overlap), and a share of the writes have an unknown outcome (return
// +infinity), half of which never took effect.
func simulatedHistory(n int, unknownShare float64, seed uint64) []porcupine.Operation {
	rng := rand.New(rand.NewPCG(seed, 1))
	state := map[string]string{}
	var h []porcupine.Operation
	for i := range n {
		key := fmt.Sprintf("k%02d", rng.IntN(16))
		at := int64(i * 10)
		call, ret := at-rng.Int64N(30), at+rng.Int64N(30)
		value := fmt.Sprintf("v%d", i)
		cur := state[key]
		var in regInput
		var out regOutput
		switch r := rng.Float64(); {
		case r < 0.4:
			in, out = regInput{op: opGet, key: key}, regOutput{found: cur != "", value: cur}
		case r < 0.7:
			in = regInput{op: opPut, key: key, value: value}
			state[key] = value
		default:
			expect := cur
			if rng.IntN(2) == 0 {
				expect = "stale"
			}
			in = regInput{op: opCAS, key: key, value: value, expect: expect}
			if cur == expect {
				out.ok = true
				state[key] = value
			} else {
				out.found, out.value = cur != "", cur
			}
		}
		if in.op != opGet && rng.Float64() < unknownShare {
			out, ret = regOutput{unknown: true}, infinity
			if rng.IntN(2) == 0 && (in.op == opPut || in.expect == cur) {
				state[key] = cur // it never took effect
			}
		}
		h = append(h, porcupine.Operation{ClientId: i % 5, Input: in, Call: call, Output: out, Return: ret})
	}
	return h
}

// TestCheckerScales checks a history about as long as a 2-minute soak
// scenario with 5% unknown writes: it must be found linearizable well
// within the suite's check timeout.
func TestCheckerScales(t *testing.T) {
	h := simulatedHistory(8000, 0.05, 7)
	start := time.Now()
	res, err := checkLinearizable(h, checkTimeout, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !res.ok {
		t.Fatalf("simulated linearizable history of %d ops: ok=%v timedOut=%v", len(h), res.ok, res.timedOut)
	}
	t.Logf("%d ops (%d checked, %d pruned) in %s", len(h), res.checked, res.pruned, time.Since(start).Round(time.Millisecond))
}
