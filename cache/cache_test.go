package cache

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(t testing.TB, cfg Config, clock *fakeClock) *Cache {
	t.Helper()
	deps := Deps{}
	if clock != nil {
		deps.Now = clock.now
	}
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New(%+v): got error %v, want nil", cfg, err)
	}
	if c == nil {
		t.Fatalf("New(%+v): got nil cache, want one", cfg)
	}
	c.Purge(0)
	return c
}

func found(v string, rev int64) Entry {
	return Entry{Found: true, Value: []byte(v), CreateRevision: rev, ModRevision: rev, Version: 1}
}

func key(i int) []byte { return fmt.Appendf(nil, "key/%06d", i) }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"default", DefaultConfig(), false},
		{"disabled", Config{}, false},
		{"smallest", Config{MaxBytes: MinMaxBytes}, false},
		{"too small", Config{MaxBytes: MinMaxBytes - 1}, true},
		{"negative size", Config{MaxBytes: -1}, true},
		{"negative ttl", Config{MaxBytes: DefaultMaxBytes, TTL: -time.Second}, true},
		{"ttl", Config{MaxBytes: DefaultMaxBytes, TTL: time.Minute}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate(%+v) = %v, want error: %v", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

func TestNewDisabled(t *testing.T) {
	c, err := New(Config{}, Deps{})
	if err != nil || c != nil {
		t.Fatalf("New(MaxBytes 0) = %v, %v; want nil, nil", c, err)
	}
}

// TestBoundRespected fills caches of many sizes with values of random sizes
// under a mixed get/fill/update/invalidate workload and checks the
// accounted bytes never exceed the bound, and that the cache is actually
// used (it holds a good share of its bound once warm).
func TestBoundRespected(t *testing.T) {
	for _, size := range []int64{MinMaxBytes, 4 << 10, 10_000, 64 << 10, 1 << 20, 16 << 20} {
		for _, maxVal := range []int{0, 16, 1000, 64 << 10} {
			t.Run(fmt.Sprintf("max=%d/value<=%d", size, maxVal), func(t *testing.T) {
				c := newTestCache(t, Config{MaxBytes: size}, nil)
				rng := rand.New(rand.NewPCG(uint64(size), uint64(maxVal)))
				keys := int(size/64) + 100
				rev := uint64(0)
				peak := int64(0)
				for i := 0; i < 20_000; i++ {
					k := key(rng.IntN(keys))
					rev++
					switch op := rng.IntN(10); {
					case op < 5:
						c.Get(k, false)
					case op < 8:
						v := make([]byte, rng.IntN(maxVal+1))
						c.Fill(k, Entry{Found: true, Value: v, ModRevision: int64(rev)}, rev, c.Epoch())
					case op < 9:
						v := make([]byte, rng.IntN(maxVal+1))
						c.Update(k, Entry{Found: true, Value: v, ModRevision: int64(rev)}, rev)
					default:
						c.Invalidate(k, rev)
					}
					st := c.Stats()
					if st.Bytes > size {
						t.Fatalf("after op %d: Bytes = %d, want <= MaxBytes %d (entries %d)", i, st.Bytes, size, st.Entries)
					}
					if st.Bytes < 0 || st.Entries < 0 {
						t.Fatalf("after op %d: Bytes = %d, Entries = %d, want >= 0", i, st.Bytes, st.Entries)
					}
					peak = max(peak, st.Bytes)
				}
				// Values up to 64 KiB cannot fit a tiny cache at all, and
				// entries above a quarter of the bound are refused, so only
				// check use where entries are small against the bound.
				if size <= 64<<10 && int64(maxVal+entryOverhead+16)*8 < size && peak < size/2 {
					t.Errorf("peak Bytes = %d, want at least half of MaxBytes %d: the cache is not being used", peak, size)
				}
			})
		}
	}
}

func TestTooLargeEntryRefused(t *testing.T) {
	c := newTestCache(t, Config{MaxBytes: 4 << 10}, nil)
	big := make([]byte, 1<<10) // over a quarter of 4 KiB with overhead
	if c.Fill([]byte("k"), Entry{Found: true, Value: big}, 1, c.Epoch()) {
		t.Fatalf("Fill of a %d-byte value into a 4 KiB cache = installed, want refused", len(big))
	}
	if st := c.Stats(); st.FillsRejected != 1 || st.Entries != 0 {
		t.Fatalf("stats = %+v, want 1 rejected fill and no entries", st)
	}
}

func TestTTL(t *testing.T) {
	tests := []struct {
		name     string
		ttl      time.Duration
		advance  time.Duration
		update   bool // Update the entry (refreshes its TTL) before advancing
		wantHit  bool
		wantStat func(Stats) bool
	}{
		{name: "no ttl never expires", ttl: 0, advance: 1000 * time.Hour, wantHit: true},
		{name: "before expiry", ttl: time.Minute, advance: 59 * time.Second, wantHit: true},
		{name: "at expiry", ttl: time.Minute, advance: time.Minute, wantHit: false,
			wantStat: func(s Stats) bool { return s.Expired == 1 && s.Entries == 0 }},
		{name: "after expiry", ttl: time.Minute, advance: time.Hour, wantHit: false},
		{name: "update refreshes ttl", ttl: time.Minute, advance: 50 * time.Second, update: true, wantHit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1000, 0)}
			c := newTestCache(t, Config{MaxBytes: 1 << 20, TTL: tt.ttl}, clock)
			k := []byte("k")
			if !c.Fill(k, found("v1", 1), 1, c.Epoch()) {
				t.Fatal("Fill = refused, want installed")
			}
			if tt.update {
				clock.advance(30 * time.Second)
				c.Update(k, found("v2", 2), 2)
			}
			clock.advance(tt.advance)
			_, hit := c.Get(k, false)
			if hit != tt.wantHit {
				t.Fatalf("Get after %s with ttl %s: hit = %v, want %v", tt.advance, tt.ttl, hit, tt.wantHit)
			}
			if tt.wantStat != nil && !tt.wantStat(c.Stats()) {
				t.Fatalf("stats = %+v, not what the case wants", c.Stats())
			}
		})
	}
}

// TestEvictionOrder checks what 2Q evicts: in the recent queue the least
// recently filled key goes first; keys hit a second time survive a scan of
// keys read once; a key evicted from the recent queue and filled again soon
// is remembered (ghost) and goes straight to the frequent queue.
func TestEvictionOrder(t *testing.T) {
	// Each entry costs entryOverhead + 8 (key) + 24 (value) bytes.
	val := make([]byte, 24)
	per := itemSize("key/0000", Entry{Value: val})
	fill := func(c *Cache, i int) {
		c.Fill(fmt.Appendf(nil, "key/%04d", i), Entry{Found: true, Value: val}, 1, c.Epoch())
	}
	has := func(c *Cache, i int) bool {
		_, ok := c.q.peek(fmt.Sprintf("key/%04d", i))
		return ok
	}
	hit := func(c *Cache, i int) {
		if _, ok := c.Get(fmt.Appendf(nil, "key/%04d", i), false); !ok {
			t.Fatalf("Get(key/%04d): miss, want hit", i)
		}
	}
	tests := []struct {
		name    string
		run     func(t *testing.T, c *Cache)
		present []int
		absent  []int
	}{
		{
			name: "recent queue is FIFO for keys read once",
			run: func(t *testing.T, c *Cache) {
				for i := 0; i < 100; i++ {
					fill(c, i)
				}
			},
			present: []int{99, 98, 90},
			absent:  []int{0, 1, 2},
		},
		{
			name: "keys hit twice survive a scan",
			run: func(t *testing.T, c *Cache) {
				for i := 0; i < 10; i++ {
					fill(c, i)
					hit(c, i) // promoted to the frequent queue
				}
				for i := 1000; i < 1500; i++ { // a scan, each key once
					fill(c, i)
				}
			},
			present: []int{0, 5, 9, 1499},
			absent:  []int{1000, 1100},
		},
		{
			name: "least recently used frequent key goes first",
			run: func(t *testing.T, c *Cache) {
				n := int(c.cfg.MaxBytes/per) + 10 // more than fit
				for i := 0; i < n; i++ {
					fill(c, i)
					hit(c, i)
				}
				hit(c, n-1)
			},
			present: []int{40},
			absent:  []int{0, 1},
		},
		{
			name: "ghost hit goes to the frequent queue",
			run: func(t *testing.T, c *Cache) {
				for i := 100; i < 140; i++ { // fill the cache, mostly frequent
					fill(c, i)
					hit(c, i)
				}
				fill(c, 0)
				for i := 1000; i < 1020; i++ { // push key 0 out of the recent queue
					fill(c, i)
				}
				if has(c, 0) {
					t.Fatal("key/0000 still cached after the recent queue turned over")
				}
				fill(c, 0) // remembered: straight to frequent
				for i := 2000; i < 2500; i++ {
					fill(c, i)
				}
			},
			present: []int{0},
			absent:  []int{1000, 2000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, Config{MaxBytes: 48 * per}, nil) // recent queue: 12 entries
			tt.run(t, c)
			for _, i := range tt.present {
				if !has(c, i) {
					t.Errorf("key/%04d: evicted, want cached", i)
				}
			}
			for _, i := range tt.absent {
				if has(c, i) {
					t.Errorf("key/%04d: cached, want evicted", i)
				}
			}
			if st := c.Stats(); st.Bytes > st.MaxBytes {
				t.Errorf("Bytes = %d, want <= %d", st.Bytes, st.MaxBytes)
			}
		})
	}
}

// TestCoherence is the read-populate race and its relatives, step by step.
func TestCoherence(t *testing.T) {
	k := []byte("k")
	type step func(t *testing.T, c *Cache)
	fill := func(v string, mod int64, readAt uint64, want bool) step {
		return func(t *testing.T, c *Cache) {
			t.Helper()
			if got := c.Fill(k, found(v, mod), readAt, c.Epoch()); got != want {
				t.Fatalf("Fill(%q read at %d) installed = %v, want %v", v, readAt, got, want)
			}
		}
	}
	get := func(want string) step {
		return func(t *testing.T, c *Cache) {
			t.Helper()
			e, ok := c.Get(k, false)
			switch {
			case want == "" && ok:
				t.Fatalf("Get = hit %q, want miss", e.Value)
			case want != "" && !ok:
				t.Fatalf("Get = miss, want hit %q", want)
			case want != "" && string(e.Value) != want:
				t.Fatalf("Get = %q, want %q", e.Value, want)
			}
		}
	}
	inv := func(rev uint64) step { return func(t *testing.T, c *Cache) { c.Invalidate(k, rev) } }
	upd := func(v string, rev uint64) step {
		return func(t *testing.T, c *Cache) { c.Update(k, found(v, int64(rev)), rev) }
	}
	rng := func(start, end string, rev uint64) step {
		return func(t *testing.T, c *Cache) {
			var e []byte
			if end != "" {
				e = []byte(end)
			}
			c.InvalidateRange([]byte(start), e, rev)
		}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"fill then hit", []step{fill("a", 5, 10, true), get("a")}},
		{"slow fill after a newer write is refused",
			[]step{inv(11), fill("old", 5, 10, false), get("")}},
		{"fill read at the write's index is accepted",
			[]step{inv(11), fill("new", 11, 11, true), get("new")}},
		{"fill that raced past the invalidation is never served",
			// The reader checked, then the write was recorded, then it
			// installed: modelled by filling first, invalidating later.
			[]step{fill("old", 5, 10, true), inv(11), get("")}},
		{"invalidation older than the entry keeps it",
			[]step{fill("a", 12, 12, true), inv(11), get("a")}},
		{"older fill never replaces a newer entry",
			[]step{fill("new", 11, 20, true), fill("old", 5, 15, false), get("new")}},
		{"update replaces a cached entry in place",
			[]step{fill("a", 5, 10, true), upd("b", 11), get("b")}},
		{"update does not add an absent key", []step{upd("b", 11), get("")}},
		{"stale fill after an update is refused",
			[]step{fill("a", 5, 10, true), upd("b", 11), fill("a", 5, 10, false), get("b")}},
		{"range delete covering the key", []step{fill("a", 5, 10, true), rng("j", "l", 11), get("")}},
		{"range delete to the end", []step{fill("a", 5, 10, true), rng("a", "", 11), get("")}},
		{"range delete not covering the key", []step{fill("a", 5, 10, true), rng("l", "z", 11), get("a")}},
		{"range end is exclusive", []step{fill("a", 5, 10, true), rng("a", "k", 11), get("a")}},
		{"fill read before a range delete is refused", []step{rng("a", "z", 11), fill("a", 5, 10, false)}},
		{"fill read after a range delete is accepted", []step{rng("a", "z", 11), fill("a", 12, 12, true), get("a")}},
		{"not-found entries are cached and invalidated", []step{
			func(t *testing.T, c *Cache) {
				if !c.Fill(k, Entry{}, 10, c.Epoch()) {
					t.Fatal("Fill(not found) = refused")
				}
				if e, ok := c.Get(k, false); !ok || e.Found {
					t.Fatalf("Get = %+v, %v; want a cached not-found", e, ok)
				}
			}, inv(11), get("")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, Config{MaxBytes: 1 << 20}, nil)
			for _, s := range tt.steps {
				s(t, c)
			}
		})
	}
}

func TestPurgeEpoch(t *testing.T) {
	c := newTestCache(t, Config{MaxBytes: 1 << 20}, nil)
	k := []byte("k")
	epoch := c.Epoch() // a reader starts, reads the old store at 10...
	c.Fill([]byte("other"), found("x", 3), 10, epoch)
	c.Purge(5) // ...a snapshot replaces the store (even with a lower index)
	if c.Fill(k, found("old", 10), 10, epoch) {
		t.Fatal("Fill with the epoch from before Purge = installed, want refused")
	}
	if _, ok := c.Get([]byte("other"), false); ok {
		t.Fatal("Get after Purge = hit, want miss")
	}
	if c.Fill(k, found("old", 4), 4, c.Epoch()) {
		t.Fatal("Fill read below the snapshot's index = installed, want refused")
	}
	if !c.Fill(k, found("new", 5), 5, c.Epoch()) {
		t.Fatal("Fill read at the snapshot's index = refused, want installed")
	}
}

func TestSharedEntries(t *testing.T) {
	c := newTestCache(t, Config{MaxBytes: 1 << 20}, nil)
	k := []byte("k")
	if !c.FillShared(k, found("s", 5), 10, c.Epoch()) {
		t.Fatal("FillShared = refused")
	}
	if _, ok := c.Get(k, false); ok {
		t.Fatal("Get(trustShared=false) of a shared entry = hit, want miss")
	}
	if _, ok := c.Get(k, true); !ok {
		t.Fatal("Get(trustShared=true) of a shared entry = miss, want hit")
	}
	// A local fill replaces the shared entry even when read at a lower
	// index: linearizable reads need an entry they may trust.
	if !c.Fill(k, found("s", 5), 8, c.Epoch()) {
		t.Fatal("local Fill over a shared entry = refused, want installed")
	}
	if _, ok := c.Get(k, false); !ok {
		t.Fatal("Get(trustShared=false) after a local fill = miss, want hit")
	}
	if c.FillShared(k, found("s", 5), 9, c.Epoch()) {
		t.Fatal("FillShared over a local entry = installed, want kept local")
	}
	if !c.Fresh(k, 9) {
		t.Fatal("Fresh(k, 9) with no write recorded = false, want true")
	}
	c.Invalidate(k, 11)
	if c.Fresh(k, 10) {
		t.Fatal("Fresh(k, 10) after a write at 11 = true, want false")
	}
}

// TestConcurrentCoherence races a writer that updates a model store and
// records its writes in the cache exactly as the FSM does (write, then tell
// the cache, then publish the applied index) against readers that use the
// cache exactly as node does (load the applied index, Get, on a miss take
// the epoch, read the store with its index and Fill). A hit must never be
// older than the key's state at the index the reader loaded.
func TestConcurrentCoherence(t *testing.T) {
	const keys = 8
	type event struct {
		idx uint64
		put bool
	}
	c := newTestCache(t, Config{MaxBytes: 8 << 10}, nil)
	var (
		storeMu  sync.RWMutex
		store    [keys]int64   // mod revision of each key, 0 = absent
		storeIdx uint64        // index the store reflects
		history  [keys][]event // every write, per key
		applied  atomic.Uint64 // published applied index
		done     atomic.Bool
		hits     atomic.Int64
		errs     = make(chan error, 1)
	)
	// ok reports whether e may be served to a reader that loaded applied
	// index a: it is the key's state at a or at a later index.
	ok := func(k int, a uint64, e Entry) bool {
		storeMu.RLock()
		defer storeMu.RUnlock()
		var last event // zero: never written, absent
		for _, ev := range history[k] {
			if ev.idx <= a {
				last = ev
			}
		}
		if e.Found {
			return e.ModRevision >= int64(last.idx)
		}
		if !last.put {
			return true
		}
		for _, ev := range history[k] {
			if ev.idx > last.idx && !ev.put {
				return true // deleted later: a newer state
			}
		}
		return false
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the FSM
		defer wg.Done()
		defer done.Store(true)
		rng := rand.New(rand.NewPCG(1, 2))
		for idx := uint64(1); idx <= 10_000; idx++ {
			k := rng.IntN(keys)
			op := rng.IntN(20)
			storeMu.Lock()
			switch {
			case op < 14:
				store[k] = int64(idx)
				history[k] = append(history[k], event{idx, true})
			case op < 19:
				store[k] = 0
				history[k] = append(history[k], event{idx, false})
			default:
				for i := range store {
					store[i] = 0
					history[i] = append(history[i], event{idx, false})
				}
			}
			storeIdx = idx
			storeMu.Unlock()
			switch {
			case op < 14:
				c.Update(key(k), found("v", int64(idx)), idx)
			case op < 19:
				c.Invalidate(key(k), idx)
			default:
				c.InvalidateRange([]byte("key/"), nil, idx)
			}
			applied.Store(idx)
		}
	}()
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for !done.Load() {
				k := rng.IntN(keys)
				a := applied.Load()
				if e, hit := c.Get(key(k), false); hit {
					hits.Add(1)
					if !ok(k, a, e) {
						select {
						case errs <- fmt.Errorf("reader %d at applied %d: key %d hit %+v, older than the key's state at %d",
							r, a, k, e, a):
						default:
						}
						return
					}
					continue
				}
				epoch := c.Epoch()
				storeMu.RLock()
				mod, readAt := store[k], storeIdx
				storeMu.RUnlock()
				e := Entry{}
				if mod != 0 {
					e = found("v", mod)
				}
				c.Fill(key(k), e, readAt, epoch)
			}
		}(r)
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if hits.Load() == 0 {
		t.Fatal("no cache hits at all: the test exercised nothing")
	}
	t.Logf("hits: %d, stats: %+v", hits.Load(), c.Stats())
}
