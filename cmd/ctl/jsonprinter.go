package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

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
	// Pure protojson: scripts parse it back into the kvpb message (the
	// e2e suite does), so nothing outside the schema is added; a key's
	// expiry is expire_at_unix_ms ("0" = never).
	return p.write(b)
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
