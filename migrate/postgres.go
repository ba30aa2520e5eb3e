package migrate

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

var pgAccepted = map[string][]string{
	"key":        {"bytea", "text", "varchar"},
	"value":      {"bytea", "text", "varchar"},
	"updated_at": {"timestamptz", "timestamp"},
}

// pgTable is a parsed postgres:// URL.
type pgTable struct {
	conn  string         // connection string without the table parameter
	ident pgx.Identifier // the table, maybe schema-qualified
	name  string         // ident, quoted, for SQL and messages
}

func parsePostgresURL(rawURL string) (pgTable, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return pgTable{}, fmt.Errorf("parse URL: %w", err)
	}
	q := u.Query()
	table := q.Get("table")
	q.Del("table")
	u.RawQuery = q.Encode()
	if table == "" {
		table = defaultTable
	}
	ident := pgx.Identifier(strings.Split(table, "."))
	if len(ident) > 2 || slices.Contains(ident, "") {
		return pgTable{}, fmt.Errorf("table %q: want NAME or SCHEMA.NAME", table)
	}
	return pgTable{conn: u.String(), ident: ident, name: ident.Sanitize()}, nil
}

func pgConnect(ctx context.Context, t pgTable, timeout time.Duration) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, t.conn)
	if err != nil {
		return nil, fmt.Errorf("unreachable: %w", err)
	}
	return conn, nil
}

// pgColumns returns the table's columns, or nil when it does not exist.
func pgColumns(ctx context.Context, conn *pgx.Conn, t pgTable) (sqlColumns, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t.name).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up table %s: %w", t.name, err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT a.attname, ty.typname
		FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, t.name)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.name, err)
	}
	cols := sqlColumns{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", t.name, err)
		}
		cols[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.name, err)
	}
	return cols, nil
}

// postgresSource streams the table in key order with one query: one
// statement reads one MVCC snapshot, so the copy is a consistent cut.
type postgresSource struct {
	sqlCursor
	table   pgTable
	conn    *pgx.Conn
	timeout time.Duration
	text    bool // key column is text: compare with the C collation
	prefix  []byte
}

func openPostgresSource(ctx context.Context, rawURL string, opts SourceOptions) (*postgresSource, error) {
	t, err := parsePostgresURL(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := pgConnect(ctx, t, opts.RequestTimeout)
	if err != nil {
		return nil, err
	}
	s := &postgresSource{sqlCursor: sqlCursor{table: t.name}, table: t, conn: conn, timeout: opts.RequestTimeout, prefix: opts.Prefix}
	cols, err := pgColumns(ctx, conn, t)
	if err == nil && cols == nil {
		err = fmt.Errorf("table %s does not exist", t.name)
	}
	if err == nil {
		err = cols.require(t.name, []string{"key", "value"}, pgAccepted)
	}
	if err == nil {
		err = s.resume(opts.After)
	}
	if err != nil {
		_ = conn.Close(context.Background())
		return nil, err
	}
	s.text = cols["key"] != "bytea"
	return s, nil
}

// where returns the filter on prefix and resume position, and its args.
func (s *postgresSource) where(withAfter bool) (string, []any) {
	var conds []string
	var args []any
	arg := func(b []byte) string {
		if s.text {
			args = append(args, string(b))
		} else {
			args = append(args, b)
		}
		return fmt.Sprintf("$%d", len(args))
	}
	if len(s.prefix) > 0 {
		if s.text {
			conds = append(conds, "starts_with(key, "+arg(s.prefix)+")")
		} else {
			conds = append(conds, "key >= "+arg(s.prefix))
			if end := prefixEnd(s.prefix); end != nil {
				conds = append(conds, "key < "+arg(end))
			}
		}
	}
	if withAfter && s.started {
		if s.text {
			conds = append(conds, `key COLLATE "C" > `+arg(s.after))
		} else {
			conds = append(conds, "key > "+arg(s.after))
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func (s *postgresSource) Next(ctx context.Context) (Record, error) {
	return s.next(func() (sqlRows, error) {
		where, args := s.where(true)
		order := "key"
		if s.text {
			order = `key COLLATE "C"`
		}
		return s.conn.Query(ctx, "SELECT key, value FROM "+s.table.name+where+" ORDER BY "+order, args...)
	})
}

func (s *postgresSource) Position() string { return s.position() }

func (s *postgresSource) Sorted() bool { return true }

func (s *postgresSource) Close() error {
	if s.rows != nil {
		s.rows.(pgx.Rows).Close()
	}
	return s.conn.Close(context.Background())
}

// Estimate counts the selected rows on a connection of its own: the
// source's connection is busy streaming.
func (s *postgresSource) Estimate(ctx context.Context) (int64, error) {
	conn, err := pgConnect(ctx, s.table, s.timeout)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	where, args := s.where(false)
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+s.table.name+where, args...).Scan(&n)
	return n, err
}

// Cut reports the snapshot the query read.
func (s *postgresSource) Cut() *Consistency {
	return &Consistency{Model: "snapshot", Exact: true,
		Note: "read by one SQL statement, which sees one snapshot of the table (a resumed copy reads one snapshot per run)"}
}

// postgresTarget upserts batches with one INSERT ... ON CONFLICT each.
type postgresTarget struct {
	table   pgTable
	conn    *pgx.Conn
	timeout time.Duration
	cols    sqlColumns // nil: the table does not exist yet
}

func openPostgresTarget(ctx context.Context, rawURL string, opts TargetOptions) (*postgresTarget, error) {
	t, err := parsePostgresURL(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := pgConnect(ctx, t, opts.RequestTimeout)
	if err != nil {
		return nil, err
	}
	pt := &postgresTarget{table: t, conn: conn, timeout: opts.RequestTimeout}
	if err := pt.inspect(ctx); err != nil {
		_ = conn.Close(context.Background())
		return nil, err
	}
	return pt, nil
}

// inspect checks an existing table's columns and its unique key.
func (t *postgresTarget) inspect(ctx context.Context) error {
	cols, err := pgColumns(ctx, t.conn, t.table)
	if err != nil {
		return err
	}
	t.cols, err = inspectSQLTarget(ctx, t.table.name, cols, pgAccepted, func(ctx context.Context) (unique bool, err error) {
		err = t.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1 AND a.attname = 'key')`,
			t.table.name).Scan(&unique)
		return unique, err
	})
	return err
}

func (t *postgresTarget) Prepare(ctx context.Context) error {
	if t.cols != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	_, err := t.conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+t.table.name+
		" (key bytea PRIMARY KEY, value bytea NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())")
	if err != nil {
		return fmt.Errorf("create table %s: %w", t.table.name, err)
	}
	return t.inspect(ctx)
}

func (t *postgresTarget) CanExpire() bool { return false }

// Check refuses what a text column cannot hold. Before Prepare created a
// missing table, the columns will be bytea, which hold anything.
func (t *postgresTarget) Check(r Record) error {
	return checkSQLRecord(r, t.table.name, t.cols, func(col string) bool {
		return t.cols != nil && t.cols[col] != "bytea"
	})
}

// array returns the values as the column's array parameter and its cast.
func (t *postgresTarget) array(col string, vals [][]byte) (any, string) {
	if t.cols[col] == "bytea" {
		return vals, "bytea[]"
	}
	s := make([]string, len(vals))
	for i, v := range vals {
		s[i] = string(v)
	}
	return s, "text[]"
}

func (t *postgresTarget) Write(ctx context.Context, recs []Record, opts WriteOptions) ([]Outcome, error) {
	keys := make([][]byte, len(recs))
	vals := make([][]byte, len(recs))
	for i, r := range recs {
		keys[i], vals[i] = r.Key, r.Value
	}
	ka, kt := t.array("key", keys)
	va, vt := t.array("value", vals)
	q := "INSERT INTO " + t.table.name + " AS t (key, value, updated_at) SELECT k, v, now() FROM unnest($1::" + kt + ", $2::" + vt + ") AS u(k, v) "
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	outs := make([]Outcome, len(recs))
	if opts.Mode == SkipExisting {
		rows, err := t.conn.Query(ctx, q+"ON CONFLICT (key) DO NOTHING RETURNING key", ka, va)
		if err != nil {
			return nil, err
		}
		inserted := map[string]bool{}
		for rows.Next() {
			var k []byte
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, err
			}
			inserted[string(k)] = true
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for i, r := range recs {
			if !inserted[string(r.Key)] {
				outs[i] = Outcome{Status: Skipped, Reason: "exists"}
			}
		}
		return outs, nil
	}
	// Rows that already hold the value are left alone, updated_at too: a
	// resumed or repeated migration rewrites nothing.
	_, err := t.conn.Exec(ctx, q+"ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at "+
		"WHERE t.value IS DISTINCT FROM EXCLUDED.value", ka, va)
	if err != nil {
		return nil, err
	}
	return outs, nil
}

func (t *postgresTarget) Sync(context.Context) (string, error) { return "", nil }

func (t *postgresTarget) Close() error { return t.conn.Close(context.Background()) }
