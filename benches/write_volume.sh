#!/usr/bin/env bash
# Bytes the server writes to storage while serving warm verify at the maximum rate: what the
# last-used flushes and the checkpoint cost the disk. Seeds N keys, runs wrk for WARM seconds
# (every key's first use is flushed then), then reads /proc/PID/io `write_bytes` around MEASURE
# seconds more, and the fsync/fdatasync calls the server makes in those seconds (`perf stat` on
# the syscall tracepoints; skipped where perf cannot read them). Server on core 0 (one worker),
# wrk on core 1.
# Needs: cargo build --release --bin gatehouse --example bench_seed
# Usage: BIN=target/release benches/write_volume.sh [N=100000] [WARM=70] [MEASURE=60]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
N=${1:-100000}; WARM=${2:-70}; MEASURE=${3:-60}
W=$(mktemp -d /tmp/gh-writes.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT
export GATEHOUSE_DATA_DIR=$W/data GATEHOUSE_LOG__LEVEL=warn GATEHOUSE_CLEANUP__SCHEDULE=""
export GH_KEYS=$W/keys.txt GH_INVALID=$W/invalid.txt
"$BIN/examples/bench_seed" "$N" "$W" >/dev/null
GATEHOUSE_BIND=127.0.0.1:19431 GATEHOUSE_WORKERS=1 \
  GATEHOUSE_PLANS__FREE__REQUESTS_PER_HOUR=4000000000 \
  GATEHOUSE_KEYS__INVALID_ATTEMPTS_PER_MINUTE=4000000000 \
  taskset -c 0 "$BIN/gatehouse" serve > "$W/log" 2>&1 & PIDS+=($!)
P=${PIDS[-1]}
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/19431) 2>/dev/null && break; sleep 0.1; done
run() { GH_MODE=verify GH_DIST=uniform taskset -c 1 wrk -t1 -c64 -d"$1s" -s benches/verify.lua \
  http://127.0.0.1:19431 | awk '/Requests\/sec/{print int($2)}'; }
written() { awk '/^write_bytes/{print $2}' "/proc/$P/io"; }
echo "warm-up, $WARM s: $(run "$WARM") req/s"
SYNCS=$W/syncs.txt
perf stat -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -p "$P" \
  -o "$SYNCS" -- sleep "$MEASURE" 2>/dev/null & PERF=$!
a=$(written)
r=$(run "$MEASURE")
b=$(written)
wait "$PERF" 2>/dev/null || true
syncs=$(awk -F, '/sys_enter_f/{n += $1} END{print (NR ? n : "n/a")}' "$SYNCS" 2>/dev/null || echo n/a)
echo "next $MEASURE s: $r req/s; written $(( (b - a) / 1048576 )) MiB; fsync+fdatasync $syncs;" \
  "WAL file $(stat -c %s "$GATEHOUSE_DATA_DIR/gatehouse.db-wal") bytes"
