#!/usr/bin/env bash
# When do half-rate latency stalls come? Seeds keys, starts Gatehouse warm on core 0 (one
# worker), warms its cache for 10 s with wrk, then runs bench_rate at a fixed rate on core 1
# with GH_TIMELINE=1: the percentiles, then every 100 ms window whose slowest answer took over
# 1 ms. With PERF=1, `perf sched record -C 0` runs alongside (written to $SCHED_OUT, default
# /tmp/gh-sched.data; read it with `perf sched timehist -i …`) to see what else ran on the
# server's core.
# Needs the release build of benches/verify_load.sh.
# Usage: benches/stall_timeline.sh [rate (default 60000)] [seconds (default 40)] [keys (100000)]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-60000}
SECS=${2:-40}
N=${3:-100000}
BIN=${BIN:-target/release}
PORT=${GH_PORT:-19401}
WORK=$(mktemp -d /tmp/gh-stall.XXXXXX)
SCHED_OUT=${SCHED_OUT:-/tmp/gh-sched.data}
export GATEHOUSE_DATA_DIR=$WORK/data GATEHOUSE_LOG__LEVEL=warn GATEHOUSE_CLEANUP__SCHEDULE=""
export GH_KEYS=$WORK/keys.txt GH_INVALID=$WORK/invalid.txt
GH_PID=""
cleanup() { if [ -n "$GH_PID" ]; then kill "$GH_PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT
"$BIN/examples/bench_seed" "$N" "$WORK" >/dev/null
GATEHOUSE_BIND=127.0.0.1:$PORT GATEHOUSE_WORKERS=1 \
  GATEHOUSE_PLANS__FREE__REQUESTS_PER_HOUR=4000000000 \
  GATEHOUSE_KEYS__INVALID_ATTEMPTS_PER_MINUTE=4000000000 \
  taskset -c 0 "$BIN/gatehouse" serve > "$WORK/gh.log" 2>&1 & GH_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
GH_MODE=verify GH_DIST=uniform taskset -c 1 wrk -t1 -c64 -d10s -s benches/verify.lua \
  "http://127.0.0.1:$PORT" | grep Requests/sec
PERF_PID=""
if [ -n "${PERF:-}" ]; then
  perf sched record -C 0 -o "$SCHED_OUT" -- sleep $((SECS + 2)) >/dev/null 2>&1 &
  PERF_PID=$!
fi
GH_TIMELINE=1 taskset -c 1 "$BIN/examples/bench_rate" "127.0.0.1:$PORT" "$RATE" "$SECS" 16 \
  POST /api/verify '{"token":"{key}"}'
if [ -n "$PERF_PID" ]; then wait "$PERF_PID"; fi
