package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
)

// ctl runs raftkvctl in-process with the given stdin and an empty
// environment.
func ctl(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	code = a.run(t.Context(), args)
	return code, out.String(), errOut.String()
}

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

func TestUsageAndExitCodes(t *testing.T) {
	// None of these command lines gets as far as dialing, so the default
	// endpoints are never contacted.
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{nil, exitUsage, "", "Usage:"},
		{[]string{"--help"}, exitOK, "3  key not found", ""},
		{[]string{"-h"}, exitOK, "Exit codes:", ""},
		{[]string{"help"}, exitOK, "Commands:", ""},
		{[]string{"help", "get"}, exitOK, "Usage: raftkvctl get KEY", ""},
		{[]string{"help", "nope"}, exitUsage, "", `unknown command "nope"`},
		{[]string{"nope"}, exitUsage, "", `unknown command "nope"`},
		{[]string{"--bogus", "get", "k"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"get", "k", "--bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"get"}, exitUsage, "", "expected KEY, got 0"},
		{[]string{"get", "a", "b"}, exitUsage, "", "expected KEY, got 2"},
		{[]string{"get", ""}, exitUsage, "", "KEY must not be empty"},
		{[]string{"get", "k", "--consistency", "strong"}, exitUsage, "", "linearizable or serializable"},
		{[]string{"get", "k", "--timeout"}, exitUsage, "", "flag needs an argument"},
		{[]string{"put", "k"}, exitUsage, "", "expected KEY VALUE"},
		{[]string{"del"}, exitUsage, "", "expected KEY"},
		{[]string{"del", "k", "--prefix", "--range-end", "z"}, exitUsage, "", "mutually exclusive"},
		{[]string{"scan", "a", "b"}, exitUsage, "", "at most one PREFIX"},
		{[]string{"scan", "--limit", "-1"}, exitUsage, "", "--limit must not be negative"},
		{[]string{"scan", "--limit", "x"}, exitUsage, "", "invalid value"},
		{[]string{"txn", "k", "v"}, exitUsage, "", "exactly one of"},
		{[]string{"txn", "k", "v", "--if-missing", "--if-version", "3"}, exitUsage, "", "exactly one of"},
		{[]string{"status", "x"}, exitUsage, "", "expected no arguments"},
		{[]string{"member"}, exitUsage, "", "missing subcommand"},
		{[]string{"member", "add"}, exitUsage, "", `expected ID RAFT_ADDR`},
		{[]string{"member", "frob"}, exitUsage, "", `unknown subcommand "frob"`},
		{[]string{"member", "list", "--nonvoter"}, exitUsage, "", `--nonvoter only goes with member add`},
		{[]string{"leader"}, exitUsage, "", `want subcommand transfer`},
		{[]string{"member", "list", "x"}, exitUsage, "", "no arguments after list"},
		{[]string{"-o", "yaml", "get", "k"}, exitUsage, "", "-o must be table or json"},
		{[]string{"get", "k", "-o", "yaml"}, exitUsage, "", "-o must be table or json"},
		{[]string{"--timeout", "0s", "get", "k"}, exitUsage, "", "--timeout must be positive"},
		{[]string{"--endpoints", " , ", "get", "k"}, exitUsage, "", "--endpoints must name"},
		{[]string{"get", "k", "--help"}, exitOK, "--print-value-only", ""},
	}
	for _, c := range commands {
		tests = append(tests, struct {
			args       []string
			wantCode   int
			wantStdout string
			wantStderr string
		}{[]string{c.name, "--help"}, exitOK, "Usage: raftkvctl " + c.synopsis, ""})
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := ctl(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
			if tt.wantCode == exitUsage && !strings.Contains(stderr, "--help") && tt.args != nil {
				t.Errorf("stderr = %q, want a pointer to --help", stderr)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitError},
		{usageErrorf("bad"), exitUsage},
		{fmt.Errorf("wrapped: %w", usageErrorf("bad")), exitUsage},
		{fmt.Errorf("%w: %q", errKeyNotFound, "k"), exitNotFound},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	global := newFlagSet("global")
	var g globalOptions
	g.register(global, defaultEndpoints)
	local := newFlagSet("local")
	local.Bool("prefix", false, "")
	local.String("range-end", "", "")

	tests := []struct {
		args                          []string
		wantGlobal, wantLocal, wantPo []string
	}{
		{[]string{"k"}, nil, nil, []string{"k"}},
		{[]string{"k", "--prefix", "v"}, nil, []string{"--prefix"}, []string{"k", "v"}},
		{[]string{"--range-end", "z", "k"}, nil, []string{"--range-end", "z"}, []string{"k"}},
		{[]string{"--range-end=z", "k"}, nil, []string{"--range-end=z"}, []string{"k"}},
		{[]string{"k", "-o", "json", "--timeout=1s"}, []string{"-o", "json", "--timeout=1s"}, nil, []string{"k"}},
		{[]string{"k", "-", "--prefix"}, nil, []string{"--prefix"}, []string{"k", "-"}},
		{[]string{"--range-end", "-x", "k"}, nil, []string{"--range-end", "-x"}, []string{"k"}},
		{[]string{"--", "-k", "--prefix"}, nil, nil, []string{"-k", "--prefix"}},
		{[]string{"--nope", "k"}, nil, []string{"--nope"}, []string{"k"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			gotG, gotL, gotP := splitArgs(tt.args, global, local)
			if !slices.Equal(gotG, tt.wantGlobal) || !slices.Equal(gotL, tt.wantLocal) || !slices.Equal(gotP, tt.wantPo) {
				t.Errorf("splitArgs(%q) = %q, %q, %q; want %q, %q, %q",
					tt.args, gotG, gotL, gotP, tt.wantGlobal, tt.wantLocal, tt.wantPo)
			}
		})
	}
}

func TestEndpointsFromEnv(t *testing.T) {
	dead := deadAddr(t)
	var out, errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
		getenv: func(k string) string {
			if k == endpointsEnv {
				return dead
			}
			return ""
		}}
	code := a.run(t.Context(), []string{"status"})
	if code != exitError || !strings.Contains(out.String(), dead) {
		t.Errorf("status with %s=%s: exit %d, stdout %q; want exit %d and a row for %s",
			endpointsEnv, dead, code, out.String(), exitError, dead)
	}
}
