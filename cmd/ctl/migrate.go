package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/raftkv/raftkv/migrate"
)

// exitIncomplete is the exit code of a migration that ran to the end but
// left records failed or found differences when verifying.
const exitIncomplete = 6

// migrateDeadline is the default deadline of migrate, export and import:
// they run until done unless --timeout is given. Each request has its own
// deadline, --request-timeout.
const migrateDeadline = 10 * 365 * 24 * time.Hour

var migrateSpec = commandSpec{
	name:     "migrate",
	synopsis: "migrate --from A --to B",
	summary:  "copy keys between clusters, dump files, PostgreSQL, SQLite and Redis",
	help: `Copy every key (or every key under --prefix) from one store to another. URLs:

  ` + strings.ReplaceAll(migrate.Schemes, "\n", "\n  ") + `

Writes go in batches; into raftkv as Txns through the leader, split to the
server's limits (128 ops, 1.5 MiB per request). A record the target can never
store (a key over 4 KiB, a value over 1 MiB) is reported and counted as failed;
the rest is copied. With --resume FILE, progress is saved in FILE: after a
crash or kill, the same command continues where it stopped and writes nothing
twice. --verify compares both sides afterwards (key counts, a SHA-256 of the
sorted pairs, the first differences); --dry-run --verify only compares.

A raftkv source is read as one point-in-time cut (KV.Export; a resumed copy
reads one cut per run), with expiries (docs/migrate.md). raftkv, Redis and
dump files keep TTLs; SQL tables have none: a record with one fails there
unless --ttl drop or --ttl skip says what to do.

On a terminal a progress bar shows keys, bytes, keys/s and ETA on stderr.
The command runs until done; --timeout sets a deadline for the whole run,
--request-timeout one for each request.

Exit codes: 0 everything copied (and verified); 6 finished, but records
failed or --verify found differences; 1 the migration could not run or
stopped (an unreachable side, a malformed dump line, ...).`,
	new: func(e *env) command { return newMigrateCommand(e, "migrate") },
}

var exportSpec = commandSpec{
	name:     "export",
	synopsis: "export FILE",
	summary:  "dump the cluster (or --prefix) to a JSON-lines file (.gz: gzip)",
	help: `Write every key of the cluster named by --endpoints (or those under --prefix)
to FILE as JSON lines, one {"key","value"} object per key with base64 bytes
(docs/migrate.md). FILE ending in .gz is gzip-compressed. Short for
'raftkvctl migrate --from raftkv:// --to file:FILE'; it takes the same flags.`,
	new: func(e *env) command { return newMigrateCommand(e, "export") },
}

var importSpec = commandSpec{
	name:     "import",
	synopsis: "import FILE",
	summary:  "load a JSON-lines dump file into the cluster",
	help: `Write every record of the dump FILE (as written by export; .gz: gzip) into
the cluster named by --endpoints. Short for 'raftkvctl migrate --from
file:FILE --to raftkv://'; it takes the same flags. A malformed line stops the
import with its line number; every line before it is written, nothing after.`,
	new: func(e *env) command { return newMigrateCommand(e, "import") },
}

// migrateCommand implements migrate, export and import.
type migrateCommand struct {
	env  *env
	name string
	fs   *flag.FlagSet

	from, to       string
	prefix, rename string
	batch          int
	rate           float64
	dryRun         bool
	overwrite      bool
	skipExisting   bool
	ttl            string
	resume         string
	verify         bool
	report         string
	requestTimeout time.Duration
}

func newMigrateCommand(e *env, name string) *migrateCommand {
	c := &migrateCommand{env: e, name: name, fs: newFlagSet(name)}
	if name == "migrate" {
		c.fs.StringVar(&c.from, "from", "", "source `URL` (see above)")
		c.fs.StringVar(&c.to, "to", "", "target `URL` (see above)")
	}
	def := migrate.DefaultConfig()
	c.fs.StringVar(&c.prefix, "prefix", "", "copy only the keys starting with `P`")
	c.fs.StringVar(&c.rename, "rename-prefix", "", "rename keys: `OLD=NEW` replaces a leading OLD with NEW (--prefix defaults to OLD)")
	c.fs.IntVar(&c.batch, "batch", def.Batch, "`N` records per write: one SQL statement, one Redis pipeline, or parallel raftkv Txns of <=128 ops")
	c.fs.Float64Var(&c.rate, "rate", 0, "write at most `N` keys per second (0: no limit)")
	c.fs.BoolVar(&c.dryRun, "dry-run", false, "read and check everything, write nothing (with --verify: only compare)")
	c.fs.BoolVar(&c.overwrite, "overwrite", false, "replace keys that exist in the target (the default); for a file target: replace the file")
	c.fs.BoolVar(&c.skipExisting, "skip-existing", false, "leave keys that exist in the target alone and count them as skipped")
	c.fs.StringVar(&c.ttl, "ttl", "keep", "records with a TTL when the target has none (SQL tables): `POLICY` keep (they fail), drop (copy them without) or skip")
	c.fs.StringVar(&c.resume, "resume", "", "checkpoint `FILE`: save progress there, and continue from it if it exists")
	c.fs.BoolVar(&c.verify, "verify", false, "afterwards, compare source and target (counts, SHA-256 of the sorted pairs, first differences)")
	c.fs.StringVar(&c.report, "report", "", "write every skipped and failed key to `FILE` (JSON lines)")
	c.fs.DurationVar(&c.requestTimeout, "request-timeout", 30*time.Second, "deadline of each request to a server")
	return c
}

func (c *migrateCommand) flags() *flag.FlagSet { return c.fs }

// defaultTimeout makes migrate, export and import run until done.
func (c *migrateCommand) defaultTimeout([]string) time.Duration { return migrateDeadline }

// config turns the command line into a migrate.Config.
func (c *migrateCommand) config(args []string) (migrate.Config, error) {
	cfg := migrate.DefaultConfig()
	switch c.name {
	case "migrate":
		if err := wantArgs(args, 0, 0, "no arguments (use --from and --to)"); err != nil {
			return cfg, err
		}
		if c.from == "" || c.to == "" {
			return cfg, usageErrorf("--from and --to are required")
		}
		cfg.From, cfg.To = c.from, c.to
	case "export", "import":
		if err := wantArgs(args, 1, 1, "FILE"); err != nil {
			return cfg, err
		}
		file := "file:" + args[0]
		if c.name == "export" {
			cfg.From, cfg.To = "raftkv://", file
		} else {
			cfg.From, cfg.To = file, "raftkv://"
		}
	}
	cfg.Endpoints = c.env.globals.endpointList()
	cfg.Prefix = []byte(c.prefix)
	if c.rename != "" {
		old, nw, ok := strings.Cut(c.rename, "=")
		if !ok {
			return cfg, usageErrorf("--rename-prefix wants OLD=NEW, got %q", c.rename)
		}
		cfg.Rename, cfg.RenameFrom, cfg.RenameTo = true, []byte(old), []byte(nw)
		if c.prefix != "" && !bytes.HasPrefix(cfg.Prefix, cfg.RenameFrom) {
			return cfg, usageErrorf("--prefix %q must start with the renamed prefix %q", c.prefix, old)
		}
	}
	if c.batch <= 0 {
		return cfg, usageErrorf("--batch must be positive, got %d", c.batch)
	}
	if c.rate < 0 {
		return cfg, usageErrorf("--rate must not be negative, got %v", c.rate)
	}
	if c.overwrite && c.skipExisting {
		return cfg, usageErrorf("--overwrite and --skip-existing are mutually exclusive")
	}
	if c.skipExisting && strings.HasPrefix(cfg.To, "file:") {
		return cfg, usageErrorf("--skip-existing does not apply to a file target (a new file has no keys)")
	}
	ttl, ok := migrate.ParseTTLPolicy(c.ttl)
	if !ok {
		return cfg, usageErrorf("--ttl must be keep, drop or skip, got %q", c.ttl)
	}
	if c.dryRun && c.resume != "" {
		return cfg, usageErrorf("--dry-run writes nothing, so it cannot --resume")
	}
	if c.requestTimeout <= 0 {
		return cfg, usageErrorf("--request-timeout must be positive, got %v", c.requestTimeout)
	}
	cfg.Batch, cfg.Rate, cfg.DryRun, cfg.TTL = c.batch, c.rate, c.dryRun, ttl
	if c.skipExisting {
		cfg.Mode = migrate.SkipExisting
	}
	cfg.ReplaceFile = c.overwrite
	cfg.Checkpoint, cfg.Verify, cfg.Report = c.resume, c.verify, c.report
	cfg.RequestTimeout = c.requestTimeout
	return cfg, nil
}

func (c *migrateCommand) run(ctx context.Context, args []string) error {
	cfg, err := c.config(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(c.env.errWriter(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := migrate.New(cfg, logger)
	if err != nil {
		return &usageError{err: err}
	}
	bar := startProgress(c.env.errWriter(), m)
	sum, err := m.Run(ctx)
	bar.stop()
	if sum != nil {
		if perr := c.env.printer().migrate(sum); perr != nil && err == nil {
			err = perr
		}
	}
	switch {
	case errors.Is(err, migrate.ErrInterrupted) && cfg.Checkpoint != "":
		return fmt.Errorf("%w; run the same command again to continue from %s", err, cfg.Checkpoint)
	case err != nil:
		return err
	case !sum.OK():
		return &codedError{err: incompleteError(sum), code: exitIncomplete}
	}
	return nil
}

// incompleteError says why a finished migration is not a success.
func incompleteError(sum *migrate.Summary) error {
	var parts []string
	if sum.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d records failed", sum.Failed))
	}
	if v := sum.Verification; v != nil && !v.Match {
		parts = append(parts, fmt.Sprintf("verification found %d differences", v.Differences))
	}
	return errors.New("migration incomplete: " + strings.Join(parts, ", "))
}

// errWriter is stderr, or a sink when the env has none (help output).
func (e *env) errWriter() io.Writer {
	if e.stderr == nil {
		return io.Discard
	}
	return e.stderr
}
