package nodetest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// tlogWriter writes log lines through t.Log, so they show only when a test
// fails, and drops them once the test has finished (raft goroutines may log
// briefly after shutdown, and t.Log panics then).
type tlogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(bytes.Clone(p)), "\n"))
	}
	return len(p), nil
}

func (w *tlogWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func newTestLogger(t testing.TB) (*slog.Logger, *tlogWriter) {
	w := &tlogWriter{t: t}
	level := slog.LevelInfo
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), w
}
