package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Destination is where a node keeps backups. Dir is the local-directory
// implementation; object storage would be another (the seam is here so the
// node does not care).
//
// Implementations must be safe for concurrent use, and Put must be atomic:
// after an error or a crash, id either holds the complete backup or is
// absent, never a partial file that List would show.
type Destination interface {
	// Put stores a new backup under id, writing it with write. It fails if
	// id exists.
	Put(ctx context.Context, id string, write func(io.Writer) error) error
	// Open returns the backup stored under id and its size. A missing id is
	// an error wrapping ErrNotFound.
	Open(ctx context.Context, id string) (io.ReadCloser, int64, error)
	// List returns every stored backup, oldest id first.
	List(ctx context.Context) ([]Entry, error)
	// Delete removes the backup stored under id. A missing id is an error
	// wrapping ErrNotFound.
	Delete(ctx context.Context, id string) error
}

// Entry is one stored backup as a Destination lists it.
type Entry struct {
	// ID is the backup id.
	ID string
	// Size is the stored size in bytes.
	Size int64
	// ModTime is when it was stored.
	ModTime time.Time
}

// Dir is a Destination in a local directory: one file ID+FileExt per
// backup, written under a temporary name, fsynced and renamed into place.
// Several nodes may share one directory (an NFS mount, say).
type Dir struct {
	path  string
	owner string
}

// tmpPrefix starts the names of files being written; List ignores them.
const tmpPrefix = ".tmp-"

// OpenDir returns the Dir at path, creating the directory if needed, and
// removes temporary files that a crashed writer named owner (a node id) left
// behind. Files of other owners are left alone, since they may be writing.
func OpenDir(path, owner string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("backup dir: path is required")
	}
	if err := ValidateID(owner); err != nil {
		return nil, fmt.Errorf("backup dir: owner: %w", err)
	}
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("create backup dir %q: %w", path, err)
	}
	d := &Dir{path: path, owner: owner}
	leftovers, err := filepath.Glob(filepath.Join(path, d.tmpPattern()))
	if err != nil {
		return nil, fmt.Errorf("backup dir %q: %w", path, err)
	}
	for _, p := range leftovers {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove leftover temp file %q: %w", p, err)
		}
	}
	return d, nil
}

func (d *Dir) tmpPattern() string { return tmpPrefix + d.owner + "-*" }

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// TempDir returns a directory for temporary files on the same filesystem.
func (d *Dir) TempDir() string { return d.path }

// CreateTemp creates a temporary file in the directory that List ignores
// and OpenDir (of the same owner) removes after a crash.
func (d *Dir) CreateTemp() (*os.File, error) {
	return os.CreateTemp(d.path, d.tmpPattern())
}

func (d *Dir) file(id string) (string, error) {
	if err := ValidateID(id); err != nil {
		return "", err
	}
	return filepath.Join(d.path, id+FileExt), nil
}

// Put implements Destination.
func (d *Dir) Put(ctx context.Context, id string, write func(io.Writer) error) (err error) {
	dst, err := d.file(id)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("backup %s already exists", id)
	}
	f, err := d.CreateTemp()
	if err != nil {
		return fmt.Errorf("create temp file for backup %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("write backup %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write backup %s: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync backup %s: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close backup %s: %w", id, err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("rename backup %s into place: %w", id, err)
	}
	if err := syncDir(d.path); err != nil {
		return fmt.Errorf("fsync backup dir after storing %s: %w", id, err)
	}
	return nil
}

// Open implements Destination.
func (d *Dir) Open(_ context.Context, id string) (io.ReadCloser, int64, error) {
	p, err := d.file(id)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open backup %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat backup %s: %w", id, err)
	}
	return f, fi.Size(), nil
}

// List implements Destination.
func (d *Dir) List(context.Context) ([]Entry, error) {
	des, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("list backup dir %q: %w", d.path, err)
	}
	var out []Entry
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) || !strings.HasSuffix(name, FileExt) || !de.Type().IsRegular() {
			continue
		}
		id := strings.TrimSuffix(name, FileExt)
		if ValidateID(id) != nil {
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("stat backup %s: %w", id, err)
		}
		out = append(out, Entry{ID: id, Size: fi.Size(), ModTime: fi.ModTime()})
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Delete implements Destination.
func (d *Dir) Delete(_ context.Context, id string) error {
	p, err := d.file(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return fmt.Errorf("delete backup %s: %w", id, err)
	}
	return syncDir(d.path)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// maxIDLen bounds backup ids.
const maxIDLen = 128

// ValidateID returns an error wrapping ErrInvalidID unless id can name a
// backup: 1 to 128 characters from [A-Za-z0-9._-], not starting with a dot
// (so it is a plain file name, never a path).
func ValidateID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w %q: want 1 to %d characters", ErrInvalidID, id, maxIDLen)
	}
	if id[0] == '.' {
		return fmt.Errorf("%w %q: must not start with a dot", ErrInvalidID, id)
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w %q: only letters, digits, '.', '_' and '-' are allowed", ErrInvalidID, id)
		}
	}
	return nil
}

// NewID returns a new backup id for a backup taken at t of raft index
// index: "20060102T150405Z-<index>-<4 random hex digits>". Ids sort by time
// (to the second), and the random suffix keeps two backups of the same
// second apart.
func NewID(t time.Time, index uint64) string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return fmt.Sprintf("%s-%d-%s", t.UTC().Format("20060102T150405Z"), index, hex.EncodeToString(b[:]))
}
