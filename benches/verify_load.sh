#!/usr/bin/env bash
# Key benchmark: Gatehouse verify / forward-auth vs a bare actix-web hello-world (the ceiling).
# Server pinned to core 0, the load generator to core 1. Needs a release build:
#   cargo build --release --bin gatehouse --example bench_baseline --example bench_seed \
#     --example bench_rate
# Usage: benches/verify_load.sh [seconds per run (default 10)] [keys (default 100000)]
# Needs wrk; oha (`cargo install oha`) adds its fixed-rate latency runs beside bench_rate's when
# it is installed.
# ROUNDS (default 5): the ceiling and each scenario take turns, round after round, and every
#   ratio is a scenario's rate over the ceiling measured in the same round; the median of the
#   rounds is reported. (This machine's speed drifts by more than the margins between runs, so
#   a ceiling measured once, first, decided the ratios before.)
# SOAK_SECS (default 300): length of the RSS soak at the end (0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-10}
N=${2:-100000}
ROUNDS=${ROUNDS:-5}
BIN=${BIN:-target/release}
GH_BIN=${GH_BIN:-$BIN/gatehouse}  # the server under test (e.g. an older build, for A/B)
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
# rps URL [extra wrk args…]: one wrk run on core 1; prints requests/s (integer). The full wrk
# output goes to $WORK/last.txt.
rps() {
  taskset -c 1 wrk -t1 -c$CONNS -d"${D}s" --latency "$@" > "$WORK/last.txt"
  awk '/Requests\/sec/{print int($2)}' "$WORK/last.txt"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# rounds LABEL:MODE:DIST…: ROUNDS rounds of (ceiling, then each scenario), one line per round,
# then each scenario's median rate and median per-round ratio.
rounds() {
  local specs=("$@") r s label mode dist base x ratio
  declare -A rates ratios
  local bases=""
  printf '%-6s %9s' round ceiling
  for s in "${specs[@]}"; do printf ' | %-28s' "${s%%:*}"; done; echo
  for r in $(seq "$ROUNDS"); do
    base=$(rps "http://127.0.0.1:$BASE_PORT/")
    bases+=" $base"
    printf '%-6s %9s' "$r" "$base"
    for s in "${specs[@]}"; do
      IFS=: read -r label mode dist <<< "$s"
      x=$(GH_MODE=$mode GH_DIST=$dist rps -s benches/verify.lua "$URL")
      ratio=$(awk -v a="$x" -v b="$base" 'BEGIN{printf "%.3f", a/b}')
      rates[$label]+=" $x"; ratios[$label]+=" $ratio"
      printf ' | %9s  %6s×            ' "$x" "$ratio"
    done
    echo
  done
  echo "median ceiling: $(echo "$bases" | median) req/s"
  for s in "${specs[@]}"; do
    label=${s%%:*}
    echo "median $label: $(echo "${rates[$label]}" | median) req/s," \
      "per-round ratios:${ratios[$label]}, median ratio $(echo "${ratios[$label]}" | median)×"
  done
}

# fixed NAME RATE URL [oha args…]: constant request rate (oha, latency-corrected, so queueing
# delay is counted from when each request was due), prints achieved rate and p50/p99/p99.9.
fixed() {
  local name=$1 rate=$2 url=$3; shift 3
  if ! command -v oha >/dev/null; then echo "### $name: oha not installed, skipped"; return; fi
  echo "### $name at a fixed $rate req/s (oha, $OHA_CONNS connections, latency-corrected)"
  taskset -c 1 oha -z "${D}s" -c "$OHA_CONNS" -q "$rate" --latency-correction --no-tui "$@" "$url" |
    grep -E "Success rate|Requests/sec|^ +(50.00|99.00|99.90)% in"
}
OHA_CONNS=${OHA_CONNS:-64}
# precise NAME RATE PORT METHOD PATH [BODY]: the same fixed rate from bench_rate
# (benches/tools/rate.rs), which sends each request on the microsecond it is due and counts
# latency from then; oha releases requests in bursts on millisecond timer ticks. bench_rate
# sends the stored keys in turn ({key}: all 100 000 of them, as the throughput runs do); oha
# sends one fixed key.
precise() {
  local name=$1 rate=$2 port=$3; shift 3
  echo "### $name at a fixed $rate req/s (bench_rate, 16 connections, from due time)"
  taskset -c 1 $BIN/examples/bench_rate "127.0.0.1:$port" "$rate" "$D" 16 "$@"
}

echo "## seeding $N keys"
$BIN/examples/bench_seed "$N" "$WORK"

echo "## ceiling: bare actix-web hello-world, 1 worker, core 0"
taskset -c 0 $BIN/examples/bench_baseline "127.0.0.1:$BASE_PORT" & BASE_PID=$!
PIDS+=($BASE_PID)
wait_port $BASE_PORT

start_gh() {
  GATEHOUSE_BIND=127.0.0.1:$GH_PORT GATEHOUSE_WORKERS=1 \
  GATEHOUSE_PLANS__FREE__REQUESTS_PER_HOUR=4000000000 \
  GATEHOUSE_KEYS__INVALID_ATTEMPTS_PER_MINUTE=4000000000 \
  GATEHOUSE_KEYS__CACHE_CAPACITY=$1 \
    taskset -c 0 $GH_BIN serve > "$WORK/gh-$1.log" 2>&1 & GH_PID=$!
  PIDS+=($GH_PID)
  wait_port $GH_PORT
  echo "RSS at start: $(rss $GH_PID)"
}
URL=http://127.0.0.1:$GH_PORT

echo "## gatehouse, cache on (1 worker, core 0); $ROUNDS rounds of $D s each, ceiling first"
start_gh 200000
GH_MODE=verify GH_DIST=uniform rps -s benches/verify.lua "$URL" >/dev/null # warm-up, not counted
echo "RSS after warm-up: $(rss $GH_PID)"
rounds "verify warm uniform:verify:uniform" "verify warm skewed:verify:skewed" \
  "forward warm uniform:forward:uniform" "forward warm skewed:forward:skewed"
MAX=$(GH_MODE=verify GH_DIST=uniform rps -s benches/verify.lua "$URL")
HALF=$(( MAX / 2 ))
# Latency at half of verify's maximum rate, and the ceiling's at the same rate, taking turns.
K=$(head -1 "$GH_KEYS")
for r in $(seq "${LAT_ROUNDS:-2}"); do
  precise "verify, warm, half of $MAX rps" $HALF $GH_PORT POST /api/verify '{"token":"{key}"}'
  precise "ceiling GET /, same rate" $HALF $BASE_PORT GET /
  fixed "verify, warm, half of $MAX rps" $HALF "$URL/api/verify" -m POST \
    -H 'content-type: application/json' -d "{\"token\":\"$K\"}"
  fixed "ceiling GET /, same rate" $HALF "http://127.0.0.1:$BASE_PORT/"
done
echo "RSS after cache-on runs: $(rss $GH_PID)"
kill $GH_PID; wait $GH_PID 2>/dev/null || true

echo "## gatehouse, cache off: every request reads SQLite (1 worker, core 0)"
start_gh 0
rounds "verify miss uniform:verify:uniform" "forward miss uniform:forward:uniform"
MAX=$(GH_MODE=verify GH_DIST=uniform rps -s benches/verify.lua "$URL")
precise "verify, miss, half of $MAX rps" $(( MAX / 2 )) $GH_PORT POST /api/verify '{"token":"{key}"}'
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
