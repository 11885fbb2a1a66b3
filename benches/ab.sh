#!/usr/bin/env bash
# A/B of two Gatehouse builds (or one build under two settings), each against a hello-world
# ceiling of its own: rounds of (ceiling A, Gatehouse A, ceiling B, Gatehouse B), wrk on core 1,
# every server on core 0 with one worker, 100 000 seeded keys, ratios per round.
# Env: GHA, GHB the two gatehouse binaries (default: $BIN/gatehouse for both); BLA, BLB the two
#   ceilings (default $BIN/examples/bench_baseline); EXTRA_A / EXTRA_B extra environment for
#   server A / B, e.g. EXTRA_B="GATEHOUSE_KEYS__CACHE_TTL_SECS=600"; R rounds (3); D seconds a
#   run (10); MODE verify|forward; DIST uniform|skewed; CACHE keys.cache_capacity (200000; 0 for
#   the miss path); SEED_B a bench_seed binary that seeds B's database on its own (see
#   benches/ab_common.sh).
#   Needs the release build of benches/verify_load.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
GHA=${GHA:-$BIN/gatehouse}; GHB=${GHB:-$BIN/gatehouse}
BLA=${BLA:-$BIN/examples/bench_baseline}; BLB=${BLB:-$BIN/examples/bench_baseline}
R=${R:-3}; D=${D:-10}
W=$(mktemp -d /tmp/gh-ab.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT
export GATEHOUSE_LOG__LEVEL=warn GATEHOUSE_CLEANUP__SCHEDULE=""
# shellcheck source=benches/ab_common.sh
. benches/ab_common.sh
seed_pair 100000
taskset -c 0 "$BLA" 127.0.0.1:19500 & PIDS+=($!)
taskset -c 0 "$BLB" 127.0.0.1:19503 & PIDS+=($!)
start_pair 19501 19502
wait_port 19500; wait_port 19503
rps() { taskset -c 1 wrk -t1 -c64 -d"${D}s" "$@" | awk '/Requests\/sec/{print int($2)}'; }
M=${MODE:-verify}
GH_MODE=$M rps -s benches/verify.lua http://127.0.0.1:19501 >/dev/null
GH_KEYS=$KB GH_INVALID=$IB GH_MODE=$M rps -s benches/verify.lua http://127.0.0.1:19502 >/dev/null
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
for r in $(seq "$R"); do
  ba=$(rps http://127.0.0.1:19500/)
  a=$(GH_MODE=$M GH_DIST=${DIST:-uniform} rps -s benches/verify.lua http://127.0.0.1:19501)
  bb=$(rps http://127.0.0.1:19503/)
  b=$(GH_KEYS=$KB GH_INVALID=$IB GH_MODE=$M GH_DIST=${DIST:-uniform} rps -s benches/verify.lua http://127.0.0.1:19502)
  echo "round $r A: ceiling $ba gatehouse $a ($(ratio "$a" "$ba"))  B: ceiling $bb gatehouse $b ($(ratio "$b" "$bb"))"
done
