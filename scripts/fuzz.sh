#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) in build-fuzz/ and runs each
# for SECONDS (default 30) on a temporary copy of its seed corpus, so the committed corpus never
# grows. Fails on any crash, sanitizer report, unexpected exception or timeout; the input that
# triggered it is kept and its path printed.
# Usage: scripts/fuzz.sh [SECONDS [TARGET ...]]   targets: config idx cifar checkpoint_meta safetensors npy
# Env: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_OUT (keep corpora, logs and crash inputs here instead
# of a temporary directory), FUZZ_JOBS (build jobs, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(config idx cifar checkpoint_meta safetensors npy)

# Debian packages: the build's own (as scripts/setup.sh) plus clang and its runtime (libFuzzer, ASan).
packages=(cmake ninja-build libtorch-dev libcli11-dev libspdlog-dev nlohmann-json3-dev zlib1g-dev libjpeg62-turbo-dev
          libpng-dev clang-14 libclang-rt-14-dev)
. scripts/lib/common.sh
ensure_packages "apricot fuzz" "${packages[@]}"

BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
    -DAPRICOT_FUZZ=ON -DAPRICOT_BUILD_TESTS=OFF >&2
fi
cmake --build "$BUILD_DIR" -j"${FUZZ_JOBS:-$(nproc)}" --target $(printf 'fuzz_%s ' "${targets[@]}") >&2

out=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/apricot-fuzz.XXXXXX")}
mkdir -p "$out"
# LibTorch is not instrumented: its one-time allocations at start-up are not ours to chase, but a
# leak in our code is a finding, so leak detection stays on (see docs/RELIABILITY.md).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
printf '%-16s %10s %8s %6s %10s %8s  %s\n' target execs exec/s cov corpus rss_mb result >&2
for t in "${targets[@]}"; do
  dir="$out/$t"
  rm -rf "$dir" && mkdir -p "$dir/corpus" "$dir/crashes"
  cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
  rc=0
  "$BUILD_DIR/fuzz_$t" "$dir/corpus" -max_total_time="$seconds" -max_len=8192 -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/crashes/" >"$dir/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$dir/log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$dir/log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  result=ok
  if [ "$rc" -ne 0 ] || ls "$dir/crashes/"* >/dev/null 2>&1; then
    result="FAILED (exit $rc)"
    failed+=("$t")
  fi
  printf '%-16s %10s %8s %6s %10s %8s  %s\n' "$t" "${execs:--}" "${speed:--}" "${cov:--}" "${corp:--}" \
    "${rss:--}" "$result" >&2
  if [ "$result" != ok ]; then
    grep -E 'ERROR|FINDING|runtime error|SUMMARY|Test unit written' "$dir/log" | head -20 >&2 || true
    echo "  log: $dir/log   inputs: $dir/crashes/" >&2
  fi
done
if ((${#failed[@]})); then
  echo "apricot fuzz: findings in ${failed[*]} (kept under $out)" >&2
  exit 1
fi
[ -n "${FUZZ_OUT:-}" ] || rm -rf "$out"
echo "apricot fuzz: ${#targets[@]} targets, ${seconds}s each, no findings" >&2
