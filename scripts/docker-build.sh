#!/usr/bin/env bash
# Builds the raftkv container image (Dockerfile, FROM scratch).
#
#   scripts/docker-build.sh [TAG]       default tag: $RAFTKV_IMAGE or raftkv:dev
#
# No base image can be pulled here, so nothing is compiled inside Docker:
# this script builds static raftkvd and raftkvctl (CGO_ENABLED=0) with the
# host's Go first, then runs `docker build` on a context holding only the
# two binaries, an empty data directory and the Dockerfile.
#
# Environment:
#   RAFTKV_BIN        directory for the binaries (default: <repo>/bin)
#   RAFTKV_NO_BUILD=1 use the binaries already in RAFTKV_BIN (they must be
#                     static); `make test-e2e` builds them just before
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=${1:-${RAFTKV_IMAGE:-raftkv:dev}}
BIN_DIR=${RAFTKV_BIN:-$ROOT/bin}

die() {
	echo "docker-build.sh: $*" >&2
	exit 1
}

command -v docker >/dev/null || die "docker not found"
if [[ ${RAFTKV_NO_BUILD:-} != 1 ]]; then
	command -v go >/dev/null || die "go not found"
	mkdir -p "$BIN_DIR"
	(
		cd "$ROOT"
		CGO_ENABLED=0 go build -trimpath -o "$BIN_DIR/raftkvd" ./cmd/node
		CGO_ENABLED=0 go build -trimpath -o "$BIN_DIR/raftkvctl" ./cmd/ctl
	)
fi
for b in raftkvd raftkvctl; do
	[[ -x $BIN_DIR/$b ]] || die "$BIN_DIR/$b missing (unset RAFTKV_NO_BUILD or run make build)"
	# A scratch image has no libc: refuse a cgo binary rather than ship one
	# that cannot start.
	if command -v go >/dev/null && ! go version -m "$BIN_DIR/$b" | grep -q 'CGO_ENABLED=0'; then
		die "$BIN_DIR/$b was not built with CGO_ENABLED=0"
	fi
done

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$BIN_DIR/raftkvd" "$BIN_DIR/raftkvctl" "$ROOT/Dockerfile" "$ctx/"
mkdir "$ctx/data"
# BuildKit needs the buildx plugin; without it the legacy builder does the
# job (this Dockerfile uses nothing BuildKit-only) and its deprecation
# notice is shown only if the build fails.
if [[ -z ${DOCKER_BUILDKIT:-} ]]; then
	DOCKER_BUILDKIT=0
	docker buildx version >/dev/null 2>&1 && DOCKER_BUILDKIT=1
fi
if ! DOCKER_BUILDKIT=$DOCKER_BUILDKIT docker build --quiet -t "$TAG" "$ctx" >"$ctx/build.log" 2>&1; then
	cat "$ctx/build.log" >&2
	die "docker build failed"
fi
echo "built $TAG"
