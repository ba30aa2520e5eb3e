package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/api/kvpb"
)

func TestPrintable(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"foo", "foo"},
		{"with space", "with space"},
		{"ünïcode", "ünïcode"},
		{"", `""`},
		{"tab\there", `"tab\there"`},
		{"\x00\xff", `"\x00\xff"`},
		{`"quoted"`, `"\"quoted\""`},
	}
	for _, tt := range tests {
		if got := printable([]byte(tt.in)); got != tt.want {
			t.Errorf("printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestTablePrinter(t *testing.T) {
	kv := &kvpb.KeyValue{Key: []byte("k\n"), Value: []byte("v"), CreateRevision: 3, ModRevision: 7, Version: 2}
	tests := []struct {
		name  string
		print func(p printer) error
		want  []string // lines, trailing spaces trimmed
	}{
		{"put", func(p printer) error { return p.put(&kvpb.PutResponse{Header: &kvpb.ResponseHeader{Revision: 9}}) },
			[]string{"OK (revision 9)"}},
		{"get", func(p printer) error { return p.get(&kvpb.GetResponse{Found: true, Kv: kv}) },
			[]string{"KEY    VALUE  VERSION  CREATE_REV  MOD_REV", `"k\n"  v      2        3           7`}},
		{"get missing", func(p printer) error { return p.get(&kvpb.GetResponse{}) }, nil},
		{"del", func(p printer) error { return p.del(&kvpb.DeleteResponse{Deleted: 4}) }, []string{"4"}},
		{"scan more", func(p printer) error {
			return p.scan(&kvpb.RangeResponse{Kvs: []*kvpb.KeyValue{kv}, More: true, Count: 10}, scanView{keysOnly: true})
		}, []string{"KEY", `"k\n"`, "(1 of 10 keys shown; raise --limit to see more)"}},
		{"txn failed", func(p printer) error {
			return p.txn(&kvpb.TxnResponse{Header: &kvpb.ResponseHeader{Revision: 5}, Responses: []*kvpb.ResponseOp{
				{Response: &kvpb.ResponseOp_ResponseRange{ResponseRange: &kvpb.RangeResponse{}}}}})
		}, []string{"FAILED (revision 5)", "(no such key)"}},
		{"status", func(p printer) error {
			return p.status([]endpointStatus{
				{endpoint: "a:1", resp: &kvpb.StatusResponse{NodeId: "n1", RaftState: "Leader", LeaderId: "n1", Term: 2, CommitIndex: 10, AppliedIndex: 9, StoreSizeBytes: 2048, KeyCount: 5}},
				{endpoint: "b:2", err: errors.New("refused")},
			})
		}, []string{
			"ENDPOINT  ID  STATE   LEADER  TERM  COMMIT  APPLIED  STORE_SIZE  KEYS  ERROR",
			"a:1       n1  Leader  n1      2     10      9        2.0 KiB     5",
			"b:2                                                                    refused",
		}},
		{"member list", func(p printer) error {
			return p.memberList(&kvpb.MemberListResponse{Members: []*kvpb.Member{
				{Id: "n1", RaftAddr: "r1", GrpcAddr: "g1", Suffrage: "Voter", IsLeader: true, RaftState: "Leader", GossipStatus: "alive",
					GossipAddr: "s1", Healthy: true, AppliedIndex: 12, Version: "0.4.0"},
				{Id: "n2", RaftAddr: "r2", GrpcAddr: "g2", Suffrage: "Nonvoter", RaftState: "Follower", GossipStatus: "alive",
					GossipAddr: "s2", LastContactMs: 40, AppliedIndex: 2, AppliedLag: 10, UnhealthyReason: "behind", Version: "0.3.0"},
				{Id: "n3", RaftAddr: "r3", Suffrage: "Voter", GossipStatus: "failed", Error: "refused"},
				{Id: "n4", RaftAddr: "r4", GrpcAddr: "g4", Suffrage: "Voter"},
			}})
		}, []string{
			"ID  SUFFRAGE  LEADER  RAFT_STATE  GOSSIP  VERSION  HEALTHY  LAST_CONTACT  APPLIED  LAG  GRPC_ADDR  RAFT_ADDR  GOSSIP_ADDR  NOTE",
			"n1  Voter     *       Leader      alive   0.4.0    yes      0s            12       0    g1         r1         s1",
			"n2  Nonvoter          Follower    alive   0.3.0    no       40ms          2        10   g2         r2         s2           behind",
			"n3  Voter             -           failed  -        no       -             -        -    -          r3         -            refused",
			"n4  Voter             -           -       -        -        -             -        -    g4         r4         -",
		}},
		{"member change", func(p printer) error {
			return p.memberChange("remove", "n3", &kvpb.MemberChangeResponse{ConfigurationIndex: 42, Warning: "4 voters"})
		}, []string{"removed n3 (configuration index 42)", "warning: 4 voters"}},
		{"leader transfer", func(p printer) error {
			return p.leaderTransfer(&kvpb.LeaderTransferResponse{LeaderId: "n2"})
		}, []string{"leadership transferred to n2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.print(&tablePrinter{w: &buf}); err != nil {
				t.Fatalf("print = %v", err)
			}
			var got []string
			for l := range strings.Lines(buf.String()) {
				got = append(got, strings.TrimRight(l, " \n"))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("table output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestJSONPrinter(t *testing.T) {
	var buf bytes.Buffer
	p := &jsonPrinter{w: &buf}
	if err := p.put(&kvpb.PutResponse{Header: &kvpb.ResponseHeader{Revision: 9, NodeId: "n1"}}); err != nil {
		t.Fatalf("put = %v", err)
	}
	// Stable names, unpopulated fields present, int64 as strings, and
	// deterministic indentation.
	want := `{
  "header": {
    "revision": "9",
    "node_id": "n1",
    "raft_term": "0"
  },
  "prev_kv": null
}
`
	if buf.String() != want {
		t.Errorf("put -o json:\n%s\nwant:\n%s", buf.String(), want)
	}

	buf.Reset()
	if err := p.get(&kvpb.GetResponse{Found: true, Kv: &kvpb.KeyValue{Key: []byte{0xff}, Value: []byte("v")}}); err != nil {
		t.Fatalf("get = %v", err)
	}
	for _, want := range []string{`"key": "/w=="`, `"value": "dg=="`, `"create_revision": "0"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("get -o json = %s, want it to contain %s", buf.String(), want)
		}
	}
}
