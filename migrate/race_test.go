//go:build race

package migrate

// roundTripKeys is the size of the round trips. The race detector slows the
// three in-process nodes of each cluster about tenfold, so under it the
// round trips move 5k records of the same shapes; `make test-migrate` runs
// them at the full 100k without it.
const roundTripKeys = 5_000
