package lint

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// clientOnlyDeps are modules only raftkvctl may link: the migration's SQL
// drivers and the migration itself. raftkvd must stay free of them.
var clientOnlyDeps = []string{
	"github.com/jackc/pgx",
	"modernc.org/sqlite",
	"modernc.org/libc",
	module + "/migrate",
}

// TestServerLinksNoMigrationDrivers checks the whole dependency closure of
// raftkvd, external packages included, which the import rules (module
// packages, and direct external imports) do not cover.
func TestServerLinksNoMigrationDrivers(t *testing.T) {
	deps := listDeps(t, 10, "./cmd/node")
	for _, d := range deps {
		for _, bad := range clientOnlyDeps {
			if d == bad || strings.HasPrefix(d, bad+"/") {
				t.Errorf("raftkvd links %s: %s belongs in raftkvctl only (migrate/, cmd/ctl)", d, bad)
			}
		}
	}
}

// TestMainModuleHasNoEtcd checks that etcd stays out of the main module:
// the side-by-side harness that links it lives in the separate bench/
// module (docs/bench.md). bbolt, etcd's storage engine that raftkv uses
// too, is allowed; etcd itself is not.
func TestMainModuleHasNoEtcd(t *testing.T) {
	for _, d := range listDeps(t, 100, "-test", "./...") {
		if strings.HasPrefix(d, "go.etcd.io/etcd/") {
			t.Errorf("the main module links %s: etcd belongs in the bench/ module only", d)
		}
	}
}

// listDeps runs `go list -deps ARGS` at the module root and returns the
// packages, failing the test when it lists fewer than atLeast (the closure
// was not read, so nothing would be checked).
func listDeps(t *testing.T, atLeast int, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found in PATH: %v", err)
	}
	gomod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	cmd := exec.Command(goBin, append([]string{"list", "-deps"}, args...)...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %v: %v\n%s", args, err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < atLeast {
		t.Fatalf("go list -deps %v listed %d packages: the closure was not read", args, len(deps))
	}
	return deps
}
