// Package fsmpb is the persisted schema of raft log commands, generated from
// command.proto by scripts/genproto.sh. It is owned by package fsm and is a
// compatibility promise: see the comment at the top of command.proto.
package fsmpb

//go:generate ../../scripts/genproto.sh
