package node

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/cluster"
)

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v, min string
		want   bool
	}{
		{"0.4.0", "0.4.0", true},
		{"0.4.1", "0.4.0", true},
		{"0.10.0", "0.4.0", true},
		{"1.0.0", "0.4.0", true},
		{"v0.4.0", "0.4.0", true},
		{"0.3.9", "0.4.0", false},
		{"0.1.0", "0.4.0", false},
		{"", "0.4.0", false},
		{"0.4", "0.4.0", false},
		{"0.4.x", "0.4.0", false},
		{"0.4.0-rc1", "0.4.0", false},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.v, tt.min); got != tt.want {
			t.Errorf("versionAtLeast(%q, %q) = %v, want %v", tt.v, tt.min, got, tt.want)
		}
	}
}

// TestVotersAtLeast: every voter must advertise the release; non-voters
// and gossip members outside the configuration do not count, and a voter
// gossip has not seen (or could not decode) counts as too old.
func TestVotersAtLeast(t *testing.T) {
	member := func(id, v string) cluster.Member {
		return cluster.Member{Name: id, Meta: cluster.Meta{ID: id, Version: v}}
	}
	voters := []raft.Server{{ID: "n1", Suffrage: raft.Voter}, {ID: "n2", Suffrage: raft.Voter}, {ID: "n3", Suffrage: raft.Nonvoter}}
	tests := []struct {
		name    string
		members []cluster.Member
		want    bool
	}{
		{"all voters new", []cluster.Member{member("n1", "0.4.0"), member("n2", "0.5.1")}, true},
		{"an old non-voter and an old stranger", []cluster.Member{member("n1", "0.4.0"), member("n2", "0.4.0"), member("n3", "0.1.0"), member("x", "0.1.0")}, true},
		{"one old voter", []cluster.Member{member("n1", "0.4.0"), member("n2", "0.3.0")}, false},
		{"a voter gossip has not seen", []cluster.Member{member("n1", "0.4.0")}, false},
		{"a voter whose metadata did not decode", []cluster.Member{member("n1", "0.4.0"), {Name: "n2", MetaErr: errors.New("bad")}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := votersAtLeast(voters, tt.members, "0.4.0"); got != tt.want {
				t.Errorf("votersAtLeast = %v, want %v", got, tt.want)
			}
		})
	}
}
