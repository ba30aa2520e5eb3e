package cache

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkCacheMemory fills a 16 MiB cache with four times its bound of
// distinct entries (half of them read again, so both 2Q queues are in use)
// and compares the Go heap the cache really holds with its bound and with
// what it accounts for. heap_MiB over bound_MiB near or below 1 means the
// per-entry overhead estimate (entryOverhead) is honest.
func BenchmarkCacheMemory(b *testing.B) {
	const bound = 16 << 20
	for _, size := range []int{16, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("value=%d", size), func(b *testing.B) {
			var heap, accounted float64
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				c, _ := New(Config{MaxBytes: bound}, Deps{})
				c.Purge(0)
				n := 4 * bound / (size + 16 + entryOverhead)
				for k := 0; k < n; k++ {
					key := fmt.Appendf(nil, "key/%012d", k)
					c.Fill(key, Entry{Found: true, Value: make([]byte, size), ModRevision: 1}, 1, c.Epoch())
					if k%2 == 0 {
						c.Get(key, false)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				heap += float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / (1 << 20)
				accounted += float64(c.Stats().Bytes) / (1 << 20)
				runtime.KeepAlive(c)
			}
			b.ReportMetric(heap/float64(b.N), "heap_MiB")
			b.ReportMetric(accounted/float64(b.N), "accounted_MiB")
			b.ReportMetric(bound/(1<<20), "bound_MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkCacheGet is the cost of a hit.
func BenchmarkCacheGet(b *testing.B) {
	c, _ := New(Config{MaxBytes: 64 << 20}, Deps{})
	c.Purge(0)
	keys := make([][]byte, 10_000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key/%06d", i)
		c.Fill(keys[i], Entry{Found: true, Value: make([]byte, 256)}, 1, c.Epoch())
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := c.Get(keys[i%len(keys)], false); !ok {
			b.Fatal("miss")
		}
	}
}
