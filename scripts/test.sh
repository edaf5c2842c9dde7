#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest (CPU only), then the
# Slurm scripts on a real one-node Slurm (scripts/slurm/selftest.sh), then the libFuzzer targets for
# 30 seconds each (scripts/fuzz.sh).
# chromium-headless-shell is installed for the report's browser test (tests/test_report.cpp,
# ReportBrowser), which keeps its screenshot in $BUILD_DIR/test-artifacts/report.png.
# Env: BUILD_DIR (default build), SLURM_SELFTEST=0 skips the Slurm self-test, FUZZ_SECONDS (default
# 30; 0 skips the fuzzing). Extra arguments go to ctest (e.g. -R Report).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh chromium-headless-shell
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
if [ "${SLURM_SELFTEST:-1}" != 0 ]; then
  APRICOT="$PWD/${BUILD_DIR:-build}/apricot" scripts/slurm/selftest.sh
fi
# Then each libFuzzer target for FUZZ_SECONDS on a copy of its seed corpus, built with clang in
# build-fuzz/ (docs/RELIABILITY.md).
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
