package fsm_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
)

func putTTLCmd(k, v string, at int64) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_Put{Put: &fsmpb.Put{Key: []byte(k), Value: []byte(v), ExpireAtUnixMs: at}}}
}

func opPutTTL(k, v string, at int64) *fsmpb.Op {
	return &fsmpb.Op{Op: &fsmpb.Op_Put{Put: putTTLCmd(k, v, at).GetPut()}}
}

func expireCmd(now int64, keys ...string) *fsmpb.Command {
	d := &fsmpb.DeleteExpired{NowUnixMs: now}
	for _, k := range keys {
		d.Keys = append(d.Keys, []byte(k))
	}
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteExpired{DeleteExpired: d}}
}

// expiryState renders every key with its expiry ("a=v@100", "b=v"), and
// the expiry index ("100:a"), in order.
func expiryState(t *testing.T, f *fsm.FSM) (keys, index string) {
	t.Helper()
	res, err := f.Range(&fsmpb.Range{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	var ks []string
	for _, kv := range res.KVs {
		s := fmt.Sprintf("%s=%s", kv.Key, kv.Value)
		if kv.ExpireAtUnixMs != 0 {
			s += fmt.Sprintf("@%d", kv.ExpireAtUnixMs)
		}
		ks = append(ks, s)
	}
	exp, err := f.Expired(math.MaxInt64, 0)
	if err != nil {
		t.Fatalf("Expired: %v", err)
	}
	var is []string
	for _, e := range exp {
		is = append(is, fmt.Sprintf("%d:%s", e.ExpireAtUnixMs, e.Key))
	}
	return strings.Join(ks, " "), strings.Join(is, " ")
}

func TestExpiryIndex(t *testing.T) {
	tests := []struct {
		name      string
		cmds      []*fsmpb.Command
		wantKeys  string
		wantIndex string
		// wantDeleted is the Deleted count of the last command, when it is
		// a DeleteExpired.
		wantDeleted int64
	}{
		{"put with expiry", []*fsmpb.Command{putTTLCmd("a", "1", 100)}, "a=1@100", "100:a", -1},
		{"put without expiry", []*fsmpb.Command{putCmd("a", "1")}, "a=1", "", -1},
		{"overwrite moves the expiry", []*fsmpb.Command{putTTLCmd("a", "1", 100), putTTLCmd("a", "2", 200)}, "a=2@200", "200:a", -1},
		{"overwrite without ttl clears it", []*fsmpb.Command{putTTLCmd("a", "1", 100), putCmd("a", "2")}, "a=2", "", -1},
		{"delete drops the expiry", []*fsmpb.Command{putTTLCmd("a", "1", 100), putTTLCmd("b", "1", 50), delCmd("a", "", false)}, "b=1@50", "50:b", -1},
		{"range delete drops expiries", []*fsmpb.Command{putTTLCmd("a", "1", 100), putTTLCmd("b", "1", 50), putTTLCmd("c", "1", 10), delCmd("a", "c", false)}, "c=1@10", "10:c", -1},
		{"txn puts carry expiries", []*fsmpb.Command{txnCmd(nil, []*fsmpb.Op{opPutTTL("a", "1", 300), opPut("b", "2", false), opPutTTL("c", "3", 100)}, nil)}, "a=1@300 b=2 c=3@100", "100:c 300:a", -1},
		{"txn overwrite in one entry keeps the last", []*fsmpb.Command{txnCmd(nil, []*fsmpb.Op{opPutTTL("a", "1", 300), opPutTTL("a", "2", 100)}, nil)}, "a=2@100", "100:a", -1},
		{"txn delete drops the expiry", []*fsmpb.Command{putTTLCmd("a", "1", 100), txnCmd(nil, []*fsmpb.Op{opDel("a", "", false)}, nil)}, "", "", -1},
		{"delete expired deletes due keys", []*fsmpb.Command{putTTLCmd("a", "1", 100), putTTLCmd("b", "1", 200), expireCmd(150, "a")}, "b=1@200", "200:b", 1},
		{"delete expired at exactly the expiry", []*fsmpb.Command{putTTLCmd("a", "1", 100), expireCmd(100, "a")}, "", "", 1},
		{"delete expired skips a key not yet due", []*fsmpb.Command{putTTLCmd("a", "1", 100), expireCmd(99, "a")}, "a=1@100", "100:a", 0},
		{"delete expired skips a key re-put with a later ttl", []*fsmpb.Command{putTTLCmd("a", "1", 100), putTTLCmd("a", "2", 500), expireCmd(150, "a")}, "a=2@500", "500:a", 0},
		{"delete expired skips a key re-put without ttl", []*fsmpb.Command{putTTLCmd("a", "1", 100), putCmd("a", "2"), expireCmd(150, "a")}, "a=2", "", 0},
		{"delete expired skips deleted and unknown keys", []*fsmpb.Command{putTTLCmd("a", "1", 100), delCmd("a", "", false), expireCmd(150, "a", "zz")}, "", "", 0},
		{"negative expiry is refused", []*fsmpb.Command{putTTLCmd("a", "1", -5)}, "", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t, "", nil)
			var last *fsm.Result
			for i, c := range tt.cmds {
				last = apply(t, f, uint64(i+1), c)
			}
			keys, index := expiryState(t, f)
			if keys != tt.wantKeys || index != tt.wantIndex {
				t.Fatalf("state:\n got keys %q index %q\nwant keys %q index %q", keys, index, tt.wantKeys, tt.wantIndex)
			}
			if tt.wantDeleted >= 0 {
				if last.Err != nil || last.Delete == nil || last.Delete.Deleted != tt.wantDeleted {
					t.Fatalf("DeleteExpired result: got %s, want deleted %d", fmtResult(last), tt.wantDeleted)
				}
			}
			// A restored replica has the same keys, expiries and index.
			g := newFSM(t, "", nil)
			if err := g.Restore(readCloser(snapshotBytes(t, f))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			rk, ri := expiryState(t, g)
			if rk != keys || ri != index {
				t.Fatalf("after restore:\n got keys %q index %q\nwant keys %q index %q", rk, ri, keys, index)
			}
			if _, a := mustHash(t, f); !bytes.Equal(a, func() []byte { _, b := mustHash(t, g); return b }()) {
				t.Fatalf("hash differs after snapshot round trip")
			}
		})
	}
}

// TestExpiryDeterministic applies one log, mixing TTL puts, overwrites and
// DeleteExpired commands, to two FSMs (one restored from a snapshot half
// way) and expects the same state hash: nothing in apply reads a clock.
func TestExpiryDeterministic(t *testing.T) {
	var log []*fsmpb.Command
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("k%02d", i%37)
		switch i % 5 {
		case 0, 1:
			log = append(log, putTTLCmd(k, fmt.Sprint(i), int64(1000+i*7%211)))
		case 2:
			log = append(log, putCmd(k, fmt.Sprint(i)))
		case 3:
			log = append(log, expireCmd(int64(1000+i%200), k, fmt.Sprintf("k%02d", (i+3)%37)))
		case 4:
			log = append(log, txnCmd(nil, []*fsmpb.Op{opPutTTL(k, "t", int64(1100+i%50)), opDel(fmt.Sprintf("k%02d", (i+5)%37), "", false)}, nil))
		}
	}
	a, b := newFSM(t, "", nil), newFSM(t, "", nil)
	for i, c := range log {
		apply(t, a, uint64(i+1), c)
		if i == len(log)/2 {
			if err := b.Restore(readCloser(snapshotBytes(t, a))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			continue
		}
		if i > len(log)/2 {
			apply(t, b, uint64(i+1), c)
		}
	}
	ka, ia := expiryState(t, a)
	kb, ib := expiryState(t, b)
	if ka != kb || ia != ib {
		t.Fatalf("replicas differ:\n a keys %q index %q\n b keys %q index %q", ka, ia, kb, ib)
	}
	_, ha := mustHash(t, a)
	_, hb := mustHash(t, b)
	if !bytes.Equal(ha, hb) {
		t.Fatalf("state hashes differ: %x vs %x", ha, hb)
	}
	// The index holds exactly the keys with an expiry.
	var withTTL []string
	for _, s := range strings.Fields(ka) {
		if strings.Contains(s, "@") {
			withTTL = append(withTTL, s[:strings.Index(s, "=")])
		}
	}
	var indexed []string
	for _, s := range strings.Fields(ia) {
		indexed = append(indexed, s[strings.Index(s, ":")+1:])
	}
	slices.Sort(withTTL)
	slices.Sort(indexed)
	if !slices.Equal(withTTL, indexed) {
		t.Fatalf("expiry index %q does not match keys with an expiry %q", indexed, withTTL)
	}
}

// TestDeleteExpiredInvalidatesCache checks that keys removed by expiry are
// invalidated through the normal apply path, on every replica.
func TestDeleteExpiredInvalidatesCache(t *testing.T) {
	inv := &recordingInvalidator{}
	f := newFSM(t, "", inv)
	apply(t, f, 1, putTTLCmd("a", "1", 100))
	apply(t, f, 2, putTTLCmd("b", "1", 900))
	inv.take()
	apply(t, f, 3, expireCmd(500, "a", "b"))
	calls, _ := inv.take()
	if want := []string{`key "a"@3`}; !slices.Equal(calls, want) {
		t.Fatalf("invalidations: got %q, want %q", calls, want)
	}
}

// goldenV030 are the commands v0.3.0 added: expiries on puts (alone and in
// a Txn), DeleteExpired, and Range.count_rest.
//
// NB: as goldenV010: never edit this table or testdata/v0.3.0 once
// released.
var goldenV030 = []goldenCommand{
	{"put_with_expiry", putTTLCmd("session/1", "v", 1767225600000)},
	{"txn_put_with_expiry", txnCmd(nil, []*fsmpb.Op{opPutTTL("session/2", "v", 1767225600000),
		{Op: &fsmpb.Op_Range{Range: &fsmpb.Range{Key: []byte("session/"), RangeEnd: []byte("session0"), Limit: 1, CountRest: true}}}}, nil)},
	{"delete_expired", expireCmd(1767225600001, "session/1", "session/2")},
}

// TestGoldenV030 decodes and applies the v0.3.0 golden commands, and
// restores the v0.3.0 golden snapshot (format 3, a key with an expiry).
func TestGoldenV030(t *testing.T) {
	const dir = "testdata/v0.3.0"
	if *update {
		writeGoldenCommands(t, dir, goldenV030)
		src := newFSM(t, "", nil)
		apply(t, src, 1, putTTLCmd("a", "1", 1767225600000))
		apply(t, src, 2, putCmd("b", "2"))
		if err := os.WriteFile(filepath.Join(dir, "snapshot_v3.bin"), snapshotBytes(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := newFSM(t, "", nil)
	checkGoldenCommands(t, f, dir, goldenV030)
	if keys, index := expiryState(t, f); keys != "" || index != "" {
		t.Errorf("after the golden log: keys %q index %q, want both expired and gone", keys, index)
	}
	b, err := os.ReadFile(filepath.Join(dir, "snapshot_v3.bin"))
	if err != nil {
		t.Fatalf("read golden snapshot: %v", err)
	}
	if v := binary.BigEndian.Uint32(b[8:12]); v != 3 {
		t.Fatalf("golden snapshot has format %d, want 3", v)
	}
	g := newFSM(t, "", nil)
	if err := g.Restore(readCloser(b)); err != nil {
		t.Fatalf("Restore golden v3 snapshot: %v", err)
	}
	if keys, index := expiryState(t, g); keys != "a=1@1767225600000 b=2" || index != "1767225600000:a" {
		t.Errorf("restored golden snapshot: keys %q index %q", keys, index)
	}
}
