package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver: CGO_ENABLED=0 builds keep working
)

// sqliteTable is a parsed sqlite: URL.
type sqliteTable struct {
	path  string
	table string // unquoted
	name  string // quoted for SQL
}

func parseSQLiteURL(rest string) (sqliteTable, error) {
	path, q, err := splitQuery(rest)
	if err != nil {
		return sqliteTable{}, err
	}
	if path == "" {
		return sqliteTable{}, errors.New("want sqlite:PATH[?table=NAME]")
	}
	table := q.Get("table")
	if table == "" {
		table = defaultTable
	}
	return sqliteTable{path: path, table: table, name: `"` + strings.ReplaceAll(table, `"`, `""`) + `"`}, nil
}

func sqliteOpen(ctx context.Context, t sqliteTable, readOnly bool, timeout time.Duration) (*sql.DB, error) {
	dsn := "file:" + t.path + "?_pragma=busy_timeout(10000)"
	if readOnly {
		dsn += "&mode=ro"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", t.path, err)
	}
	return db, nil
}

// sqliteColumns returns the table's columns and declared types, or nil
// when the table does not exist.
func sqliteColumns(ctx context.Context, db *sql.DB, t sqliteTable) (sqlColumns, error) {
	rows, err := db.QueryContext(ctx, "SELECT name, type FROM pragma_table_info(?)", t.table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.name, err)
	}
	defer rows.Close()
	var cols sqlColumns
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", t.name, err)
		}
		if cols == nil {
			cols = sqlColumns{}
		}
		cols[name] = strings.ToUpper(typ)
	}
	return cols, rows.Err()
}

// textAffinity applies SQLite's rule: a declared type containing CHAR,
// CLOB or TEXT stores text. Such columns are written as text, or a key
// would not match the same key stored by another program.
func textAffinity(typ string) bool {
	return strings.Contains(typ, "CHAR") || strings.Contains(typ, "CLOB") || strings.Contains(typ, "TEXT")
}

// sqliteSource streams a table in byte order of its keys. The query runs
// in one read transaction, so it is a consistent snapshot.
type sqliteSource struct {
	sqlCursor
	table  sqliteTable
	db     *sql.DB
	prefix []byte
}

func openSQLiteSource(ctx context.Context, rest string, opts SourceOptions) (*sqliteSource, error) {
	t, err := parseSQLiteURL(rest)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(t.path); err != nil {
		return nil, err // sqlite would create a missing file
	}
	db, err := sqliteOpen(ctx, t, true, opts.RequestTimeout)
	if err != nil {
		return nil, err
	}
	s := &sqliteSource{sqlCursor: sqlCursor{table: t.name}, table: t, db: db, prefix: opts.Prefix}
	cols, err := sqliteColumns(ctx, db, t)
	if err == nil && cols == nil {
		err = fmt.Errorf("table %s does not exist in %s", t.name, t.path)
	}
	if err == nil {
		err = cols.require(t.name, []string{"key", "value"}, nil)
	}
	if err == nil {
		err = s.resume(opts.After)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// where filters on CAST(key AS BLOB), which orders text and blob keys alike
// by their bytes.
func (s *sqliteSource) where(withAfter bool) (string, []any) {
	var conds []string
	var args []any
	if len(s.prefix) > 0 {
		conds, args = append(conds, "CAST(key AS BLOB) >= ?"), append(args, s.prefix)
		if end := prefixEnd(s.prefix); end != nil {
			conds, args = append(conds, "CAST(key AS BLOB) < ?"), append(args, end)
		}
	}
	if withAfter && s.started {
		conds, args = append(conds, "CAST(key AS BLOB) > ?"), append(args, s.after)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func (s *sqliteSource) Next(ctx context.Context) (Record, error) {
	return s.next(func() (sqlRows, error) {
		where, args := s.where(true)
		return s.db.QueryContext(ctx, "SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM "+s.table.name+where+" ORDER BY CAST(key AS BLOB)", args...)
	})
}

func (s *sqliteSource) Position() string { return s.position() }

func (s *sqliteSource) Sorted() bool { return true }

func (s *sqliteSource) Close() error {
	if s.rows != nil {
		s.rows.(*sql.Rows).Close()
	}
	return s.db.Close()
}

// Estimate counts the selected rows.
func (s *sqliteSource) Estimate(ctx context.Context) (int64, error) {
	where, args := s.where(false)
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+s.table.name+where, args...).Scan(&n)
	return n, err
}

// sqliteTarget upserts each batch in one transaction.
type sqliteTarget struct {
	table   sqliteTable
	db      *sql.DB // nil until Prepare when the file does not exist yet
	timeout time.Duration
	cols    sqlColumns
}

func openSQLiteTarget(ctx context.Context, rest string, opts TargetOptions) (*sqliteTarget, error) {
	t, err := parseSQLiteURL(rest)
	if err != nil {
		return nil, err
	}
	st := &sqliteTarget{table: t, timeout: opts.RequestTimeout}
	if _, err := os.Stat(t.path); errors.Is(err, fs.ErrNotExist) {
		return st, nil // created by Prepare: nothing is written before both sides are open
	}
	if st.db, err = sqliteOpen(ctx, t, false, opts.RequestTimeout); err != nil {
		return nil, err
	}
	if err := st.inspect(ctx); err != nil {
		st.db.Close()
		return nil, err
	}
	return st, nil
}

// inspect checks an existing table's columns and that key is unique.
func (t *sqliteTarget) inspect(ctx context.Context) error {
	cols, err := sqliteColumns(ctx, t.db, t.table)
	if err != nil {
		return err
	}
	t.cols, err = inspectSQLTarget(ctx, t.table.name, cols, nil, func(ctx context.Context) (unique bool, err error) {
		err = t.db.QueryRowContext(ctx, `SELECT EXISTS (
		SELECT 1 FROM pragma_table_info(?1) WHERE pk = 1 AND name = 'key'
			AND (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1
		UNION ALL
		SELECT 1 FROM pragma_index_list(?1) AS il WHERE il."unique"
			AND (SELECT count(*) FROM pragma_index_info(il.name)) = 1
			AND (SELECT name FROM pragma_index_info(il.name)) = 'key')`, t.table.table).Scan(&unique)
		return unique, err
	})
	return err
}

func (t *sqliteTarget) Prepare(ctx context.Context) error {
	if t.db == nil {
		db, err := sqliteOpen(ctx, t.table, false, t.timeout)
		if err != nil {
			return err
		}
		t.db = db
	}
	if t.cols != nil {
		return nil
	}
	_, err := t.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+t.table.name+
		" (key BLOB PRIMARY KEY, value BLOB NOT NULL, updated_at TEXT NOT NULL)")
	if err != nil {
		return fmt.Errorf("create table %s: %w", t.table.name, err)
	}
	return t.inspect(ctx)
}

func (t *sqliteTarget) CanExpire() bool { return false }

func (t *sqliteTarget) Check(r Record) error {
	return checkSQLRecord(r, t.table.name, t.cols, func(col string) bool { return textAffinity(t.cols[col]) })
}

func (t *sqliteTarget) param(col string, b []byte) any {
	if textAffinity(t.cols[col]) {
		return string(b)
	}
	if b == nil {
		return []byte{} // a nil []byte would be NULL
	}
	return b
}

func (t *sqliteTarget) Write(ctx context.Context, recs []Record, opts WriteOptions) ([]Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // a no-op after Commit
	q := "INSERT INTO " + t.table.name + " (key, value, updated_at) VALUES (?, ?, ?) "
	if opts.Mode == SkipExisting {
		q += "ON CONFLICT (key) DO NOTHING"
	} else {
		q += "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at WHERE value IS NOT excluded.value"
	}
	stmt, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	outs := make([]Outcome, len(recs))
	for i, r := range recs {
		res, err := stmt.ExecContext(ctx, t.param("key", r.Key), t.param("value", r.Value), now)
		if err != nil {
			return nil, fmt.Errorf("insert into %s: %w", t.table.name, err)
		}
		if opts.Mode == SkipExisting {
			if n, err := res.RowsAffected(); err == nil && n == 0 {
				outs[i] = Outcome{Status: Skipped, Reason: "exists"}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit to %s: %w", t.table.name, err)
	}
	return outs, nil
}

func (t *sqliteTarget) Sync(context.Context) (string, error) { return "", nil }

func (t *sqliteTarget) Close() error {
	if t.db == nil {
		return nil
	}
	return t.db.Close()
}
