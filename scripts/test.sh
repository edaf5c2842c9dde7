#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest (CPU only), then the
# libFuzzer targets for 30 seconds each (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
# Then each libFuzzer target for FUZZ_SECONDS (default 30; 0 skips) on a copy of its seed corpus,
# built with clang in build-fuzz/ (docs/RELIABILITY.md).
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
