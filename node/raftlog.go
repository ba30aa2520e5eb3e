package node

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"reflect"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter routes hashicorp/raft's hclog output into our slog logger,
// keeping each line's level, so one sink and one format hold every log.
type hclogAdapter struct {
	logger *slog.Logger
	name   string
	args   []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// newHCLog returns an hclog.Logger that writes through logger.
func newHCLog(logger *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{logger: logger.With("component", name), name: name}
}

func toSlogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Off {
		return
	}
	ctx := context.Background()
	sl := toSlogLevel(level)
	if !h.logger.Enabled(ctx, sl) {
		return
	}
	h.logger.Log(ctx, sl, msg, slogArgs(append(append([]any{}, h.args...), args...))...)
}

// slogArgs turns hclog's key/value list into slog's:
//   - hclog.Fmt values are formatted as hclog would;
//   - fmt.Stringers are rendered (slog's JSON handler would print {} for
//     structs with unexported fields, such as the *raft.Raft raft logs);
//   - keys become STYLE.md §7's snake_case ("leader-address" becomes
//     leader_address, "error" err, "index" raft_index);
//   - raft's "command" (a whole RPC, which may carry log entries and so
//     user values) is reduced to its type: no value bytes in logs.
func slogArgs(args []any) []any {
	out := make([]any, 0, len(args))
	for i := 0; i < len(args); i += 2 {
		key, ok := args[i].(string)
		if !ok || i+1 == len(args) {
			return append(out, args[i:]...) // slog reports these as !BADKEY
		}
		key = logKey(key)
		v := args[i+1]
		if key == "command" {
			if f, ok := v.(hclog.Format); ok && len(f) == 2 {
				v = f[1]
			}
			v = fmt.Sprintf("%T", v)
		}
		switch x := v.(type) {
		case hclog.Format:
			if len(x) > 0 {
				if format, ok := x[0].(string); ok {
					v = fmt.Sprintf(format, x[1:]...)
				}
			}
		case error, slog.LogValuer:
		case fmt.Stringer:
			v = stringOf(x)
		}
		out = append(out, key, v)
	}
	return out
}

func logKey(k string) string {
	switch k {
	case "error":
		return "err"
	case "index":
		return "raft_index"
	}
	return strings.ReplaceAll(k, "-", "_")
}

// stringOf calls String, guarding against nil pointers whose String
// method dereferences them.
func stringOf(s fmt.Stringer) string {
	if v := reflect.ValueOf(s); v.Kind() == reflect.Pointer && v.IsNil() {
		return "<nil>"
	}
	return s.String()
}
func (h *hclogAdapter) Trace(msg string, args ...interface{}) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...interface{}) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...interface{})  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...interface{})  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...interface{}) { h.Log(hclog.Error, msg, args...) }
func (h *hclogAdapter) enabled(l slog.Level) bool {
	return h.logger.Enabled(context.Background(), l)
}
func (h *hclogAdapter) IsTrace() bool              { return h.enabled(slog.LevelDebug) }
func (h *hclogAdapter) IsDebug() bool              { return h.enabled(slog.LevelDebug) }
func (h *hclogAdapter) IsInfo() bool               { return h.enabled(slog.LevelInfo) }
func (h *hclogAdapter) IsWarn() bool               { return h.enabled(slog.LevelWarn) }
func (h *hclogAdapter) IsError() bool              { return h.enabled(slog.LevelError) }
func (h *hclogAdapter) ImpliedArgs() []interface{} { return h.args }
func (h *hclogAdapter) With(args ...interface{}) hclog.Logger {
	return &hclogAdapter{logger: h.logger, name: h.name, args: append(append([]any{}, h.args...), args...)}
}
func (h *hclogAdapter) Name() string { return h.name }
func (h *hclogAdapter) Named(name string) hclog.Logger {
	return &hclogAdapter{logger: h.logger.With("sub", name), name: h.name + "." + name, args: h.args}
}
func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{logger: h.logger, name: name, args: h.args}
}

// SetLevel is a no-op: the slog handler decides the level.
func (h *hclogAdapter) SetLevel(hclog.Level) {}
func (h *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case h.enabled(slog.LevelDebug):
		return hclog.Debug
	case h.enabled(slog.LevelInfo):
		return hclog.Info
	case h.enabled(slog.LevelWarn):
		return hclog.Warn
	default:
		return hclog.Error
	}
}
func (h *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.logger.Handler(), slog.LevelInfo)
}
func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(nil).Writer()
}
