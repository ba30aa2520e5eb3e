package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

// errKeyNotFound is returned by get for a missing key; main exits with
// exitNotFound.
var errKeyNotFound = errors.New("key not found")

// usageError marks a bad command line; main exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf formats a usageError; %w wraps as in fmt.Errorf.
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// command is one subcommand. main calls flags, parses the command line into
// the returned set, then calls run once with the remaining positional
// arguments and a ctx whose deadline is --timeout.
type command interface {
	flags() *flag.FlagSet
	run(ctx context.Context, args []string) error
}

// commandSpec describes a subcommand for dispatch and help.
type commandSpec struct {
	name     string
	synopsis string // "put KEY VALUE", shown in the command list and usage line
	summary  string // one line for the command list
	help     string // paragraphs printed by COMMAND --help
	new      func(*env) command
}

func (s commandSpec) printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: raftkvctl %s [flags]\n\n%s\n", s.synopsis, strings.TrimSpace(s.help))
	if hasFlags(fs) {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs)
	}
	fmt.Fprint(w, "\nGlobal flags --endpoints, --timeout and -o are described by 'raftkvctl --help'.\n")
}

// env is what commands share: I/O, the global options and a lazily created
// client. The globals are parsed before run is called.
type env struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer // progress and warnings; may be nil (discard)
	globals *globalOptions
	cli     *client.Client
}

// client returns the client for --endpoints, creating it on first use.
func (e *env) client() (*client.Client, error) {
	if e.cli != nil {
		return e.cli, nil
	}
	cfg := client.DefaultConfig()
	cfg.Endpoints = e.globals.endpointList()
	cli, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	e.cli = cli
	return cli, nil
}

// printer returns the printer selected by -o.
func (e *env) printer() printer {
	if e.globals.output == "json" {
		return &jsonPrinter{w: e.stdout}
	}
	return &tablePrinter{w: e.stdout}
}

func (e *env) close() error {
	if e.cli == nil {
		return nil
	}
	return e.cli.Close()
}

// newFlagSet returns a FlagSet that reports errors to its caller instead of
// printing them: main decides what goes to stdout and stderr.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// splitArgs sorts a command line after the command name into global flags,
// command flags and positional arguments, so that flags may follow
// positional arguments (`get KEY --consistency serializable`) and global
// flags may follow the command name. "--" ends flag parsing. Unknown flags
// go to the command set, whose Parse reports them.
func splitArgs(args []string, global, local *flag.FlagSet) (globalArgs, localArgs, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		fs, dst := local, &localArgs
		if local.Lookup(name) == nil && global.Lookup(name) != nil {
			fs, dst = global, &globalArgs
		}
		*dst = append(*dst, a)
		if f := fs.Lookup(name); f != nil && !hasValue && !isBoolFlag(f) && i+1 < len(args) {
			i++
			*dst = append(*dst, args[i])
		}
	}
	return globalArgs, localArgs, positional
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// printFlags prints fs's flags with GNU-style double dashes.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		typ, usage := flag.UnquoteUsage(f)
		line := "  " + dashes + f.Name
		if typ != "" {
			line += " " + typ
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			if typ == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		if len(line) <= 24 {
			fmt.Fprintf(w, "%-26s%s\n", line, usage)
		} else {
			fmt.Fprintf(w, "%s\n%26s%s\n", line, "", usage)
		}
	})
}

// consistencyFlag is a flag.Value for --consistency.
type consistencyFlag struct{ c kvpb.Consistency }

func (f *consistencyFlag) String() string {
	if f == nil {
		return ""
	}
	switch f.c {
	case kvpb.Consistency_CONSISTENCY_LINEARIZABLE:
		return "linearizable"
	case kvpb.Consistency_CONSISTENCY_SERIALIZABLE:
		return "serializable"
	}
	return ""
}

func (f *consistencyFlag) Set(s string) error {
	switch s {
	case "linearizable":
		f.c = kvpb.Consistency_CONSISTENCY_LINEARIZABLE
	case "serializable":
		f.c = kvpb.Consistency_CONSISTENCY_SERIALIZABLE
	default:
		return fmt.Errorf("must be linearizable or serializable, got %q", s)
	}
	return nil
}

func newConsistencyFlag(fs *flag.FlagSet) *consistencyFlag {
	f := &consistencyFlag{c: kvpb.Consistency_CONSISTENCY_LINEARIZABLE}
	fs.Var(f, "consistency", "read consistency `MODE`: linearizable, or serializable (served by any node, may be stale)")
	return f
}

// readValue returns arg as bytes, or all of stdin when arg is "-".
func (e *env) readValue(arg string) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	b, err := io.ReadAll(e.stdin)
	if err != nil {
		return nil, fmt.Errorf("read value from stdin: %w", err)
	}
	return b, nil
}

// wantArgs checks the number of positional arguments.
func wantArgs(args []string, lo, hi int, names string) error {
	if len(args) < lo || len(args) > hi {
		return usageErrorf("expected %s, got %d argument(s)", names, len(args))
	}
	return nil
}

// keyArg returns a non-empty key argument.
func keyArg(s string) ([]byte, error) {
	if s == "" {
		return nil, usageErrorf("KEY must not be empty")
	}
	return []byte(s), nil
}
