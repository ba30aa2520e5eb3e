// Package lint holds repository-wide checks that run as ordinary tests, so
// `go test ./...` (and with it CI) enforces them.
//
// imports_test.go enforces the dependency direction of STYLE.md §1: which
// packages of this module may import which. It must never import any package
// of this module itself; it reads the import graph from `go list`.
package lint
