package migrate

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// SourceOptions configure OpenSource.
type SourceOptions struct {
	// Prefix selects the keys starting with it.
	Prefix []byte
	// After is a Source.Position token to continue after; "" starts over.
	After string
	// Batch is a hint for page and scan sizes.
	Batch int
	// RequestTimeout bounds each request.
	RequestTimeout time.Duration
	// Endpoints replace an empty host list in a raftkv URL.
	Endpoints []string
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// TargetOptions configure OpenTarget.
type TargetOptions struct {
	// Resume is a Target.Sync token to continue from; "" starts over.
	Resume string
	// Replace allows an existing dump file to be overwritten.
	Replace bool
	// RequestTimeout bounds each request.
	RequestTimeout time.Duration
	// Endpoints replace an empty host list in a raftkv URL.
	Endpoints []string
	// TxnConcurrency is how many raftkv Txns of one Write run at once.
	TxnConcurrency int
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Schemes lists the URL forms OpenSource and OpenTarget accept, for help
// texts.
const Schemes = `raftkv://HOST:PORT[,HOST:PORT...]  a raftkv cluster ("raftkv://" alone: --endpoints)
file:PATH                          a JSON-lines dump file, gzip-compressed when PATH ends in .gz
postgres://USER@HOST:PORT/DB[?table=T]   a PostgreSQL table (default data_store)
sqlite:PATH[?table=T]              an SQLite table (default data_store)
redis://[USER:PASS@]HOST:PORT[/DB]     a Redis database (string keys)`

// OpenSource connects to the source that rawURL names and checks that it
// is reachable and readable. It writes nothing.
func OpenSource(ctx context.Context, rawURL string, opts SourceOptions) (Source, error) {
	opts.Logger = orDiscard(opts.Logger)
	if opts.Batch <= 0 {
		opts.Batch = DefaultConfig().Batch
	}
	kind, rest, err := splitScheme(rawURL)
	if err != nil {
		return nil, err
	}
	var src Source
	switch kind {
	case "raftkv":
		src, err = openRaftkvSource(ctx, rest, opts)
	case "file":
		src, err = openFileSource(rest, opts)
	case "postgres":
		src, err = openPostgresSource(ctx, rawURL, opts)
	case "sqlite":
		src, err = openSQLiteSource(ctx, rest, opts)
	case "redis":
		src, err = openRedisSource(ctx, rawURL, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", Redact(rawURL), err)
	}
	return src, nil
}

// OpenTarget connects to the target that rawURL names and checks that it
// is reachable and has the expected shape. It writes nothing: Prepare does.
func OpenTarget(ctx context.Context, rawURL string, opts TargetOptions) (Target, error) {
	opts.Logger = orDiscard(opts.Logger)
	if opts.TxnConcurrency <= 0 {
		opts.TxnConcurrency = DefaultConfig().TxnConcurrency
	}
	kind, rest, err := splitScheme(rawURL)
	if err != nil {
		return nil, err
	}
	var tgt Target
	switch kind {
	case "raftkv":
		tgt, err = openRaftkvTarget(ctx, rest, opts)
	case "file":
		tgt, err = openFileTarget(rest, opts)
	case "postgres":
		tgt, err = openPostgresTarget(ctx, rawURL, opts)
	case "sqlite":
		tgt, err = openSQLiteTarget(ctx, rest, opts)
	case "redis":
		tgt, err = openRedisTarget(ctx, rawURL, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", Redact(rawURL), err)
	}
	return tgt, nil
}

// splitScheme returns the backend kind of rawURL and what follows the
// scheme ("raftkv://a,b" → "raftkv", "a,b"; "file:x.gz" → "file", "x.gz").
func splitScheme(rawURL string) (kind, rest string, err error) {
	scheme, rest, ok := strings.Cut(rawURL, ":")
	if !ok || scheme == "" {
		return "", "", fmt.Errorf("%q is not a URL: want one of\n%s", rawURL, Schemes)
	}
	switch strings.ToLower(scheme) {
	case "raftkv":
		rest, ok = strings.CutPrefix(rest, "//")
		if !ok {
			return "", "", fmt.Errorf("%q: want raftkv://HOST:PORT[,HOST:PORT...]", rawURL)
		}
		return "raftkv", rest, nil
	case "file":
		// file:///abs/path and file:rel/path both work.
		if p, ok := strings.CutPrefix(rest, "//"); ok {
			rest = p
		}
		if rest == "" {
			return "", "", fmt.Errorf("%q: want file:PATH", rawURL)
		}
		return "file", rest, nil
	case "postgres", "postgresql":
		return "postgres", rest, nil
	case "sqlite", "sqlite3":
		if p, ok := strings.CutPrefix(rest, "//"); ok {
			rest = p
		}
		return "sqlite", rest, nil
	case "redis", "rediss":
		return "redis", rest, nil
	}
	return "", "", fmt.Errorf("unsupported scheme %q in %q: want one of\n%s", scheme, Redact(rawURL), Schemes)
}

// Redact hides the password of a URL for messages and checkpoints.
func Redact(rawURL string) string {
	if !strings.Contains(rawURL, "@") {
		return rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}

// display renders a URL for the summary: without its password, and with
// the endpoints a bare "raftkv://" stands for.
func display(rawURL string, endpoints []string) string {
	if kind, rest, err := splitScheme(rawURL); err == nil && kind == "raftkv" && strings.TrimSpace(rest) == "" && len(endpoints) > 0 {
		return "raftkv://" + strings.Join(endpoints, ",")
	}
	return Redact(rawURL)
}

// splitQuery splits "path?a=b" into the path and its parsed query.
func splitQuery(s string) (string, url.Values, error) {
	path, query, _ := strings.Cut(s, "?")
	v, err := url.ParseQuery(query)
	if err != nil {
		return "", nil, fmt.Errorf("parse query %q: %w", query, err)
	}
	return path, v, nil
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
