#!/usr/bin/env bash
# Runs the raftkv-versus-etcd harness (bench/cmd/sidebyside, a separate Go
# module so raftkv never depends on etcd): builds bin/raftkvd and
# bin/raftkvctl as `make build` does (static, CGO_ENABLED=0) and the
# harness, then runs it with every argument passed through.
#
#   scripts/bench.sh                 the comparison table, 3 runs of 10 s per row
#   scripts/bench.sh --quick         smoke test: 1 run of 2 s per row
#   scripts/bench.sh scale           1,000,000 keys: disk, RSS, restart, snapshot
#   scripts/bench.sh --help          every flag
#
# Results go to bench/results/ (git-ignored): <mode>-<UTC time>.md and .json,
# unless --out-json / --out-md are given. Environment: RAFTKV_BIN (where the
# binaries are built, default <repo>/bin), RAFTKV_NO_BUILD=1 (use them as
# they are). docs/bench.md explains the numbers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${RAFTKV_BIN:-$ROOT/bin}
GO=${GO:-go}

if [[ -z ${RAFTKV_NO_BUILD:-} ]]; then
	mkdir -p "$BIN"
	(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN/raftkvd" ./cmd/node)
	(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN/raftkvctl" ./cmd/ctl)
fi
(cd "$ROOT/bench" && CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN/sidebyside" ./cmd/sidebyside)

mode=compare
out=()
args=()
for a in "$@"; do
	case $a in
	scale | compare) mode=$a && continue ;;
	--out-json | --out-json=* | --out-md | --out-md=*) out=(none) ;;
	-h | --help | -help) out=(none) ;;
	esac
	args+=("$a")
done
if [[ ${#out[@]} -eq 0 ]]; then
	mkdir -p "$ROOT/bench/results"
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	out=(--out-json "$ROOT/bench/results/$mode-$stamp.json" --out-md "$ROOT/bench/results/$mode-$stamp.md")
	echo "# results: bench/results/$mode-$stamp.{md,json}" >&2
else
	out=()
fi
exec "$BIN/sidebyside" "$mode" --raftkvd "$BIN/raftkvd" --raftkvctl "$BIN/raftkvctl" "${out[@]}" "${args[@]}"
