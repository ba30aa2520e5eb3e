package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// module is this repository's module path.
const module = "github.com/raftkv/raftkv"

// An importRule constrains what one package (and every package below it)
// may import. Package paths are relative to the module root and match
// themselves and their subpackages ("fsm" matches fsm and fsm/fsmpb).
// Module-internal imports are checked transitively: a package may not reach
// a forbidden package through any chain of imports, so an unruled package in
// the middle can't launder an edge. Test files are not checked: tests may
// import whatever they need.
type importRule struct {
	pkg string
	// onlyModule, when non-nil, lists the module packages pkg may import;
	// an empty, non-nil list allows none. pkg's own subpackages are always
	// allowed.
	onlyModule []string
	// deny lists module packages pkg must not import.
	deny []string
	// onlyExternal, when non-nil, lists the non-standard-library import
	// paths (prefixes) pkg may import directly. Only the most specific rule
	// with an onlyExternal list applies to a package, so a subpackage can
	// have its own list (cache/rediscache may use a Redis client, cache may
	// not).
	onlyExternal []string
	// why is the reason, printed with every violation.
	why string
}

// importerRule limits who may import a package: only the listed importers
// (prefix match), test files, and packages under e2e/.
type importerRule struct {
	pkg       string
	importers []string
	why       string
}

var none = []string{}

// importRules is STYLE.md §1's dependency direction.
var importRules = []importRule{
	{
		pkg:        "api/kvpb",
		onlyModule: none,
		why:        "api/kvpb is the public wire schema; clients and cmd/ctl import it, so it must not pull in any other code of this module",
	},
	{
		pkg:        "fsm/fsmpb",
		onlyModule: none,
		why:        "fsmpb is the persisted log format; it must stay independent of api/kvpb so an API change is never a log-format change (STYLE.md §1)",
	},
	{
		pkg:        "store",
		onlyModule: none,
		why:        "store is the bottom of the server stack: fsm builds on it, it knows nothing above it",
	},
	{
		pkg:          "internal/failpoint",
		onlyModule:   none,
		onlyExternal: none,
		why:          "failpoint is a test-only crash switch linked into server packages; it must stay standard library only so arming it can never pull anything in",
	},
	{
		pkg:        "client",
		onlyModule: []string{"api/kvpb"},
		why:        "client is the public Go client library: it may depend on the wire schema only, never on server code",
	},
	{
		pkg:        "cmd/ctl",
		onlyModule: []string{"api/kvpb", "client", "backup", "migrate", "loadgen"},
		why:        "raftkvctl talks gRPC (api/kvpb, client), reads backups offline (backup), migrates data (migrate) and benchmarks (loadgen); it must not link server code",
	},
	{
		pkg:          "loadgen",
		onlyModule:   []string{"api/kvpb"},
		onlyExternal: []string{"github.com/HdrHistogram/hdrhistogram-go", "google.golang.org/grpc", "google.golang.org/genproto/googleapis/rpc"},
		why:          "loadgen drives raftkv (loadgen/kvtarget, over the wire schema) and, from the separate bench module, etcd with the same code; it must never link server code, and the generator itself (package loadgen) imports nothing of this module",
	},
	{
		pkg:        "migrate",
		onlyModule: []string{"api/kvpb", "client"},
		why:        "migrate moves data in and out of raftkv as a client: it may use the wire schema and the client library, never server code",
	},
	{
		pkg:  "transport",
		deny: []string{"node", "fsm", "store", "cluster", "cache", "backup"},
		why:  "transport declares the small interfaces it calls and node implements them (interfaces belong to the consumer); importing the implementation inverts the dependency",
	},
	{
		pkg:  "fsm",
		deny: []string{"transport", "node", "api/kvpb", "cluster", "cache", "client"},
		why:  "fsm applies persisted fsmpb commands to the store; wire types must not leak into the log format, and cache invalidation goes through fsm's own Invalidator interface",
	},
	{
		pkg:          "cache",
		onlyModule:   none,
		onlyExternal: []string{"github.com/hashicorp/golang-lru/v2"},
		why:          "cache is a bounded read cache that knows nothing about the rest of raftkv: standard library and golang-lru (its core lists) only; it needs nothing from raft",
	},
	{
		pkg:          "cache/rediscache",
		onlyModule:   []string{"cache"},
		onlyExternal: []string{"github.com/redis/go-redis/v9"},
		why:          "rediscache is the optional shared Redis tier; it lives apart so cache stays small and free of network I/O, and it may use only cache and the Redis client",
	},
	{
		pkg:          "backup",
		onlyModule:   none,
		onlyExternal: []string{"github.com/hashicorp/raft"},
		why:          "backup is an archive format that raftkvctl links for offline verify: standard library and raft only",
	},
	{
		pkg:          "cluster",
		onlyModule:   none,
		onlyExternal: []string{"github.com/hashicorp/raft", "github.com/hashicorp/memberlist"},
		why:          "cluster reconciles memberlist against the raft configuration through raft's API and declares the small interfaces it needs (StatsFetcher); node wires it to transport and the rest (STYLE.md §1: cluster → raft, memberlist)",
	},
}

// importerRules limit who may import a package.
var importerRules = []importerRule{
	{
		pkg:       "node",
		importers: []string{"cmd/node", "node/nodetest"},
		why:       "node is the composition root; only the raftkvd binary and the test harness build nodes",
	},
	{
		pkg:       "node/nodetest",
		importers: []string{},
		why:       "nodetest is the in-process cluster harness; only tests use it",
	},
	{
		pkg:       "migrate",
		importers: []string{"cmd/ctl"},
		why:       "migrate links the PostgreSQL and SQLite drivers; only raftkvctl carries them, never raftkvd",
	},
	{
		pkg:       "migrate/migratetest",
		importers: []string{},
		why:       "migratetest starts PostgreSQL for tests; only tests use it",
	},
}

// pkgInfo is the part of `go list -json` output the rules need.
type pkgInfo struct {
	ImportPath string
	Imports    []string
}

// importGraph maps module-relative package paths to their direct imports
// (full import paths) in non-test files.
type importGraph map[string][]string

// violation is one forbidden edge or chain.
type violation struct {
	pkg, msg string
}

func TestImportRules(t *testing.T) {
	g := loadGraph(t)
	if _, ok := g["api/kvpb"]; !ok {
		t.Fatalf("go list found no api/kvpb among %d packages: the graph was not read, so no rule was checked", len(g))
	}
	for _, v := range checkGraph(g) {
		t.Errorf("%s: %s", v.pkg, v.msg)
	}
}

// TestRulesCatchForbiddenEdges checks the checker on small synthetic graphs,
// so TestImportRules can't pass by checking nothing.
func TestRulesCatchForbiddenEdges(t *testing.T) {
	kv := module + "/api/kvpb"
	tests := []struct {
		name  string
		graph importGraph
		want  []string // substrings, one per expected violation, in order
	}{
		{
			name: "allowed graph",
			graph: importGraph{
				"api/kvpb":         {"fmt", "google.golang.org/grpc"},
				"client":           {kv},
				"cmd/ctl":          {module + "/client", kv, "flag"},
				"store":            {"go.etcd.io/bbolt"},
				"fsm":              {module + "/fsm/fsmpb", module + "/store", "github.com/hashicorp/raft"},
				"fsm/fsmpb":        {"google.golang.org/protobuf/proto"},
				"transport":        {kv, "google.golang.org/grpc"},
				"cache":            {"sync", "github.com/hashicorp/golang-lru/v2/simplelru"},
				"cache/rediscache": {module + "/cache", "github.com/redis/go-redis/v9"},
				"node":             {module + "/fsm", module + "/transport", module + "/store"},
				"cluster":          {"context", "github.com/hashicorp/raft", "github.com/hashicorp/memberlist"},
				"cmd/node":         {module + "/node"},
				"node/nodetest":    {module + "/node"},
				"e2e":              {module + "/node/nodetest", module + "/client"},
			},
		},
		{
			name:  "cluster must not reach transport or node",
			graph: importGraph{"cluster": {module + "/transport", "github.com/hashicorp/serf/serf"}, "transport": nil},
			want: []string{
				"cluster → transport is forbidden: cluster reconciles",
				"cluster → github.com/hashicorp/serf/serf is forbidden",
			},
		},
		{
			name: "migrate is a client and only raftkvctl links it",
			graph: importGraph{
				"migrate":  {kv, module + "/client", module + "/store", "github.com/jackc/pgx/v5"},
				"cmd/node": {module + "/migrate"},
				"client":   {kv}, "store": nil,
			},
			want: []string{
				"cmd/node → migrate is forbidden (only cmd/ctl",
				"migrate → store is forbidden: migrate moves data",
			},
		},
		{
			name:  "direct forbidden import",
			graph: importGraph{"transport": {module + "/fsm"}, "fsm": nil},
			want:  []string{"transport → fsm is forbidden"},
		},
		{
			name: "forbidden import through an unruled package",
			graph: importGraph{
				"cmd/ctl":    {module + "/internal/x"},
				"internal/x": {module + "/store"},
				"store":      nil,
			},
			want: []string{"cmd/ctl → internal/x is forbidden", "cmd/ctl → store is forbidden (via cmd/ctl → internal/x → store)"},
		},
		{
			name:  "subpackage of a denied package",
			graph: importGraph{"transport": {module + "/fsm/fsmpb"}, "fsm/fsmpb": nil},
			want:  []string{"transport → fsm/fsmpb is forbidden"},
		},
		{
			name:  "fsmpb must not depend on kvpb",
			graph: importGraph{"fsm/fsmpb": {kv}, "api/kvpb": nil},
			want:  []string{"fsm/fsmpb → api/kvpb is forbidden: fsmpb is the persisted log format"},
		},
		{
			name:  "external import outside the allowlist",
			graph: importGraph{"cache": {"github.com/redis/go-redis/v9", "github.com/hashicorp/golang-lru/v2/simplelru"}},
			want:  []string{"cache → github.com/redis/go-redis/v9 is forbidden"},
		},
		{
			name: "a subpackage's own allowlist replaces its parent's",
			graph: importGraph{
				"cache/rediscache": {"github.com/hashicorp/golang-lru/v2", "github.com/redis/go-redis/v9", module + "/cache"},
				"cache":            nil,
			},
			want: []string{"cache/rediscache → github.com/hashicorp/golang-lru/v2 is forbidden"},
		},
		{
			name:  "rediscache must not reach the rest of the server",
			graph: importGraph{"cache/rediscache": {module + "/fsm"}, "fsm": nil},
			want:  []string{"cache/rediscache → fsm is forbidden: rediscache is the optional shared Redis tier"},
		},
		{
			name:  "node imported by a library package",
			graph: importGraph{"transport": {module + "/node"}, "node": nil},
			want:  []string{"transport → node is forbidden: transport declares"},
		},
		{
			name:  "nodetest imported outside tests",
			graph: importGraph{"cmd/node": {module + "/node/nodetest"}, "node/nodetest": {module + "/node"}, "node": nil},
			want:  []string{"cmd/node → node/nodetest is forbidden"},
		},
		{
			name:  "subpackage of a ruled package inherits the rule",
			graph: importGraph{"client/internal/retry": {module + "/node"}, "node": nil},
			want:  []string{"client/internal/retry → node is forbidden: client is the public"},
		},
		{
			name:  "own subpackages are allowed",
			graph: importGraph{"store": {module + "/store/internal/codec"}, "store/internal/codec": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkGraph(tt.graph)
			var msgs []string
			for _, v := range got {
				msgs = append(msgs, v.pkg+": "+v.msg)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d violations, want %d:\ngot:\n  %s\nwant substrings:\n  %s",
					len(got), len(tt.want), strings.Join(msgs, "\n  "), strings.Join(tt.want, "\n  "))
			}
			for i, w := range tt.want {
				if !strings.Contains(msgs[i], w) {
					t.Errorf("violation %d = %q, want it to contain %q", i, msgs[i], w)
				}
			}
		})
	}
}

// loadGraph reads the import graph of every package in the module (with the
// e2e build tag, so e2e helpers count too) from `go list`.
func loadGraph(t *testing.T) importGraph {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found in PATH: %v", err)
	}
	root, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(root))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatalf("not inside a module (go env GOMOD = %q)", gomod)
	}
	// -e: report packages even when something doesn't compile; the build,
	// not this test, is the place for compile errors.
	cmd := exec.Command(goBin, "list", "-e", "-tags", "e2e", "-json=ImportPath,Imports", "./...")
	cmd.Dir = filepath.Dir(gomod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./... in %s: %v\n%s", cmd.Dir, err, stderr.String())
	}
	g, err := parseGoList(out)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func parseGoList(out []byte) (importGraph, error) {
	g := importGraph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return g, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		rel, ok := relPath(p.ImportPath)
		if !ok {
			continue
		}
		g[rel] = p.Imports
	}
}

// relPath returns the module-relative path of an import path inside this
// module ("" for the module root).
func relPath(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(importPath, module+"/")
	return rel, ok
}

// under reports whether pkg is prefix or a subpackage of it.
func under(pkg, prefix string) bool {
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

func underAny(pkg string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return under(pkg, p) })
}

// isStdlib uses the go command's own rule: standard-library paths have no
// dot in their first element.
func isStdlib(importPath string) bool {
	first, _, _ := strings.Cut(importPath, "/")
	return !strings.Contains(first, ".")
}

// moduleImports returns pkg's direct imports inside the module, relative.
func moduleImports(g importGraph, pkg string) []string {
	var deps []string
	for _, imp := range g[pkg] {
		if rel, ok := relPath(imp); ok {
			deps = append(deps, rel)
		}
	}
	return deps
}

// reach returns every module package reachable from pkg, each with one
// shortest import chain from pkg to it.
func reach(g importGraph, pkg string) map[string][]string {
	paths := map[string][]string{}
	queue := []string{pkg}
	chain := map[string][]string{pkg: {pkg}}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, dep := range moduleImports(g, cur) {
			if _, seen := chain[dep]; seen {
				continue
			}
			chain[dep] = append(slices.Clone(chain[cur]), dep)
			paths[dep] = chain[dep]
			queue = append(queue, dep)
		}
	}
	return paths
}

// checkGraph returns every violation of importRules and importerRules in g,
// one per forbidden edge, sorted by package. When several rules forbid the
// same edge, the most specific rule (longest package path) gives the reason.
func checkGraph(g importGraph) []violation {
	pkgs := make([]string, 0, len(g))
	for p := range g {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	rules := slices.Clone(importRules)
	slices.SortStableFunc(rules, func(a, b importRule) int { return len(b.pkg) - len(a.pkg) })

	var vs []violation
	for _, pkg := range pkgs {
		reported := map[string]bool{} // forbidden imports of pkg already reported
		report := func(dep, msg string) {
			if !reported[dep] {
				reported[dep] = true
				vs = append(vs, violation{pkg, msg})
			}
		}
		externalChecked := false // by the most specific rule with a list
		reached := reach(g, pkg)
		deps := make([]string, 0, len(reached))
		for d := range reached {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		for _, r := range rules {
			if !under(pkg, r.pkg) {
				continue
			}
			for _, dep := range deps {
				if under(dep, r.pkg) {
					continue // own subtree
				}
				forbidden := underAny(dep, r.deny) ||
					(r.onlyModule != nil && !underAny(dep, r.onlyModule))
				if forbidden {
					report(dep, fmt.Sprintf("import %s → %s is forbidden%s: %s",
						pkg, dep, via(reached[dep]), r.why))
				}
			}
			if r.onlyExternal != nil && !externalChecked {
				externalChecked = true
				for _, imp := range g[pkg] {
					if _, inModule := relPath(imp); inModule || isStdlib(imp) {
						continue
					}
					if !slices.ContainsFunc(r.onlyExternal, func(p string) bool {
						return imp == p || strings.HasPrefix(imp, p+"/")
					}) {
						report(imp, fmt.Sprintf("import %s → %s is forbidden (allowed outside the standard library: %s): %s",
							pkg, imp, strings.Join(r.onlyExternal, ", "), r.why))
					}
				}
			}
		}
		for _, r := range importerRules {
			if under(pkg, r.pkg) || under(pkg, "e2e") || underAny(pkg, r.importers) {
				continue
			}
			if slices.Contains(moduleImports(g, pkg), r.pkg) {
				allowed := append(slices.Clone(r.importers), "e2e/...", "_test.go files")
				report(r.pkg, fmt.Sprintf("import %s → %s is forbidden (only %s may import it): %s",
					pkg, r.pkg, strings.Join(allowed, ", "), r.why))
			}
		}
	}
	return vs
}

// via renders an import chain longer than one edge.
func via(chain []string) string {
	if len(chain) <= 2 {
		return ""
	}
	return " (via " + strings.Join(chain, " → ") + ")"
}
