package migrate

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strings"
	"time"
)

// The dump format is JSON lines, one object per key (docs/migrate.md):
//
//	{"key":"<base64>","value":"<base64>"}
//	{"key":"<base64>","value":"<base64>","expire_at":"2026-01-02T15:04:05.000Z"}
//	{"key":"<base64>","value":"<base64>","ttl":3600}
//
// NB: dumps outlive releases; readers must keep accepting every form above.

// expireLayout is how dumps write expiry times: RFC 3339, UTC, milliseconds.
const expireLayout = "2006-01-02T15:04:05.000Z07:00"

// fileLine is one decoded dump line; pointers tell absent from empty.
type fileLine struct {
	Key      *string  `json:"key"`
	Value    *string  `json:"value"`
	ExpireAt *string  `json:"expire_at"`
	TTL      *float64 `json:"ttl"`
}

// parseLine decodes one non-blank dump line. now anchors a relative ttl.
func parseLine(line []byte, now time.Time) (Record, error) {
	var l fileLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Record{}, fmt.Errorf("not a JSON object with key and value: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("more than one JSON value on the line")
	}
	if l.Key == nil {
		return Record{}, errors.New(`no "key"`)
	}
	if l.Value == nil {
		return Record{}, errors.New(`no "value" (an empty value is "value":"")`)
	}
	key, err := base64.StdEncoding.DecodeString(*l.Key)
	if err != nil {
		return Record{}, fmt.Errorf("key is not base64: %w", err)
	}
	value, err := base64.StdEncoding.DecodeString(*l.Value)
	if err != nil {
		return Record{}, fmt.Errorf("value is not base64: %w", err)
	}
	rec := Record{Key: key, Value: value}
	switch {
	case l.ExpireAt != nil && l.TTL != nil:
		return Record{}, errors.New(`both "expire_at" and "ttl": give one`)
	case l.ExpireAt != nil:
		t, err := time.Parse(time.RFC3339Nano, *l.ExpireAt)
		if err != nil {
			return Record{}, fmt.Errorf("expire_at is not an RFC 3339 time: %w", err)
		}
		rec.ExpireAt = t
	case l.TTL != nil:
		if *l.TTL <= 0 || math.IsInf(*l.TTL, 0) || *l.TTL > 1e10 {
			return Record{}, fmt.Errorf("ttl %v must be a positive number of seconds", *l.TTL)
		}
		rec.ExpireAt = now.Add(time.Duration(*l.TTL * float64(time.Second)))
	}
	return rec, nil
}

// appendLine appends r as one dump line, newline included.
func appendLine(dst []byte, r Record) []byte {
	dst = append(dst, `{"key":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, r.Key)
	dst = append(dst, `","value":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, r.Value)
	dst = append(dst, '"')
	if !r.ExpireAt.IsZero() {
		dst = append(dst, `,"expire_at":"`...)
		dst = r.ExpireAt.UTC().AppendFormat(dst, expireLayout)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

func isGzip(path string) bool { return strings.HasSuffix(path, ".gz") }

// filePosition is the Position token of a file source.
//
// NB: stored in checkpoint files; add fields, never change one.
type filePosition struct {
	Line   int64 `json:"line"`
	Offset int64 `json:"offset"` // uncompressed bytes consumed
}

// fileSource reads a dump file. It is not sorted: a dump may hold keys in
// any order, and the same key more than once (the last line wins).
type fileSource struct {
	path   string
	f      *os.File
	r      *bufio.Reader
	gz     *gzip.Reader
	pos    filePosition
	prefix []byte
}

func openFileSource(path string, opts SourceOptions) (*fileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s := &fileSource{path: path, f: f, prefix: opts.Prefix}
	var r io.Reader = f
	if isGzip(path) {
		if s.gz, err = gzip.NewReader(bufio.NewReaderSize(f, 1<<20)); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s is not gzip: %w", path, err)
		}
		r = s.gz
	}
	s.r = bufio.NewReaderSize(r, 1<<20)
	if opts.After != "" {
		if err := json.Unmarshal([]byte(opts.After), &s.pos); err != nil {
			s.Close()
			return nil, fmt.Errorf("bad resume position %q: %w", opts.After, err)
		}
		if _, err := io.CopyN(io.Discard, s.r, s.pos.Offset); err != nil {
			s.Close()
			return nil, fmt.Errorf("skip to byte %d (line %d) to resume: %w", s.pos.Offset, s.pos.Line, err)
		}
	}
	return s, nil
}

func (s *fileSource) Next(context.Context) (Record, error) {
	for {
		b, err := s.r.ReadBytes('\n')
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return Record{}, io.EOF
		}
		lineNo := s.pos.Line + 1
		if err != nil && !errors.Is(err, io.EOF) {
			return Record{}, fmt.Errorf("%s line %d: read: %w", s.path, lineNo, err)
		}
		line := bytes.TrimSpace(b)
		if len(line) == 0 {
			s.pos.Line, s.pos.Offset = lineNo, s.pos.Offset+int64(len(b))
			continue
		}
		rec, perr := parseLine(line, time.Now())
		if perr != nil {
			return Record{}, fmt.Errorf("%s line %d: %w (lines before it are valid; nothing from this line on was written)", s.path, lineNo, perr)
		}
		s.pos.Line, s.pos.Offset = lineNo, s.pos.Offset+int64(len(b))
		if !bytes.HasPrefix(rec.Key, s.prefix) {
			continue
		}
		return rec, nil
	}
}

func (s *fileSource) Position() string {
	b, _ := json.Marshal(s.pos)
	return string(b)
}

func (s *fileSource) Sorted() bool { return false }

func (s *fileSource) Close() error {
	if s.gz != nil {
		s.gz.Close()
	}
	return s.f.Close()
}

// Estimate extrapolates the number of lines from the first few MiB.
func (s *fileSource) Estimate(context.Context) (int64, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	counted := &countingReader{r: f}
	var r io.Reader = counted
	if isGzip(s.path) {
		gz, err := gzip.NewReader(counted)
		if err != nil {
			return 0, err
		}
		defer gz.Close()
		r = gz
	}
	const sample = 4 << 20
	buf := make([]byte, 64<<10)
	var lines, read int64
	for read < sample {
		n, err := r.Read(buf)
		lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		read += int64(n)
		if err != nil {
			return lines, nil // the whole file: an exact count
		}
	}
	return int64(float64(lines) * float64(st.Size()) / float64(max(counted.n, 1))), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fileTarget writes a dump file. Sync ends the current gzip member, so a
// resumed migration can cut the file back to the last checkpoint and go on
// with a new member: readers see one stream (gzip allows concatenation).
type fileTarget struct {
	path    string
	resume  int64 // offset to cut back to; -1: start a new file
	replace bool
	f       *os.File
	cw      *countingWriter
	bw      *bufio.Writer
	zw      *gzip.Writer
	buf     []byte
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// fileTargetPosition is the Sync token of a file target.
//
// NB: stored in checkpoint files; add fields, never change one.
type fileTargetPosition struct {
	Offset int64 `json:"offset"`
}

func openFileTarget(path string, opts TargetOptions) (*fileTarget, error) {
	t := &fileTarget{path: path, resume: -1, replace: opts.Replace}
	if opts.Resume != "" {
		var p fileTargetPosition
		if err := json.Unmarshal([]byte(opts.Resume), &p); err != nil {
			return nil, fmt.Errorf("bad resume position %q: %w", opts.Resume, err)
		}
		t.resume = p.Offset
	}
	switch st, err := os.Stat(path); {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("%s is a directory", path)
	case err == nil && t.resume < 0 && !t.replace:
		return nil, fmt.Errorf("%s exists: pass --overwrite to replace it", path)
	case err == nil && t.resume > st.Size():
		return nil, fmt.Errorf("%s is %d bytes, shorter than the checkpoint's %d: it changed since", path, st.Size(), t.resume)
	case errors.Is(err, fs.ErrNotExist) && t.resume >= 0:
		return nil, fmt.Errorf("%s is gone, so the checkpoint cannot be resumed", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return t, nil
}

func (t *fileTarget) Prepare(context.Context) error {
	var err error
	if t.resume >= 0 {
		if t.f, err = os.OpenFile(t.path, os.O_WRONLY, 0); err != nil {
			return err
		}
		if err := t.f.Truncate(t.resume); err != nil {
			return fmt.Errorf("cut %s back to the checkpoint: %w", t.path, err)
		}
		if _, err := t.f.Seek(t.resume, io.SeekStart); err != nil {
			return err
		}
	} else if t.f, err = os.OpenFile(t.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
		return err
	}
	t.cw = &countingWriter{w: t.f, n: max(t.resume, 0)}
	t.bw = bufio.NewWriterSize(t.cw, 1<<20)
	return nil
}

func (t *fileTarget) Check(Record) error { return nil }
func (t *fileTarget) CanExpire() bool    { return true }

func (t *fileTarget) Write(_ context.Context, recs []Record, _ WriteOptions) ([]Outcome, error) {
	var w io.Writer = t.bw
	if isGzip(t.path) {
		if t.zw == nil {
			t.zw = gzip.NewWriter(t.bw)
		}
		w = t.zw
	}
	outs := make([]Outcome, len(recs))
	for _, r := range recs {
		t.buf = appendLine(t.buf[:0], r)
		if _, err := w.Write(t.buf); err != nil {
			return nil, fmt.Errorf("write %s: %w", t.path, err)
		}
	}
	return outs, nil // the zero Outcome is Copied
}

// Sync closes the gzip member, flushes and fsyncs, and returns the offset.
func (t *fileTarget) Sync(context.Context) (string, error) {
	if t.f == nil {
		return "", nil
	}
	if t.zw != nil {
		if err := t.zw.Close(); err != nil {
			return "", fmt.Errorf("write %s: %w", t.path, err)
		}
		t.zw = nil
	}
	if err := t.bw.Flush(); err != nil {
		return "", fmt.Errorf("write %s: %w", t.path, err)
	}
	if err := t.f.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", t.path, err)
	}
	b, _ := json.Marshal(fileTargetPosition{Offset: t.cw.n})
	return string(b), nil
}

func (t *fileTarget) Close() error {
	if t.f == nil {
		return nil
	}
	_, err := t.Sync(context.Background())
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	t.f = nil
	return err
}
