package node

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftkv/raftkv/cluster"
	"github.com/raftkv/raftkv/fsm"
)

// Metric names follow STYLE.md §5: raftkv_<subsystem>_<name>_<unit>. Every
// metric is documented in docs/metrics.md, and node's tests check that the
// table and what a node exports agree.
//
// Two kinds of collectors live here:
//
//   - event metrics (histograms, counters) observed where the event happens:
//     the raft log store wrapper, the FSM wrapper and the write path; each
//     costs one observation per event (per batch for the FSM), never a log
//     line or an allocation;
//   - state metrics (raft state, indexes, store size, cache and gossip
//     counters) read by stateCollector when Prometheus scrapes, so they cost
//     nothing between scrapes.
//
// raft's own go-metrics are not bridged: hashicorp/raft emits them to one
// process-wide sink, which cannot tell the nodes of an in-process test
// cluster apart and would break the one-registry-per-node rule (STYLE.md §8).
// The same facts are measured per node at the seams node owns instead.

const namespace = "raftkv"

// cacheStats is a reading of the read cache's counters, taken when
// Prometheus scrapes. The cache (package cache, which must not import
// Prometheus) keeps the counters; node maps them to this struct and hands a
// reader to metrics.setCacheSource.
type cacheStats struct {
	// Hits and Misses count lookups since the cache was created,
	// Evictions entries dropped to stay within the memory bound.
	Hits, Misses, Evictions uint64
	// Bytes is the memory the cached entries account for, Entries their
	// number.
	Bytes, Entries int64
}

// gossipStats counts the gossip (memberlist) members this node knows by
// state name ("alive", "failed", "left", as package cluster names them),
// read when Prometheus scrapes (see metrics.setGossipSource). nil means
// gossip is off, and the metric is not exported.
type gossipStats map[string]int

// backupResult is the outcome of one backup, for metrics.recordBackup.
type backupResult struct {
	// Start is when the backup began; Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// SizeBytes is the archive size; Err is nil on success.
	SizeBytes int64
	Err       error
}

// metrics holds one node's collectors. It is created before raft (the log
// store and FSM wrappers observe into it) and registered once the node is
// up; see Node.registerMetrics.
type metrics struct {
	logAppend prometheus.Histogram
	commit    prometheus.Histogram
	fsmApply  prometheus.Histogram
	fsmBatch  prometheus.Histogram
	// coalescedPuts is the number of client Puts per raft entry the
	// leader's write coalescer proposed (node/coalesce.go).
	coalescedPuts prometheus.Histogram
	snapDuration  prometheus.Histogram
	snapSize      prometheus.Gauge
	snapFailures  prometheus.Counter
	// expired counts keys deleted by this node's expiry loop as leader.
	expired       prometheus.Counter
	leaderChanges prometheus.Counter

	backupRuns        *prometheus.CounterVec
	backupLastSuccess prometheus.Gauge
	backupLastDur     prometheus.Gauge
	backupLastSize    prometheus.Gauge

	// cache and gossip are read at scrape time; registerMetrics wires
	// both (each reports nothing, or zeros, while its feature is off).
	cache  atomic.Pointer[func() cacheStats]
	gossip atomic.Pointer[func() gossipStats]
}

// latencyBuckets span 0.5 ms to about 4 s: one fsync-bound local operation
// up to a write stuck behind an election.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 14)

func newMetrics() *metrics {
	m := &metrics{
		logAppend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "raft", Name: "log_append_duration_seconds",
			Help:    "Time to durably append one batch of entries to the raft log store (fsync included), on the leader and on followers.",
			Buckets: latencyBuckets,
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "raft", Name: "commit_duration_seconds",
			Help:    "Leader only: time from proposing a client write to raft until a quorum has committed it and the local FSM has applied it.",
			Buckets: latencyBuckets,
		}),
		fsmApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "fsm", Name: "apply_duration_seconds",
			Help:    "Time the FSM takes to apply one batch of committed entries (one store transaction).",
			Buckets: latencyBuckets,
		}),
		fsmBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "fsm", Name: "apply_batch_size",
			Help:    "Committed log entries per FSM apply batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		coalescedPuts: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "raft", Name: "coalesced_puts",
			Help:    "Leader only: client Puts per raft log entry proposed by write coalescing (1: proposed alone).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		snapDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "raft", Name: "snapshot_duration_seconds",
			Help:    "Time to take a snapshot, from capturing the FSM's read view to the end of writing it; the count is the number of snapshots taken.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		snapSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "raft", Name: "snapshot_size_bytes",
			Help: "Size of the last snapshot this node took.",
		}),
		snapFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "raft", Name: "snapshot_failures_total",
			Help: "Snapshots that failed to be captured or written.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "kv", Name: "expired_keys_total",
			Help: "Keys deleted because their TTL passed, by DeleteExpired commands this node proposed as leader.",
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "raft", Name: "leader_changes_total",
			Help: "Times this node saw a new leader (learning of a leader after having none counts).",
		}),
		backupRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "backup", Name: "runs_total",
			Help: "Backups served by this node, by result (success or failure).",
		}, []string{"result"}),
		backupLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "backup", Name: "last_success_timestamp_seconds",
			Help: "Unix time at which the last successful backup finished; 0 if none since start.",
		}),
		backupLastDur: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "backup", Name: "last_duration_seconds",
			Help: "Duration of the last successful backup.",
		}),
		backupLastSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "backup", Name: "last_size_bytes",
			Help: "Archive size of the last successful backup.",
		}),
	}
	// Both results exist from the start, so rate() and alerts see a zero
	// rather than no series.
	m.backupRuns.WithLabelValues("success")
	m.backupRuns.WithLabelValues("failure")
	return m
}

// collectors returns every collector of m plus the scrape-time collector of n.
func (m *metrics) collectors(n *Node) []prometheus.Collector {
	return []prometheus.Collector{
		m.logAppend, m.commit, m.fsmApply, m.fsmBatch, m.coalescedPuts,
		m.snapDuration, m.snapSize, m.snapFailures, m.leaderChanges, m.expired,
		m.backupRuns, m.backupLastSuccess, m.backupLastDur, m.backupLastSize,
		&stateCollector{n: n, m: m},
	}
}

// observeSince records the seconds since start in h.
func observeSince(h prometheus.Observer, start time.Time) {
	h.Observe(time.Since(start).Seconds())
}

// setCacheSource makes the cache metrics read f at every scrape. f must be
// quick and safe to call from any goroutine.
func (m *metrics) setCacheSource(f func() cacheStats) { m.cache.Store(&f) }

// setGossipSource makes raftkv_cluster_gossip_members read f at every
// scrape. f must be quick and safe to call from any goroutine.
func (m *metrics) setGossipSource(f func() gossipStats) { m.gossip.Store(&f) }

// recordBackup records the outcome of one backup served by this node.
func (m *metrics) recordBackup(r backupResult) {
	if r.Err != nil {
		m.backupRuns.WithLabelValues("failure").Inc()
		return
	}
	m.backupRuns.WithLabelValues("success").Inc()
	m.backupLastSuccess.Set(float64(r.Start.Add(r.Duration).UnixNano()) / 1e9)
	m.backupLastDur.Set(r.Duration.Seconds())
	m.backupLastSize.Set(float64(r.SizeBytes))
}

// countLeaderChanges returns a raft observer that counts leader changes in
// its filter, so it needs neither a channel nor a goroutine. raft calls the
// filter synchronously from setLeader; an atomic increment is all it does.
func (m *metrics) countLeaderChanges() *raft.Observer {
	return raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
			m.leaderChanges.Inc()
		}
		return false
	})
}

// stateCollector reads the node's state when Prometheus scrapes: raft's
// state and indexes, the store's size and key count, snapshot restores, and
// the cache and gossip counters when those are wired in.
type stateCollector struct {
	n *Node
	m *metrics
}

func newDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

var (
	descRaftState = newDesc("raft", "state",
		"1 for this node's current raft state, 0 for the others.", "state")
	descHasLeader = newDesc("raft", "has_leader",
		"1 if this node knows a leader, else 0.")
	descTerm = newDesc("raft", "term",
		"Current raft term.")
	descCommitIndex = newDesc("raft", "commit_index",
		"Highest log index this node knows to be committed.")
	descAppliedIndex = newDesc("raft", "applied_index",
		"Highest log index applied to the FSM's store.")
	descLastLogIndex = newDesc("raft", "last_log_index",
		"Last index in this node's raft log.")
	descLastSnapshotIndex = newDesc("raft", "last_snapshot_index",
		"Log index of the newest snapshot.")
	descLastContact = newDesc("raft", "last_contact_seconds",
		"Seconds since a follower last heard from the leader; 0 on the leader; absent before the first contact.")
	descSnapRestores = newDesc("raft", "snapshot_restores_total",
		"Snapshots restored into the FSM (installed from the leader, or caught up at start).")
	descStoreSize = newDesc("store", "size_bytes",
		"Size of the data in the store file.")
	descStoreKeys = newDesc("store", "keys",
		"Number of keys in the store.")
	descCacheHits = newDesc("cache", "hits_total",
		"Read cache lookups that found the key; 0 while the cache is off.")
	descCacheMisses = newDesc("cache", "misses_total",
		"Read cache lookups that missed; 0 while the cache is off.")
	descCacheBytes = newDesc("cache", "size_bytes",
		"Memory accounted to the read cache's entries; 0 while the cache is off.")
	descCacheEntries = newDesc("cache", "entries",
		"Entries in the read cache; 0 while the cache is off.")
	descCacheEvictions = newDesc("cache", "evictions_total",
		"Read cache entries evicted to stay within its memory bound; 0 while the cache is off.")
	descGossipMembers = newDesc("cluster", "gossip_members",
		"Gossip (memberlist) members this node knows, by state; absent while gossip membership is off.", "state")
	descBuildInfo = newDesc("", "build_info",
		"Always 1; labels carry the raftkv version and the Go version it was built with.", "version", "go_version")
)

var raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descRaftState, descHasLeader, descTerm, descCommitIndex, descAppliedIndex,
		descLastLogIndex, descLastSnapshotIndex, descLastContact, descSnapRestores,
		descStoreSize, descStoreKeys, descCacheHits, descCacheMisses, descCacheBytes,
		descCacheEntries, descCacheEvictions,
		descGossipMembers, descBuildInfo,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Everything it reads is an atomic
// load or a short lock inside raft, plus one bbolt read transaction for the
// store's counters.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	r := c.n.raft
	state := r.State()
	for _, s := range raftStates {
		gauge(descRaftState, boolFloat(s == state), stateLabel(s))
	}
	_, leader := r.LeaderWithID()
	gauge(descHasLeader, boolFloat(leader != ""))
	gauge(descTerm, float64(r.CurrentTerm()))
	gauge(descCommitIndex, float64(r.CommitIndex()))
	st := c.n.fsm.Stats()
	gauge(descAppliedIndex, float64(st.AppliedIndex))
	gauge(descLastLogIndex, float64(r.LastIndex()))
	if idx, err := c.n.lastSnapshot(); err == nil {
		gauge(descLastSnapshotIndex, float64(idx))
	}
	switch last := r.LastContact(); {
	case state == raft.Leader:
		gauge(descLastContact, 0)
	case !last.IsZero():
		gauge(descLastContact, time.Since(last).Seconds())
	}
	counter(descSnapRestores, float64(c.n.fsm.Restores()))
	gauge(descStoreSize, float64(st.SizeBytes))
	gauge(descStoreKeys, float64(st.KeyCount))

	var cs cacheStats
	if f := c.m.cache.Load(); f != nil {
		cs = (*f)()
	}
	counter(descCacheHits, float64(cs.Hits))
	counter(descCacheMisses, float64(cs.Misses))
	gauge(descCacheBytes, float64(cs.Bytes))
	gauge(descCacheEntries, float64(cs.Entries))
	counter(descCacheEvictions, float64(cs.Evictions))

	if f := c.m.gossip.Load(); f != nil {
		for state, count := range (*f)() {
			gauge(descGossipMembers, float64(count), state)
		}
	}
	gauge(descBuildInfo, 1, Version, runtime.Version())
}

func stateLabel(s raft.RaftState) string {
	switch s {
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	case raft.Leader:
		return "leader"
	default:
		return "shutdown"
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// timedLogStore times raft's appends to the log store. raft calls StoreLogs
// once per batch: on the leader when it dispatches new entries, on a
// follower once per AppendEntries request.
type timedLogStore struct {
	raft.LogStore
	h prometheus.Observer
}

func (s timedLogStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

func (s timedLogStore) StoreLogs(logs []*raft.Log) error {
	defer observeSince(s.h, time.Now())
	return s.LogStore.StoreLogs(logs)
}

// instrumentedFSM is the FSM as raft sees it: *fsm.FSM plus one latency and
// one batch-size observation per batch, and snapshot timing. Everything else
// is the embedded FSM's.
type instrumentedFSM struct {
	*fsm.FSM
	m *metrics
}

var _ raft.BatchingFSM = instrumentedFSM{}

func (f instrumentedFSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

func (f instrumentedFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	start := time.Now()
	res := f.FSM.ApplyBatch(logs)
	observeSince(f.m.fsmApply, start)
	f.m.fsmBatch.Observe(float64(len(logs)))
	return res
}

func (f instrumentedFSM) Snapshot() (raft.FSMSnapshot, error) {
	start := time.Now()
	s, err := f.FSM.Snapshot()
	if err != nil {
		f.m.snapFailures.Inc()
		return nil, err
	}
	return &timedSnapshot{FSMSnapshot: s, m: f.m, start: start}, nil
}

// timedSnapshot measures Persist, which writes the snapshot and closes the
// sink (so a nil error means the snapshot is on disk).
type timedSnapshot struct {
	raft.FSMSnapshot
	m     *metrics
	start time.Time
}

func (s *timedSnapshot) Persist(sink raft.SnapshotSink) error {
	cs := &countingSink{SnapshotSink: sink}
	if err := s.FSMSnapshot.Persist(cs); err != nil {
		s.m.snapFailures.Inc()
		return err
	}
	observeSince(s.m.snapDuration, s.start)
	s.m.snapSize.Set(float64(cs.n))
	return nil
}

// countingSink counts the bytes written to a snapshot sink.
type countingSink struct {
	raft.SnapshotSink
	n int64
}

func (s *countingSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	s.n += int64(n)
	return n, err
}

// registerMetrics registers the node's collectors with its registry. It
// runs once raft exists, because stateCollector reads it.
func (n *Node) registerMetrics() error {
	n.metrics.setGossipSource(n.gossipMembers)
	n.metrics.setCacheSource(n.localCacheStats)
	for _, c := range n.metrics.collectors(n) {
		if err := n.registry.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// gossipMembers counts the members this node's gossip knows by status, or
// returns nil while gossip is off. It runs at scrape time, after New has
// set n.cluster (the HTTP server starts after it).
func (n *Node) gossipMembers() gossipStats {
	if n.cluster == nil || !n.cluster.GossipEnabled() {
		return nil
	}
	counts := gossipStats{}
	for _, s := range []cluster.GossipStatus{cluster.GossipAlive, cluster.GossipFailed, cluster.GossipLeft} {
		counts[s.String()] = 0
	}
	for _, m := range n.cluster.Members() {
		counts[m.Status.String()]++
	}
	return counts
}

// localCacheStats reads the local (in-process) cache tier's counters, or
// zeros while the cache is off. The Redis tier is left out: reading its
// numbers costs a round trip to Redis, which a scrape must not wait on
// (raftkvctl status shows them).
func (n *Node) localCacheStats() cacheStats {
	if n.cache == nil {
		return cacheStats{}
	}
	s := n.cache.local.Stats()
	return cacheStats{Hits: s.Hits, Misses: s.Misses, Evictions: s.Evictions, Bytes: s.Bytes, Entries: s.Entries}
}
