#!/usr/bin/env bash
# Key benchmark: Gatehouse verify / forward-auth vs a bare actix-web hello-world (the ceiling).
# Server pinned to core 0, wrk to core 1. Needs a release build:
#   cargo build --release --bin gatehouse --example bench_baseline --example bench_seed
# Usage: benches/verify_load.sh [seconds per run (default 10)] [keys (default 100000)]
# Needs wrk, and oha (`cargo install oha`) for the fixed-rate latency runs.
# SOAK_SECS (default 300): length of the RSS soak at the end (0 skips it).
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

rss() { awk '/VmRSS/{r=$2} /RssAnon/{a=$2} /RssFile/{f=$2} END{print r " kB (anon " a ", file " f ")"}' "/proc/$1/status"; }
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

# fixed NAME RATE URL [oha args…]: constant request rate (oha, latency-corrected, so queueing
# delay is counted from when each request was due), prints achieved rate and p50/p99/p99.9.
fixed() {
  local name=$1 rate=$2 url=$3; shift 3
  echo "### $name at a fixed $rate req/s (oha, 64 connections, latency-corrected)"
  taskset -c 1 oha -z "${D}s" -c 64 -q "$rate" --latency-correction --no-tui "$@" "$url" |
    grep -E "Success rate|Requests/sec|^ +(50.00|99.00|99.90)% in"
}

echo "## baseline (bare actix-web hello-world, 1 worker, core 0)"
taskset -c 0 $BIN/examples/bench_baseline "127.0.0.1:$BASE_PORT" & BASE_PID=$!
PIDS+=($BASE_PID)
wait_port $BASE_PORT
run "baseline GET /" "http://127.0.0.1:$BASE_PORT/"

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
HALF=$(( MAX / 2 ))
# Latency at half of verify's maximum rate, and the ceiling's at the same rate (oha sends one
# fixed key: the cache-warm path).
K=$(head -1 "$GH_KEYS")
fixed "verify, warm, half of $MAX rps" $HALF "$URL/api/verify" -m POST \
  -H 'content-type: application/json' -d "{\"token\":\"$K\"}"
fixed "baseline GET /, same rate" $HALF "http://127.0.0.1:$BASE_PORT/"
echo "RSS after cache-on runs: $(rss $GH_PID)"
kill $GH_PID; wait $GH_PID 2>/dev/null || true

echo "## gatehouse, cache off: every request reads SQLite (1 worker, core 0)"
start_gh 0
GH_MODE=verify GH_DIST=uniform run "verify, miss, uniform" "$URL" -s benches/verify.lua
GH_MODE=forward GH_DIST=uniform run "forward, miss, uniform" "$URL" -s benches/verify.lua
MAX=$(GH_MODE=verify GH_DIST=uniform rps_of -s benches/verify.lua "$URL")
fixed "verify, miss, half of $MAX rps" $(( MAX / 2 )) "$URL/api/verify" -m POST \
  -H 'content-type: application/json' -d "{\"token\":\"$K\"}"
echo "RSS after cache-off runs: $(rss $GH_PID)"
kill $GH_PID; wait $GH_PID 2>/dev/null || true
echo "## sqlite writes during the runs (WAL size; only the last_used flush writes)"
ls -l "$GATEHOUSE_DATA_DIR"/gatehouse.db* | awk '{print $5, $9}'

SOAK=${SOAK_SECS:-300}
if [ "$SOAK" -gt 0 ]; then
  echo "## RSS soak: verify, warm, uniform, for $SOAK s (RSS every 30 s)"
  start_gh 200000
  GH_MODE=verify GH_DIST=uniform taskset -c 1 wrk -t1 -c$CONNS -d"${SOAK}s" -s benches/verify.lua "$URL" \
    > "$WORK/soak.txt" &
  SOAK_WRK=$!
  for t in $(seq 30 30 "$SOAK"); do sleep 30; echo "t=${t}s RSS $(rss $GH_PID)"; done
  wait $SOAK_WRK; grep -E "Requests/sec|requests in" "$WORK/soak.txt"
fi
