#!/usr/bin/env bash
# Regenerates the committed protobuf Go code. Plugin versions are pinned so
# the output is reproducible; CI runs this and fails on any diff.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.0
GOBIN="$(go env GOPATH)/bin"
export PATH="$GOBIN:$PATH"
if ! command -v protoc >/dev/null; then
  echo "protoc missing: apt-get install -y protobuf-compiler" >&2
  exit 1
fi
want_go="protoc-gen-go ${PROTOC_GEN_GO_VERSION}"
if [ "$(protoc-gen-go --version 2>/dev/null)" != "$want_go" ]; then
  go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
fi
if [ "$(protoc-gen-go-grpc --version 2>/dev/null)" != "protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION#v}" ]; then
  go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"
fi
# -I . registers each file under its repository path (api/kvpb/kv.proto),
# not a bare kv.proto that another module's kv.proto (etcd's mvccpb, linked
# by the bench/ harness) would collide with in the protobuf registry.
protoc -I . --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative api/kvpb/kv.proto
protoc -I . --go_out=. --go_opt=paths=source_relative fsm/fsmpb/command.proto
