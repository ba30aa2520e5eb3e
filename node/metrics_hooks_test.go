package node

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestMetricHooks: the cache, gossip and backup hooks that those subsystems
// feed show up in the node's registry (cache and backup series exist, at
// zero, before anything is wired in; gossip series only once it is).
func TestMetricHooks(t *testing.T) {
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	raftLn, grpcLn := listen(), listen()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr = raftLn.Addr().String()
	cfg.GRPCAddr = grpcLn.Addr().String()
	cfg.HTTPAddr = ""
	reg := prometheus.NewRegistry()
	n, err := New(cfg, Deps{RaftListener: raftLn, GRPCListener: grpcLn, Registry: reg})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	t.Cleanup(func() { n.Close() })

	get := func(name string, labels map[string]string) (float64, bool) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metrics:
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
						continue metrics
					}
				}
				return value(m), true
			}
		}
		return 0, false
	}
	want := func(name string, labels map[string]string, w float64) {
		t.Helper()
		if got, ok := get(name, labels); !ok || got != w {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, w)
		}
	}

	want("raftkv_cache_hits_total", nil, 0)
	want("raftkv_backup_last_success_timestamp_seconds", nil, 0)
	want("raftkv_backup_runs_total", map[string]string{"result": "failure"}, 0)
	if _, ok := get("raftkv_cluster_gossip_members", nil); ok {
		t.Errorf("raftkv_cluster_gossip_members exported before gossip is wired in")
	}

	n.metrics.setCacheSource(func() cacheStats { return cacheStats{Hits: 5, Misses: 2, Bytes: 100} })
	n.metrics.setGossipSource(func() gossipStats { return gossipStats{"alive": 3, "failed": 1} })
	n.metrics.recordBackup(backupResult{Start: time.Unix(1000, 0), Duration: 2 * time.Second, SizeBytes: 4096})
	n.metrics.recordBackup(backupResult{Start: time.Unix(2000, 0), Duration: time.Second, Err: errors.New("disk full")})

	want("raftkv_cache_hits_total", nil, 5)
	want("raftkv_cache_misses_total", nil, 2)
	want("raftkv_cache_size_bytes", nil, 100)
	want("raftkv_cluster_gossip_members", map[string]string{"state": "alive"}, 3)
	want("raftkv_cluster_gossip_members", map[string]string{"state": "failed"}, 1)
	want("raftkv_backup_runs_total", map[string]string{"result": "success"}, 1)
	want("raftkv_backup_runs_total", map[string]string{"result": "failure"}, 1)
	want("raftkv_backup_last_success_timestamp_seconds", nil, 1002) // the failure leaves it alone
	want("raftkv_backup_last_duration_seconds", nil, 2)
	want("raftkv_backup_last_size_bytes", nil, 4096)
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return float64(m.GetHistogram().GetSampleCount())
}
