// Package migratetest starts a real PostgreSQL server on 127.0.0.1 for the
// tests of package migrate and e2e. Imported only by tests. (Redis comes
// from cache/rediscache/redistest, which the cache tests share.)
//
// The server is the Debian package's binaries (postgresql), started from
// the test process itself: initdb into a temporary directory and pg_ctl
// start on a free port, as the postgres user when the test runs as root,
// which PostgreSQL refuses. When the binaries are missing the test is
// skipped, except under CI=true, where it fails: CI installs them, so a
// missing one is a broken CI, not a reason to test less.
package migratetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startTimeout bounds starting one server.
const startTimeout = 60 * time.Second

var (
	mu       sync.Mutex
	shared   bool // Main is running: servers live until it returns
	pgShared *postgres
	dbSeq    atomic.Int64
)

// Main runs the tests of a package with one server shared between its tests,
// and stops them at the end. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(migratetest.Main(m)) }
//
// Without it, every test that asks for a server gets one of its own.
func Main(m *testing.M) int {
	mu.Lock()
	shared = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if pgShared != nil {
		if err := pgShared.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "migratetest:", err)
		}
	}
	return code
}

// missing skips the test, or fails it under CI=true.
func missing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true (.ci/run installs it): %v", what, err)
	}
	t.Skipf("%s not available, skipping (install it, or run under CI=true to make this a failure): %v", what, err)
}

// freePort returns a port that was free a moment ago. The servers bind it
// themselves, so a start that loses the race is retried on another port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ---- PostgreSQL ----

type postgres struct {
	dir  string
	port int
	bin  string
	run  []string // prefix that runs a command as the server's user
}

// pgBin finds the directory of initdb and pg_ctl: PATH first, then the
// Debian layout /usr/lib/postgresql/VERSION/bin (newest version).
func pgBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found in PATH or /usr/lib/postgresql/*/bin (apt-get install postgresql)")
}

func startPostgres() (*postgres, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "raftkv-pg-")
	if err != nil {
		return nil, err
	}
	p := &postgres{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user
		// that the Debian package creates.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs the postgres user (apt-get install postgresql creates it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p.run = []string{"runuser", "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	if out, err := p.cmd("initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	var lastErr error
	for range 3 {
		if p.port, err = freePort(); err != nil {
			return nil, err
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50", p.port, dir)
		out, err := p.cmd("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput()
		if err == nil {
			return p, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		lastErr = fmt.Errorf("pg_ctl start on port %d: %w\n%s\n%s", p.port, err, out, log)
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func (p *postgres) cmd(name string, args ...string) *exec.Cmd {
	argv := append(slices.Clone(p.run), filepath.Join(p.bin, name))
	argv = append(argv, args...)
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = p.dir
	return c
}

func (p *postgres) stop() error {
	defer os.RemoveAll(p.dir)
	if out, err := p.cmd("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

func (p *postgres) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// Postgres returns the URL of a new, empty database on a real PostgreSQL
// server (postgres://postgres@127.0.0.1:PORT/DB?sslmode=disable).
func Postgres(t testing.TB) string {
	t.Helper()
	mu.Lock()
	p := pgShared
	var err error
	if p == nil {
		p, err = startPostgres()
		if err == nil && shared {
			pgShared = p
		} else if err == nil {
			t.Cleanup(func() {
				if err := p.stop(); err != nil {
					t.Error(err)
				}
			})
		}
	}
	mu.Unlock()
	if err != nil {
		missing(t, "PostgreSQL", err)
	}
	db := fmt.Sprintf("test_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.url("postgres"))
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database %s: %v", db, err)
	}
	return p.url(db)
}
