package fsm_test

import (
	"testing"
)

// TestGetIndexed: the index returned is the store's applied index of the
// transaction the key was read in, for present and missing keys.
func TestGetIndexed(t *testing.T) {
	f := newFSM(t, "", nil)
	apply(t, f, 3, putCmd("a", "1"))
	apply(t, f, 7, putCmd("b", "2"))
	tests := []struct {
		key       string
		wantFound bool
		wantMod   int64
	}{
		{"a", true, 3},
		{"b", true, 7},
		{"missing", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			kv, found, idx, err := f.GetIndexed([]byte(tt.key))
			if err != nil {
				t.Fatalf("GetIndexed(%q): got error %v, want nil", tt.key, err)
			}
			if found != tt.wantFound || kv.ModRevision != tt.wantMod || idx != 7 {
				t.Fatalf("GetIndexed(%q) = found %v, mod %d, index %d; want found %v, mod %d, index 7",
					tt.key, found, kv.ModRevision, idx, tt.wantFound, tt.wantMod)
			}
		})
	}
}
