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
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found in PATH: %v", err)
	}
	gomod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "./cmd/node")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/node: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps ./cmd/node listed %d packages: the closure was not read", len(deps))
	}
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
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found in PATH: %v", err)
	}
	gomod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-test", "./...")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps -test ./...: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps listed %d packages: the closure was not read", len(deps))
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "go.etcd.io/etcd/") {
			t.Errorf("the main module links %s: etcd belongs in the bench/ module only", d)
		}
	}
}
