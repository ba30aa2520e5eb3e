package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/migrate/migratetest"
	"github.com/raftkv/raftkv/node/nodetest"
)

func TestMain(m *testing.M) { os.Exit(migratetest.Main(m)) }

// dataset builds n records with the shapes a migration must carry intact:
// ASCII keys, keys with bytes that are not UTF-8, binary values of random
// length, empty values every 1000th record and, when big, bigValues values
// of exactly 1 MiB. Keys are distinct and sorted.
func dataset(n int, big bool) []Record {
	rng := rand.New(rand.NewPCG(8, uint64(n)))
	recs := make([]Record, n)
	for i := range recs {
		var k []byte
		if i%97 == 0 {
			k = fmt.Appendf([]byte{'b', '/', 0xff, 0xfe, 0x00, byte(i)}, "/%07d", i)
		} else {
			k = fmt.Appendf(nil, "k/%07d", i)
		}
		v := make([]byte, rng.IntN(200))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		if i%1000 == 7 {
			v = []byte{}
		}
		if big && i%(n/bigValues) == 3 {
			v = bytes.Repeat([]byte{byte(i), 0xff, 0x00, 'x'}, 1<<18) // exactly 1 MiB
		}
		recs[i] = Record{Key: k, Value: v}
	}
	slices.SortFunc(recs, func(a, b Record) int { return bytes.Compare(a.Key, b.Key) })
	return recs
}

// seedRaftkv writes recs with Txns of 100 puts, eight at a time.
func seedRaftkv(t testing.TB, cli *client.Client, recs []Record) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 8)
	for start := 0; start < len(recs); start += 100 {
		part := recs[start:min(start+100, len(recs))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			req := &kvpb.TxnRequest{}
			size := 0
			flush := func() {
				// Puts of fixed values are idempotent: an unknown outcome
				// (a leader change under load) is simply sent again.
				var err error
				for try := 0; try < 5; try++ {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_, err = cli.Txn(ctx, req)
					cancel()
					if !errors.Is(err, client.ErrOutcomeUnknown) {
						break
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
				req, size = &kvpb.TxnRequest{}, 0
			}
			for _, r := range part {
				if size+len(r.Value) > 1<<20 && len(req.Success) > 0 {
					flush()
				}
				req.Success = append(req.Success, putOp(r))
				size += len(r.Key) + len(r.Value)
			}
			flush()
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("seed raftkv: %v", err)
	default:
	}
}

// readAll reads every record a URL holds under prefix, sorted by key.
func readAll(t testing.TB, rawURL string, prefix string, endpoints []string) []Record {
	t.Helper()
	src, err := OpenSource(t.Context(), rawURL, SourceOptions{Prefix: []byte(prefix), RequestTimeout: 30 * time.Second, Endpoints: endpoints})
	if err != nil {
		t.Fatalf("open %s: %v", rawURL, err)
	}
	defer src.Close()
	var out []Record
	for {
		r, err := src.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", rawURL, err)
		}
		if r.Skip == "" {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

// sameRecords fails the test at the first difference between want (with
// keys renamed by adding addPrefix) and got, ignoring expiry.
func sameRecords(t testing.TB, what string, want []Record, addPrefix string, got []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		wk := append([]byte(addPrefix), want[i].Key...)
		if !bytes.Equal(got[i].Key, wk) || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("%s: record %d is %s (%d bytes), want %s (%d bytes)", what, i,
				KeyString(got[i].Key), len(got[i].Value), KeyString(wk), len(want[i].Value))
		}
	}
}

// testLogger writes through t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// run runs one migration and fails the test on an error.
func run(t testing.TB, cfg Config) *Summary {
	t.Helper()
	sum, err := runErr(t, cfg)
	if err != nil {
		t.Fatalf("migrate %s -> %s: %v", cfg.From, cfg.To, err)
	}
	return sum
}

func runErr(t testing.TB, cfg Config) (*Summary, error) {
	t.Helper()
	m, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sum, err := m.Run(t.Context())
	if sum != nil {
		t.Logf("%s -> %s: copied %d skipped %d failed %d, %.0f keys/s over %.1fs (verify included)", sum.Source, sum.Target,
			sum.Copied, sum.Skipped, sum.Failed, float64(sum.Copied)/max(sum.DurationSeconds, 1e-9), sum.DurationSeconds)
	}
	return sum, err
}

// config returns DefaultConfig from one URL to another with verification.
func config(from, to string) Config {
	c := DefaultConfig()
	c.From, c.To, c.Verify = from, to, true
	c.RequestTimeout = 30 * time.Second
	return c
}

// wantVerified fails unless the summary shows a clean copy of n records
// that verification confirmed.
func wantVerified(t testing.TB, sum *Summary, copied int64) {
	t.Helper()
	if sum.Copied != copied || sum.Failed != 0 {
		t.Errorf("%s -> %s: copied %d, failed %d (%v); want %d copied, none failed", sum.Source, sum.Target, sum.Copied, sum.Failed, sum.FailedKeys, copied)
	}
	v := sum.Verification
	if v == nil || !v.Match || !sum.Verified || !sum.OK() {
		t.Fatalf("%s -> %s: verification %+v, want a match", sum.Source, sum.Target, v)
	}
	if v.SourceKeys != copied || v.TargetKeys != copied {
		t.Errorf("verification counted %d source and %d target keys, want %d each", v.SourceKeys, v.TargetKeys, copied)
	}
}

// newCluster starts a 3-node in-process cluster with production raft
// timings: the harness's short ones make a leader loaded by a migration on
// a busy machine step down.
func newCluster(t testing.TB) *nodetest.Cluster {
	return nodetest.NewCluster(t, 3, func(cfg *nodetest.NodeConfig) {
		def := nodetest.ProductionTimings()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, cfg.CommitTimeout =
			def.HeartbeatTimeout, def.ElectionTimeout, def.LeaderLeaseTimeout, def.CommitTimeout
	})
}

func raftkvURL(c *nodetest.Cluster) string {
	return "raftkv://" + strings.Join(c.Endpoints(), ",")
}
