package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestHCLogAdapter: raft's hclog lines reach the slog logger with their
// level, structured fields render in JSON, keys follow STYLE.md §7, and an
// RPC logged as "command" never puts its entries' bytes in the log.
func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := newHCLog(logger, "raft")

	h.Trace("trace line")
	h.Debug("debug line")
	h.Info("entering follower state", "follower", stringer("Node at 10.0.0.1:7002 [Follower]"), "leader-address", "", "index", 7)
	h.Warn("heartbeat timeout reached", "last-leader-id", "n1")
	h.Error("failed to append", "error", errors.New("disk full"), "servers", hclog.Fmt("%d servers", 3))
	secret := "SECRET-VALUE-BYTES"
	h.Named("net").Error("expected heartbeat, got", "command",
		hclog.Fmt("%#v", &raft.AppendEntriesRequest{Entries: []*raft.Log{{Data: []byte(secret)}}}))

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		lines = append(lines, m)
	}
	if out := buf.String(); strings.Contains(out, secret) || strings.Contains(out, "Data:") || strings.Contains(out, "0x53") {
		t.Errorf("log output contains entry data:\n%s", buf.String())
	}
	want := []struct {
		level, msg string
		fields     map[string]any
	}{
		{"INFO", "entering follower state", map[string]any{"component": "raft", "follower": "Node at 10.0.0.1:7002 [Follower]", "leader_address": "", "raft_index": 7.0}},
		{"WARN", "heartbeat timeout reached", map[string]any{"last_leader_id": "n1"}},
		{"ERROR", "failed to append", map[string]any{"err": "disk full", "servers": "3 servers"}},
		{"ERROR", "expected heartbeat, got", map[string]any{"sub": "net", "command": "*raft.AppendEntriesRequest"}},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d (trace and debug dropped at info):\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		got := lines[i]
		if got["level"] != w.level || got["msg"] != w.msg {
			t.Errorf("line %d: level %v msg %q, want %s %q", i, got["level"], got["msg"], w.level, w.msg)
		}
		for k, v := range w.fields {
			if got[k] != v {
				t.Errorf("line %d (%s): %s = %#v, want %#v", i, w.msg, k, got[k], v)
			}
		}
	}

	// Trace and debug come through at debug level.
	buf.Reset()
	debug := newHCLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft")
	debug.Trace("trace line")
	if !strings.Contains(buf.String(), `"level":"DEBUG","msg":"trace line"`) {
		t.Errorf("trace at debug level: got %q, want a DEBUG line", buf.String())
	}
	if !debug.IsTrace() || h.IsDebug() {
		t.Errorf("IsTrace at debug = %v (want true), IsDebug at info = %v (want false)", debug.IsTrace(), h.IsDebug())
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
