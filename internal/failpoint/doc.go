// Package failpoint kills its own process at named points in the code, so
// the fault-injection suite (e2e/faults) can crash a real raftkvd exactly at
// a persistence boundary: after raft appended an entry but before the FSM
// committed it, or half-way through writing a snapshot.
//
// WARNING: failpoints are a test tool. Never arm them in production: an
// armed point SIGKILLs the node on purpose. They are armed only by the
// environment variable RAFTKV_FAILPOINTS, read once at process start:
//
//	RAFTKV_FAILPOINTS=name[=N][,name[=N]...]
//
// where N (default 1) fires the point on its N-th hit. Disarmed, which is
// the normal case, Inject costs one atomic load.
//
// The package imports the standard library only; any package may call it.
package failpoint
