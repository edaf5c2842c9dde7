#!/usr/bin/env bash
# Installs what the build needs (only what is missing), then configures and builds, against one of two
# LibTorch builds of the same source tree:
#   --torch debian (the default): Debian 12's libtorch-dev, LibTorch 1.13.1, CPU only; C++17.
#   --torch pip: the CUDA LibTorch inside PyTorch's wheel from PyPI (torch==2.15.0, pinned), which pip
#     installs into a virtual environment in the cache folder (APRICOT_CACHE, default
#     ~/.cache/apricot/torch-2.15.0; about 5.3 GB with the CUDA libraries it depends on, 1-2 minutes);
#     C++20; compiled with the CUDA toolkit's nvcc (CUDA_HOME, default /usr/local/cuda), which CMake
#     needs to configure a CUDA LibTorch. The venv also gets numpy and pillow, for the tests and the
#     walkthroughs that run PyTorch 2.15 against this build (its python is passed as APRICOT_PYTHON).
#   --torch DIR: a LibTorch you already have: an unpacked LibTorch archive (DIR/share/cmake/Torch) or
#     a Python with torch installed (DIR/bin/python); the tests' Python is then DIR/bin/python if any.
# Other Debian packages (CLI11, spdlog, nlohmann-json, GoogleTest, zlib, libjpeg, libpng) come from apt
# for every build, or, with APRICOT_DEPS=DIR, from Debian packages unpacked in DIR without apt (a GPU
# machine without network: scripts/device-prepare.sh makes .device/deps; add DIR/usr/lib/<arch> to
# LD_LIBRARY_PATH to run what it builds). The Python of --torch DIR may then be DIR/bin/python3.
# libopenblas0-pthread: Debian's LibTorch calls the libblas.so.3 alternative, which is the slow
# reference BLAS unless an optimised one is installed (dense layers and gemv run several times faster).
# python3-torch is left out on purpose (CI stays lean; tests/models/test_pytorch_interop.cpp then skips
# in the Debian build): `scripts/setup.sh python3-torch` adds it for the PyTorch 1.13 round-trip check.
# Usage: scripts/setup.sh [--torch debian|pip|DIR] [extra-package ...]
# Env: BUILD_DIR (default build for debian, build-torch2.15.0 for pip, build-DIRNAME for DIR),
# BUILD_TYPE (Release), APRICOT_TARGETS (default: all), CMAKE_ARGS (more -D options).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

torch_choice=debian
if [[ ${1:-} == --torch ]]; then
  torch_choice=${2:?"scripts/setup.sh: --torch needs debian, pip or a folder"}
  shift 2
elif [[ ${1:-} == --torch=* ]]; then
  torch_choice=${1#--torch=}
  shift
fi

packages=(cmake ninja-build g++ libcli11-dev libspdlog-dev nlohmann-json3-dev libgtest-dev zlib1g-dev
          libjpeg62-turbo-dev libpng-dev "$@")
cmake_torch=()
# torch_prefix PYTHON: CMAKE_PREFIX_PATH for that Python's torch: the torch folder itself first, so
# that find_library takes its lib/ before the system's (Debian's libtorch-dev may be installed too),
# then its share/cmake for TorchConfig.
torch_prefix() {
  "$1" -W ignore -c 'import os, torch; print(os.path.dirname(torch.__file__) + ";" + torch.utils.cmake_prefix_path)'
}
case $torch_choice in
  debian)
    packages+=(libopenblas0-pthread libtorch-dev)
    default_build=build
    ;;
  pip)
    default_build=build-torch$APRICOT_PIP_TORCH
    ;;
  *)
    if [[ ! -d $torch_choice ]]; then
      echo "scripts/setup.sh: --torch '$torch_choice' is neither debian, pip nor a folder" >&2
      echo "  hint: --torch pip installs PyTorch $APRICOT_PIP_TORCH from PyPI; --torch /path/to/libtorch uses an unpacked LibTorch" >&2
      exit 2
    fi
    default_build=build-$(basename "$(cd "$torch_choice" && pwd)")
    ;;
esac
cmake_deps=()
if [[ -n ${APRICOT_DEPS:-} ]]; then
  deps=$(cd "$APRICOT_DEPS" && pwd)/usr
  multi=$deps/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  cmake_deps=(-DCLI11_DIR="$deps/share/cmake/CLI11" -Dnlohmann_json_DIR="$deps/share/cmake/nlohmann_json"
              -Dspdlog_DIR="$multi/cmake/spdlog" -Dfmt_DIR="$multi/cmake/fmt" -DGTest_DIR="$multi/cmake/GTest"
              -DZLIB_INCLUDE_DIR="$deps/include" -DJPEG_INCLUDE_DIR="$deps/include" -DJPEG_LIBRARY="$multi/libjpeg.so"
              -DPNG_PNG_INCLUDE_DIR="$deps/include" -DPNG_LIBRARY="$multi/libpng.so")
  # zlib1g-dev's libz.so points at /lib/<arch>/libz.so.1.x, which another distribution may lack:
  # link the unpacked zlib1g's (its soname libz.so.1 is on every Linux).
  zlib=$(ls "$(dirname "$deps")"/lib/"${multi##*/}"/libz.so.1.* "$multi"/libz.so.1.* 2>/dev/null | head -1 || true)
  [[ -n $zlib ]] && cmake_deps+=(-DZLIB_LIBRARY="$zlib")
  echo "apricot setup: no apt-get; the packages unpacked in $APRICOT_DEPS" >&2
else
  ensure_packages "apricot setup" "${packages[@]}"
fi

case $torch_choice in
  debian) ;;
  pip)
    cuda=$(cuda_cmake_args)
    venv=$(ensure_pip_torch)
    prefix=$(torch_prefix "$venv/bin/python")
    # shellcheck disable=SC2206
    cmake_torch=(-DCMAKE_PREFIX_PATH="$prefix" -DAPRICOT_PYTHON="$venv/bin/python" $cuda)
    ;;
  *)
    dir=$(cd "$torch_choice" && pwd)
    py=$dir/bin/python
    [[ -x $py ]] || py=$dir/bin/python3
    if [[ -x $py ]]; then
      prefix=$(torch_prefix "$py") || {
        echo "scripts/setup.sh: $py cannot import torch" >&2
        exit 2
      }
      cmake_torch=(-DCMAKE_PREFIX_PATH="$prefix" -DAPRICOT_PYTHON="$py")
      torch_lib=${prefix%%;*}/lib
    elif [[ -d $dir/share/cmake/Torch ]]; then
      cmake_torch=(-DCMAKE_PREFIX_PATH="$dir;$dir/share/cmake")
      torch_lib=$dir/lib
    else
      echo "scripts/setup.sh: '$dir' holds neither share/cmake/Torch (an unpacked LibTorch) nor bin/python or bin/python3 (a Python with torch)" >&2
      exit 2
    fi
    # A CUDA LibTorch needs nvcc to configure; a CPU one ignores these.
    if [[ -e $torch_lib/libtorch_cuda.so ]]; then
      cuda=$(cuda_cmake_args)
      # shellcheck disable=SC2206
      cmake_torch+=($cuda)
    fi
    ;;
esac

BUILD_DIR=${BUILD_DIR:-$default_build}
BUILD_TYPE=${BUILD_TYPE:-Release}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${cmake_torch[@]+"${cmake_torch[@]}"} ${cmake_deps[@]+"${cmake_deps[@]}"} \
    ${CMAKE_ARGS:-} >&2
fi
# shellcheck disable=SC2086
cmake --build "$BUILD_DIR" -j"$(nproc)" ${APRICOT_TARGETS:+--target $APRICOT_TARGETS} >&2
