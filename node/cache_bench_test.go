package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/node/nodetest"
)

// BenchmarkCacheRead measures serializable Get throughput of a one-node
// cluster with the read cache on and off, in the same run: each iteration
// is one 500 ms slice with the cache and one without (the same requests
// with no_cache), so both see the same machine load. It reports read ops/s
// for each, their ratio, the hit ratio of the cached slices, and the
// cache's accounted bytes against its bound. path=grpc goes through the
// gRPC API (16 client goroutines); path=inproc calls Node.Get directly (4
// goroutines), which isolates the read path from gRPC's own cost.
//
//	zipf:    10,000 keys of 256 B, Zipf (s=1.1) key choice, 90% reads and
//	         10% puts of the same keys; the cache (64 MiB) holds them all.
//	uniform: 20,000 keys of 1 KiB (about 24 MiB with overhead), uniform key
//	         choice, reads only, a 4 MiB cache: most reads miss.
//
// Run: go test -run '^$' -bench CacheRead -benchtime 6x -count 5 ./node/
func BenchmarkCacheRead(b *testing.B) {
	for _, path := range []string{"grpc", "inproc"} {
		benchCacheRead(b, path)
	}
}

func benchCacheRead(b *testing.B, path string) {
	for _, w := range []struct {
		name      string
		keys      int
		valueSize int
		cacheSize int64
		writes    bool
		zipf      bool
	}{
		{name: "zipf", keys: 10_000, valueSize: 256, cacheSize: 64 << 20, writes: true, zipf: true},
		{name: "uniform", keys: 20_000, valueSize: 1024, cacheSize: 4 << 20},
	} {
		b.Run(w.name+"/path="+path, func(b *testing.B) {
			c := nodetest.NewCluster(b, 1, func(cfg *nodetest.NodeConfig) {
				def := nodetest.ProductionTimings()
				cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, cfg.CommitTimeout =
					def.HeartbeatTimeout, def.ElectionTimeout, def.LeaderLeaseTimeout, def.CommitTimeout
				cfg.Cache.MaxBytes = w.cacheSize
			})
			cl := c.Client(0)
			key := func(i int) []byte { return fmt.Appendf(nil, "bench/%08d", i) }
			val := make([]byte, w.valueSize)
			preload(b, cl, w.keys, key, val)
			get := cl.Get
			readers, writers := 16, 16
			if path == "inproc" {
				n := c.Members[0].Node
				get = func(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) { return n.Get(ctx, req) }
				readers = 4
			}
			const slice = 500 * time.Millisecond
			benchSlice(b, cl, get, slice, readers, writers, w.keys, w.zipf, w.writes, false, key, val) // warm up

			var onOps, offOps, writeOps float64
			var onTime, offTime time.Duration
			var hits, misses uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, noCache := range []bool{false, true} {
					before := localStats(b, c, 0)
					reads, writes, d := benchSlice(b, cl, get, slice, readers, writers, w.keys, w.zipf, w.writes, noCache, key, val)
					after := localStats(b, c, 0)
					if noCache {
						offOps, offTime = offOps+float64(reads), offTime+d
					} else {
						onOps, onTime = onOps+float64(reads), onTime+d
						hits += after.GetHits() - before.GetHits()
						misses += after.GetMisses() - before.GetMisses()
					}
					writeOps += float64(writes)
				}
			}
			b.StopTimer()
			on, off := onOps/onTime.Seconds(), offOps/offTime.Seconds()
			st := localStats(b, c, 0)
			b.ReportMetric(on, "reads/s_on")
			b.ReportMetric(off, "reads/s_off")
			b.ReportMetric(on/off, "ratio")
			if hits+misses > 0 {
				b.ReportMetric(float64(hits)/float64(hits+misses), "hit_ratio")
			}
			b.ReportMetric(writeOps/(writeOps+onOps+offOps), "write_frac")
			b.ReportMetric(float64(st.GetBytes())/float64(1<<20), "cache_MiB")
			b.ReportMetric(float64(st.GetMaxBytes())/float64(1<<20), "bound_MiB")
			b.ReportMetric(0, "ns/op") // an iteration is a fixed-time slice pair
		})
	}
}

func preload(b *testing.B, cl *client.Client, keys int, key func(int) []byte, val []byte) {
	b.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= keys {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cl.Put(ctx, &kvpb.PutRequest{Key: key(i), Value: val})
				cancel()
				if err != nil {
					b.Errorf("preload put: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// benchSlice runs readers closed-loop for d; with writes, every ninth read
// hands a token to the writers so puts stay near 10% of operations (fewer
// if they fall behind). It returns reads and writes done and the time taken.
func benchSlice(b *testing.B, cl *client.Client, get func(context.Context, *kvpb.GetRequest) (*kvpb.GetResponse, error),
	d time.Duration, readers, writers, keys int, zipf, writes, noCache bool,
	key func(int) []byte, val []byte) (int64, int64, time.Duration) {
	var nReads, nWrites atomic.Int64
	tokens := make(chan struct{}, 1024)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), uint64(time.Now().UnixNano())))
			var z *rand.Zipf
			if zipf {
				z = rand.NewZipf(rng, 1.1, 1, uint64(keys-1))
			}
			for n := 1; time.Now().Before(deadline); n++ {
				k := rng.IntN(keys)
				if z != nil {
					k = int(z.Uint64())
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := get(ctx, &kvpb.GetRequest{Key: key(k), Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE, NoCache: noCache})
				cancel()
				if err != nil {
					b.Errorf("get: %v", err)
					return
				}
				nReads.Add(1)
				if writes && n%9 == 0 {
					select {
					case tokens <- struct{}{}:
					default:
					}
				}
			}
		}(r)
	}
	var ww sync.WaitGroup
	for w := 0; writes && w < writers; w++ {
		ww.Add(1)
		go func(w int) {
			defer ww.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			z := rand.NewZipf(rng, 1.1, 1, uint64(keys-1))
			for {
				select {
				case <-stop:
					return
				case <-tokens:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := cl.Put(ctx, &kvpb.PutRequest{Key: key(int(z.Uint64())), Value: val})
				cancel()
				if err != nil {
					b.Errorf("put: %v", err)
					return
				}
				nWrites.Add(1)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	ww.Wait()
	return nReads.Load(), nWrites.Load(), elapsed
}
