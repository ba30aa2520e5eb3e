package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func redisConnect(ctx context.Context, rawURL string, timeout time.Duration) (*redis.Client, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse URL: %w", err)
	}
	opt.ReadTimeout, opt.WriteTimeout, opt.DialTimeout = timeout, timeout, timeout
	opt.MaxRetries = 2
	opt.DisableIdentity = true // no CLIENT SETINFO: older servers reject it
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("unreachable: %w", err)
	}
	return c, nil
}

// globEscape escapes the glob metacharacters of a SCAN MATCH pattern.
func globEscape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		switch c {
		case '*', '?', '[', ']', '\\':
			s.WriteByte('\\')
		}
		s.WriteByte(c)
	}
	return s.String()
}

// redisPosition is the Position token of a Redis source: the SCAN cursor
// whose batch is being read. A resumed migration reads that batch again;
// the target's replay window keeps it from writing anything twice.
//
// NB: stored in checkpoint files; add fields, never change one.
type redisPosition struct {
	Cursor uint64 `json:"cursor"`
	Done   bool   `json:"done"`
}

// redisSource walks the keyspace with SCAN. String keys become records with
// their TTL; keys of any other type come back with Skip set, so they are
// counted and listed. SCAN visits every key that exists from start to end
// at least once, in no order, so the source is not sorted.
type redisSource struct {
	c       *redis.Client
	timeout time.Duration
	match   string
	count   int64
	noMatch bool // no prefix: DBSIZE is an exact estimate

	cursor  uint64 // of the batch in buf
	next    uint64 // cursor of the batch after it
	done    bool   // next batch is past the end
	started bool
	buf     []Record
	i       int
	seen    map[string]bool // keys of the current batch, against SCAN repeats inside it
}

func openRedisSource(ctx context.Context, rawURL string, opts SourceOptions) (*redisSource, error) {
	c, err := redisConnect(ctx, rawURL, opts.RequestTimeout)
	if err != nil {
		return nil, err
	}
	s := &redisSource{c: c, timeout: opts.RequestTimeout, match: globEscape(opts.Prefix) + "*",
		count: int64(opts.Batch), noMatch: len(opts.Prefix) == 0}
	if opts.After != "" {
		var p redisPosition
		if err := json.Unmarshal([]byte(opts.After), &p); err != nil {
			c.Close()
			return nil, fmt.Errorf("bad resume position %q: %w", opts.After, err)
		}
		s.next, s.done, s.started = p.Cursor, p.Done, true
	}
	return s, nil
}

func (s *redisSource) Next(ctx context.Context) (Record, error) {
	for s.i >= len(s.buf) {
		if s.done {
			return Record{}, io.EOF
		}
		if err := s.scan(ctx); err != nil {
			return Record{}, err
		}
	}
	r := s.buf[s.i]
	s.i++
	return r, nil
}

// scan reads the next SCAN batch with its values and TTLs.
func (s *redisSource) scan(ctx context.Context) error {
	s.cursor = s.next
	s.started = true
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	keys, next, err := s.c.Scan(rctx, s.cursor, s.match, s.count).Result()
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	s.next, s.done = next, next == 0
	s.buf, s.i = s.buf[:0], 0
	if len(keys) == 0 {
		return nil
	}
	pipe := s.c.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(rctx, k)
		ttls[i] = pipe.PTTL(rctx, k)
	}
	// Per-command errors (WRONGTYPE, nil) are read below.
	_, _ = pipe.Exec(rctx)
	now := time.Now()
	var wrongType []string
	seen := map[string]bool{}
	for i, k := range keys {
		if seen[k] {
			continue // SCAN may return a key twice
		}
		seen[k] = true
		v, err := gets[i].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			continue // deleted or expired since SCAN saw it
		case err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
			wrongType = append(wrongType, k)
			continue
		case err != nil:
			return fmt.Errorf("get %s: %w", KeyString([]byte(k)), err)
		}
		r := Record{Key: []byte(k), Value: v}
		if v == nil {
			r.Value = []byte{}
		}
		ttl, err := ttls[i].Result()
		if err != nil {
			return fmt.Errorf("pttl %s: %w", KeyString([]byte(k)), err)
		}
		if ttl >= 0 {
			r.ExpireAt = now.Add(ttl)
			if ttl == 0 {
				continue // expires this millisecond
			}
		}
		s.buf = append(s.buf, r)
	}
	if len(wrongType) > 0 {
		pipe := s.c.Pipeline()
		types := make([]*redis.StatusCmd, len(wrongType))
		for i, k := range wrongType {
			types[i] = pipe.Type(rctx, k)
		}
		_, _ = pipe.Exec(rctx)
		for i, k := range wrongType {
			typ, err := types[i].Result()
			if err != nil {
				typ = "unknown"
			}
			s.buf = append(s.buf, Record{Key: []byte(k), Skip: "not a string (type " + typ + ")"})
		}
	}
	return nil
}

// Position is the cursor of the batch being read, or of the next one when
// the current one is used up.
func (s *redisSource) Position() string {
	if !s.started {
		return ""
	}
	p := redisPosition{Cursor: s.cursor}
	if s.i >= len(s.buf) {
		p = redisPosition{Cursor: s.next, Done: s.done}
	}
	b, _ := json.Marshal(p)
	return string(b)
}

func (s *redisSource) Sorted() bool { return false }
func (s *redisSource) Close() error { return s.c.Close() }

// Estimate is DBSIZE when every key is selected.
func (s *redisSource) Estimate(ctx context.Context) (int64, error) {
	if !s.noMatch {
		return 0, errors.New("no estimate for a prefix")
	}
	return s.c.DBSize(ctx).Result()
}

// redisTarget writes each batch as one pipeline of SETs, with PXAT for
// records that expire.
type redisTarget struct {
	c       *redis.Client
	timeout time.Duration
}

func openRedisTarget(ctx context.Context, rawURL string, opts TargetOptions) (*redisTarget, error) {
	c, err := redisConnect(ctx, rawURL, opts.RequestTimeout)
	if err != nil {
		return nil, err
	}
	return &redisTarget{c: c, timeout: opts.RequestTimeout}, nil
}

func (t *redisTarget) Prepare(context.Context) error { return nil }
func (t *redisTarget) CanExpire() bool               { return true }

func (t *redisTarget) Check(r Record) error {
	if len(r.Key) == 0 {
		return errors.New("empty key")
	}
	return nil
}

func (t *redisTarget) Write(ctx context.Context, recs []Record, opts WriteOptions) ([]Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	pipe := t.c.Pipeline()
	cmds := make([]*redis.StatusCmd, len(recs))
	for i, r := range recs {
		args := redis.SetArgs{ExpireAt: r.ExpireAt}
		if opts.Mode == SkipExisting {
			args.Mode = "NX"
		}
		cmds[i] = pipe.SetArgs(ctx, string(r.Key), r.Value, args)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("set pipeline: %w", err)
	}
	outs := make([]Outcome, len(recs))
	for i, c := range cmds {
		err := c.Err()
		switch {
		case errors.Is(err, redis.Nil):
			outs[i] = Outcome{Status: Skipped, Reason: "exists"}
		case err != nil:
			outs[i] = Outcome{Status: Failed, Reason: err.Error()}
		}
	}
	return outs, nil
}

func (t *redisTarget) Sync(context.Context) (string, error) { return "", nil }
func (t *redisTarget) Close() error                         { return t.c.Close() }
