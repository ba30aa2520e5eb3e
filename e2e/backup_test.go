//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// Exit codes of raftkvctl's backup commands (cmd/ctl).
const (
	exitUsage    = 2
	exitNotFound = 3
	exitInvalid  = 4
	exitRefused  = 5
)

// newClient returns a Go client for endpoints, closed at the end of the test.
func newClient(t *testing.T, endpoints string) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Endpoints = strings.Split(endpoints, ",")
	cli, err := client.New(cfg)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// backupJSON is the part of `backup create|verify -o json` output the tests
// read.
type backupJSON struct {
	File   string `json:"file"`
	Backup struct {
		ID           string `json:"id"`
		ClusterID    string `json:"cluster_id"`
		AppliedIndex string `json:"applied_index"`
		RaftIndex    string `json:"raft_index"`
		KeyCount     string `json:"key_count"`
		Status       string `json:"status"`
	} `json:"backup"`
}

func parseBackupJSON(t *testing.T, out string) backupJSON {
	t.Helper()
	var b backupJSON
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("parse backup json: %v\n%s", err, out)
	}
	return b
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return n
}

// stateHash is one node's `raftkvctl hash` answer.
type stateHash struct {
	node    string
	applied int64
	sum     string
	keys    int64
}

func (c *procCluster) hashes(t *testing.T) ([]stateHash, error) {
	out, errOut, code := c.ctl(c.endpoints(), "-o", "json", "hash")
	var rows []struct {
		Endpoint string `json:"endpoint"`
		Hash     *struct {
			NodeID       string `json:"node_id"`
			AppliedIndex string `json:"applied_index"`
			Sha256       string `json:"sha256"`
			KeyCount     string `json:"key_count"`
		} `json:"hash"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return nil, fmt.Errorf("hash: exit %d: %v: %s %s", code, err, out, errOut)
	}
	var hs []stateHash
	for _, r := range rows {
		if r.Hash == nil {
			return nil, fmt.Errorf("hash at %s: %s", r.Endpoint, r.Error)
		}
		hs = append(hs, stateHash{node: r.Hash.NodeID, applied: atoi(t, r.Hash.AppliedIndex), sum: r.Hash.Sha256, keys: atoi(t, r.Hash.KeyCount)})
	}
	return hs, nil
}

// converged waits until every node reports the same state hash at the same
// applied index, and returns it.
func (c *procCluster) converged(t *testing.T) stateHash {
	t.Helper()
	var h stateHash
	eventually(t, "all nodes at one state hash", 30*time.Second, func() error {
		hs, err := c.hashes(t)
		if err != nil {
			return err
		}
		for _, x := range hs[1:] {
			if x.applied != hs[0].applied || x.sum != hs[0].sum {
				return fmt.Errorf("%s at %d %s, %s at %d %s", hs[0].node, hs[0].applied, hs[0].sum, x.node, x.applied, x.sum)
			}
		}
		h = hs[0]
		return nil
	})
	return h
}

// scanNode reads every key under prefix from node i's local state.
func (c *procCluster) scanNode(t *testing.T, i int, prefix string) []*kvpb.KeyValue {
	t.Helper()
	out := c.mustCtl(c.grpcAddr(i), "-o", "json", "scan", prefix, "--consistency", "serializable")
	var rr kvpb.RangeResponse
	if err := protojson.Unmarshal([]byte(out), &rr); err != nil {
		t.Fatalf("parse scan of node%d: %v\n%.300s", i, err, out)
	}
	return rr.GetKvs()
}

// ackedWrite is a put the cluster acknowledged, with its revision.
type ackedWrite struct {
	key, value string
	rev        int64
}

// TestBackupUnderLoadRestoreAndOfflineRestore: a backup taken under a
// steady write load holds every write acknowledged at or before its index
// and none after; restoring it online gives all three nodes exactly that
// data; seeding a fresh three-node cluster offline from it gives the same.
func TestBackupUnderLoadRestoreAndOfflineRestore(t *testing.T) {
	c := startCluster(t, 3)
	all := c.endpoints()
	cli := newClient(t, all)
	file := filepath.Join(t.TempDir(), "load.rkvbak")

	// Steady load: 4 writers, each putting its own keys, never overwriting.
	var mu sync.Mutex
	var acked []ackedWrite
	var unknown []string // keys whose put failed: may or may not be applied
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("load/w%d/%06d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := cli.Put(ctx, &kvpb.PutRequest{Key: []byte(k), Value: []byte(v)})
				cancel()
				mu.Lock()
				if err != nil {
					unknown = append(unknown, k)
				} else {
					acked = append(acked, ackedWrite{k, v, resp.GetHeader().GetRevision()})
				}
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, "200 writes before the backup", 30*time.Second, func() error {
		if n := count(); n < 200 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	out := c.mustCtl(all, "-o", "json", "backup", "create", "--out", file)
	b := parseBackupJSON(t, out)
	index := atoi(t, b.Backup.AppliedIndex)
	atBackup := count()
	eventually(t, "200 writes after the backup", 30*time.Second, func() error {
		if n := count() - atBackup; n < 200 {
			return fmt.Errorf("%d acknowledged since", n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	t.Logf("backup %s at applied index %d; %d writes acknowledged, %d unknown", b.Backup.ID, index, len(acked), len(unknown))

	// The file verifies offline, and says what the CLI said.
	vout, verr, code := c.ctl(all, "-o", "json", "backup", "verify", file)
	if code != 0 {
		t.Fatalf("backup verify: exit %d\n%s%s", code, vout, verr)
	}
	if v := parseBackupJSON(t, vout); v.Backup.ID != b.Backup.ID || v.Backup.KeyCount != b.Backup.KeyCount || v.Backup.Status != "verified" {
		t.Fatalf("verify: got %+v, want backup %s with %s keys, verified", v.Backup, b.Backup.ID, b.Backup.KeyCount)
	}

	// checkData checks node i holds exactly the writes at or below index.
	checkData := func(c *procCluster, i int) []*kvpb.KeyValue {
		t.Helper()
		kvs := c.scanNode(t, i, "load/")
		got := map[string]*kvpb.KeyValue{}
		for _, kv := range kvs {
			got[string(kv.GetKey())] = kv
			if kv.GetModRevision() > index {
				t.Fatalf("node%d holds %s at revision %d, after the backup's index %d", i, kv.GetKey(), kv.GetModRevision(), index)
			}
		}
		for _, w := range acked {
			kv, ok := got[w.key]
			switch {
			case w.rev <= index && !ok:
				t.Fatalf("node%d lacks %s, acknowledged at revision %d <= backup index %d", i, w.key, w.rev, index)
			case w.rev <= index && string(kv.GetValue()) != w.value:
				t.Fatalf("node%d: %s = %q, want %q", i, w.key, kv.GetValue(), w.value)
			case w.rev > index && ok:
				t.Fatalf("node%d holds %s, acknowledged at revision %d > backup index %d", i, w.key, w.rev, index)
			}
		}
		if int64(len(kvs)) != atoi(t, b.Backup.KeyCount) {
			t.Fatalf("node%d holds %d keys, the backup %s", i, len(kvs), b.Backup.KeyCount)
		}
		return kvs
	}

	// Online restore needs --yes and says what it will do.
	_, errOut, code := c.ctl(all, "backup", "restore", file)
	if code != exitUsage || !strings.Contains(errOut, "refusing to restore without --yes") || !strings.Contains(errOut, "is lost") {
		t.Fatalf("restore without --yes: exit %d, stderr %q; want %d, a refusal and the warning", code, errOut, exitUsage)
	}
	c.mustCtl(all, "backup", "restore", file, "--yes")
	// Linearizable reads work on every node right away: they wait for the
	// node's applied index to reach the leader's commit index, which the
	// restore moved past the backup's own index.
	for i := 1; i <= 3; i++ {
		out := c.mustCtl(c.grpcAddr(i), "scan", "load/", "--count-only")
		if !strings.Contains(out, b.Backup.KeyCount) {
			t.Fatalf("linearizable count on node%d right after the restore: %q, want %s", i, out, b.Backup.KeyCount)
		}
	}
	h := c.converged(t)
	var want []*kvpb.KeyValue
	for i := 1; i <= 3; i++ {
		kvs := checkData(c, i)
		if want == nil {
			want = kvs
		} else if !sameKVs(kvs, want) {
			t.Fatalf("node%d's data differs from node1's after the restore", i)
		}
	}
	// The cluster keeps working after the restore.
	c.mustCtl(all, "put", "after-restore", "yes")
	if got := strings.TrimSpace(c.mustCtl(all, "get", "after-restore", "--print-value-only")); got != "yes" {
		t.Fatalf("get after restore: %q", got)
	}

	// Offline restore into a fresh three-node cluster.
	fresh := newUnstartedCluster(t, 3)
	var initial []string
	for i := 1; i <= 3; i++ {
		initial = append(initial, fmt.Sprintf("node%d=127.0.0.1:%d", i, fresh.portBase+10*(i-1)+2))
	}
	for i := 1; i <= 3; i++ {
		c.mustCtl(all, "backup", "restore", file, "--data-dir", filepath.Join(fresh.dir, fmt.Sprintf("node%d", i)),
			"--id", fmt.Sprintf("node%d", i), "--initial-cluster", strings.Join(initial, ","))
	}
	// A second seed of the same dir is refused, and a broken file seeds nothing.
	if _, errOut, code := c.ctl(all, "backup", "restore", file, "--data-dir", filepath.Join(fresh.dir, "node1"),
		"--id", "node1", "--initial-cluster", strings.Join(initial, ",")); code != 1 || !strings.Contains(errOut, "data dir already holds raft state") {
		t.Fatalf("seeding a seeded dir: exit %d, stderr %q", code, errOut)
	}
	broken := writeVariant(t, file, func(b []byte) []byte { return b[:len(b)/2] })
	spare := filepath.Join(t.TempDir(), "spare")
	if _, errOut, code := c.ctl(all, "backup", "restore", broken, "--data-dir", spare, "--id", "node1",
		"--initial-cluster", strings.Join(initial, ",")); code != exitInvalid || !strings.Contains(errOut, "truncated") {
		t.Fatalf("seeding from a truncated file: exit %d, stderr %q; want %d and truncated", code, errOut, exitInvalid)
	}
	if _, err := os.Stat(spare); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed seed left %s behind", spare)
	}
	if out, err := fresh.script("up"); err != nil {
		t.Fatalf("start the seeded cluster: %v\n%s", err, out)
	}
	fh := fresh.converged(t)
	for i := 1; i <= 3; i++ {
		if kvs := checkData(fresh, i); !sameKVs(kvs, want) {
			t.Fatalf("seeded node%d's data differs from the online restore's", i)
		}
	}
	if fh.keys != h.keys {
		t.Fatalf("seeded cluster holds %d keys, the restored one %d", fh.keys, h.keys)
	}
	fresh.mustCtl(fresh.endpoints(), "put", "new-cluster", "works")
}

// dataDigests returns, per node, a digest of every key with its value and
// revisions, read from the node's local state.
func (c *procCluster) dataDigests(t *testing.T) [3]string {
	t.Helper()
	var out [3]string
	for i := 1; i <= 3; i++ {
		h := sha256.New()
		for _, kv := range c.scanNode(t, i, "") {
			fmt.Fprintf(h, "%q=%q c%d m%d v%d\n", kv.GetKey(), kv.GetValue(), kv.GetCreateRevision(), kv.GetModRevision(), kv.GetVersion())
		}
		out[i-1] = fmt.Sprintf("%x", h.Sum(nil))[:16]
	}
	return out
}

func sameKVs(a, b []*kvpb.KeyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].GetKey(), b[i].GetKey()) || !bytes.Equal(a[i].GetValue(), b[i].GetValue()) ||
			a[i].GetModRevision() != b[i].GetModRevision() || a[i].GetCreateRevision() != b[i].GetCreateRevision() {
			return false
		}
	}
	return true
}

// newUnstartedCluster prepares a cluster like startCluster without
// starting it, so its data dirs can be seeded first.
func newUnstartedCluster(t *testing.T, nodes int) *procCluster {
	t.Helper()
	root := repoRoot(t)
	bin := os.Getenv("RAFTKV_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	c := &procCluster{t: t, root: root, bin: bin, dir: t.TempDir(), nodes: nodes, portBase: freePortBase(t, nodes)}
	t.Cleanup(func() {
		if t.Failed() {
			for i := 1; i <= nodes; i++ {
				if b, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d.log", i))); err == nil {
					t.Logf("--- seeded node%d.log (last 4 KiB) ---\n%s", i, tail(b, 4096))
				}
			}
		}
		c.script("down")
	})
	return c
}

// writeVariant writes edit(the bytes of file) to a new file and returns its
// path.
func writeVariant(t *testing.T, file string, edit func([]byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "variant.rkvbak")
	if err := os.WriteFile(p, edit(bytes.Clone(b)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// foreignBackup builds, without any cluster, a valid backup of a cluster
// with id clusterID holding keys foreign/0..n-1.
func foreignBackup(t *testing.T, clusterID string, n int) string {
	t.Helper()
	f, err := fsm.New(fsm.Config{Dir: t.TempDir()}, fsm.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var logs []*raft.Log
	cmds := []*fsmpb.Command{{Op: &fsmpb.Command_SetClusterId{SetClusterId: &fsmpb.SetClusterID{Id: clusterID}}}}
	for i := 0; i < n; i++ {
		cmds = append(cmds, &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Key: []byte(fmt.Sprintf("foreign/%d", i)), Value: []byte("x")}}})
	}
	for i, cmd := range cmds {
		b, err := fsm.EncodeCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: b})
	}
	f.ApplyBatch(logs)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	p, err := backup.Prepare(bytes.NewReader(sink.Bytes()), backup.Info{ID: "foreign-backup", NodeID: "elsewhere", RaftIndex: uint64(len(logs)), RaftTerm: 1}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	path := filepath.Join(t.TempDir(), "foreign.rkvbak")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type bufSink struct{ bytes.Buffer }

func (s *bufSink) ID() string    { return "buf" }
func (s *bufSink) Cancel() error { return nil }
func (s *bufSink) Close() error  { return nil }

// TestBackupBadInput: every kind of bad backup, and an upload interrupted
// by killing the client, is refused with a clear error and the documented
// exit code, and leaves the cluster's data exactly as it was.
func TestBackupBadInput(t *testing.T) {
	c := startCluster(t, 3)
	all := c.endpoints()
	cli := newClient(t, all)

	// About 2 MiB of incompressible data, so the upload spans many chunks.
	for batch := 0; batch < 20; batch++ {
		var ops []*kvpb.RequestOp
		for i := 0; i < 100; i++ {
			v := make([]byte, 1024)
			rand.Read(v)
			ops = append(ops, client.OpPut([]byte(fmt.Sprintf("data/%02d/%03d", batch, i)), v))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := cli.Txn(ctx, &kvpb.TxnRequest{Success: ops}); err != nil {
			t.Fatalf("load batch %d: %v", batch, err)
		}
		cancel()
	}
	file := filepath.Join(t.TempDir(), "good.rkvbak")
	good := parseBackupJSON(t, c.mustCtl(all, "-o", "json", "backup", "create", "--out", file))
	c.converged(t)
	before := c.dataDigests(t)

	// unchanged checks every node still holds exactly the data it held
	// before: the same keys, values and revisions. (The state hash would
	// also cover member records, which gossip may legitimately update
	// meanwhile.)
	unchanged := func(what string) {
		t.Helper()
		c.converged(t)
		if now := c.dataDigests(t); now != before {
			t.Fatalf("%s changed the cluster's data: %v -> %v", what, before, now)
		}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	manifestLen := int(binary.BigEndian.Uint32(raw[12:16]))
	notBackup := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notBackup, []byte("these are my notes, not a backup\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		file    string
		code    int
		message string
	}{
		{"truncated file", writeVariant(t, file, func(b []byte) []byte { return b[:len(b)*2/3] }), exitInvalid, "backup is corrupt: truncated"},
		{"flipped payload byte", writeVariant(t, file, func(b []byte) []byte { b[len(b)-1000] ^= 0x20; return b }), exitInvalid, "backup is corrupt: payload sha256"},
		{"flipped manifest byte", writeVariant(t, file, func(b []byte) []byte { b[16+manifestLen/2] ^= 0x01; return b }), exitInvalid, "backup is corrupt: manifest checksum mismatch"},
		{"not a backup", notBackup, exitInvalid, "not a raftkv backup file"},
		{"newer format version", writeVariant(t, file, func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:12], 2); return b }), exitInvalid, "unsupported backup format version: file has format version 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := c.ctl(all, "backup", "verify", tc.file)
			if code != tc.code || !strings.Contains(errOut, tc.message) {
				t.Fatalf("backup verify: exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.message)
			}
			_, errOut, code = c.ctl(all, "backup", "restore", tc.file, "--yes")
			if code != tc.code || !strings.Contains(errOut, tc.message) {
				t.Fatalf("backup restore: exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.message)
			}
			unchanged(tc.name)
		})
	}
	// Damage only the leader can see: the client checks just the header of
	// a FILE, so it uploads these and the leader must refuse them. The same
	// bytes through stdin skip even the client's header check.
	t.Run("bad payload through stdin", func(t *testing.T) {
		bad := writeVariant(t, file, func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b })
		_, errOut, code := c.ctlStdin(all, bad, "backup", "restore", "-", "--yes")
		if code != exitInvalid || !strings.Contains(errOut, "BACKUP_INVALID") && !strings.Contains(errOut, "payload sha256") {
			t.Fatalf("restore from stdin: exit %d, stderr %q; want %d and a payload checksum error", code, errOut, exitInvalid)
		}
		unchanged("a bad payload through stdin")
	})
	t.Run("missing id", func(t *testing.T) {
		_, errOut, code := c.ctl(all, "backup", "restore", "20200101T000000Z-1-dead", "--yes")
		if code != exitNotFound || !strings.Contains(errOut, "not found on any endpoint") {
			t.Fatalf("restore of a missing id: exit %d, stderr %q", code, errOut)
		}
	})

	foreign := foreignBackup(t, "other-cluster", 10)
	t.Run("other cluster without force", func(t *testing.T) {
		if _, errOut, code := c.ctl(all, "backup", "verify", foreign); code != 0 {
			t.Fatalf("verify of a valid foreign backup: exit %d, %s", code, errOut)
		}
		_, errOut, code := c.ctl(all, "backup", "restore", foreign, "--yes")
		want := "backup foreign-backup is of cluster other-cluster, this cluster is " + good.Backup.ClusterID + "; use --force"
		if code != exitRefused || !strings.Contains(errOut, want) {
			t.Fatalf("restore of a foreign backup: exit %d, stderr %q; want %d and %q", code, errOut, exitRefused, want)
		}
		unchanged("a foreign backup without --force")
	})

	t.Run("upload interrupted by killing the client", func(t *testing.T) {
		leader := c.leader()
		dir := filepath.Join(c.dir, fmt.Sprintf("node%d", leader), "backups")
		x := exec.Command(filepath.Join(c.bin, "raftkvctl"), "--endpoints", all, "--timeout", "60s", "backup", "restore", "-", "--yes")
		stdin, err := x.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		x.Stderr = &stderr
		if err := x.Start(); err != nil {
			t.Fatal(err)
		}
		// Half the file, then nothing: the client waits for more.
		if _, err := stdin.Write(raw[:len(raw)/2]); err != nil {
			t.Fatal(err)
		}
		eventually(t, "leader receiving the upload", 20*time.Second, func() error {
			ms, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
			for _, m := range ms {
				if fi, err := os.Stat(m); err == nil && fi.Size() > 0 {
					return nil
				}
			}
			return fmt.Errorf("no upload file with data in %s yet", dir)
		})
		if err := x.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = x.Wait()
		stdin.Close()
		logFile := filepath.Join(c.dir, fmt.Sprintf("node%d.log", leader))
		eventually(t, "leader noticing the interrupted upload", 20*time.Second, func() error {
			b, _ := os.ReadFile(logFile)
			if !bytes.Contains(b, []byte("restore upload interrupted; nothing changed")) {
				return errors.New("not logged yet")
			}
			if ms, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(ms) > 0 {
				return fmt.Errorf("temp files left: %v", ms)
			}
			return nil
		})
		unchanged("an interrupted upload")
		// And the cluster still takes a restore afterwards (of the same
		// state, so nothing below changes).
	})

	t.Run("other cluster with force keeps this cluster's id", func(t *testing.T) {
		c.mustCtl(all, "backup", "restore", foreign, "--yes", "--force")
		h := c.converged(t)
		if h.keys != 10 {
			t.Fatalf("after a forced restore of a 10-key backup: %d keys", h.keys)
		}
		for i := 1; i <= 3; i++ {
			if kvs := c.scanNode(t, i, ""); len(kvs) != 10 || string(kvs[0].GetKey()) != "foreign/0" {
				t.Fatalf("node%d after the forced restore holds %d keys", i, len(kvs))
			}
		}
		var ls struct {
			Nodes []struct {
				Node struct {
					ClusterID string `json:"cluster_id"`
				} `json:"node"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(c.mustCtl(all, "-o", "json", "backup", "list")), &ls); err != nil {
			t.Fatal(err)
		}
		for _, n := range ls.Nodes {
			if n.Node.ClusterID != good.Backup.ClusterID {
				t.Fatalf("cluster id after a forced restore: %q, want this cluster's %q", n.Node.ClusterID, good.Backup.ClusterID)
			}
		}
	})
}

// ctlStdin runs raftkvctl with the file at path as its standard input.
func (c *procCluster) ctlStdin(endpoints, path string, args ...string) (string, string, int) {
	f, err := os.Open(path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	x := exec.CommandContext(ctx, filepath.Join(c.bin, "raftkvctl"), append([]string{"--endpoints", endpoints, "--timeout", "20s"}, args...)...)
	var stdout, stderr bytes.Buffer
	x.Stdin, x.Stdout, x.Stderr = f, &stdout, &stderr
	err = x.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		code = -1
	}
	return stdout.String(), stderr.String(), code
}

// TestScheduledBackupsWithRetention: with a 1s interval and retain 2 the
// leader keeps taking verified backups and never keeps more than two.
func TestScheduledBackupsWithRetention(t *testing.T) {
	c := startCluster(t, 3, "RAFTKV_BACKUP_INTERVAL=1s", "RAFTKV_BACKUP_RETAIN=2")
	all := c.endpoints()
	c.mustCtl(all, "put", "k", "v")
	seen := map[string]bool{}
	eventually(t, "five scheduled backups, at most two kept per node", 40*time.Second, func() error {
		var ls struct {
			Backups []struct {
				ID       string `json:"id"`
				Trigger  string `json:"trigger"`
				StoredOn string `json:"stored_on"`
				Status   string `json:"status"`
			} `json:"backups"`
		}
		out, errOut, code := c.ctl(all, "-o", "json", "backup", "list")
		if code != 0 {
			return fmt.Errorf("backup list: exit %d: %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &ls); err != nil {
			return err
		}
		perNode := map[string]int{}
		for _, b := range ls.Backups {
			if b.Trigger != backup.TriggerScheduled {
				continue
			}
			perNode[b.StoredOn]++
			// A new backup is stored before the oldest is pruned, so a
			// listing may catch retain+1 for a moment, never more.
			if perNode[b.StoredOn] > 3 {
				t.Fatalf("%s keeps more than 2 scheduled backups (+1 being pruned): %s", b.StoredOn, out)
			}
			if b.Status != "verified" {
				t.Fatalf("scheduled backup %s has status %q, want verified (each is verified after it is written)", b.ID, b.Status)
			}
			seen[b.ID] = true
		}
		if len(seen) < 5 {
			return fmt.Errorf("%d distinct scheduled backups seen so far", len(seen))
		}
		return nil
	})
	eventually(t, "at most two scheduled backups kept", 10*time.Second, func() error {
		var ls struct {
			Backups []struct {
				Trigger  string `json:"trigger"`
				StoredOn string `json:"stored_on"`
			} `json:"backups"`
		}
		out, errOut, code := c.ctl(all, "-o", "json", "backup", "list")
		if code != 0 {
			return fmt.Errorf("backup list: exit %d: %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &ls); err != nil {
			return err
		}
		perNode := map[string]int{}
		for _, b := range ls.Backups {
			if b.Trigger == backup.TriggerScheduled {
				perNode[b.StoredOn]++
			}
		}
		for n, k := range perNode {
			if k > 2 {
				return fmt.Errorf("%s keeps %d", n, k)
			}
		}
		if len(perNode) == 0 {
			return errors.New("no scheduled backups listed")
		}
		return nil
	})
	t.Logf("distinct scheduled backups seen: %d", len(seen))
}
