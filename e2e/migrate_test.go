//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
)

const migrateKeys = 100_000

// writeMigrateDump writes n records with binary values, empty values and
// keys that are not UTF-8 as a dump file, and returns them by key.
func writeMigrateDump(t *testing.T, path string, n int) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	want := make(map[string][]byte, n)
	var buf bytes.Buffer
	for i := range n {
		k := fmt.Appendf(nil, "mig/%06d", i)
		if i%101 == 0 {
			k = fmt.Appendf([]byte{'m', 'i', 'g', '/', 0xff, 0x00}, "%06d", i)
		}
		v := make([]byte, rng.IntN(300))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		want[string(k)] = v
		fmt.Fprintf(&buf, `{"key":"%s","value":"%s"}`+"\n", base64.StdEncoding.EncodeToString(k), base64.StdEncoding.EncodeToString(v))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return want
}

// checkpointCopied reads the copied count of a checkpoint file, or -1.
func checkpointCopied(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var ck struct {
		Copied int64 `json:"copied"`
	}
	if json.Unmarshal(b, &ck) != nil {
		return -1
	}
	return ck.Copied
}

// killMidway starts raftkvctl with args, waits until the checkpoint at ck
// shows at least after copied records, and kills it with SIGKILL.
func (c *procCluster) killMidway(t *testing.T, ck string, after int64, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(c.bin, "raftkvctl"), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for checkpointCopied(ck) < after {
		select {
		case err := <-exited:
			t.Fatalf("raftkvctl %v ended before it could be killed (%v):\n%s", args, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint %s never reached %d copied records", ck, after)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 raftkvctl: %v", err)
	}
	<-exited
	if n := checkpointCopied(ck); n >= migrateKeys {
		t.Fatalf("the migration was done (%d copied) before the kill: nothing to resume", n)
	}
}

// ctlLong runs raftkvctl without a --timeout, as a long migration runs,
// and returns stdout, stderr and the exit code.
func (c *procCluster) ctlLong(args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	x := exec.CommandContext(ctx, filepath.Join(c.bin, "raftkvctl"), args...)
	var stdout, stderr bytes.Buffer
	x.Stdout, x.Stderr = &stdout, &stderr
	err := x.Run()
	code := x.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		code = -1
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), code
}

// migrateSummary is the part of `-o json` the tests read.
type migrateSummary struct {
	Copied   int64 `json:"copied"`
	Failed   int64 `json:"failed"`
	Resumed  bool  `json:"resumed"`
	Verified bool  `json:"verified"`
}

func parseSummary(t *testing.T, out string) migrateSummary {
	t.Helper()
	var s migrateSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("parse migrate -o json output: %v\n%.1000s", err, out)
	}
	return s
}

// readAllKVs pages through prefix with the Go client.
func readAllKVs(t *testing.T, endpoints, prefix string) []*kvpb.KeyValue {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Endpoints = strings.Split(endpoints, ",")
	cfg.DialOptions = []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	cli, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var all []*kvpb.KeyValue
	start, end := []byte(prefix), append([]byte(prefix[:len(prefix)-1]), prefix[len(prefix)-1]+1)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := cli.Range(ctx, &kvpb.RangeRequest{Key: start, RangeEnd: end, Limit: 10000})
		cancel()
		if err != nil {
			t.Fatalf("range: %v", err)
		}
		all = append(all, resp.GetKvs()...)
		if !resp.GetMore() || len(resp.GetKvs()) == 0 {
			return all
		}
		start = append(bytes.Clone(resp.GetKvs()[len(resp.GetKvs())-1].GetKey()), 0)
	}
}

// TestMigrateKilledAndResumed imports 100k keys with raftkvctl, kills it
// with SIGKILL half way, and runs the same command again: the cluster ends
// up with exactly the dump's data, and no key was written twice (every
// version is 1). Then it exports the cluster, killed and resumed the same
// way, and checks the gzip dump against the cluster.
func TestMigrateKilledAndResumed(t *testing.T) {
	c := startCluster(t, 3)
	eps := c.endpoints()
	dir := t.TempDir()
	dump := filepath.Join(dir, "in.jsonl")
	want := writeMigrateDump(t, dump, migrateKeys)
	ck := filepath.Join(dir, "import.ck")
	base := []string{"--endpoints", eps, "import", dump, "--resume", ck}

	c.killMidway(t, ck, migrateKeys/4, append(base, "--rate", "20000")...)
	out, errOut, code := c.ctlLong(append(base, "--verify", "-o", "json")...)
	if code != 0 {
		t.Fatalf("resumed import: exit %d\n%s\n%s", code, out, errOut)
	}
	s := parseSummary(t, out)
	if !s.Resumed || !s.Verified || s.Copied != migrateKeys || s.Failed != 0 {
		t.Errorf("resumed import summary %+v, want resumed, verified, %d copied", s, migrateKeys)
	}
	kvs := readAllKVs(t, eps, "mig/")
	if len(kvs) != migrateKeys {
		t.Fatalf("cluster holds %d mig/ keys, want %d", len(kvs), migrateKeys)
	}
	twice := 0
	for _, kv := range kvs {
		v, ok := want[string(kv.GetKey())]
		if !ok || !bytes.Equal(v, kv.GetValue()) {
			t.Fatalf("key %q: value differs from the dump (in dump: %v)", kv.GetKey(), ok)
		}
		if kv.GetVersion() != 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Errorf("%d keys were written more than once (version > 1): the resume copied them twice", twice)
	}

	// A run after completion copies nothing.
	out, _, code = c.ctlLong(append(base, "-o", "json")...)
	if s := parseSummary(t, out); code != 0 || s.Copied != migrateKeys {
		t.Errorf("rerun of a finished import: exit %d, %+v", code, s)
	}

	// Export, killed and resumed: the gzip dump matches the cluster.
	exp := filepath.Join(dir, "out.jsonl.gz")
	eck := filepath.Join(dir, "export.ck")
	ebase := []string{"--endpoints", eps, "export", exp, "--prefix", "mig/", "--resume", eck}
	c.killMidway(t, eck, migrateKeys/4, append(ebase, "--rate", "20000")...)
	if out, errOut, code := c.ctlLong(ebase...); code != 0 {
		t.Fatalf("resumed export: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = c.ctlLong("--endpoints", eps, "migrate", "--from", "file:"+exp, "--to", "raftkv://", "--dry-run", "--verify", "-o", "json")
	if code != 0 || !parseSummary(t, out).Verified {
		t.Fatalf("verify the resumed export against the cluster: exit %d\n%s\n%s", code, out, errOut)
	}
}
