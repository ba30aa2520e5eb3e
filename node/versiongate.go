package node

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/cluster"
)

// Rolling upgrades (STYLE.md §3, as etcd's cluster version): a log op that
// an older release does not know stops that release's nodes with "unknown
// op, upgrade this node" when they apply it. So the leader proposes a new
// op only while every voter advertises, in its gossip metadata, a release
// that knows it. With gossip off there is nothing to ask: the operator's
// upgrade order is trusted (upgrade every follower before the leader; see
// docs/write-path.md).

// versionGateTTL is how long one answer of votersAtLeast is reused: the
// check reads the raft configuration and every gossip member, and write
// coalescing asks for every batch.
const versionGateTTL = time.Second

// versionGate caches votersAtLeast's answer per version.
type versionGate struct {
	cached atomic.Pointer[versionGateAnswer]
}

type versionGateAnswer struct {
	min string
	at  time.Time
	ok  bool
}

// votersAtLeast reports whether every voter of the raft configuration
// advertises at least release min (true with gossip off).
func (n *Node) votersAtLeast(min string) bool {
	if n.cfg.Cluster.GossipAddr == "" {
		return true
	}
	now := time.Now()
	if a := n.gate.cached.Load(); a != nil && a.min == min && now.Sub(a.at) < versionGateTTL {
		return a.ok
	}
	f := n.raft.GetConfiguration()
	ok := f.Error() == nil && votersAtLeast(f.Configuration().Servers, n.cluster.Members(), min)
	n.gate.cached.Store(&versionGateAnswer{min: min, at: now, ok: ok})
	return ok
}

// votersAtLeast reports whether every voter in servers is a gossip member
// whose metadata advertises at least release min. A voter gossip has not
// seen, or whose metadata did not decode, counts as too old.
func votersAtLeast(servers []raft.Server, members []cluster.Member, min string) bool {
	versions := make(map[string]string, len(members))
	for _, m := range members {
		if m.MetaErr == nil {
			versions[m.Name] = m.Meta.Version
		}
	}
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		v, ok := versions[string(s.ID)]
		if !ok || !versionAtLeast(v, min) {
			return false
		}
	}
	return true
}

// versionAtLeast compares two MAJOR.MINOR.PATCH releases; anything that
// does not parse is older than every release.
func versionAtLeast(v, min string) bool {
	a, okA := parseVersion(v)
	b, okB := parseVersion(min)
	if !okA || !okB {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}

func parseVersion(s string) ([3]int, bool) {
	var out [3]int
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
