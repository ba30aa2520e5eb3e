package node_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/node/nodetest"
)

// families is one scrape: metric family name → family.
type families map[string]*dto.MetricFamily

// gather returns member i's metrics straight from its registry.
func gather(t *testing.T, c *nodetest.Cluster, i int) families {
	t.Helper()
	mfs, err := c.Members[i].Registry.Gather()
	if err != nil {
		t.Fatalf("gather %s: %v", c.Members[i].ID, err)
	}
	out := families{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// scrape fetches and parses member i's /metrics over HTTP, as Prometheus
// would.
func scrape(t *testing.T, c *nodetest.Cluster, i int) families {
	t.Helper()
	resp, err := httpClient.Get("http://" + c.HTTPAddr(i) + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", c.Members[i].ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d, want 200", c.Members[i].ID, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics of %s: %v", c.Members[i].ID, err)
	}
	return mfs
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// matches reports whether m carries every label in want.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// value sums the counter or gauge values, or the histogram sample counts,
// of name's series that carry the labels in want. A missing family is 0.
func (f families) value(name string, want map[string]string) float64 {
	var sum float64
	for _, m := range f[name].GetMetric() {
		if !matches(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func (f families) mustMove(t *testing.T, before families, name string, want map[string]string) {
	t.Helper()
	if b, a := before.value(name, want), f.value(name, want); a <= b {
		t.Errorf("%s%v = %v after the event, %v before: want it to grow", name, want, a, b)
	}
}

// TestMetricsMoveWithEvents checks that each kind of event moves its
// metrics: a Put moves the gRPC counter and latency histogram, the commit,
// log append and FSM apply histograms; enough writes trigger a snapshot;
// and the scrape-time state (raft state, indexes, store) is right.
func TestMetricsMoveWithEvents(t *testing.T) {
	c := nodetest.NewCluster(t, 3, func(cfg *nodetest.NodeConfig) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 16
	})
	leader := c.Leader()
	follower := c.Followers()[0]
	before, beforeF := gather(t, c, leader), gather(t, c, follower)

	cl := c.Client(leader)
	rev := put(t, cl, "metrics-key", "v")
	c.WaitForApplied(uint64(rev))
	after, afterF := gather(t, c, leader), gather(t, c, follower)

	putOK := map[string]string{"grpc_method": "Put", "grpc_code": "OK"}
	after.mustMove(t, before, "raftkv_grpc_server_handled_total", putOK)
	after.mustMove(t, before, "raftkv_grpc_server_started_total", map[string]string{"grpc_method": "Put"})
	after.mustMove(t, before, "raftkv_grpc_server_handling_seconds", map[string]string{"grpc_method": "Put"})
	after.mustMove(t, before, "raftkv_raft_commit_duration_seconds", nil)
	after.mustMove(t, before, "raftkv_raft_coalesced_puts", nil)
	for _, name := range []string{"raftkv_raft_log_append_duration_seconds", "raftkv_fsm_apply_duration_seconds", "raftkv_fsm_apply_batch_size"} {
		after.mustMove(t, before, name, nil)
		afterF.mustMove(t, beforeF, name, nil) // followers append and apply too
	}
	if got := afterF.value("raftkv_raft_commit_duration_seconds", nil); got != 0 {
		t.Errorf("follower raftkv_raft_commit_duration_seconds count = %v, want 0 (leader-only metric)", got)
	}

	// Reads go through the local read cache: the first fills it, the
	// rest hit.
	for i := 0; i < 3; i++ {
		if _, err := cl.Get(ctxT(t, 5*time.Second), &kvpb.GetRequest{Key: []byte("metrics-key")}); err != nil {
			t.Fatalf("get: %v", err)
		}
	}
	afterGet := gather(t, c, leader)
	if h, m := afterGet.value("raftkv_cache_hits_total", nil), afterGet.value("raftkv_cache_misses_total", nil); h < 1 || h+m < 3 {
		t.Errorf("after 3 gets: raftkv_cache_hits_total = %v, raftkv_cache_misses_total = %v; want at least 1 hit and 3 lookups", h, m)
	}
	if e, b := afterGet.value("raftkv_cache_entries", nil), afterGet.value("raftkv_cache_size_bytes", nil); e < 1 || b <= 0 {
		t.Errorf("raftkv_cache_entries = %v, raftkv_cache_size_bytes = %v; want the cached key counted", e, b)
	}

	// A rejected request is counted under its code.
	_, err := cl.Put(ctxT(t, 5*time.Second), &kvpb.PutRequest{Key: nil, Value: []byte("v")})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("put with empty key: %v, want InvalidArgument", err)
	}
	invalid := map[string]string{"grpc_method": "Put", "grpc_code": "InvalidArgument"}
	if got := gather(t, c, leader).value("raftkv_grpc_server_handled_total", invalid); got != 1 {
		t.Errorf("raftkv_grpc_server_handled_total%v = %v, want 1", invalid, got)
	}

	// Scrape-time state.
	for i := range c.Members {
		f := gather(t, c, i)
		wantState := "follower"
		if i == leader {
			wantState = "leader"
		}
		if got := f.value("raftkv_raft_state", map[string]string{"state": wantState}); got != 1 {
			t.Errorf("%s: raftkv_raft_state{state=%q} = %v, want 1", c.Members[i].ID, wantState, got)
		}
		if got := f.value("raftkv_raft_state", nil); got != 1 {
			t.Errorf("%s: raftkv_raft_state sums to %v over states, want exactly one state at 1", c.Members[i].ID, got)
		}
		for name, min := range map[string]float64{
			"raftkv_raft_has_leader":           1,
			"raftkv_raft_leader_changes_total": 1,
			"raftkv_raft_term":                 1,
			"raftkv_raft_commit_index":         float64(rev),
			"raftkv_raft_applied_index":        float64(rev),
			"raftkv_raft_last_log_index":       float64(rev),
			"raftkv_store_keys":                1,
			"raftkv_store_size_bytes":          1,
			"raftkv_build_info":                1,
		} {
			if got := f.value(name, nil); got < min {
				t.Errorf("%s: %s = %v, want at least %v", c.Members[i].ID, name, got, min)
			}
		}
	}
	if got := gather(t, c, leader).value("raftkv_raft_last_contact_seconds", nil); got != 0 {
		t.Errorf("leader raftkv_raft_last_contact_seconds = %v, want 0", got)
	}

	// Enough writes for a snapshot (threshold 32 entries) on every node.
	var last int64
	for i := 0; i < 40; i++ {
		last = put(t, cl, fmt.Sprintf("snap-%02d", i), "v")
	}
	c.WaitForApplied(uint64(last))
	c.Eventually("every node takes a snapshot", func() error {
		for i, m := range c.Members {
			f := gather(t, c, i)
			if f.value("raftkv_raft_snapshot_duration_seconds", nil) < 1 {
				return fmt.Errorf("%s has taken no snapshot yet", m.ID)
			}
			if f.value("raftkv_raft_snapshot_size_bytes", nil) <= 0 || f.value("raftkv_raft_last_snapshot_index", nil) <= 0 {
				return fmt.Errorf("%s: snapshot size or index not set", m.ID)
			}
		}
		return nil
	})
	if got := gather(t, c, leader).value("raftkv_store_keys", nil); got != 41 {
		t.Errorf("raftkv_store_keys = %v, want 41", got)
	}

	// What Prometheus scrapes over HTTP is the registry's content, and it
	// follows Prometheus' naming conventions.
	if got := scrape(t, c, leader).value("raftkv_store_keys", nil); got != 41 {
		t.Errorf("scraped raftkv_store_keys = %v, want 41", got)
	}
	mfs, err := c.Members[leader].Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatalf("lint metrics: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}

	t.Run("documented", func(t *testing.T) {
		checkDocumented(t, gather(t, c, leader))
	})
	t.Run("dashboard", func(t *testing.T) {
		checkDashboard(t, gather(t, c, leader))
	})
}

// docMetric is one row of the table in docs/metrics.md.
type docMetric struct {
	name, typ string
	// conditional rows are exported only when a feature is on.
	conditional bool
}

// documentedMetrics parses the metric table of docs/metrics.md: rows whose
// first cell is a backquoted raftkv_ name, the second the type; a row whose
// description starts with "Only" is conditional.
func documentedMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	f, err := os.Open("../docs/metrics.md")
	if err != nil {
		t.Fatalf("open metrics reference: %v", err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `(raftkv_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\|[^|]*\\| (.*)\\|$")
	out := map[string]docMetric{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("docs/metrics.md lists %s twice", m[1])
		}
		out[m[1]] = docMetric{name: m[1], typ: m[2], conditional: strings.HasPrefix(strings.TrimSpace(m[3]), "Only")}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("docs/metrics.md: found %d metric rows, want the full table (format changed?)", len(out))
	}
	return out
}

// checkDocumented: every documented metric is exported with its documented
// type (conditional ones may be absent), and every raftkv_ metric a node
// exports is documented.
func checkDocumented(t *testing.T, got families) {
	docs := documentedMetrics(t)
	for _, d := range docs {
		mf, ok := got[d.name]
		if !ok {
			if !d.conditional {
				t.Errorf("%s is documented in docs/metrics.md but not exported", d.name)
			}
			continue
		}
		if typ := strings.ToLower(mf.GetType().String()); typ != d.typ {
			t.Errorf("%s is a %s, docs/metrics.md says %s", d.name, typ, d.typ)
		}
	}
	var undocumented []string
	for name := range got {
		if _, ok := docs[name]; strings.HasPrefix(name, "raftkv_") && !ok {
			undocumented = append(undocumented, name)
		}
	}
	sort.Strings(undocumented)
	if len(undocumented) > 0 {
		t.Errorf("exported but missing from docs/metrics.md: %s", strings.Join(undocumented, ", "))
	}
}

// checkDashboard: the Grafana dashboard parses, and every raftkv_ metric
// its queries use is documented and exported by a node.
func checkDashboard(t *testing.T, got families) {
	b, err := os.ReadFile("../deploy/grafana/dashboards/raftkv.json")
	if err != nil {
		t.Fatalf("read dashboard: %v", err)
	}
	var dash struct {
		Title  string           `json:"title"`
		UID    string           `json:"uid"`
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard has title %q, uid %q and %d panels: want all set", dash.Title, dash.UID, len(dash.Panels))
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	walk(raw)
	if len(exprs) < len(dash.Panels)/2 {
		t.Fatalf("found %d queries in %d panels", len(exprs), len(dash.Panels))
	}
	docs := documentedMetrics(t)
	name := regexp.MustCompile(`raftkv_[a-z0-9_]+`)
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			base := n
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suf); ok && docs[b].typ == "histogram" {
					base = b
				}
			}
			if seen[base] {
				continue
			}
			seen[base] = true
			d, ok := docs[base]
			if !ok {
				t.Errorf("dashboard queries %s (in %q), which docs/metrics.md does not list", n, e)
				continue
			}
			if _, ok := got[base]; !ok && !d.conditional {
				t.Errorf("dashboard queries %s, which a node does not export", n)
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	t.Logf("dashboard uses %d metrics: %s", len(names), strings.Join(names, " "))
}
