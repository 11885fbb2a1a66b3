#!/usr/bin/env bash
# Instructions and simulated cache misses per request, under valgrind's callgrind: the
# hello-world ceiling and Gatehouse (warm verify or forward-auth over N keys) side by side.
# Unlike req/s on this noisy machine, the counts repeat to within a fraction of a percent, so
# they can judge a change worth 1-2 %. They leave out the kernel and count what the CPU's
# caches would miss under the simulated geometry (D1 48 KiB, last level 4 MiB), not time.
# Time-driven background work (the last-used flush, the change poll) runs ~50x slower under
# valgrind relative to requests; only the busiest thread (the actix worker) is reported.
# Needs: apt-get install -y valgrind; cargo build --release --bin gatehouse --example
#   bench_baseline --example bench_seed
# Usage: BIN=target/release benches/instructions.sh [N=100000] [MODE=verify|forward]
# Env: GH (a gatehouse binary other than $BIN/gatehouse), WARM seconds (25), MEASURE (15).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}; GH=${GH:-$BIN/gatehouse}
N=${1:-100000}; MODE=${2:-verify}; WARM=${WARM:-25}; MEASURE=${MEASURE:-15}
W=$(mktemp -d /tmp/gh-instr.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT
export GATEHOUSE_DATA_DIR=$W/data GATEHOUSE_LOG__LEVEL=warn GATEHOUSE_CLEANUP__SCHEDULE=""
# The same draws for the warm-up and the counted run (GH_SEED): every key counted was cached.
export GH_KEYS=$W/keys.txt GH_INVALID=$W/invalid.txt GH_MODE=$MODE GH_REQUESTS=100000 GH_SEED=7
"$BIN/examples/bench_seed" "$N" "$W" >/dev/null
CG=(valgrind --tool=callgrind --cache-sim=yes --D1=49152,12,64 --LL=4194304,16,64
  --instr-atstart=no --separate-threads=yes)
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.25; done; exit 1; }
# measure NAME PORT OUT [wrk args…]: warm up uninstrumented, count MEASURE s of requests.
measure() {
  local name=$1 port=$2 out=$3 pid=${PIDS[-1]}; shift 3
  wait_port "$port"
  wrk -t1 -c8 -d"${WARM}s" "$@" "http://127.0.0.1:$port/" >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  wrk -t1 -c8 -d"${MEASURE}s" "$@" "http://127.0.0.1:$port/" > "$W/wrk"
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1; kill "$pid"; wait "$pid" 2>/dev/null || true
  local n; n=$(awk '/requests in/{print $1}' "$W/wrk")
  # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw; the busiest thread's totals
  cat "$out"* | awk -v n="$n" -v name="$name" '/^totals:/ && $2 > best {best = $2; line = $0}
    END {split(line, t, " "); printf "%-34s %6d requests: %6.0f instructions, %5.1f D1 and %4.1f LL read misses, %4.1f LL write misses a request\n",
      name, n, t[2] / n, t[6] / n, t[9] / n, t[10] / n}'
}
"${CG[@]}" --callgrind-out-file="$W/base.out" "$BIN/examples/bench_baseline" 127.0.0.1:19441 \
  > "$W/base.log" 2>&1 & PIDS+=($!)
measure "ceiling GET /" 19441 "$W/base.out"
GATEHOUSE_BIND=127.0.0.1:19442 GATEHOUSE_WORKERS=1 \
  GATEHOUSE_PLANS__FREE__REQUESTS_PER_HOUR=4000000000 \
  GATEHOUSE_KEYS__INVALID_ATTEMPTS_PER_MINUTE=4000000000 \
  "${CG[@]}" --callgrind-out-file="$W/gh.out" "$GH" serve > "$W/gh.log" 2>&1 & PIDS+=($!)
measure "gatehouse $MODE, warm, $N keys" 19442 "$W/gh.out" -s benches/verify.lua
if [ -n "${KEEP:-}" ]; then cp "$W"/gh.out* "$KEEP"/; echo "callgrind files in $KEEP"; fi
