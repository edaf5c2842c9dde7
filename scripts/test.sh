#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest (CPU only), then every
# arm on a real CIFAR-10 slice (scripts/smoke-cifar.sh) and the image-folder loader against the
# binary one on all of CIFAR-10 (scripts/cifar-agreement.sh), then the Slurm scripts on a real one-node
# Slurm (scripts/slurm/selftest.sh), then the libFuzzer targets for 10 seconds each (scripts/fuzz.sh;
# run it alone for longer).
# chromium-headless-shell is installed for the report's browser test (tests/report/test_report.cpp,
# ReportBrowser), which keeps its screenshot in $BUILD_DIR/test-artifacts/report.png.
# python3-numpy and python3-pil are for make-cifar10-bin (the binary layout the agreement checks).
# Env: BUILD_DIR (default build), CIFAR_SMOKE=0 skips both CIFAR-10 runs, SLURM_SELFTEST=0 skips
# the Slurm self-test, FUZZ_SECONDS (default 10; 0 skips the fuzzing). Extra arguments go to ctest
# (e.g. -R Report).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh chromium-headless-shell python3-numpy python3-pil
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
# Every arm on a real CIFAR-10 slice (500 training, 200 test images read as an image folder).
# Then the image-folder loader against the binary loader on all 60,000 CIFAR-10 images.
if [ "${CIFAR_SMOKE:-1}" != 0 ]; then
  APRICOT="$PWD/${BUILD_DIR:-build}/apricot" scripts/smoke-cifar.sh
  APRICOT_TESTS="$PWD/${BUILD_DIR:-build}/apricot_tests" scripts/cifar-agreement.sh
fi
if [ "${SLURM_SELFTEST:-1}" != 0 ]; then
  APRICOT="$PWD/${BUILD_DIR:-build}/apricot" scripts/slurm/selftest.sh
fi
# Then each libFuzzer target for FUZZ_SECONDS on a copy of its seed corpus, built with clang in
# build-fuzz/ (docs/RELIABILITY.md).
if [ "${FUZZ_SECONDS:-10}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
fi
