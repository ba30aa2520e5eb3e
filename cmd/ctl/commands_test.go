package main

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/raftkv/raftkv/api/kvpb"
)

// TestCommands drives every command end to end against an in-process gRPC
// server. Steps run in order on one server and build on each other.
func TestCommands(t *testing.T) {
	s := startMemServer(t)
	ep := s.addr
	dead := deadAddr(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	steps := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStdout []string // substrings, in any order
		wantStderr string
		check      func(t *testing.T, stdout string) // optional, for JSON
	}{
		{name: "put", args: []string{"--endpoints", ep, "put", "foo", "bar"},
			wantStdout: []string{"OK (revision 1)"}},
		{name: "put with global flags after the command", args: []string{"put", "foo", "bar2", "--prev-kv", "--endpoints", ep},
			wantStdout: []string{"OK (revision 2)", "previous:", "bar"}},
		{name: "get", args: []string{"--endpoints", ep, "get", "foo"},
			wantStdout: []string{"KEY", "VALUE", "MOD_REV", "foo", "bar2"}},
		{name: "get value only", args: []string{"--endpoints", ep, "get", "foo", "--print-value-only", "--consistency", "serializable"},
			check: func(t *testing.T, out string) {
				if out != "bar2\n" {
					t.Errorf("stdout = %q, want %q", out, "bar2\n")
				}
			}},
		{name: "get json", args: []string{"--endpoints", ep, "-o", "json", "get", "foo"},
			check: func(t *testing.T, out string) {
				var got struct {
					Found bool `json:"found"`
					Kv    struct {
						Key            string `json:"key"`
						Value          string `json:"value"`
						CreateRevision string `json:"create_revision"`
						Version        string `json:"version"`
					} `json:"kv"`
				}
				mustJSON(t, out, &got)
				if !got.Found || got.Kv.Key != b64("foo") || got.Kv.Value != b64("bar2") || got.Kv.CreateRevision != "1" || got.Kv.Version != "2" {
					t.Errorf("get -o json = %+v, want found foo=bar2 (base64) at create_revision \"1\", version \"2\"", got)
				}
			}},
		{name: "get missing", args: []string{"--endpoints", ep, "get", "nope"},
			wantCode: exitNotFound, wantStderr: "key not found",
			check: func(t *testing.T, out string) {
				if out != "" {
					t.Errorf("stdout = %q, want nothing for a missing key", out)
				}
			}},
		{name: "get missing json", args: []string{"--endpoints", ep, "-o", "json", "get", "nope"},
			wantCode: exitNotFound, wantStderr: "key not found",
			check: func(t *testing.T, out string) {
				var got map[string]any
				mustJSON(t, out, &got)
				if got["found"] != false || got["kv"] != nil {
					t.Errorf("get -o json of a missing key = %v, want found false and kv null", got)
				}
			}},
		{name: "put from stdin", stdin: "\x00\x01bin", args: []string{"--endpoints", ep, "put", "bin", "-"},
			wantStdout: []string{"OK"}},
		{name: "binary value escaped in table", args: []string{"--endpoints", ep, "get", "bin"},
			wantStdout: []string{`"\x00\x01bin"`}},
		{name: "dash key after --", args: []string{"--endpoints", ep, "put", "--", "-dash", "v"},
			wantStdout: []string{"OK"}},
		{name: "put a/1", args: []string{"--endpoints", ep, "put", "a/1", "one"}},
		{name: "put a/2", args: []string{"--endpoints", ep, "put", "a/2", "two"}},
		{name: "scan prefix", args: []string{"--endpoints", ep, "scan", "a/"},
			wantStdout: []string{"a/1", "one", "a/2", "two"},
			check: func(t *testing.T, out string) {
				if strings.Contains(out, "foo") || strings.Contains(out, "shown") {
					t.Errorf("scan a/ = %q, want only a/ keys and no limit note", out)
				}
			}},
		{name: "scan limit", args: []string{"--endpoints", ep, "scan", "a/", "--limit", "1"},
			wantStdout: []string{"a/1", "(1 of 2 keys shown; raise --limit to see more)"}},
		{name: "scan all keys only", args: []string{"--endpoints", ep, "scan", "--keys-only"},
			wantStdout: []string{"-dash", "a/1", "a/2", "bin", "foo"},
			check: func(t *testing.T, out string) {
				if strings.Contains(out, "one") {
					t.Errorf("scan --keys-only = %q, want no values", out)
				}
			}},
		{name: "scan count only", args: []string{"--endpoints", ep, "scan", "--count-only"},
			check: func(t *testing.T, out string) {
				if out != "5\n" {
					t.Errorf("scan --count-only = %q, want %q", out, "5\n")
				}
			}},
		{name: "scan range end without start", args: []string{"--endpoints", ep, "scan", "--range-end", "b", "--keys-only"},
			wantStdout: []string{"-dash", "a/2"},
			check: func(t *testing.T, out string) {
				if strings.Contains(out, "foo") {
					t.Errorf("scan --range-end b = %q, want no key >= b", out)
				}
			}},
		{name: "scan json", args: []string{"--endpoints", ep, "-o", "json", "scan", "a/", "--limit", "1"},
			check: func(t *testing.T, out string) {
				var got struct {
					Kvs   []map[string]any `json:"kvs"`
					More  bool             `json:"more"`
					Count string           `json:"count"`
				}
				mustJSON(t, out, &got)
				if len(got.Kvs) != 1 || !got.More || got.Count != "2" {
					t.Errorf("scan -o json = %+v, want 1 kv, more, count \"2\"", got)
				}
			}},
		{name: "txn succeeds", args: []string{"--endpoints", ep, "txn", "foo", "baz", "--if-value", "bar2"},
			wantStdout: []string{"SUCCEEDED"}},
		{name: "txn fails and shows the current value", args: []string{"--endpoints", ep, "txn", "foo", "qux", "--if-value", "bar2"},
			wantStdout: []string{"FAILED", "foo", "baz"}},
		{name: "txn fails json", args: []string{"--endpoints", ep, "-o", "json", "txn", "foo", "qux", "--if-version", "1"},
			check: func(t *testing.T, out string) {
				var got struct {
					Succeeded bool             `json:"succeeded"`
					Responses []map[string]any `json:"responses"`
				}
				mustJSON(t, out, &got)
				if got.Succeeded || len(got.Responses) != 1 || got.Responses[0]["response_range"] == nil {
					t.Errorf("txn -o json = %+v, want succeeded false and one response_range", got)
				}
			}},
		{name: "txn if missing", args: []string{"--endpoints", ep, "txn", "new", "v", "--if-missing"},
			wantStdout: []string{"SUCCEEDED"}},
		{name: "txn if missing on an existing key", args: []string{"--endpoints", ep, "txn", "new", "w", "--if-missing"},
			wantStdout: []string{"FAILED", "new"}},
		{name: "del prefix", args: []string{"--endpoints", ep, "del", "a/", "--prefix"},
			check: func(t *testing.T, out string) {
				if out != "2\n" {
					t.Errorf("del --prefix = %q, want %q", out, "2\n")
				}
			}},
		{name: "del range with prev kv", args: []string{"--endpoints", ep, "del", "f", "--range-end", "g", "--prev-kv"},
			wantStdout: []string{"1\n", "foo", "baz"}},
		{name: "del json", args: []string{"--endpoints", ep, "-o", "json", "del", "new"},
			check: func(t *testing.T, out string) {
				var got map[string]any
				mustJSON(t, out, &got)
				if got["deleted"] != "1" {
					t.Errorf("del -o json = %v, want deleted \"1\"", got)
				}
			}},
		{name: "status with one dead endpoint", args: []string{"--endpoints", ep + "," + dead, "status"},
			wantStdout: []string{"ENDPOINT", ep, "n1", "Leader", "1.5 MiB", dead, "Unavailable"}},
		{name: "status json", args: []string{"--endpoints", ep + "," + dead, "-o", "json", "status"},
			check: func(t *testing.T, out string) {
				var got []struct {
					Endpoint string          `json:"endpoint"`
					Status   json.RawMessage `json:"status"`
					Error    string          `json:"error"`
				}
				mustJSON(t, out, &got)
				if len(got) != 2 {
					t.Fatalf("status -o json has %d rows, want 2: %s", len(got), out)
				}
				var st0 map[string]any
				mustJSON(t, string(got[0].Status), &st0)
				if got[0].Endpoint != ep || got[0].Error != "" || st0["raft_state"] != "Leader" || st0["key_count"] != "2" {
					t.Errorf("status row 0 = %s %s %q, want %s with a snake_case status and no error", got[0].Endpoint, got[0].Status, got[0].Error, ep)
				}
				if got[1].Endpoint != dead || string(got[1].Status) != "null" || got[1].Error == "" {
					t.Errorf("status row 1 = %s %s %q, want %s with status null and an error", got[1].Endpoint, got[1].Status, got[1].Error, dead)
				}
			}},
		{name: "status with every endpoint dead", args: []string{"--endpoints", dead, "status"},
			wantCode: exitError, wantStdout: []string{dead}, wantStderr: "all 1 endpoints failed"},
		{name: "member list", args: []string{"--endpoints", ep, "member", "list"},
			wantStdout: []string{"RAFT_ADDR", "n1", "n2", "Voter", "*"}},
		{name: "member list json", args: []string{"--endpoints", ep, "-o", "json", "member", "list"},
			check: func(t *testing.T, out string) {
				var got struct {
					Members []struct {
						ID       string `json:"id"`
						IsLeader bool   `json:"is_leader"`
					} `json:"members"`
				}
				mustJSON(t, out, &got)
				if len(got.Members) != 2 || !got.Members[0].IsLeader || got.Members[1].IsLeader {
					t.Errorf("member list -o json = %+v, want n1 leader and n2 not", got)
				}
			}},
		{name: "put with ttl", args: []string{"--endpoints", ep, "put", "--ttl", "1h", "ttlkey", "v"},
			wantStdout: []string{"OK (revision"}},
		{name: "get shows the remaining ttl", args: []string{"--endpoints", ep, "get", "ttlkey"},
			wantStdout: []string{"TTL", "ttlkey"},
			check: func(t *testing.T, out string) {
				if !strings.Contains(out, "1h0m0s") && !strings.Contains(out, "59m59.") {
					t.Errorf("stdout = %q, want a remaining TTL of about 1h", out)
				}
			}},
		{name: "get json shows expire_at_unix_ms and parses as the proto", args: []string{"--endpoints", ep, "-o", "json", "get", "ttlkey"},
			check: func(t *testing.T, out string) {
				var got kvpb.GetResponse
				if err := protojson.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("get -o json is not a GetResponse: %v\n%s", err, out)
				}
				at := time.UnixMilli(got.GetKv().GetExpireAtUnixMs())
				if d := time.Until(at); d < 59*time.Minute || d > time.Hour {
					t.Errorf("expire_at_unix_ms %d is %v ahead, want about 1h", got.GetKv().GetExpireAtUnixMs(), d)
				}
			}},
		{name: "put without ttl clears it", args: []string{"--endpoints", ep, "-o", "json", "put", "ttlkey", "v2"}},
		{name: "get json after clearing", args: []string{"--endpoints", ep, "-o", "json", "get", "ttlkey"},
			wantStdout: []string{`"expire_at_unix_ms": "0"`}},
		{name: "negative ttl", args: []string{"--endpoints", ep, "put", "--ttl", "-1s", "k", "v"},
			wantCode: exitUsage, wantStderr: "--ttl"},
		{name: "unreachable cluster", args: []string{"--endpoints", dead, "--timeout", "200ms", "get", "foo"},
			wantCode: exitError, wantStderr: "deadline exceeded"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, stdout, stderr := ctl(t, st.stdin, st.args...)
			t.Logf("raftkvctl %s\nstdout:\n%sstderr:\n%s", strings.Join(st.args, " "), stdout, stderr)
			if code != st.wantCode {
				t.Fatalf("raftkvctl %s: exit code %d, want %d\nstdout: %s\nstderr: %s",
					strings.Join(st.args, " "), code, st.wantCode, stdout, stderr)
			}
			for _, want := range st.wantStdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout = %q, want it to contain %q", stdout, want)
				}
			}
			if !strings.Contains(stderr, st.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, st.wantStderr)
			}
			if st.check != nil {
				st.check(t, stdout)
			}
		})
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("stdout is not the expected JSON: %v\n%s", err, s)
	}
}
