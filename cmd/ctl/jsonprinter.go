package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/api/kvpb"
)

// jsonPrinter prints kvpb messages as protojson with snake_case field names
// and every field present: bytes are base64, 64-bit integers are strings,
// exactly as protojson maps them. Output is re-indented so it is stable
// (protojson randomizes whitespace on purpose).
type jsonPrinter struct{ w io.Writer }

var protoJSON = protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true}

func (p *jsonPrinter) message(m proto.Message) error {
	b, err := protoJSON.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %T as json: %w", m, err)
	}
	return p.write(addExpireAt(b))
}

var expireAtField = regexp.MustCompile(`"expire_at_unix_ms":\s*"(-?\d+)"`)

// addExpireAt follows every key-value's expire_at_unix_ms with expire_at:
// the same time in RFC 3339 (UTC), or null for a key without expiry.
func addExpireAt(b []byte) []byte {
	return expireAtField.ReplaceAllFunc(b, func(m []byte) []byte {
		m = bytes.Clone(m) // m aliases b: appending to it would overwrite b
		ms, err := strconv.ParseInt(string(expireAtField.FindSubmatch(m)[1]), 10, 64)
		if err != nil || ms == 0 {
			return append(m, `,"expire_at":null`...)
		}
		return fmt.Appendf(m, `,"expire_at":%q`, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano))
	})
}

func (p *jsonPrinter) write(b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("indent json: %w", err)
	}
	buf.WriteByte('\n')
	_, err := p.w.Write(buf.Bytes())
	return err
}

func (p *jsonPrinter) put(r *kvpb.PutResponse) error                { return p.message(r) }
func (p *jsonPrinter) get(r *kvpb.GetResponse) error                { return p.message(r) }
func (p *jsonPrinter) del(r *kvpb.DeleteResponse) error             { return p.message(r) }
func (p *jsonPrinter) scan(r *kvpb.RangeResponse, _ scanView) error { return p.message(r) }
func (p *jsonPrinter) txn(r *kvpb.TxnResponse) error                { return p.message(r) }
func (p *jsonPrinter) memberList(r *kvpb.MemberListResponse) error {
	return p.message(r)
}

// statusJSON is one element of `status -o json`.
type statusJSON struct {
	Endpoint string          `json:"endpoint"`
	Status   json.RawMessage `json:"status"` // protojson StatusResponse, or null
	Error    string          `json:"error"`  // "" when status is set
}

func (p *jsonPrinter) status(rows []endpointStatus) error {
	out := make([]statusJSON, 0, len(rows))
	for _, r := range rows {
		s := statusJSON{Endpoint: r.endpoint}
		if r.err != nil {
			s.Error = r.err.Error()
		} else {
			b, err := protoJSON.Marshal(r.resp)
			if err != nil {
				return fmt.Errorf("encode status of %s as json: %w", r.endpoint, err)
			}
			s.Status = b
		}
		out = append(out, s)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode status as json: %w", err)
	}
	return p.write(b)
}

// hashJSON is one element of `hash -o json`.
type hashJSON struct {
	Endpoint string          `json:"endpoint"`
	Hash     json.RawMessage `json:"hash"`  // protojson StateHashResponse, or null
	Error    string          `json:"error"` // "" when hash is set
}

func (p *jsonPrinter) hash(rows []endpointHash) error {
	out := make([]hashJSON, 0, len(rows))
	for _, r := range rows {
		h := hashJSON{Endpoint: r.endpoint}
		if r.err != nil {
			h.Error = r.err.Error()
		} else {
			b, err := protoJSON.Marshal(r.resp)
			if err != nil {
				return fmt.Errorf("encode hash of %s as json: %w", r.endpoint, err)
			}
			h.Hash = b
		}
		out = append(out, h)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode hash as json: %w", err)
	}
	return p.write(b)
}
