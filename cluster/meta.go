package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// MaxMetaSize is memberlist's cap on a node's metadata. memberlist refuses
// (and some versions panic on) anything larger, so Meta.Encode checks it.
const MaxMetaSize = memberlist.MetaMaxSize

// metaFormat is byte 0 of the encoded metadata.
//
// NB: every node of a cluster must decode every other node's metadata, so a
// new format needs a new byte and a release that reads both.
const metaFormat byte = 1

// Field limits. They keep the worst-case encoding of Meta well under
// MaxMetaSize (TestMetaSize checks it), so an over-long --id or address is a
// configuration error at start and never a memberlist failure later.
const (
	MaxIDLen      = 64
	MaxAddrLen    = 128
	MaxVersionLen = 32
	maxBootLen    = 16
)

// ErrMetaTooLarge means a node's metadata does not fit memberlist's limit.
var ErrMetaTooLarge = errors.New("node metadata too large")

// Meta is what a node tells the others about itself through gossip. It is
// kept to identity, addresses and version (STYLE.md §1); anything that
// changes often belongs in an RPC, not in gossip.
type Meta struct {
	// ID is the node's raft server id; it is also its memberlist name.
	ID string `json:"id"`
	// GRPCAddr is the client, admin and forwarding address.
	GRPCAddr string `json:"g"`
	// RaftAddr is the advertised raft peer address.
	RaftAddr string `json:"r"`
	// Version is the raftkv release the node runs.
	Version string `json:"v"`
	// Expect is the node's --bootstrap-expect, 0 when it has none. Nodes
	// only bootstrap together when they expect the same number.
	Expect int `json:"e,omitempty"`
	// Boot identifies one start of the process (random per start), so a
	// restart is visible even when nothing else changed.
	Boot string `json:"b"`
	// Fresh is set by a node that started with no raft state and did not
	// bootstrap one: if it was a voter before, it has forgotten its log
	// and its votes.
	Fresh bool `json:"f,omitempty"`
	// Leaving is set by a node about to leave gossip on purpose, so the
	// others can tell its departure from a failure (memberlist's own
	// left-or-dead state doesn't reach the event delegate).
	Leaving bool `json:"l,omitempty"`
}

// Validate checks the field limits and that the encoding fits MaxMetaSize.
func (m Meta) Validate() error {
	var errs []error
	if m.ID == "" || len(m.ID) > MaxIDLen {
		errs = append(errs, fmt.Errorf("id %q must be 1 to %d bytes", m.ID, MaxIDLen))
	}
	if m.GRPCAddr == "" || len(m.GRPCAddr) > MaxAddrLen {
		errs = append(errs, fmt.Errorf("grpc address %q must be 1 to %d bytes", m.GRPCAddr, MaxAddrLen))
	}
	if m.RaftAddr == "" || len(m.RaftAddr) > MaxAddrLen {
		errs = append(errs, fmt.Errorf("raft address %q must be 1 to %d bytes", m.RaftAddr, MaxAddrLen))
	}
	if len(m.Version) > MaxVersionLen {
		errs = append(errs, fmt.Errorf("version %q is longer than %d bytes", m.Version, MaxVersionLen))
	}
	if len(m.Boot) > maxBootLen {
		errs = append(errs, fmt.Errorf("boot id %q is longer than %d bytes", m.Boot, maxBootLen))
	}
	if m.Expect < 0 || m.Expect > 99 {
		errs = append(errs, fmt.Errorf("bootstrap expect %d must be in 0..99", m.Expect))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b, err := m.marshal()
	if err != nil {
		return err
	}
	if len(b) > MaxMetaSize {
		return fmt.Errorf("%w: %d bytes, memberlist allows %d (shorten the id or the addresses)", ErrMetaTooLarge, len(b), MaxMetaSize)
	}
	return nil
}

func (m Meta) marshal() ([]byte, error) {
	j, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode node metadata: %w", err)
	}
	return append([]byte{metaFormat}, j...), nil
}

// Encode returns the gossip encoding of m: a format byte, then JSON. It
// fails when m is invalid or the result would exceed MaxMetaSize.
func (m Meta) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m.marshal()
}

// DecodeMeta parses metadata written by Encode. It accepts only what
// Encode could have written: at most MaxMetaSize bytes, the known format,
// valid UTF-8 JSON, and fields within Validate's limits. Anything else is
// an error, never a panic: the bytes come from any host that reaches the
// gossip port (FuzzDecodeMeta).
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, errors.New("decode node metadata: empty (not a raftkv node?)")
	}
	if len(b) > MaxMetaSize {
		return m, fmt.Errorf("decode node metadata: %w: %d bytes, at most %d", ErrMetaTooLarge, len(b), MaxMetaSize)
	}
	if b[0] != metaFormat {
		return m, fmt.Errorf("decode node metadata: unknown format %d (newer raftkv?)", b[0])
	}
	if !utf8.Valid(b[1:]) {
		// encoding/json would replace invalid bytes with U+FFFD and accept
		// an id no node has.
		return m, errors.New("decode node metadata: not valid UTF-8")
	}
	if err := json.Unmarshal(b[1:], &m); err != nil {
		return m, fmt.Errorf("decode node metadata: %w", err)
	}
	if m.ID == "" || m.RaftAddr == "" {
		return m, errors.New("decode node metadata: id or raft address missing")
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("decode node metadata: %w", err)
	}
	return m, nil
}
