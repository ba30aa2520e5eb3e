package main

import "testing"

func TestByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"1024", 1024, false},
		{"64MiB", 64 << 20, false},
		{"512KiB", 512 << 10, false},
		{"2GiB", 2 << 30, false},
		{"100B", 100, false},
		{"-1", 0, true},
		{"1.5MiB", 0, true},
		{"lots", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var b byteSize
			err := b.Set(tt.in)
			if (err != nil) != tt.wantErr || (err == nil && int64(b) != tt.want) {
				t.Fatalf("Set(%q) = %d, %v; want %d, error %v", tt.in, int64(b), err, tt.want, tt.wantErr)
			}
		})
	}
	if got := (*byteSize)(ptr(int64(64 << 20))).String(); got != "64MiB" {
		t.Errorf("String() = %q, want 64MiB", got)
	}
}

func ptr(v int64) *int64 { return &v }
