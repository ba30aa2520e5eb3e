package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/node"
)

// registerCacheFlags adds the read cache flags (README, "Read cache").
func registerCacheFlags(fs *flag.FlagSet, cfg *node.Config) {
	fs.Var((*byteSize)(&cfg.Cache.MaxBytes), "cache-size",
		"bound of the in-process read cache in bytes (suffixes KiB, MiB, GiB); 0 disables the cache (and the Redis tier)")
	fs.DurationVar(&cfg.Cache.TTL, "cache-ttl", cfg.Cache.TTL,
		"expire in-process cache entries this long after they were filled (0: never; coherence does not depend on it)")
	fs.StringVar(&cfg.CacheRedis.URL, "cache-redis", cfg.CacheRedis.URL,
		"shared Redis cache tier for serializable reads, redis://[user:password@]host:port/db (empty: none)")
	fs.DurationVar(&cfg.CacheRedis.TTL, "cache-redis-ttl", cfg.CacheRedis.TTL,
		"lifetime of entries written to the Redis tier")
	fs.DurationVar(&cfg.CacheRedis.Timeout, "cache-redis-timeout", cfg.CacheRedis.Timeout,
		"bound of each Redis call; a slower or failed call is answered from the store")
}

// byteSize is an int64 flag that accepts a KiB/MiB/GiB suffix.
type byteSize int64

func (b *byteSize) String() string {
	if b == nil {
		return "0"
	}
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v := int64(*b); v != 0 && v%u.n == 0 {
			return strconv.FormatInt(v/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("want a non-negative size in bytes, optionally with KiB, MiB or GiB: %q", s)
	}
	*b = byteSize(n * mult)
	return nil
}
