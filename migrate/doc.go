// Package migrate copies keys and values between raftkv clusters, JSON-lines
// dump files, PostgreSQL and SQLite tables and Redis databases. raftkvctl's
// migrate, export and import commands are thin wrappers around it.
//
// It owns the copy engine (Migration: batching, rate limit, checkpoints and
// resume, verification, the summary), the small Source and Target
// interfaces it consumes, and one file per backend implementing them:
// raftkv.go (paged linearizable Range reads; Txn batches through the
// leader), file.go (the dump format, docs/migrate.md), postgres.go (pgx),
// sqlite.go (modernc.org/sqlite, pure Go, so CGO_ENABLED=0 builds keep
// working) and redis.go (go-redis; string keys with TTLs).
//
// # What it must never do
//
// It is a client of raftkv: it may import api/kvpb and client, never server
// packages (lint/imports_test.go), and only raftkvctl may import it, so the
// SQL drivers never end up in raftkvd (lint/drivers_test.go). It must never
// write before both sides are open and reachable, never drop a record
// silently (every record is copied, skipped with a reason, or failed with a
// reason, and the first of each kind are listed), and never resume a
// checkpoint written by a different migration. DESIGN.md explains the
// consistency of copies out of a live cluster, the resume guarantees and
// the verification hash.
package migrate
