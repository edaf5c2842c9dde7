#!/usr/bin/env bash
# Installs the Debian packages the build needs (only those missing), then configures and builds.
# libopenblas0-pthread: Debian's LibTorch calls the libblas.so.3 alternative, which is the slow
# reference BLAS unless an optimised one is installed (dense layers and gemv run several times faster).
# python3-torch is left out on purpose (CI stays lean; tests/models/test_pytorch_interop.cpp then skips):
# `scripts/setup.sh python3-torch` adds it for the PyTorch round-trip check.
# Usage: scripts/setup.sh [extra-package ...]   Env: BUILD_DIR (default build), BUILD_TYPE (Release),
# APRICOT_TARGETS (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ libopenblas0-pthread libtorch-dev libcli11-dev libspdlog-dev nlohmann-json3-dev libgtest-dev zlib1g-dev
          libjpeg62-turbo-dev libpng-dev "$@")
. scripts/lib/common.sh
ensure_packages "apricot setup" "${packages[@]}"

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_ARGS:-} >&2
fi
# shellcheck disable=SC2086
cmake --build "$BUILD_DIR" -j"$(nproc)" ${APRICOT_TARGETS:+--target $APRICOT_TARGETS} >&2
