#!/usr/bin/env bash
# Server CPU time per request, the hello-world ceiling and Gatehouse side by side: a steadier
# figure than req/s on a shared, noisy machine (it counts only the work the server did), used
# for the before/after comparisons in BENCHMARKS.md section 4. Server on core 0 (one worker),
# wrk on core 1, N keys (default 20 000), 1 % unknown keys, uniform draws.
# Needs: cargo build --release --bin gatehouse --example bench_baseline --example bench_seed
# Usage: benches/cpu_per_request.sh "verify forward" CACHE_CAPACITY SECONDS [DIR holding gatehouse]
#   CACHE_CAPACITY 0 = every request misses the key cache.
set -euo pipefail
cd "$(dirname "$0")/.."
MODES=${1:-verify}
CACHE=${2:-200000}
D=${3:-8}
BIN=${4:-target/release}
WORK=$(mktemp -d /tmp/gh-cpu.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
export GATEHOUSE_DATA_DIR=$WORK/data GATEHOUSE_LOG__LEVEL=warn GATEHOUSE_CLEANUP__SCHEDULE=""
export GH_KEYS=$WORK/keys.txt GH_INVALID=$WORK/invalid.txt
target/release/examples/bench_seed "${N:-20000}" "$WORK" >/dev/null
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; exit 1; }
measure() { # NAME PID URL [wrk args…]
  local name=$1 pid=$2 url=$3; shift 3
  local a; a=$(ticks "$pid")
  taskset -c 1 wrk -t1 -c64 -d"${D}s" "$@" "$url" > "$WORK/out"
  local b; b=$(ticks "$pid")
  local n; n=$(awk '/requests in/{print $1}' "$WORK/out")
  # clock ticks are 10 ms: ticks * 10 000 us / requests
  echo "$name: $(awk '/Requests\/sec/{print int($2)}' "$WORK/out") req/s, server CPU $(( (b - a) * 10000000 / n ))e-3 us/request"
}
taskset -c 0 target/release/examples/bench_baseline 127.0.0.1:19302 & PIDS+=($!)
wait_port 19302
measure "ceiling GET /" "${PIDS[-1]}" http://127.0.0.1:19302/
GATEHOUSE_BIND=127.0.0.1:19301 GATEHOUSE_WORKERS=1 \
  GATEHOUSE_PLANS__FREE__REQUESTS_PER_HOUR=4000000000 \
  GATEHOUSE_KEYS__INVALID_ATTEMPTS_PER_MINUTE=4000000000 \
  GATEHOUSE_KEYS__CACHE_CAPACITY=$CACHE \
  taskset -c 0 "$BIN/gatehouse" serve > "$WORK/log" 2>&1 & PIDS+=($!)
GH=${PIDS[-1]}
wait_port 19301
GH_MODE=${MODES%% *} GH_DIST=uniform taskset -c 1 wrk -t1 -c64 -d3s -s benches/verify.lua http://127.0.0.1:19301 >/dev/null
for m in $MODES; do
  GH_MODE=$m GH_DIST=uniform measure "$m (cache capacity $CACHE)" "$GH" http://127.0.0.1:19301 -s benches/verify.lua
done
