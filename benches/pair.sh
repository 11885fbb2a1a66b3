#!/usr/bin/env bash
# Paired A/B of two Gatehouse builds (or one build under two settings), both loaded AT ONCE:
# both servers on core 0, each in a cpu cgroup of its own with equal shares (so each gets half
# the core whatever its number of threads), each driven by its own wrk on core 1. The ratio B/A
# of their req/s in one round compares the CPU each spends per request under the same machine
# conditions, which ab.sh's alternating runs cannot: an A/A run here gave 0.991-1.007 over five
# rounds, where alternating runs on this machine differ by 4-5 %. There is no ceiling in this
# script; it ranks changes, verify_load.sh reports against the hello-world.
# Needs root (it creates /sys/fs/cgroup/cpu/gh-pair-{a,b}, the cgroup v1 cpu controller) and
# the release build of benches/verify_load.sh.
# Env: GHA, GHB the two gatehouse binaries (default $BIN/gatehouse); EXTRA_A / EXTRA_B extra
#   environment for server A / B; SEED_B a bench_seed binary to seed B's database on its own
#   (see benches/ab_common.sh); R rounds (5); D seconds a round (8); WARM seconds of load first (10);
#   N keys (100000); MODE verify|forward; DIST uniform|skewed; CACHE keys.cache_capacity
#   (200000; 0 for the miss path).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
GHA=${GHA:-$BIN/gatehouse}; GHB=${GHB:-$BIN/gatehouse}
R=${R:-5}; D=${D:-8}; N=${N:-100000}; M=${MODE:-verify}
CG=/sys/fs/cgroup/cpu
if [ ! -w "$CG" ]; then echo "needs root and the cgroup v1 cpu controller at $CG" >&2; exit 1; fi
W=$(mktemp -d /tmp/gh-pair.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT
export GATEHOUSE_LOG__LEVEL=warn GATEHOUSE_CLEANUP__SCHEDULE=""
# shellcheck source=benches/ab_common.sh
. benches/ab_common.sh
seed_pair "$N"
# Each server in a cpu cgroup of its own with equal shares: the shell joins it, then becomes
# the server.
launch_in() {
  mkdir -p "$CG/gh-pair-$1"
  echo 1024 > "$CG/gh-pair-$1/cpu.shares"
  local cg=$CG/gh-pair-$1
  shift
  exec sh -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$cg" "$@"
}
start_pair 19701 19702
# run SECONDS: both loads at once; prints "a b" (req/s).
run() {
  GH_MODE=$M GH_DIST=${DIST:-uniform} taskset -c 1 wrk -t1 -c64 -d"$1s" -s benches/verify.lua \
    http://127.0.0.1:19701 > "$W/wa" &
  local p=$!
  GH_KEYS=$KB GH_INVALID=$IB GH_MODE=$M GH_DIST=${DIST:-uniform} taskset -c 1 wrk -t1 -c64 \
    -d"$1s" -s benches/verify.lua http://127.0.0.1:19702 > "$W/wb"
  wait $p
  echo "$(awk '/Requests\/sec/{print int($2)}' "$W/wa") $(awk '/Requests\/sec/{print int($2)}' "$W/wb")"
}
run "${WARM:-10}" >/dev/null
ratios=""
for r in $(seq "$R"); do
  read -r a b <<< "$(run "$D")"
  x=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", b/a}')
  ratios+=" $x"
  echo "round $r  A $a  B $b  B/A $x"
done
echo "median B/A: $(echo "$ratios" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
