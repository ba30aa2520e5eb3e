package cluster

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newMemberlistLogger returns the *log.Logger memberlist wants, writing to
// h through slog.NewLogLogger. memberlist puts its level in the text
// ("[DEBUG] memberlist: ..."), so levelFromPrefix turns that prefix back
// into the record's level: debug chatter stays out of an info log while
// warnings and errors still get through.
func newMemberlistLogger(h slog.Handler) *log.Logger {
	return slog.NewLogLogger(levelFromPrefix{h}, slog.LevelInfo)
}

type levelFromPrefix struct{ h slog.Handler }

var memberlistLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG] ", slog.LevelDebug},
	{"[INFO] ", slog.LevelInfo},
	{"[WARN] ", slog.LevelWarn},
	{"[ERR] ", slog.LevelError},
	{"[ERROR] ", slog.LevelError},
}

// Enabled lets every record through to Handle, which knows its real level.
func (l levelFromPrefix) Enabled(ctx context.Context, _ slog.Level) bool {
	return l.h.Enabled(ctx, slog.LevelError)
}

func (l levelFromPrefix) Handle(ctx context.Context, r slog.Record) error {
	msg, level := r.Message, r.Level
	for _, p := range memberlistLevels {
		if rest, ok := strings.CutPrefix(msg, p.prefix); ok {
			msg, level = rest, p.level
			break
		}
	}
	if !l.h.Enabled(ctx, level) {
		return nil
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	nr := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(a)
		return true
	})
	return l.h.Handle(ctx, nr)
}

func (l levelFromPrefix) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFromPrefix{l.h.WithAttrs(attrs)}
}

func (l levelFromPrefix) WithGroup(name string) slog.Handler {
	return levelFromPrefix{l.h.WithGroup(name)}
}
