// Command sidebyside measures raftkv and etcd side by side on one machine:
// two 3-node clusters on 127.0.0.1, every node its own OS process (raftkvd
// from --raftkvd; etcd members are this program re-executed with the hidden
// etcd-member subcommand), driven in turn by the same load generator
// (package loadgen) from this process, always through the leader.
//
// Usage:
//
//	sidebyside [compare] [flags]   the workload table (default)
//	sidebyside scale [flags]       1,000,000 keys: disk, RSS, restart, snapshot
//
// Build it with scripts/bench.sh, which also builds raftkvd.
//
// docs/bench.md explains every column and how the numbers are computed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == etcdMemberCommand {
		if err := runEtcdMember(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "etcd-member: %v\n", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "sidebyside: %v\nRun 'sidebyside --help' for usage.\n", err)
		os.Exit(2)
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "sidebyside: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// config is the parsed command line.
type config struct {
	mode           string
	raftkvd        string
	raftkvctl      string
	dir            string
	keep           bool
	runs           int
	duration       time.Duration
	warmup         time.Duration
	quick          bool
	conns          int
	keySize        int
	valSize        int
	keySpace       int64
	scaleKeys      int64
	requestTimeout time.Duration
	quota          int64
	outJSON        string
	outMD          string
	// rows are the table rows to run (compare); all of them by default.
	rows []row
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{mode: "compare"}
	if len(args) > 0 && (args[0] == "compare" || args[0] == "scale") {
		c.mode, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("sidebyside", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: sidebyside [compare|scale] [flags]

compare (default) runs every workload row against a 3-node etcd and a 3-node
raftkv, alternating the systems run by run, and prints a markdown table.
scale loads --scale-keys keys into each and reports disk use, RSS per node,
the restart time of a follower and the snapshot time. See docs/bench.md.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.raftkvd, "raftkvd", "bin/raftkvd", "raftkvd binary")
	fs.StringVar(&c.raftkvctl, "raftkvctl", "", "raftkvctl binary, for raftkv backups (default: next to --raftkvd)")
	fs.StringVar(&c.dir, "dir", "", "parent directory of both clusters' data (default: a new temporary directory)")
	fs.BoolVar(&c.keep, "keep", false, "keep the data directories and logs afterwards")
	fs.IntVar(&c.runs, "runs", 3, "measured runs per row and system")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each measured run")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "warm-up before each measured run (not counted)")
	fs.BoolVar(&c.quick, "quick", false, "smoke test: 1 run of 2s per row, 500ms warm-up (scale: 20,000 keys)")
	fs.IntVar(&c.conns, "conns", 8, "gRPC connections per run (at most the row's clients)")
	fs.IntVar(&c.keySize, "key-size", 16, "key size in bytes")
	fs.IntVar(&c.valSize, "val-size", 256, "value size in bytes")
	fs.Int64Var(&c.keySpace, "key-space", 10000, "distinct keys; prefilled before the rows")
	fs.Int64Var(&c.scaleKeys, "scale-keys", 1000000, "scale: keys to load")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 10*time.Second, "deadline of each request")
	fs.Int64Var(&c.quota, "quota-backend-bytes", 8<<30, "etcd's backend quota")
	fs.StringVar(&c.outJSON, "out-json", "", "write every number (and the machine) to this JSON file")
	fs.StringVar(&c.outMD, "out-md", "", "also write the markdown table to this file")
	only := fs.String("rows", "", "compare: run only the rows whose name contains one of these comma-separated strings (e.g. \"put c=1,health\"); default every row")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if c.quick {
		c.runs, c.duration, c.warmup = 1, 2*time.Second, 500*time.Millisecond
		if !flagWasSet(fs, "scale-keys") {
			c.scaleKeys = 20000
		}
	}
	switch {
	case c.runs < 1:
		return nil, &usageError{fmt.Errorf("--runs must be at least 1, got %d", c.runs)}
	case c.duration <= 0:
		return nil, &usageError{fmt.Errorf("--duration must be positive, got %v", c.duration)}
	case c.warmup < 0:
		return nil, &usageError{fmt.Errorf("--warmup must not be negative, got %v", c.warmup)}
	case c.conns < 1:
		return nil, &usageError{fmt.Errorf("--conns must be at least 1, got %d", c.conns)}
	case c.keySpace < 1 || c.scaleKeys < 1:
		return nil, &usageError{errors.New("--key-space and --scale-keys must be at least 1")}
	}
	var err error
	if c.rows, err = selectRows(*only); err != nil {
		return nil, &usageError{err}
	}
	if c.raftkvctl == "" {
		c.raftkvctl = filepath.Join(filepath.Dir(c.raftkvd), "raftkvctl")
	}
	for _, b := range []string{c.raftkvd, c.raftkvctl} {
		if _, err := os.Stat(b); err != nil {
			return nil, &usageError{fmt.Errorf("binary %s: %w (build it with `make build`, or use scripts/bench.sh)", b, err)}
		}
	}
	return c, nil
}

// selectRows returns the rows whose name contains one of the
// comma-separated strings in only, in table order; every row for "".
func selectRows(only string) ([]row, error) {
	if strings.TrimSpace(only) == "" {
		return rows, nil
	}
	var out []row
	for _, r := range rows {
		for s := range strings.SplitSeq(only, ",") {
			if s = strings.TrimSpace(s); s != "" && strings.Contains(r.Name, s) {
				out = append(out, r)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--rows %q matches no row", only)
	}
	return out, nil
}

func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parse(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	parent := cfg.dir
	if parent == "" {
		if parent, err = os.MkdirTemp("", "raftkv-sidebyside-"); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	defer func() {
		if cfg.keep {
			logger.Info("kept data and logs", "dir", parent)
			return
		}
		if err := os.RemoveAll(parent); err != nil {
			logger.Warn("remove data directory", "dir", parent, "err", err)
		}
	}()
	logger.Info("data directory (both systems, one filesystem)", "dir", parent)

	etcd, err := newEtcd(self, parent, cfg.quota)
	if err != nil {
		return err
	}
	rkv, err := newRaftkv(cfg.raftkvd, cfg.raftkvctl, parent)
	if err != nil {
		return err
	}
	systems := []system{rkv, etcd}
	defer func() {
		for _, s := range systems {
			s.Stop()
		}
	}()
	for _, s := range systems {
		start := time.Now()
		if err := s.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w (logs under %s)", s.Name(), err, parent)
		}
		logger.Info("cluster ready", "system", s.Name(), "took", time.Since(start).Round(time.Millisecond))
	}

	rep := &report{Machine: machineInfo(), Mode: cfg.mode, Started: time.Now().UTC(), Settings: settingsOf(cfg)}
	switch cfg.mode {
	case "scale":
		err = runScale(ctx, cfg, logger, systems, parent, rep)
	default:
		err = runCompare(ctx, cfg, logger, systems, rep)
	}
	rep.Finished = time.Now().UTC()
	if werr := rep.write(cfg, stdout); err == nil {
		err = werr
	}
	return err
}
