# raftkv developer entry points. `make help` lists the targets.
#
# The test command is `make test`: go vet, the unit and in-process cluster
# tests under the race detector, then the e2e suite against real processes.
# CI runs the same targets through .ci/run.

GO        ?= go
BIN       ?= bin
GOBUILDFLAGS ?= -trimpath

# Generated protobuf code, regenerated and compared by proto-check.
PROTO_GENERATED := api/kvpb/kv.pb.go api/kvpb/kv_grpc.pb.go fsm/fsmpb/command.pb.go

UNIT_TIMEOUT ?= 20m
E2E_TIMEOUT  ?= 15m
# Passed to go test; e.g. `make test-unit TESTFLAGS='-run TestFSM -v'`.
TESTFLAGS ?=

# `make bench BENCH=Put BENCHTIME=2s BENCHCOUNT=5 BENCHPKG=./fsm/...`
BENCH      ?= .
BENCHTIME  ?= 1s
BENCHCOUNT ?= 1
BENCHPKG   ?= ./...

.PHONY: all help build test test-unit test-migrate test-e2e test-faults fuzz vet cluster cluster-down \
	cluster-status proto proto-check bench bench-etcd fmt-check clean docker-build

all: build

help:
	@echo 'build         build bin/raftkvd and bin/raftkvctl (static, CGO_ENABLED=0)'
	@echo 'test          go vet, unit tests with -race, the migration round trips, then the e2e suite (the CI test command)'
	@echo 'test-unit     go vet and go test -race ./... (no e2e)'
	@echo 'test-migrate  the 100k-record migration round trips, without -race (migrate/)'
	@echo 'test-e2e      build, then go test -tags e2e ./e2e/...'
	@echo 'test-faults   build, then only the fault-injection suite e2e/faults (docs/faults.md)'
	@echo 'fuzz          run every fuzz target for FUZZTIME (default 1m) each'
	@echo 'bench         benchmarks (BENCH, BENCHTIME, BENCHCOUNT, BENCHPKG)'
	@echo 'bench-etcd    raftkv vs etcd, 3 nodes each (scripts/bench.sh; BENCHARGS=--quick, BENCHARGS=scale)'
	@echo 'cluster       start a local 3-node cluster (scripts/cluster.sh up)'
	@echo 'docker-build  build the container image raftkv:dev (IMAGE=...) FROM scratch'
	@echo 'cluster-down  stop it (WIPE=1 also deletes its data)'
	@echo 'proto         regenerate protobuf code (scripts/genproto.sh)'
	@echo 'proto-check   regenerate and fail if the committed code differs'
	@echo 'fmt-check     fail if gofmt would change any file'
	@echo 'clean         remove build and test artifacts (not cluster data)'

# Static binaries (CGO_ENABLED=0): the docker image (issue 7) has no libc.
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build $(GOBUILDFLAGS) -o $(BIN)/raftkvd ./cmd/node
	CGO_ENABLED=0 $(GO) build $(GOBUILDFLAGS) -o $(BIN)/raftkvctl ./cmd/ctl

vet:
	$(GO) vet ./...

test: test-unit test-migrate test-e2e

# The race detector needs cgo (and so gcc), whatever the release build uses.
# -p 1: the in-process raft clusters of two packages racing for two cores
# under -race starve each other's leaders of heartbeats.
test-unit: vet
	CGO_ENABLED=1 $(GO) test -race -p 1 -count=1 -timeout $(UNIT_TIMEOUT) $(TESTFLAGS) ./...

# The migration round trips move 100k records through in-process clusters.
# Under the race detector (test-unit) they move 5k, so here they run again at
# full size without it.
test-migrate:
	$(GO) test -count=1 -p 1 -timeout $(UNIT_TIMEOUT) -run 'TestRoundTrips' $(TESTFLAGS) ./migrate/

# e2e/ drives real raftkvd processes, so the binaries are built first. Until
# the suite has test files the target says so and succeeds. -p 1: the e2e
# packages (e2e and the fault suite e2e/faults) each run three nodes and
# must not compete for the machine's two cores.
test-e2e: build
	@if ls e2e/*_test.go >/dev/null 2>&1 || ls e2e/*/*_test.go >/dev/null 2>&1; then \
		echo "$(GO) test -tags e2e -p 1 -count=1 -timeout $(E2E_TIMEOUT) $(TESTFLAGS) ./e2e/..."; \
		RAFTKV_BIN="$(CURDIR)/$(BIN)" $(GO) test -tags e2e -p 1 -count=1 -timeout $(E2E_TIMEOUT) $(TESTFLAGS) ./e2e/...; \
	else \
		echo "test-e2e: no test files under e2e/ yet, skipping"; \
	fi

# The fault-injection suite alone, verbose so the scenario table is printed.
# RAFTKV_FAULT_SEED reproduces a run, RAFTKV_FAULT_DURATION=10m makes every
# scenario repeat its faults that long (soak).
FAULT_TIMEOUT ?= 20m
test-faults: build
	RAFTKV_BIN="$(CURDIR)/$(BIN)" $(GO) test -tags e2e -count=1 -v -timeout $(FAULT_TIMEOUT) $(TESTFLAGS) ./e2e/faults/

# Every fuzz target for FUZZTIME each; plain test runs replay the committed
# corpora under each package's testdata/fuzz/. Add new targets here.
FUZZTIME ?= 1m
FUZZ_TARGETS := ./fsm:FuzzDecodeCommand ./transport:FuzzValidateRequest ./backup:FuzzReader ./cluster:FuzzDecodeMeta
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(BENCHPKG)

# raftkv side by side with etcd (docs/bench.md). Not part of `test`: it
# measures, it asserts nothing. `make bench-etcd BENCHARGS=--quick`.
BENCHARGS ?=
bench-etcd:
	scripts/bench.sh $(BENCHARGS)

cluster:
	scripts/cluster.sh up

# The image (Dockerfile, FROM scratch) holds the binaries `make build`
# produces; docker-compose.yml runs three nodes from it.
IMAGE ?= raftkv:dev
docker-build: build
	RAFTKV_BIN="$(CURDIR)/$(BIN)" RAFTKV_NO_BUILD=1 scripts/docker-build.sh $(IMAGE)

cluster-down:
	scripts/cluster.sh down $(if $(WIPE),--wipe)

cluster-status:
	scripts/cluster.sh status

proto:
	scripts/genproto.sh

# Regenerates into the work tree, then compares with the index: commit the
# generated files together with the .proto change.
proto-check: proto
	@git diff --exit-code -- $(PROTO_GENERATED) || { \
		echo 'proto-check: generated code is stale: run `make proto` and commit the result' >&2; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- '*.pb.go'); \
	if [ -n "$$untracked" ]; then \
		echo "proto-check: generated files not in git: $$untracked" >&2; exit 1; fi
	@echo 'proto-check: generated code is up to date'

fmt-check:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard -- '*.go')); \
	if [ -n "$$out" ]; then \
		echo 'fmt-check: gofmt would change these files (run gofmt -w):' >&2; \
		echo "$$out" >&2; exit 1; fi
	@echo 'fmt-check: ok'

clean:
	rm -rf $(BIN) coverage.out coverage.html *.coverprofile e2e/artifacts
	$(GO) clean -testcache
