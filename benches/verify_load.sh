#!/usr/bin/env bash
# Key benchmark: Gatehouse verify / forward-auth vs a bare actix-web hello-world (the ceiling).
# Server pinned to core 0, wrk to core 1. Needs a release build:
#   cargo build --release --bin gatehouse --example bench_baseline --example bench_seed
# Usage: benches/verify_load.sh [seconds per run (default 10)] [keys (default 100000)]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-10}
N=${2:-100000}
BIN=target/release
WORK=$(mktemp -d /tmp/gh-bench.XXXXXX)
BASE_PORT=${BASE_PORT:-19200}
GH_PORT=${GH_PORT:-19201}
CONNS=64
export GATEHOUSE_DATA_DIR=$WORK/data GATEHOUSE_LOG__LEVEL=warn GATEHOUSE_CLEANUP__SCHEDULE=""
export GH_KEYS=$WORK/keys.txt GH_INVALID=$WORK/invalid.txt
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

rss() { awk '/VmRSS/{print $2 " kB"}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
# run NAME URL [extra wrk args…]: prints Requests/sec, latency percentiles, non-2xx count.
run() {
  local name=$1 url=$2; shift 2
  echo "### $name"
  taskset -c 1 wrk -t1 -c"${C:-$CONNS}" -d"${D}s" --latency "$@" "$url" |
    grep -E "Requests/sec|^ +(50|90|99)%|Non-2xx|Socket errors|requests in"
}
rps_of() { taskset -c 1 wrk -t1 -c$CONNS -d"${D}s" "$@" | awk '/Requests\/sec/{print int($2)}'; }

echo "## seeding $N keys"
$BIN/examples/bench_seed "$N" "$WORK"

echo "## baseline (bare actix-web hello-world, 1 worker, core 0)"
taskset -c 0 $BIN/examples/bench_baseline "127.0.0.1:$BASE_PORT" & PIDS+=($!)
wait_port $BASE_PORT
run "baseline GET /" "http://127.0.0.1:$BASE_PORT/"
kill "${PIDS[-1]}"

start_gh() {
  GATEHOUSE_BIND=127.0.0.1:$GH_PORT GATEHOUSE_WORKERS=1 \
  GATEHOUSE_PLANS__FREE__REQUESTS_PER_HOUR=4000000000 \
  GATEHOUSE_KEYS__INVALID_ATTEMPTS_PER_MINUTE=4000000000 \
  GATEHOUSE_KEYS__CACHE_CAPACITY=$1 \
    taskset -c 0 $BIN/gatehouse serve > "$WORK/gh-$1.log" 2>&1 & GH_PID=$!
  PIDS+=($GH_PID)
  wait_port $GH_PORT
  echo "RSS at start: $(rss $GH_PID)"
}
URL=http://127.0.0.1:$GH_PORT

echo "## gatehouse, cache on (1 worker, core 0)"
start_gh 200000
GH_MODE=verify GH_DIST=uniform D=10 run "warm-up (not counted)" "$URL" -s benches/verify.lua >/dev/null
echo "RSS after warm-up: $(rss $GH_PID)"
GH_MODE=verify GH_DIST=uniform run "verify, warm, uniform" "$URL" -s benches/verify.lua
GH_MODE=verify GH_DIST=skewed run "verify, warm, skewed" "$URL" -s benches/verify.lua
GH_MODE=forward GH_DIST=uniform run "forward, warm, uniform" "$URL" -s benches/verify.lua
GH_MODE=forward GH_DIST=skewed run "forward, warm, skewed" "$URL" -s benches/verify.lua
MAX=$(GH_MODE=verify GH_DIST=uniform rps_of -s benches/verify.lua "$URL")
# Half the maximum rate: each connection pauses 2 ms between requests.
HALF_C=$(( MAX / 2 * 2 / 1000 )); [ "$HALF_C" -lt 1 ] && HALF_C=1
GH_MODE=verify GH_DIST=uniform GH_DELAY_MS=2 C=$HALF_C run "verify, warm, ~half of $MAX rps ($HALF_C conns x 2 ms pause)" "$URL" -s benches/verify.lua
echo "RSS after cache-on runs: $(rss $GH_PID)"
kill $GH_PID; wait $GH_PID 2>/dev/null || true

echo "## gatehouse, cache off: every request reads SQLite (1 worker, core 0)"
start_gh 0
GH_MODE=verify GH_DIST=uniform run "verify, miss, uniform" "$URL" -s benches/verify.lua
GH_MODE=forward GH_DIST=uniform run "forward, miss, uniform" "$URL" -s benches/verify.lua
MAX=$(GH_MODE=verify GH_DIST=uniform rps_of -s benches/verify.lua "$URL")
HALF_C=$(( MAX / 2 * 2 / 1000 )); [ "$HALF_C" -lt 1 ] && HALF_C=1
GH_MODE=verify GH_DIST=uniform GH_DELAY_MS=2 C=$HALF_C run "verify, miss, ~half of $MAX rps ($HALF_C conns x 2 ms pause)" "$URL" -s benches/verify.lua
echo "RSS after cache-off runs: $(rss $GH_PID)"
echo "## sqlite writes during the runs (WAL size; only the last_used flush writes)"
ls -l "$GATEHOUSE_DATA_DIR"/gatehouse.db* | awk '{print $5, $9}'
