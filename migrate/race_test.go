//go:build race

package migrate

// The race detector slows the three in-process nodes of each cluster about
// tenfold, so under it the round trips move 5k records of the same shapes,
// two of them 1 MiB values; `make test-migrate` runs them at the full 100k,
// with eight, without it.
const (
	roundTripKeys = 5_000
	bigValues     = 2
)
