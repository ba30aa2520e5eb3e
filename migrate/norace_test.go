//go:build !race

package migrate

// The size of the round trips (see race_test.go).
const (
	roundTripKeys = 100_000
	bigValues     = 8
)
