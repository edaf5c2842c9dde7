#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest (CPU only), then every
# arm on a real CIFAR-10 slice (scripts/smoke-cifar.sh), then the Slurm scripts on a real one-node
# Slurm (scripts/slurm/selftest.sh), then the libFuzzer targets for 15 seconds each (scripts/fuzz.sh;
# run it alone for longer).
# chromium-headless-shell is installed for the report's browser test (tests/test_report.cpp,
# ReportBrowser), which keeps its screenshot in $BUILD_DIR/test-artifacts/report.png.
# Env: BUILD_DIR (default build), CIFAR_SMOKE=0 skips the CIFAR-10 smoke run, SLURM_SELFTEST=0 skips
# the Slurm self-test, FUZZ_SECONDS (default 15; 0 skips the fuzzing). Extra arguments go to ctest
# (e.g. -R Report).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh chromium-headless-shell
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
# Every arm on a real CIFAR-10 slice (500 training, 200 test images read as an image folder).
if [ "${CIFAR_SMOKE:-1}" != 0 ]; then
  APRICOT="$PWD/${BUILD_DIR:-build}/apricot" scripts/smoke-cifar.sh
fi
if [ "${SLURM_SELFTEST:-1}" != 0 ]; then
  APRICOT="$PWD/${BUILD_DIR:-build}/apricot" scripts/slurm/selftest.sh
fi
# Then each libFuzzer target for FUZZ_SECONDS on a copy of its seed corpus, built with clang in
# build-fuzz/ (docs/RELIABILITY.md).
if [ "${FUZZ_SECONDS:-15}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
fi
