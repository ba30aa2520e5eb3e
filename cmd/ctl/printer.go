package main

import (
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/migrate"
)

// printer writes command results to stdout in one output format (-o). Each
// method is called at most once per command, after the request succeeded.
type printer interface {
	put(*kvpb.PutResponse) error
	// get prints a Get response, also one with Found false.
	get(*kvpb.GetResponse) error
	del(*kvpb.DeleteResponse) error
	scan(*kvpb.RangeResponse, scanView) error
	txn(*kvpb.TxnResponse) error
	status([]endpointStatus) error
	hash([]endpointHash) error
	memberList(*kvpb.MemberListResponse) error
	// memberChange prints the result of member add/remove/promote/demote
	// (op) of server id.
	memberChange(op, id string, r *kvpb.MemberChangeResponse) error
	leaderTransfer(*kvpb.LeaderTransferResponse) error
	// migrate prints the summary of migrate, export or import, also one
	// that comes with an error.
	migrate(*migrate.Summary) error
	// bench prints a bench run's settings and results.
	bench(*benchReport) error
}

// scanView says which columns a scan asked for.
type scanView struct {
	keysOnly  bool
	countOnly bool
}

// printable renders key or value bytes for a table: as they are when they
// are printable UTF-8, else (and when empty or starting with a quote, so the
// two forms cannot be confused) quoted with strconv.Quote escapes.
func printable(b []byte) string {
	if len(b) == 0 || b[0] == '"' || !utf8.Valid(b) {
		return strconv.Quote(string(b))
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return strconv.Quote(string(b))
		}
	}
	return string(b)
}
