//go:build !race

package migrate

// roundTripKeys is the size of the round trips (see race_test.go).
const roundTripKeys = 100_000
