package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/api/kvpb"
)

func TestCheckHashes(t *testing.T) {
	h := func(ep string, idx uint64, sum string) endpointHash {
		return endpointHash{endpoint: ep, resp: &kvpb.StateHashResponse{AppliedIndex: idx, Sha256: []byte(sum)}}
	}
	dead := endpointHash{endpoint: "d:1", err: errors.New("refused")}
	tests := []struct {
		name    string
		rows    []endpointHash
		wantErr string
	}{
		{"all equal", []endpointHash{h("a", 5, "x"), h("b", 5, "x")}, ""},
		{"different indexes may differ", []endpointHash{h("a", 5, "x"), h("b", 6, "y")}, ""},
		{"one dead", []endpointHash{h("a", 5, "x"), dead}, ""},
		{"diverged", []endpointHash{h("a", 5, "x"), h("b", 6, "y"), h("c", 5, "z")}, "state diverged: a and c"},
		{"all dead", []endpointHash{dead}, "all 1 endpoints failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHashes(tt.rows)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("checkHashes = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHashTable(t *testing.T) {
	var buf bytes.Buffer
	p := &tablePrinter{w: &buf}
	err := p.hash([]endpointHash{
		{endpoint: "a:1", resp: &kvpb.StateHashResponse{NodeId: "n1", AppliedIndex: 9, KeyCount: 3, Sha256: []byte{0xab, 0xcd}}},
		{endpoint: "b:2", err: errors.New("refused")},
	})
	if err != nil {
		t.Fatalf("hash = %v", err)
	}
	var got []string
	for l := range strings.Lines(buf.String()) {
		got = append(got, strings.TrimRight(l, " \n"))
	}
	want := []string{
		"ENDPOINT  ID  APPLIED  KEYS  SHA256  ERROR",
		"a:1       n1  9        3     abcd",
		"b:2                                  refused",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("table output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
