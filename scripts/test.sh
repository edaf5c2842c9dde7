#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
