#!/usr/bin/env bash
# Runs a local raftkv cluster of real raftkvd processes on loopback.
#
#   scripts/cluster.sh up               build, start the nodes that are not running, wait for a leader
#   scripts/cluster.sh down [--wipe]    SIGTERM the nodes in the PID files (SIGKILL after a timeout)
#   scripts/cluster.sh status           raftkvctl status against the cluster, plus the PID files
#   scripts/cluster.sh env              print `export RAFTKV_ENDPOINTS=...` for this cluster
#
# Environment:
#   RAFTKV_CLUSTER_DIR  data, logs and PID files (default: <repo>/data)
#   RAFTKV_BIN          directory holding raftkvd and raftkvctl (default: <repo>/bin,
#                       built with `make build`; a directory given here is built into
#                       only when a binary is missing)
#   RAFTKV_NO_BUILD=1   never build; fail if a binary is missing
#   RAFTKV_PORT_BASE    node i (0-based) listens on base+10*i+1 (gRPC), +2 (raft),
#                       +3 (HTTP health), +4 (gossip) (default: 7000, so node1 is
#                       7001/7002/7003/7004)
#   RAFTKV_CLUSTER_GOSSIP 1 (default): nodes gossip on +4 and --join each other, so
#                       `raftkvctl member list` shows gossip health and new nodes
#                       can join; 0: no gossip (static membership only)
#   RAFTKV_CLUSTER_BOOTSTRAP initial (default): every node gets --bootstrap
#                       --initial-cluster; expect: --bootstrap-expect $RAFTKV_NODES
#                       instead (needs gossip; the lowest id bootstraps)
#   RAFTKV_NODES        number of nodes (default: 3)
#   RAFTKV_HOST         address the nodes listen on (default: 127.0.0.1)
#   RAFTKV_UP_TIMEOUT   seconds `up` waits for a leader known to every node (default: 30)
#   RAFTKV_STOP_TIMEOUT seconds `down` waits after SIGTERM before SIGKILL (default: 10)
#   Any other raftkvd flag can be passed as RAFTKV_<FLAG> (raftkvd reads those
#   itself), e.g. RAFTKV_SNAPSHOT_THRESHOLD=100; the flags this script sets win.
#
# Output lines are meant to be parsed by tests, one node per line:
#   node1 pid=1234 grpc=127.0.0.1:7001 raft=127.0.0.1:7002 http=127.0.0.1:7003 gossip=127.0.0.1:7004 data=... log=...
#   leader=node2
#   endpoints=127.0.0.1:7001,127.0.0.1:7011,127.0.0.1:7021
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

abspath() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$PWD" "$1" ;;
	esac
}

CLUSTER_DIR=$(abspath "${RAFTKV_CLUSTER_DIR:-$ROOT/data}")
BIN_DIR=$(abspath "${RAFTKV_BIN:-$ROOT/bin}")
PORT_BASE=${RAFTKV_PORT_BASE:-7000}
NODES=${RAFTKV_NODES:-3}
HOST=${RAFTKV_HOST:-127.0.0.1}
UP_TIMEOUT=${RAFTKV_UP_TIMEOUT:-30}
STOP_TIMEOUT=${RAFTKV_STOP_TIMEOUT:-10}
GOSSIP=${RAFTKV_CLUSTER_GOSSIP:-1}
BOOTSTRAP_MODE=${RAFTKV_CLUSTER_BOOTSTRAP:-initial}
POLL_INTERVAL=0.2

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

for v in PORT_BASE NODES UP_TIMEOUT STOP_TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "RAFTKV_$v must be a non-negative integer, got '${!v}'"
done
((NODES >= 1)) || die "RAFTKV_NODES must be at least 1"
((PORT_BASE + 10 * NODES + 4 <= 65535)) || die "RAFTKV_PORT_BASE $PORT_BASE leaves no room for $NODES nodes"
[[ $GOSSIP == 0 || $GOSSIP == 1 ]] || die "RAFTKV_CLUSTER_GOSSIP must be 0 or 1, got '$GOSSIP'"
[[ $BOOTSTRAP_MODE == initial || $BOOTSTRAP_MODE == expect ]] || die "RAFTKV_CLUSTER_BOOTSTRAP must be initial or expect, got '$BOOTSTRAP_MODE'"
[[ $BOOTSTRAP_MODE == initial || $GOSSIP == 1 ]] || die "RAFTKV_CLUSTER_BOOTSTRAP=expect needs RAFTKV_CLUSTER_GOSSIP=1"

# Per-node facts, indexed by node number i = 1..NODES.
name() { echo "node$1"; }
grpc_addr() { echo "$HOST:$((PORT_BASE + 10 * ($1 - 1) + 1))"; }
raft_addr() { echo "$HOST:$((PORT_BASE + 10 * ($1 - 1) + 2))"; }
http_addr() { echo "$HOST:$((PORT_BASE + 10 * ($1 - 1) + 3))"; }
gossip_addr() { echo "$HOST:$((PORT_BASE + 10 * ($1 - 1) + 4))"; }
data_dir() { echo "$CLUSTER_DIR/node$1"; }
log_file() { echo "$CLUSTER_DIR/node$1.log"; }
pid_file() { echo "$CLUSTER_DIR/node$1.pid"; }

# now_ms: wall-clock milliseconds, for deadlines finer than $SECONDS.
now_ms() {
	local t=${EPOCHREALTIME:-}
	if [[ -n $t ]]; then
		t=${t//[.,]/}
		echo $((10#$t / 1000))
	else
		echo $(($(date +%s) * 1000))
	fi
}

endpoints() {
	local i out=""
	for ((i = 1; i <= NODES; i++)); do
		out+="${out:+,}$(grpc_addr "$i")"
	done
	echo "$out"
}

# gossip_join I: the gossip addresses of every node but I.
gossip_join() {
	local i out=""
	for ((i = 1; i <= NODES; i++)); do
		((i == $1)) || out+="${out:+,}$(gossip_addr "$i")"
	done
	echo "$out"
}

initial_cluster() {
	local i out=""
	for ((i = 1; i <= NODES; i++)); do
		out+="${out:+,}$(name "$i")=$(raft_addr "$i")"
	done
	echo "$out"
}

# is_our_node PID DATADIR: PID is a live raftkvd serving DATADIR. Checking the
# command line, not just that the PID exists, keeps a stale PID file from
# making us signal an unrelated process that reused the PID. A zombie has an
# empty command line and so counts as gone.
is_our_node() {
	local pid=$1 dir=$2 args
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	if [[ -d /proc ]]; then
		[[ -r /proc/$pid/cmdline ]] || return 1
		args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
		[[ $(basename -- "$(head -n1 <<<"$args")") == raftkvd ]] || return 1
		grep -qxF -- "$dir" <<<"$args"
	else
		args=$(ps -p "$pid" -o command= 2>/dev/null) || return 1
		[[ $args == *raftkvd* && $args == *" $dir"* ]]
	fi
}

# proc_alive PID: the process exists and is not a zombie. Used right after a
# start, before the child has necessarily exec'd raftkvd (its command line
# may still be bash, setsid or nohup for a moment).
proc_alive() {
	local pid=$1 stat
	if [[ -d /proc ]]; then
		{ stat=$(<"/proc/$pid/stat"); } 2>/dev/null || return 1
		stat=${stat##*) }
		[[ ${stat:0:1} != Z ]]
	else
		kill -0 "$pid" 2>/dev/null
	fi
}

# node_pid I: prints the PID of node I if it is running, else fails.
node_pid() {
	local f pid
	f=$(pid_file "$1")
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	is_our_node "$pid" "$(data_dir "$1")" || return 1
	echo "$pid"
}

node_line() {
	local i=$1 pid=$2
	local gossip=-
	((GOSSIP)) && gossip=$(gossip_addr "$i")
	echo "$(name "$i") pid=$pid grpc=$(grpc_addr "$i") raft=$(raft_addr "$i") http=$(http_addr "$i") gossip=$gossip data=$(data_dir "$i") log=$(log_file "$i")"
}

ctl() {
	"$BIN_DIR/raftkvctl" --endpoints "$(endpoints)" "$@"
}

build() {
	if [[ ${RAFTKV_NO_BUILD:-} == 1 ]]; then
		return 0
	fi
	if [[ -z ${RAFTKV_BIN:-} ]]; then
		echo "building: make -C $ROOT build" >&2
		if command -v make >/dev/null; then
			make -s -C "$ROOT" build >&2
		else
			(cd "$ROOT" && mkdir -p bin &&
				CGO_ENABLED=0 go build -trimpath -o bin/raftkvd ./cmd/node &&
				CGO_ENABLED=0 go build -trimpath -o bin/raftkvctl ./cmd/ctl) >&2
		fi
		return 0
	fi
	if [[ ! -x $BIN_DIR/raftkvd || ! -x $BIN_DIR/raftkvctl ]]; then
		echo "building into $BIN_DIR" >&2
		mkdir -p "$BIN_DIR"
		(cd "$ROOT" &&
			CGO_ENABLED=0 go build -trimpath -o "$BIN_DIR/raftkvd" ./cmd/node &&
			CGO_ENABLED=0 go build -trimpath -o "$BIN_DIR/raftkvctl" ./cmd/ctl) >&2
	fi
}

# port_in_use HOST:PORT: something accepts connections there.
port_in_use() {
	local host=${1%:*} port=${1##*:}
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

start_node() {
	local i=$1 dir log pid
	dir=$(data_dir "$i")
	log=$(log_file "$i")
	mkdir -p "$dir"
	echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) cluster.sh starting $(name "$i") ===" >>"$log"
	# setsid: the node leaves this script's process group, so a Ctrl-C in
	# the terminal that ran `up` doesn't reach it. setsid and nohup both exec,
	# so $! is raftkvd's own PID. The same flags on every start: a node with
	# existing raft state ignores --bootstrap.
	local launcher=() membership=()
	command -v setsid >/dev/null && launcher=(setsid)
	if ((GOSSIP)); then
		membership+=(--gossip-addr "$(gossip_addr "$i")")
		((NODES == 1)) || membership+=(--join "$(gossip_join "$i")")
	fi
	if [[ $BOOTSTRAP_MODE == expect ]]; then
		membership+=(--bootstrap-expect "$NODES")
	else
		membership+=(--bootstrap --initial-cluster "$(initial_cluster)")
	fi
	"${launcher[@]}" nohup "$BIN_DIR/raftkvd" \
		--id "$(name "$i")" \
		--data-dir "$dir" \
		--grpc-addr "$(grpc_addr "$i")" \
		--raft-addr "$(raft_addr "$i")" \
		--http-addr "$(http_addr "$i")" \
		"${membership[@]}" \
		>>"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$(pid_file "$i")"
}

# leader_ready STATUS_JSON: every node answered, and all of them name the same
# leader and know its gRPC address (needed for forwarding). Works on compact
# and indented protojson alike; protojson omits empty strings, so a node that
# knows no leader contributes no leader_id.
leader_ready() {
	local json=$1 ids addrs
	ids=$(grep -o '"leader_id"[[:space:]]*:[[:space:]]*"[^"]*"' <<<"$json" | sed 's/.*"\([^"]*\)"$/\1/' || true)
	addrs=$(grep -o '"leader_grpc_addr"[[:space:]]*:[[:space:]]*"[^"]*"' <<<"$json" | grep -c . || true)
	[[ $(grep -c . <<<"$ids") -eq $NODES ]] || return 1
	[[ $(sort -u <<<"$ids" | grep -c .) -eq 1 ]] || return 1
	[[ $addrs -eq $NODES ]] || return 1
	sort -u <<<"$ids"
}

tail_logs() {
	local i
	for ((i = 1; i <= NODES; i++)); do
		echo "--- last lines of $(log_file "$i") ---" >&2
		tail -n 15 "$(log_file "$i")" >&2 2>/dev/null || true
	done
}

cmd_up() {
	local i running=0 started=() down=()
	for ((i = 1; i <= NODES; i++)); do
		if node_pid "$i" >/dev/null; then
			running=$((running + 1))
		else
			down+=("$i")
		fi
	done
	# Build only when something starts: running nodes keep their binary.
	((${#down[@]} == 0)) || build
	[[ -x $BIN_DIR/raftkvd ]] || die "$BIN_DIR/raftkvd not found (build with: make build)"
	[[ -x $BIN_DIR/raftkvctl ]] || die "$BIN_DIR/raftkvctl not found (build with: make build)"
	mkdir -p "$CLUSTER_DIR"
	# A port held by something else (another cluster, a stray raftkvd)
	# would make the new node exit while the other process answers our
	# status polls, so refuse up front.
	local addr busy=()
	for i in "${down[@]}"; do
		for addr in "$(grpc_addr "$i")" "$(raft_addr "$i")" "$(http_addr "$i")" "$(gossip_addr "$i")"; do
			port_in_use "$addr" && busy+=("$(name "$i"):$addr")
		done
	done
	((${#busy[@]} == 0)) || die "ports already in use: ${busy[*]} (another cluster? try RAFTKV_PORT_BASE)"
	for i in "${down[@]}"; do
		rm -f "$(pid_file "$i")"
		start_node "$i"
		started+=("$i")
	done
	if ((running == NODES)); then
		echo "cluster already running in $CLUSTER_DIR"
	elif ((running > 0)); then
		echo "$running of $NODES nodes already running; started the others"
	fi

	local deadline=$(($(now_ms) + UP_TIMEOUT * 1000)) out="" leader=""
	while :; do
		for i in "${started[@]}"; do
			if ! proc_alive "$(<"$(pid_file "$i")")"; then
				echo "cluster.sh: $(name "$i") exited during startup; its log:" >&2
				tail -n 30 "$(log_file "$i")" >&2 || true
				rm -f "$(pid_file "$i")"
				die "startup failed; other nodes may still be running (scripts/cluster.sh down)"
			fi
		done
		out=$(ctl --timeout 2s status -o json 2>&1) || true
		if leader=$(leader_ready "$out"); then
			break
		fi
		if (($(now_ms) >= deadline)); then
			echo "cluster.sh: no leader known to all $NODES nodes after ${UP_TIMEOUT}s; last status:" >&2
			echo "$out" >&2
			tail_logs
			die "startup timed out; nodes left running (scripts/cluster.sh down)"
		fi
		sleep "$POLL_INTERVAL"
	done

	local pid
	for ((i = 1; i <= NODES; i++)); do
		pid=$(node_pid "$i") || die "$(name "$i") is not running (see $(log_file "$i"))"
		node_line "$i" "$pid"
	done
	echo "leader=$leader"
	echo "endpoints=$(endpoints)"
	local ctlpath=$BIN_DIR/raftkvctl
	ctlpath=${ctlpath#"$PWD"/}
	if [[ $(endpoints) == "127.0.0.1:7001,127.0.0.1:7011,127.0.0.1:7021" ]]; then
		echo "try: $ctlpath put hello world && $ctlpath get hello"
	else
		echo "try: RAFTKV_ENDPOINTS=$(endpoints) $ctlpath put hello world"
	fi
}

cmd_down() {
	local wipe=0 arg
	for arg in "$@"; do
		case $arg in
		--wipe) wipe=1 ;;
		*) die "down: unknown argument '$arg' (want --wipe)" ;;
		esac
	done
	local f i pid n stopping=() pids=()
	shopt -s nullglob
	for f in "$CLUSTER_DIR"/node*.pid; do
		n=$(basename "$f" .pid)
		i=${n#node}
		[[ $i =~ ^[0-9]+$ ]] || continue
		pid=$(<"$f")
		if is_our_node "$pid" "$(data_dir "$i")"; then
			kill -TERM "$pid" 2>/dev/null || true
			stopping+=("$i")
			pids+=("$pid")
			echo "$n pid=$pid stopping (SIGTERM)"
		else
			echo "$n pid=$pid not running (stale PID file removed)"
			rm -f "$f"
		fi
	done
	shopt -u nullglob

	local deadline=$(($(now_ms) + STOP_TIMEOUT * 1000)) k alive killed=() failed=0
	while :; do
		alive=()
		for k in "${!stopping[@]}"; do
			if is_our_node "${pids[$k]}" "$(data_dir "${stopping[$k]}")"; then
				alive+=("$k")
			fi
		done
		((${#alive[@]} > 0)) || break
		if (($(now_ms) >= deadline)); then
			if ((${#killed[@]} > 0)); then
				failed=1 # still there 2 s after SIGKILL
				break
			fi
			for k in "${alive[@]}"; do
				echo "node${stopping[$k]} pid=${pids[$k]} did not exit ${STOP_TIMEOUT}s after SIGTERM: SIGKILL" >&2
				kill -KILL "${pids[$k]}" 2>/dev/null || true
				killed+=("$k")
			done
			deadline=$(($(now_ms) + 2000))
		fi
		sleep "$POLL_INTERVAL"
	done
	for k in "${!stopping[@]}"; do
		if [[ " ${alive[*]} " == *" $k "* ]]; then
			echo "node${stopping[$k]} pid=${pids[$k]} is still running after SIGKILL" >&2
			continue
		fi
		rm -f "$(pid_file "${stopping[$k]}")"
		if [[ " ${killed[*]} " == *" $k "* ]]; then
			echo "node${stopping[$k]} pid=${pids[$k]} killed"
		else
			echo "node${stopping[$k]} pid=${pids[$k]} stopped"
		fi
	done
	((failed == 0)) || die "some nodes did not exit"
	((${#stopping[@]} > 0)) || echo "no nodes running in $CLUSTER_DIR"

	if ((wipe)); then
		# Remove only what this script creates, so a mistaken
		# RAFTKV_CLUSTER_DIR can't take anything else with it.
		shopt -s nullglob
		for f in "$CLUSTER_DIR"/node*; do
			[[ $(basename "$f") =~ ^node[0-9]+(\.log|\.pid)?$ ]] && rm -rf -- "$f"
		done
		shopt -u nullglob
		rmdir -- "$CLUSTER_DIR" 2>/dev/null || true
		echo "wiped $CLUSTER_DIR"
	fi
}

cmd_status() {
	local i pid
	for ((i = 1; i <= NODES; i++)); do
		if pid=$(node_pid "$i"); then
			node_line "$i" "$pid"
		else
			node_line "$i" "-"
		fi
	done
	echo "endpoints=$(endpoints)"
	[[ -x $BIN_DIR/raftkvctl ]] || die "$BIN_DIR/raftkvctl not found (build with: make build)"
	ctl "$@" status
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

case ${1:-} in
up)
	shift
	(($# == 0)) || die "up takes no arguments"
	cmd_up
	;;
down)
	shift
	cmd_down "$@"
	;;
status)
	shift
	cmd_status "$@"
	;;
env)
	echo "export RAFTKV_ENDPOINTS=$(endpoints)"
	;;
-h | --help | help)
	usage
	;;
*)
	usage >&2
	exit 2
	;;
esac
