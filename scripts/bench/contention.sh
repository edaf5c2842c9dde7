#!/usr/bin/env bash
# `apricot bench train` alone and next to a competing CPU-bound process, with libgomp's default
# wait policy (the behaviour before the fix) and with the tool's own (OMP_WAIT_POLICY=PASSIVE, set
# by the binary), side by side in one run; the figures of docs/PERFORMANCE.md, "Shared machine".
#
# Fair share: the competitor is one single-threaded busy loop, so of the N CPUs this shell may use
# (nproc: affinity mask) it takes one and N-1 are left. The tool's fair share is its rate alone with
# N-1 threads (on 2 CPUs: alone with --threads 1). The target is at least 0.8x of that with the
# default `threads: 0`. "before" reproduces the old binary's OpenMP behaviour exactly:
# GOMP_SPINCOUNT=300000 is libgomp's default spin count, and a user's GOMP_SPINCOUNT makes the
# binary keep libgomp's settings (no switch to PASSIVE).
#
# Usage: scripts/bench/contention.sh [ROUNDS]   (default 3; each round runs every case once, in turn)
# Env: APRICOT (build/apricot), ARCH (small), INPUT (1,28,28), BENCH_ARGS (--steps 10 --repeats 3 --warmup 1)
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=${1:-3}
apricot=${APRICOT:-build/apricot}
arch=${ARCH:-small}
input=${INPUT:-1,28,28}
bench_args=${BENCH_ARGS:---steps 10 --repeats 3 --warmup 1}
cpus=$(nproc)
if ((cpus < 2)); then
  echo "contention.sh: needs at least 2 CPUs (this process may use $cpus)" >&2
  exit 2
fi
fair_threads=$((cpus - 1))
[ -x "$apricot" ] || { echo "contention.sh: $apricot not found (build first: scripts/setup.sh)" >&2; exit 2; }

busy_pid=""
stop_busy() { if [ -n "$busy_pid" ]; then kill "$busy_pid" 2>/dev/null || true; wait "$busy_pid" 2>/dev/null || true; busy_pid=""; fi; }
trap stop_busy EXIT

# train images/s of one bench run: $1 = before|after, $2 = threads, $3 = alone|busy
measure() {
  local env_before=() out
  [ "$1" = before ] && env_before=(GOMP_SPINCOUNT=300000)
  if [ "$3" = busy ]; then
    sh -c 'while :; do :; done' &
    busy_pid=$!
    sleep 0.5
  fi
  # shellcheck disable=SC2086
  out=$(env "${env_before[@]}" "$apricot" bench train --arch "$arch" --input "$input" --device cpu \
    --threads "$2" $bench_args --json)
  stop_busy
  sed -n 's/.*"train_images_per_s": \([0-9.eE+-]*\).*/\1/p' <<<"$out"
}

cases=("after $cpus alone" "before $cpus alone" "after $fair_threads alone" "before $cpus busy" "after $cpus busy"
       "after $fair_threads busy")
declare -A rates
echo "# $(date -u +%FT%TZ) $(uname -n), $cpus CPUs, $arch $input, $bench_args; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-7s %-6s %s\n' round policy threads "alone|busy: train img/s"
for ((r = 1; r <= rounds; ++r)); do
  for c in "${cases[@]}"; do
    read -r policy threads where <<<"$c"
    rate=$(measure "$policy" "$threads" "$where")
    rate=$(printf '%.0f' "$rate")
    rates["$c"]+="$rate "
    printf '%-6s %-7s %-6s %s: %s\n' "$r" "$policy" "$threads" "$where" "$rate"
  done
  echo "# load after round $r: $(cut -d' ' -f1-3 /proc/loadavg)"
done

median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
fair=$(median "${rates["after $fair_threads alone"]}")
echo
echo "median over $rounds rounds (train img/s), and the ratio to the fair share (alone, $fair_threads thread(s): $fair):"
for c in "${cases[@]}"; do
  m=$(median "${rates[$c]}")
  awk -v c="$c" -v m="$m" -v f="$fair" -v all="${rates[$c]}" \
    'BEGIN {printf "%-22s %8.0f  %.2fx fair share   (rounds: %s)\n", c, m, m / f, all}'
done
