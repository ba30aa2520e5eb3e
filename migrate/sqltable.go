package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file holds what the PostgreSQL and SQLite backends share: the table
// shape (key, value, updated_at), the resumable key-ordered cursor of the
// sources, and the checks of the targets. The dialects differ only in SQL
// text and parameter types, which stay in postgres.go and sqlite.go.
//
// Neither target has an expiry column: CanExpire is false, so the engine
// applies --ttl (keep fails such records, drop copies them without expiry
// and counts them in ttl_dropped, skip skips them); docs/migrate.md.

// defaultTable is the table of the original design's SQL storage backend.
const defaultTable = "data_store"

// sqlTargetColumns are the columns a SQL target writes.
var sqlTargetColumns = []string{"key", "value", "updated_at"}

// sqlColumns is what a table looks like to the migration: the declared
// type of every column, by name.
type sqlColumns map[string]string

// require checks that the columns named in want exist and have one of the
// accepted types; accepted maps column name to accepted type names.
func (c sqlColumns) require(table string, want []string, accepted map[string][]string) error {
	var names []string
	for n := range c {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, w := range want {
		typ, ok := c[w]
		if !ok {
			return fmt.Errorf("table %s has no column %q (it has %s; want columns %s)",
				table, w, strings.Join(names, ", "), strings.Join(want, ", "))
		}
		if ok := accepted[w]; ok != nil && !slices.Contains(ok, typ) {
			return fmt.Errorf("column %s.%s has type %s; want one of %s", table, w, typ, strings.Join(accepted[w], ", "))
		}
	}
	return nil
}

// inspectSQLTarget checks an existing target table (cols nil: it does not
// exist yet, which is fine) for the target columns and a unique key, and
// returns the columns to keep. uniqueKey asks the database whether key
// alone carries a primary key or unique index.
func inspectSQLTarget(ctx context.Context, table string, cols sqlColumns, accepted map[string][]string,
	uniqueKey func(context.Context) (bool, error)) (sqlColumns, error) {
	if cols == nil {
		return nil, nil
	}
	if err := cols.require(table, sqlTargetColumns, accepted); err != nil {
		return nil, err
	}
	unique, err := uniqueKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("look up the key index of %s: %w", table, err)
	}
	if !unique {
		return nil, fmt.Errorf("column %s.key is not unique (no primary key or unique index on key alone), so rows cannot be upserted", table)
	}
	return cols, nil
}

// checkSQLRecord refuses an empty key and what a text column cannot hold;
// text reports whether a column stores text.
func checkSQLRecord(r Record, table string, cols sqlColumns, text func(col string) bool) error {
	if len(r.Key) == 0 {
		return errors.New("empty key")
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{{"key", r.Key}, {"value", r.Value}} {
		if text(c.name) && (!utf8.Valid(c.b) || strings.ContainsRune(string(c.b), 0)) {
			return fmt.Errorf("%s is not valid UTF-8 text without NUL bytes, which column %s.%s (%s) needs", c.name, table, c.name, cols[c.name])
		}
	}
	return nil
}

// sqlPosition is the Position token of the SQL sources.
//
// NB: stored in checkpoint files; add fields, never change one.
type sqlPosition struct {
	After []byte `json:"after"`
}

// sqlRows is what sqlCursor reads; pgx.Rows and *sql.Rows both have it.
type sqlRows interface {
	Next() bool
	Err() error
	Scan(dest ...any) error
}

// sqlCursor streams (key, value) rows in key order from one query and
// remembers the last key, so a new run can resume after it.
type sqlCursor struct {
	table   string
	after   []byte
	started bool
	rows    sqlRows
}

// resume restores the position of an earlier run ("" means the start).
func (c *sqlCursor) resume(after string) error {
	if after == "" {
		return nil
	}
	var p sqlPosition
	if err := json.Unmarshal([]byte(after), &p); err != nil {
		return fmt.Errorf("bad resume position %q: %w", after, err)
	}
	c.after, c.started = p.After, p.After != nil
	return nil
}

// next returns the next row as a record; query runs the select (filtered
// on the resume position) on the first call.
func (c *sqlCursor) next(query func() (sqlRows, error)) (Record, error) {
	if c.rows == nil {
		rows, err := query()
		if err != nil {
			return Record{}, fmt.Errorf("query %s: %w", c.table, err)
		}
		c.rows = rows
	}
	if !c.rows.Next() {
		if err := c.rows.Err(); err != nil {
			return Record{}, fmt.Errorf("read %s: %w", c.table, err)
		}
		return Record{}, io.EOF
	}
	var k, v []byte
	if err := c.rows.Scan(&k, &v); err != nil {
		return Record{}, fmt.Errorf("read %s: %w", c.table, err)
	}
	if v == nil {
		v = []byte{} // NULL values migrate as empty values
	}
	c.after, c.started = k, true
	return Record{Key: k, Value: v}, nil
}

// position is the source's Position token.
func (c *sqlCursor) position() string {
	if !c.started {
		return ""
	}
	b, _ := json.Marshal(sqlPosition{After: c.after})
	return string(b)
}
