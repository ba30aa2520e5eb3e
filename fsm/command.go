package fsm

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/fsm/fsmpb"
)

// EnvelopeV1 is byte 0 of every log entry's Data: the envelope format
// version. The rest of the entry is a proto-encoded fsmpb.Command.
//
// NB: persisted in the raft log. Never change its value or meaning; a new
// envelope gets a new byte, and nodes must refuse (panic on) bytes they do not
// know.
const EnvelopeV1 byte = 1

var (
	// ErrMalformedCommand means log entry data is empty or not a valid
	// encoded command.
	ErrMalformedCommand = errors.New("fsm: malformed command")
	// ErrUnknownEnvelope means log entry data starts with an envelope byte
	// this binary does not know, usually written by a newer release.
	ErrUnknownEnvelope = errors.New("fsm: unknown command envelope")
)

// marshalOptions makes encoding deterministic so the same command always
// produces the same bytes (golden files rely on it).
var marshalOptions = proto.MarshalOptions{Deterministic: true}

// EncodeCommand returns the log entry data for cmd: EnvelopeV1 followed by
// the proto encoding of cmd. It does not validate cmd; the FSM does that
// deterministically when it applies the entry.
func EncodeCommand(cmd *fsmpb.Command) ([]byte, error) {
	b := make([]byte, 1, 1+marshalOptions.Size(cmd))
	b[0] = EnvelopeV1
	b, err := marshalOptions.MarshalAppend(b, cmd)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode command: %w", err)
	}
	return b, nil
}

// DecodeCommand decodes log entry data written by EncodeCommand. Empty data
// or bad proto bytes return an error wrapping ErrMalformedCommand, and an
// unknown envelope byte one wrapping ErrUnknownEnvelope.
//
// A command whose op this binary does not know decodes without error, with
// its op unset (proto3 drops unknown oneof cases into unknown fields); the
// FSM treats that as fatal when applying. DecodeCommand never panics.
func DecodeCommand(b []byte) (*fsmpb.Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformedCommand)
	}
	if b[0] != EnvelopeV1 {
		return nil, fmt.Errorf("%w: byte %d", ErrUnknownEnvelope, b[0])
	}
	cmd := &fsmpb.Command{}
	if err := proto.Unmarshal(b[1:], cmd); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCommand, err)
	}
	return cmd, nil
}

// PrefixEnd returns the range end that selects every key starting with
// prefix: the smallest key greater than all of them (etcd's GetPrefixRangeEnd).
//
// When no such key exists, because prefix is empty or all 0xff bytes,
// PrefixEnd returns []byte{0}. A range_end of exactly "\x00" means "to the
// end of the keyspace" in Range and DeleteRange (as in etcd), so the result
// can always be used as range_end directly. It is never empty: an empty
// range_end means "the single key" instead.
func PrefixEnd(prefix []byte) []byte {
	end := make([]byte, len(prefix))
	copy(end, prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// isToEnd reports whether rangeEnd is the "to the end of the keyspace"
// marker.
func isToEnd(rangeEnd []byte) bool {
	return len(rangeEnd) == 1 && rangeEnd[0] == 0
}

// bounds converts a (key, range_end) pair into store bounds: single is true
// for a single-key request; otherwise [start, end) with a nil end meaning
// no upper bound.
func bounds(key, rangeEnd []byte) (start, end []byte, single bool) {
	switch {
	case len(rangeEnd) == 0:
		return key, nil, true
	case isToEnd(rangeEnd):
		return key, nil, false
	default:
		return key, rangeEnd, false
	}
}
