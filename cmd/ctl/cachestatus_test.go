package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/api/kvpb"
)

func TestCacheStatusTable(t *testing.T) {
	tests := []struct {
		name string
		rows []endpointStatus
		want []string // lines, fields separated by runs of spaces
	}{
		{
			name: "no cache anywhere prints nothing",
			rows: []endpointStatus{{endpoint: "a:1", resp: &kvpb.StatusResponse{NodeId: "n1"}}},
		},
		{
			name: "local and redis tiers",
			rows: []endpointStatus{
				{endpoint: "a:1", resp: &kvpb.StatusResponse{Cache: []*kvpb.CacheTierStats{
					{Tier: "local", Hits: 90, Misses: 10, Evictions: 3, Entries: 5, Bytes: 2048, MaxBytes: 64 << 20},
					{Tier: "redis", Hits: 1, Misses: 0, Entries: -1, Bytes: -1, Errors: 2},
				}}},
				{endpoint: "b:1", err: errors.New("down")},
			},
			want: []string{
				"",
				"ENDPOINT CACHE HITS MISSES HIT% EVICTIONS ENTRIES BYTES MAX ERRORS",
				"a:1 local 90 10 90.0 3 5 2.0 KiB 64.0 MiB 0",
				"a:1 redis 1 0 100.0 0 - - - 2",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := (&tablePrinter{w: &buf}).cacheStatus(tt.rows); err != nil {
				t.Fatal(err)
			}
			var got []string
			if buf.Len() > 0 {
				for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
					got = append(got, strings.Join(strings.Fields(l), " "))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("cache table:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
