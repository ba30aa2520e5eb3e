package node

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// TestCoalescerTake checks how queued Puts are cut into batches: up to the
// Put and byte caps, never the same key twice, and without Puts whose
// client has given up.
func TestCoalescerTake(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		maxPuts  int
		maxBytes int
		queue    []string // "key" or "key=value"; a leading "!" marks a canceled client
		want     string   // the batch's keys, then "|" and the key left over
	}{
		{"takes everything queued", 8, 1 << 20, []string{"a", "b", "c"}, "a b c|"},
		{"stops at max puts", 2, 1 << 20, []string{"a", "b", "c"}, "a b|"},
		{"stops before a repeated key", 8, 1 << 20, []string{"a", "b", "a", "c"}, "a b|a"},
		{"stops at max bytes", 8, 6, []string{"a=1", "b=22", "c=333"}, "a b|c"},
		{"a large first put goes alone", 8, 2, []string{"a=12345", "b"}, "a|b"},
		{"drops canceled puts", 8, 1 << 20, []string{"!a", "b", "!c", "d"}, "b d|"},
		{"only canceled puts", 8, 1 << 20, []string{"!a"}, "|"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &putCoalescer{queue: make(chan *queuedPut, 16), maxPuts: tt.maxPuts, maxBytes: tt.maxBytes}
			var all []*queuedPut
			for _, s := range tt.queue {
				ctx := context.Background()
				if strings.HasPrefix(s, "!") {
					ctx, s = canceled, s[1:]
				}
				k, v, _ := strings.Cut(s, "=")
				all = append(all, &queuedPut{ctx: ctx, put: &fsmpb.Put{Key: []byte(k), Value: []byte(v)}, done: make(chan putOutcome, 1)})
			}
			for _, q := range all[1:] {
				c.queue <- q
			}
			batch, next := c.take(all[0])
			var keys []string
			for _, q := range batch {
				keys = append(keys, string(q.put.GetKey()))
			}
			got := strings.Join(keys, " ") + "|"
			if next != nil {
				got += string(next.put.GetKey())
			}
			if got != tt.want {
				t.Errorf("take: got %q, want %q", got, tt.want)
			}
			for _, q := range all {
				if q.ctx != canceled {
					continue
				}
				select {
				case o := <-q.done:
					if !errors.Is(o.err, context.Canceled) {
						t.Errorf("canceled put %q: got %v, want context.Canceled", q.put.GetKey(), o.err)
					}
				default:
					t.Errorf("canceled put %q got no answer", q.put.GetKey())
				}
			}
		})
	}
}

// TestNewPutCoalescerOff checks the settings that turn coalescing off.
func TestNewPutCoalescerOff(t *testing.T) {
	for _, tt := range []struct{ maxPuts, inflight int }{{0, 4}, {1, 4}, {256, 0}} {
		if c := newPutCoalescer(tt.maxPuts, tt.inflight); c != nil {
			t.Errorf("newPutCoalescer(%d, %d) = %v, want nil (off)", tt.maxPuts, tt.inflight, c)
		}
	}
	if c := newPutCoalescer(256, 4); c == nil || cap(c.slots) != 4 || c.maxPuts != 256 {
		t.Errorf("newPutCoalescer(256, 4) = %+v", c)
	}
}
