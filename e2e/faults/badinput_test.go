//go:build e2e

package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

// rawKV returns a KV client on one node with no retries and no size limit
// of its own, so the server's answers reach the test unchanged.
func rawKV(t *testing.T, addr string) kvpb.KVClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatalf("grpc client for %s: %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return kvpb.NewKVClient(cc)
}

// lastIndexes returns every node's last raft log index, and a string of
// every node's term to tell an election apart from an appended request.
func lastIndexes(t *testing.T, c *cluster) ([]uint64, string) {
	t.Helper()
	var idx, terms []uint64
	for i := range c.nodes {
		st, err := c.status(i)
		if err != nil {
			t.Fatalf("status of %s: %v", c.nodes[i].id, err)
		}
		idx = append(idx, st.GetLastLogIndex())
		terms = append(terms, st.GetTerm())
	}
	return idx, fmt.Sprint(terms)
}

// settle waits until no node's last log index moves for a second (member
// registration and the first read barrier of a term append entries).
func settle(t *testing.T, c *cluster) []uint64 {
	t.Helper()
	var prev []uint64
	stableSince := time.Now()
	err := eventually(20*time.Second, func() error {
		cur, _ := lastIndexes(t, c)
		if fmt.Sprint(cur) != fmt.Sprint(prev) {
			prev, stableSince = cur, time.Now()
		}
		if time.Since(stableSince) < 500*time.Millisecond {
			return fmt.Errorf("log indexes still moving: %v", cur)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return prev
}

// healthy checks that every running node answers Status and that a write
// and a linearizable read go through.
func healthy(t *testing.T, c *cluster) {
	t.Helper()
	for i := range c.nodes {
		if !c.running(i) {
			continue
		}
		if _, err := c.status(i); err != nil {
			t.Fatalf("%s unhealthy: %v", c.nodes[i].id, err)
		}
	}
	if err := probeWrite(c); err != nil {
		t.Fatalf("cluster takes no writes: %v", err)
	}
}

// TestBadInput sends invalid requests to a follower and to the leader and
// asserts the exact gRPC code, that no raft entry was appended on any node,
// and that the cluster stays healthy.
func TestBadInput(t *testing.T) {
	c := newCluster(t, seed(t), testLogger(t), nodeArgs...)
	l := c.mustLeader()
	f := c.others(l)[0]
	ctx := context.Background()

	// The first linearizable read of a term appends a barrier: do it now,
	// then wait for the log to be still.
	for i := range c.nodes {
		if _, err := rawKV(t, c.nodes[i].grpcAddr).Get(ctx, &kvpb.GetRequest{Key: []byte("warm-up")}); err != nil {
			t.Fatalf("warm-up read on %s: %v", c.nodes[i].id, err)
		}
	}
	settle(t, c)

	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	ops := func(n int) []*kvpb.RequestOp {
		var o []*kvpb.RequestOp
		for i := range n {
			o = append(o, client.OpPut([]byte(fmt.Sprintf("t%d", i)), []byte("v")))
		}
		return o
	}
	cmps := func(n int) []*kvpb.Compare {
		var o []*kvpb.Compare
		for i := range n {
			o = append(o, client.CompareExists([]byte(fmt.Sprintf("t%d", i)), false))
		}
		return o
	}
	rejected := []struct {
		name string
		call func(kvpb.KVClient) error
		want codes.Code
	}{
		{"empty key put", func(kv kvpb.KVClient) error {
			_, err := kv.Put(ctx, &kvpb.PutRequest{Key: nil, Value: []byte("v")})
			return err
		}, codes.InvalidArgument},
		{"empty key get", func(kv kvpb.KVClient) error {
			_, err := kv.Get(ctx, &kvpb.GetRequest{})
			return err
		}, codes.InvalidArgument},
		{"key one byte over the limit", func(kv kvpb.KVClient) error {
			_, err := kv.Put(ctx, &kvpb.PutRequest{Key: big(4097), Value: []byte("v")})
			return err
		}, codes.InvalidArgument},
		{"value one byte over 1 MiB", func(kv kvpb.KVClient) error {
			_, err := kv.Put(ctx, &kvpb.PutRequest{Key: []byte("k"), Value: big(1<<20 + 1)})
			return err
		}, codes.InvalidArgument},
		{"5 MiB message", func(kv kvpb.KVClient) error {
			_, err := kv.Put(ctx, &kvpb.PutRequest{Key: []byte("k"), Value: big(5 << 20)})
			return err
		}, codes.ResourceExhausted},
		{"txn with too many ops", func(kv kvpb.KVClient) error {
			_, err := kv.Txn(ctx, &kvpb.TxnRequest{Success: ops(129)})
			return err
		}, codes.InvalidArgument},
		{"txn with too many compares", func(kv kvpb.KVClient) error {
			_, err := kv.Txn(ctx, &kvpb.TxnRequest{Compare: cmps(129)})
			return err
		}, codes.InvalidArgument},
		{"txn with an empty op", func(kv kvpb.KVClient) error {
			_, err := kv.Txn(ctx, &kvpb.TxnRequest{Success: []*kvpb.RequestOp{{}}})
			return err
		}, codes.InvalidArgument},
		{"compare without a target", func(kv kvpb.KVClient) error {
			_, err := kv.Txn(ctx, &kvpb.TxnRequest{Compare: []*kvpb.Compare{{Key: []byte("k"), Result: kvpb.Compare_EQUAL}}})
			return err
		}, codes.InvalidArgument},
		{"unknown consistency", func(kv kvpb.KVClient) error {
			_, err := kv.Get(ctx, &kvpb.GetRequest{Key: []byte("k"), Consistency: 99})
			return err
		}, codes.InvalidArgument},
	}
	for _, target := range []int{f, l} {
		kv := rawKV(t, c.nodes[target].grpcAddr)
		role := "follower"
		if target == l {
			role = "leader"
		}
		for _, tc := range rejected {
			t.Run(role+"/"+tc.name, func(t *testing.T) {
				// An election (under heavy machine load) appends a no-op
				// on its own: then the case is repeated, up to 3 times.
				for attempt := 1; ; attempt++ {
					before, termsBefore := lastIndexes(t, c)
					err := tc.call(kv)
					if got := status.Code(err); got != tc.want {
						t.Fatalf("code %v (%v), want %v", got, err, tc.want)
					}
					after, termsAfter := lastIndexes(t, c)
					if fmt.Sprint(after) == fmt.Sprint(before) {
						break
					}
					if termsAfter == termsBefore || attempt == 3 {
						t.Fatalf("raft last index moved from %v to %v (terms %s -> %s): a rejected request was appended", before, after, termsBefore, termsAfter)
					}
					t.Logf("terms changed %s -> %s during the case (an election), repeating it", termsBefore, termsAfter)
					settle(t, c)
				}
			})
		}
	}

	t.Run("limits accepted", func(t *testing.T) {
		kv := rawKV(t, c.nodes[f].grpcAddr)
		if _, err := kv.Put(ctx, &kvpb.PutRequest{Key: big(4096), Value: []byte("v")}); err != nil {
			t.Fatalf("key at the 4 KiB limit: %v, want OK", err)
		}
		if _, err := kv.Put(ctx, &kvpb.PutRequest{Key: []byte("big-value"), Value: big(1 << 20)}); err != nil {
			t.Fatalf("value at 1 MiB: %v, want OK", err)
		}
		if _, err := kv.Txn(ctx, &kvpb.TxnRequest{Compare: cmps(128), Success: ops(128)}); err != nil {
			t.Fatalf("txn at 128 compares and ops: %v, want OK", err)
		}
	})

	t.Run("binary keys round-trip", func(t *testing.T) {
		kv := rawKV(t, c.nodes[f].grpcAddr)
		for _, k := range [][]byte{{0x00}, {0xff}, {'a', 0x00, 'b', 0xff}, {0xff, 0xff, 0x00}} {
			v := append([]byte{0x00, 0xff}, k...)
			if _, err := kv.Put(ctx, &kvpb.PutRequest{Key: k, Value: v}); err != nil {
				t.Fatalf("put %q: %v", k, err)
			}
			for i := range c.nodes {
				got, err := rawKV(t, c.nodes[i].grpcAddr).Get(ctx, &kvpb.GetRequest{Key: k})
				if err != nil || !got.GetFound() || !bytes.Equal(got.GetKv().GetKey(), k) || !bytes.Equal(got.GetKv().GetValue(), v) {
					t.Fatalf("get %q on %s = %v, %v; want key and value byte-exact", k, c.nodes[i].id, got, err)
				}
			}
		}
		rr, err := kv.Range(ctx, &kvpb.RangeRequest{Key: []byte{0xff}, Prefix: true})
		if err != nil || len(rr.GetKvs()) != 2 {
			t.Fatalf("range prefix 0xff = %v, %v; want the 2 keys starting with 0xff", rr, err)
		}
	})
	healthy(t, c)
}

// TestGarbageConnections throws random bytes, an HTTP/1 request and
// half-open connections at every node's gRPC and raft ports: no panic, the
// goroutine count returns near its baseline once the connections close, and
// the cluster stays healthy.
func TestGarbageConnections(t *testing.T) {
	c := newCluster(t, seed(t), testLogger(t), nodeArgs...)
	goroutines := func(i int) int64 {
		st, err := c.status(i)
		if err != nil {
			t.Fatalf("status of %s: %v", c.nodes[i].id, err)
		}
		return st.GetGoroutines()
	}
	var baseline []int64
	for i := range c.nodes {
		baseline = append(baseline, goroutines(i))
	}
	junk := make([]byte, 64<<10)
	_, _ = rand.Read(junk)
	http1 := []byte("GET / HTTP/1.1\r\nHost: raftkv\r\nUser-Agent: faults\r\n\r\n")
	payloads := map[string][]byte{
		"random bytes":             junk,
		"http/1 request":           http1,
		"raft rpc type then junk":  append([]byte{0}, junk[:4096]...),
		"huge length prefix":       {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
		"grpc preface then junk":   append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), junk[:4096]...),
		"install snapshot garbage": append([]byte{2}, junk[:8192]...),
	}
	for i, p := range c.nodes {
		for _, port := range []struct{ name, addr string }{{"grpc", p.grpcAddr}, {"raft", p.raftAddr}} {
			for name, b := range payloads {
				for range 5 {
					conn, err := net.DialTimeout("tcp", port.addr, time.Second)
					if err != nil {
						t.Fatalf("dial %s %s port: %v", p.id, port.name, err)
					}
					_ = conn.SetDeadline(time.Now().Add(300 * time.Millisecond))
					_, _ = conn.Write(b)
					_, _ = io.Copy(io.Discard, conn) // whatever it answers, until the deadline or a close
					conn.Close()
				}
				_ = name
			}
			// Half-open: connect, send nothing, keep 50 connections open
			// while checking the node still serves, then abandon them.
			var held []net.Conn
			for range 50 {
				conn, err := net.DialTimeout("tcp", port.addr, time.Second)
				if err != nil {
					t.Fatalf("dial %s %s port: %v", p.id, port.name, err)
				}
				held = append(held, conn)
			}
			if _, err := c.status(i); err != nil {
				t.Fatalf("%s does not answer with 50 idle connections on its %s port: %v", p.id, port.name, err)
			}
			for _, conn := range held {
				conn.Close()
			}
		}
	}
	healthy(t, c)
	// Every connection is closed now; goroutines must come back down.
	for i, p := range c.nodes {
		err := eventually(20*time.Second, func() error {
			if g := goroutines(i); g > baseline[i]+30 {
				return fmt.Errorf("%s has %d goroutines, baseline %d", p.id, g, baseline[i])
			}
			return nil
		})
		if err != nil {
			t.Errorf("goroutine leak: %v", err)
		}
	}
	problems, err := c.logProblems()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("node log: %s", p)
	}
	for i := range c.nodes {
		if err := c.stop(i); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
}

// TestCorruptRaftLog damages a stopped follower's raft.db (truncated, then
// both bbolt meta pages overwritten): the node must refuse to start with a
// clear error, never start empty, while the other two keep serving; with
// the file restored it rejoins.
func TestCorruptRaftLog(t *testing.T) {
	c := newCluster(t, seed(t), testLogger(t), nodeArgs...)
	w, err := startWorkload(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(3 * time.Second)
	w.stop()
	l := c.mustLeader()
	f := c.others(l)[0]
	if err := c.stop(f); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(c.nodes[f].dataDir, "raft", "raft.db")
	orig, err := os.ReadFile(db)
	if err != nil {
		t.Fatalf("read raft.db: %v", err)
	}
	damages := []struct {
		name   string
		damage func([]byte) []byte
	}{
		// raft.db is preallocated with zeros past bbolt's last page, so
		// cut a third of the part in use, not of the file.
		{"truncated", func(b []byte) []byte { return b[:len(bytes.TrimRight(b, "\x00"))/3] }},
		{"truncated to one page", func(b []byte) []byte { return b[:4096] }},
		{"both meta pages corrupted", func(b []byte) []byte {
			d := bytes.Clone(b)
			// bbolt keeps two meta pages, pages 0 and 1; overwrite the
			// body of each (after the 16-byte page header).
			for _, page := range []int{0, 1} {
				off := page*pageSize(b) + 16
				copy(d[off:off+64], bytes.Repeat([]byte{0xa5}, 64))
			}
			return d
		}},
	}
	for _, dmg := range damages {
		t.Run(dmg.name, func(t *testing.T) {
			if err := os.WriteFile(db, dmg.damage(orig), 0o600); err != nil {
				t.Fatal(err)
			}
			c.start(f)
			st, err := c.waitExit(f, startTimeout)
			if err != nil {
				c.signal(f, 9)
				_, _ = c.waitExit(f, exitTimeout)
				t.Fatalf("%s started on a damaged raft.db (%v): it must refuse", c.nodes[f].id, err)
			}
			if st.ExitCode() != 1 {
				t.Errorf("exit status %v, want 1 (a start error)", st)
			}
			logText := readLog(c, f)
			lastStart := logText[strings.LastIndex(logText, "=== start"):]
			if !strings.Contains(lastStart, "raft") || !strings.Contains(lastStart, "start node") {
				t.Errorf("no clear start error naming the raft log in the node's output:\n%s", lastStart)
			}
			// The other two keep serving.
			if err := probeWrite(c); err != nil {
				t.Fatalf("the healthy majority takes no writes: %v", err)
			}
		})
	}
	if err := os.WriteFile(db, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(f)
	if _, _, err := c.converge(); err != nil {
		t.Fatalf("after restoring raft.db: %v", err)
	}
	for i := range c.nodes {
		if err := c.stop(i); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
}

// pageSize reads bbolt's page size from meta page 0 (offset 24: the meta's
// page_size field after magic and version), falling back to 4 KiB.
func pageSize(b []byte) int {
	if len(b) < 32 {
		return 4096
	}
	ps := int(uint32(b[24]) | uint32(b[25])<<8 | uint32(b[26])<<16 | uint32(b[27])<<24)
	if ps < 512 || ps > 1<<16 {
		return 4096
	}
	return ps
}

// TestCorruptSnapshot flips one byte in the newest raft snapshot of a
// stopped follower: the node must either refuse to start with an error that
// names the snapshot, or start and converge to the same state as the others.
// It must never run on partial state.
func TestCorruptSnapshot(t *testing.T) {
	c := newCluster(t, seed(t), testLogger(t), nodeArgs...)
	w, err := startWorkload(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	l := c.mustLeader()
	f := c.others(l)[0]
	err = eventually(40*time.Second, func() error {
		st, err := c.status(f)
		if err != nil {
			return err
		}
		if st.GetLastSnapshotIndex() == 0 {
			return fmt.Errorf("%s has no snapshot yet", c.nodes[f].id)
		}
		return nil
	})
	w.stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.stop(f); err != nil {
		t.Fatal(err)
	}
	snaps, err := filepath.Glob(filepath.Join(c.nodes[f].dataDir, "raft", "snapshots", "*", "state.bin"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no snapshot on disk: %v", err)
	}
	// Snapshot ids are term-index-millis; the newest has the highest.
	newest, best := "", [3]uint64{}
	for _, p := range snaps {
		var id [3]uint64
		if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d-%d-%d", &id[0], &id[1], &id[2]); err != nil {
			continue
		}
		if newest == "" || id[0] > best[0] || id[0] == best[0] && (id[1] > best[1] || id[1] == best[1] && id[2] > best[2]) {
			newest, best = p, id
		}
	}
	if newest == "" {
		t.Fatalf("no snapshot id parses among %v", snaps)
	}
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(newest, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped a byte in %s", newest)
	c.start(f)
	// Wait until the node either exited or converged with the others.
	convErr := eventually(convergeTimeout, func() error {
		if !c.running(f) {
			return nil
		}
		_, _, err := c.convergedOnce()
		return err
	})
	switch {
	case !c.running(f):
		// Refused to start: the output must say why.
		logText := readLog(c, f)
		lastStart := logText[strings.LastIndex(logText, "=== start"):]
		if !strings.Contains(lastStart, "snapshot") {
			t.Fatalf("%s exited without naming the snapshot:\n%s", c.nodes[f].id, lastStart)
		}
		t.Logf("%s refused to start on the corrupt snapshot (fail loudly)", c.nodes[f].id)
		if err := probeWrite(c); err != nil {
			t.Fatalf("the healthy majority takes no writes: %v", err)
		}
	default:
		if convErr != nil {
			t.Fatalf("%s started on a corrupt snapshot and did not converge: %v", c.nodes[f].id, convErr)
		}
		t.Logf("%s fell back and converged", c.nodes[f].id)
	}
	for i := range c.nodes {
		if c.running(i) {
			if err := c.stop(i); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
	}
}
