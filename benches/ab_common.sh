# Sourced by benches/ab.sh and benches/pair.sh: the two seeded databases and the two Gatehouse
# servers they compare. The caller sets W (work dir), BIN, GHA, GHB and PIDS, and may override
# launch_in (how one server is started; pair.sh puts each in a cgroup of its own).
# shellcheck shell=bash

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; exit 1; }

# seed_pair N: $W/data-a and $W/data-b with N keys each. A's keys in GH_KEYS / GH_INVALID
# (exported), B's in KB / IB: the same files, unless SEED_B (a bench_seed binary) seeds B's
# database on its own (an older build cannot open a newer schema, and a newer build migrating an
# older file rebuilds its indexes densely, which a fresh seed does not).
seed_pair() {
  export GH_KEYS=$W/keys.txt GH_INVALID=$W/invalid.txt
  GATEHOUSE_DATA_DIR=$W/data "$BIN/examples/bench_seed" "$1" "$W" >/dev/null
  cp -r "$W/data" "$W/data-a"; mv "$W/data" "$W/data-b"
  KB=$GH_KEYS; IB=$GH_INVALID
  if [ -n "${SEED_B:-}" ]; then
    rm -rf "$W/data-b"; mkdir -p "$W/b"
    GATEHOUSE_DATA_DIR=$W/data-b "$SEED_B" "$1" "$W/b" >/dev/null
    KB=$W/b/keys.txt; IB=$W/b/invalid.txt
  fi
}

# launch_in NAME COMMAND…: becomes COMMAND (run in the background by start_pair).
launch_in() { shift; exec "$@"; }

# start_pair PORT_A PORT_B: GHA and GHB on core 0, one worker each, quotas out of the way,
# keys.cache_capacity from CACHE (200000; 0 for the miss path), EXTRA_A / EXTRA_B extra
# environment; waits until both listen.
start_pair() {
  local v port bin extra
  for v in a b; do
    if [ $v = a ]; then port=$1 bin=$GHA extra=${EXTRA_A:-}; else port=$2 bin=$GHB extra=${EXTRA_B:-}; fi
    # shellcheck disable=SC2086 # EXTRA_* are lists of VAR=value words
    launch_in "$v" env $extra GATEHOUSE_DATA_DIR="$W/data-$v" GATEHOUSE_BIND=127.0.0.1:$port \
      GATEHOUSE_WORKERS=1 GATEHOUSE_PLANS__FREE__REQUESTS_PER_HOUR=4000000000 \
      GATEHOUSE_KEYS__INVALID_ATTEMPTS_PER_MINUTE=4000000000 \
      GATEHOUSE_KEYS__CACHE_CAPACITY="${CACHE:-200000}" \
      taskset -c 0 "$bin" serve > "$W/$v.log" 2>&1 & PIDS+=($!)
    wait_port "$port"
  done
}
