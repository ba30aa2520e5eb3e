package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"
)

// Exit codes; documented in the --help text and doc.go.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 3
)

// defaultEndpoints is the local development cluster.
const defaultEndpoints = "127.0.0.1:7001,127.0.0.1:7011,127.0.0.1:7021"

// endpointsEnv names the environment variable that overrides defaultEndpoints.
const endpointsEnv = "RAFTKV_ENDPOINTS"

// commands lists every subcommand in the order --help shows them.
var commands = []commandSpec{putSpec, getSpec, delSpec, scanSpec, txnSpec, statusSpec, hashSpec, memberSpec, leaderSpec, backupSpec,
	migrateSpec, exportSpec, importSpec, benchSpec}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	code := a.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// app is one invocation of raftkvctl, with its I/O made explicit for tests.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// globalOptions are the flags every command accepts.
type globalOptions struct {
	endpoints string
	timeout   time.Duration
	output    string
}

func (g *globalOptions) register(fs *flag.FlagSet, endpoints string) {
	fs.StringVar(&g.endpoints, "endpoints", endpoints, "comma-separated gRPC addresses of cluster nodes (env "+endpointsEnv+")")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Second, "deadline of the whole command")
	fs.StringVar(&g.output, "o", "table", "output format: table or json")
}

func (g *globalOptions) validate() error {
	if len(g.endpointList()) == 0 {
		return usageErrorf("--endpoints must name at least one endpoint")
	}
	if g.timeout <= 0 {
		return usageErrorf("--timeout must be positive, got %v", g.timeout)
	}
	if g.output != "table" && g.output != "json" {
		return usageErrorf("-o must be table or json, got %q", g.output)
	}
	return nil
}

func (g *globalOptions) endpointList() []string {
	var eps []string
	for ep := range strings.SplitSeq(g.endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	return eps
}

// run executes one command line and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	endpoints := defaultEndpoints
	if v := a.getenv(endpointsEnv); v != "" {
		endpoints = v
	}
	var g globalOptions
	gfs := newFlagSet("raftkvctl")
	g.register(gfs, endpoints)

	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.usage(a.stdout, gfs)
			return exitOK
		}
		return a.fail("", &usageError{err: err})
	}
	if gfs.NArg() == 0 {
		a.usage(a.stderr, gfs)
		return exitUsage
	}
	name, rest := gfs.Arg(0), gfs.Args()[1:]
	if name == "help" {
		return a.help(gfs, rest)
	}
	spec, ok := lookup(name)
	if !ok {
		return a.fail("", usageErrorf("unknown command %q", name))
	}

	e := &env{stdin: a.stdin, stdout: a.stdout, stderr: a.stderr, globals: &g}
	cmd := spec.new(e)
	fs := cmd.flags()
	globalArgs, cmdArgs, positional := splitArgs(rest, gfs, fs)
	if err := fs.Parse(cmdArgs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			spec.printUsage(a.stdout, fs)
			return exitOK
		}
		return a.fail(name, &usageError{err: err})
	}
	if err := gfs.Parse(globalArgs); err != nil {
		return a.fail(name, &usageError{err: err})
	}
	if err := g.validate(); err != nil {
		return a.fail(name, err)
	}

	timeout := g.timeout
	if lr, ok := cmd.(longRunning); ok && !flagSet(gfs, "timeout") {
		timeout = lr.defaultTimeout(positional)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := cmd.run(ctx, positional)
	if cerr := e.close(); err == nil && cerr != nil {
		err = cerr
	}
	return a.fail(name, err)
}

// fail reports err on stderr and returns its exit code; nil is exitOK.
func (a *app) fail(cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if code != exitUsage {
		// Client errors already name the operation and endpoint.
		fmt.Fprintf(a.stderr, "Error: %v\n", err)
		return code
	}
	prefix := "raftkvctl"
	if cmd != "" {
		prefix += " " + cmd
	}
	fmt.Fprintf(a.stderr, "%s: %v\nRun '%s --help' for usage.\n", prefix, err, prefix)
	return code
}

// exitCode maps a command's error to the documented exit code.
func exitCode(err error) int {
	var ue *usageError
	var ec exitCoder
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ec):
		return ec.exitCode()
	case errors.Is(err, errKeyNotFound):
		return exitNotFound
	}
	return exitError
}

// help implements `raftkvctl help [COMMAND]`.
func (a *app) help(gfs *flag.FlagSet, args []string) int {
	if len(args) == 0 {
		a.usage(a.stdout, gfs)
		return exitOK
	}
	spec, ok := lookup(args[0])
	if !ok {
		return a.fail("help", usageErrorf("unknown command %q", args[0]))
	}
	spec.printUsage(a.stdout, spec.new(&env{}).flags())
	return exitOK
}

func lookup(name string) (commandSpec, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return commandSpec{}, false
}

// usage prints the top-level help.
func (a *app) usage(w io.Writer, gfs *flag.FlagSet) {
	fmt.Fprint(w, `raftkvctl is the command-line client of a raftkv cluster.

Usage:
  raftkvctl [global flags] COMMAND [flags] [args]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-26s%s\n", c.synopsis, c.summary)
	}
	fmt.Fprint(w, "\nGlobal flags (before or after COMMAND):\n")
	printFlags(w, gfs)
	fmt.Fprint(w, `
Exit codes:
  0  success (txn exits 0 whether or not its condition held)
  1  error (no reachable node, server error, write outcome unknown, ...)
  2  usage error (unknown command, bad flag, wrong arguments)
  3  key not found (get), backup not found (backup)
  4  not a valid backup: corrupt, truncated, foreign or newer format (backup)
  5  refused: a backup of another cluster without --force (backup restore)
  6  finished, but records failed or --verify found differences (migrate, export, import)

Run 'raftkvctl COMMAND --help' for a command's flags.
`)
}
