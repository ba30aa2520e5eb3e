// Command raftkvctl is the command-line client of a raftkv cluster. Build it
// with `go build -o raftkvctl ./cmd/ctl`.
//
// Usage:
//
//	raftkvctl [global flags] COMMAND [flags] [args]
//
// Commands are put, get, del, scan, txn, status and member list; `raftkvctl
// --help` lists them and `raftkvctl COMMAND --help` describes one. Global
// flags (--endpoints, --timeout, -o table|json) may come before or after the
// command name.
//
// Exit codes: 0 success, 1 error, 2 usage error (unknown command, bad flag,
// wrong arguments), 3 key not found (get of a missing key) or backup not
// found, 4 not a valid backup file, 5 restore refused (a backup of another
// cluster without --force), 6 a migration (migrate, export, import) ran to
// the end but records failed or --verify found differences.
//
// bench is a thin wrapper around package loadgen (the load generator the
// etcd side-by-side harness in bench/ shares) and loadgen/kvtarget, which
// calls the kvpb stubs directly, without the retrying client.
//
// migrate, export and import are thin wrappers around package migrate,
// which is the only place the PostgreSQL, SQLite and Redis drivers are
// linked from (never into raftkvd). They run until done (--timeout is then a
// deadline for the whole run, --request-timeout one per request).
//
// # Structure
//
// main.go parses the global flags, picks the command, parses the command's
// flags and maps the command's error to an exit code; only main calls
// os.Exit. Each command lives in its own file as a type with a constructor
// (which declares its flag.FlagSet) and a run(ctx, args) method that gets the
// positional arguments and a ctx whose deadline is --timeout. There are no
// package-level flag variables. Output goes through the printer interface
// (printer.go) with a table and a JSON implementation.
//
// raftkvctl is an online tool: it talks to the cluster only through package
// client and api/kvpb, and must never import server packages (node,
// transport, fsm). The only offline commands are `backup verify FILE` and
// `backup restore FILE --data-dir DIR`: they touch only files, through
// package backup (standard library and raft only, never server code), and
// live in backup_offline.go, apart from the online backup commands, as etcd
// splits etcdctl and etcdutl.
package main
