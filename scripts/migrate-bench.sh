#!/usr/bin/env bash
# Measures raftkvctl migrate on the 3-node local cluster (scripts/cluster.sh):
# KEYS records with VALUE_SIZE-byte random values, three runs each of
#   file -> raftkv, raftkv -> raftkv and PostgreSQL -> raftkv,
# every run into a freshly wiped target cluster. Prints keys/s and MB/s
# (keys plus values, 10^6 bytes) per run and the median with min-max.
#
# Environment:
#   KEYS (1000000), VALUE_SIZE (256), RUNS (3)
#   BENCH_DIR          work directory (default: a new temp dir, removed at the end)
#   RAFTKV_PORT_BASE   port base of the first cluster (default 27000); the
#                      second uses +100, PostgreSQL +200
#   RAFTKV_BIN         raftkvd and raftkvctl (default: <repo>/bin, built)
# Needs python3 (to write the dump) and PostgreSQL's initdb/pg_ctl
# (apt-get install postgresql); as root, PostgreSQL runs as user postgres.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEYS=${KEYS:-1000000}
VALUE_SIZE=${VALUE_SIZE:-256}
RUNS=${RUNS:-3}
BASE=${RAFTKV_PORT_BASE:-27000}
BIN=${RAFTKV_BIN:-$ROOT/bin}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/raftkv-migrate-bench-XXXXXX)}
PG_PORT=$((BASE + 200))
mkdir -p "$WORK"
chmod 755 "$WORK" # PostgreSQL runs as another user and must reach its directory

if [[ ! -x $BIN/raftkvd || ! -x $BIN/raftkvctl ]]; then
	make -C "$ROOT" build >/dev/null
fi
CTL=$BIN/raftkvctl

cluster() { # cluster NAME PORTBASE CMD...
	local name=$1 base=$2
	shift 2
	RAFTKV_CLUSTER_DIR=$WORK/$name RAFTKV_PORT_BASE=$base RAFTKV_BIN=$BIN RAFTKV_NO_BUILD=1 \
		"$ROOT/scripts/cluster.sh" "$@"
}
eps() { echo "127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 11)),127.0.0.1:$(($1 + 21))"; }
SRC_EPS=$(eps "$BASE")
DST_EPS=$(eps $((BASE + 100)))

pgbin=$(dirname "$(command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
asPG=()
if [[ $(id -u) -eq 0 ]]; then asPG=(runuser -u postgres --); fi
PGDIR=$WORK/pg

cleanup() {
	cluster src "$BASE" down --wipe >/dev/null 2>&1 || true
	cluster dst $((BASE + 100)) down --wipe >/dev/null 2>&1 || true
	if [[ -d $PGDIR/data ]]; then "${asPG[@]}" "$pgbin/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true; fi
	if [[ -z ${BENCH_DIR:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "# writing $KEYS records with $VALUE_SIZE-byte values" >&2
python3 - "$WORK/in.jsonl" "$KEYS" "$VALUE_SIZE" <<'EOF'
import base64, os, sys
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as f:
    for i in range(n):
        k = base64.b64encode(b"bench/%08d" % i).decode()
        v = base64.b64encode(os.urandom(size)).decode()
        f.write('{"key":"%s","value":"%s"}\n' % (k, v))
EOF

# run NAME FROM TO: one timed migration into a wiped target cluster; prints
# "NAME keys/s MB/s".
run() {
	local name=$1 from=$2 to=$3
	cluster dst $((BASE + 100)) down --wipe >/dev/null 2>&1 || true
	cluster dst $((BASE + 100)) up >/dev/null
	local out
	out=$("$CTL" --endpoints "$DST_EPS" migrate --from "$from" --to "$to" -o json)
	python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["failed"] == 0 and s["copied"] > 0, s
d = s["duration_seconds"]
print("%s %.0f %.1f" % (sys.argv[1], s["copied"] / d, s["bytes"] / d / 1e6))' "$name" <<<"$out"
}

results=$WORK/results
: >"$results"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for i in $(seq "$RUNS"); do run file-raftkv "file:$WORK/in.jsonl" "raftkv://$DST_EPS" | tee -a "$results"; done

# The source cluster for raftkv -> raftkv, loaded once.
cluster src "$BASE" up >/dev/null
"$CTL" --endpoints "$SRC_EPS" import "$WORK/in.jsonl" -o json >/dev/null
for i in $(seq "$RUNS"); do run raftkv-raftkv "raftkv://$SRC_EPS" "raftkv://$DST_EPS" | tee -a "$results"; done

# PostgreSQL, loaded once with the same records.
mkdir -p "$PGDIR"
if [[ $(id -u) -eq 0 ]]; then chown postgres "$PGDIR"; fi
"${asPG[@]}" "$pgbin/initdb" -D "$PGDIR/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
"${asPG[@]}" "$pgbin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
	-o "-p $PG_PORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
PG="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable&table=data_store"
"$CTL" migrate --from "file:$WORK/in.jsonl" --to "$PG" -o json >/dev/null
for i in $(seq "$RUNS"); do run postgres-raftkv "$PG" "raftkv://$DST_EPS" | tee -a "$results"; done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "| path | keys/s median (min-max) | MB/s median (min-max) |"
echo "|------|-------------------------|-----------------------|"
for name in file-raftkv raftkv-raftkv postgres-raftkv; do
	python3 - "$name" "$results" <<'EOF'
import statistics, sys
name, path = sys.argv[1], sys.argv[2]
rows = [l.split() for l in open(path) if l.startswith(name + " ")]
k = [float(r[1]) for r in rows]
m = [float(r[2]) for r in rows]
print("| %s | %.0f (%.0f-%.0f) | %.1f (%.1f-%.1f) |" % (
    name.replace("-", " -> "), statistics.median(k), min(k), max(k), statistics.median(m), min(m), max(m)))
EOF
done
