#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest (CPU only) against both
# LibTorch builds of the tree: Debian's 1.13 (CPU; build/) and PyTorch 2.15.0's CUDA LibTorch from
# PyPI (build-torch2.15.0/, pip-installed into ~/.cache/apricot by scripts/setup.sh --torch pip; its
# tests that need a GPU skip, saying why). With the Debian build it then runs every arm on a real
# CIFAR-10 slice (scripts/smoke-cifar.sh) and the image-folder loader against the binary one on all of
# CIFAR-10 (scripts/cifar-agreement.sh), then the Slurm scripts on a real one-node Slurm
# (scripts/slurm/selftest.sh), then the libFuzzer targets for 10 seconds each (scripts/fuzz.sh; run
# it alone for longer). After the pip build's ctest, the README's two walkthroughs (your own model; fix
# the failures you found) run with PyTorch 2.15 as the user's PyTorch against both builds
# (WALKTHROUGHS=0 skips them; the Debian one when debian comes first in BUILDS). Each part's wall
# time is printed at the end. Without the CUDA toolkit (no nvcc) only the Debian build is tested.
# chromium-headless-shell is installed for the report's browser test (tests/report/test_report.cpp,
# ReportBrowser), which keeps its screenshot in $BUILD_DIR/test-artifacts/report.png.
# python3-numpy and python3-pil are for make-cifar10-bin (the binary layout the agreement checks).
# Env: BUILDS (default "debian pip"; "debian" alone skips the PyTorch 2.15 build), BUILD_DIR (the
# Debian build's folder, default build), CIFAR_SMOKE=0 skips both CIFAR-10 runs, SLURM_SELFTEST=0
# skips the Slurm self-test, FUZZ_SECONDS (default 10; 0 skips the fuzzing). Extra arguments go to
# each ctest (e.g. -R Report).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
# The pip build needs the CUDA toolkit's nvcc to configure (a CUDA LibTorch); without one it is skipped.
if [[ -z ${BUILDS:-} && -z $(cuda_home) ]]; then
  echo "scripts/test.sh: no CUDA toolkit (nvcc): only the Debian build is tested (install the CUDA toolkit or set CUDA_HOME for the PyTorch $APRICOT_PIP_TORCH build)" >&2
  BUILDS=debian
fi
BUILDS=${BUILDS:-debian pip}
debian_dir=""
times=()
abs() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
part() {  # name command...: runs it, records its wall time
  local name=$1 t0=$SECONDS
  shift
  echo "== test.sh: $name" >&2
  "$@"
  times+=("$name: $((SECONDS - t0)) s")
}

for b in $BUILDS; do
  case $b in
    debian)
      dir=${BUILD_DIR:-build}
      debian_dir=$dir
      part "debian: install and build ($dir)" env BUILD_DIR="$dir" scripts/setup.sh chromium-headless-shell python3-numpy python3-pil
      ;;
    pip)
      dir=build-torch$APRICOT_PIP_TORCH
      part "pip: install and build ($dir)" env BUILD_DIR="$dir" scripts/setup.sh --torch pip chromium-headless-shell
      ;;
    *)
      echo "scripts/test.sh: BUILDS has '$b'; use debian and/or pip" >&2
      exit 2
      ;;
  esac
  part "$b: ctest" ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" "$@"
  if [[ $b == pip && ${WALKTHROUGHS:-1} != 0 ]]; then
    # The README's walkthroughs with a user's PyTorch 2.15 (the venv's): the model trained, scripted
    # and scored back in PyTorch 2.15, repaired by this build and by the Debian one (LibTorch 1.13
    # loading a file of PyTorch 2.15, and PyTorch 2.15 loading 1.13's export).
    py=$(apricot_cache)/torch-$APRICOT_PIP_TORCH/bin/python
    for with in "$dir" ${debian_dir:+"$debian_dir"}; do
      [[ $with == /* ]] || with=$PWD/$with
      part "walkthroughs: PyTorch 2.15 with $with/apricot" env APRICOT="$with/apricot" APRICOT_PYTHON="$py" \
        sh -c 'scripts/pytorch/walkthrough.sh && scripts/pytorch/field-walkthrough.sh'
    done
  fi
  if [[ $b == debian ]]; then
    # Every arm on a real CIFAR-10 slice (500 training, 200 test images read as an image folder).
    # Then the image-folder loader against the binary loader on all 60,000 CIFAR-10 images.
    if [ "${CIFAR_SMOKE:-1}" != 0 ]; then
      part "debian: CIFAR-10 smoke" env APRICOT="$(abs "$dir")/apricot" scripts/smoke-cifar.sh
      part "debian: CIFAR-10 loader agreement" env APRICOT_TESTS="$(abs "$dir")/apricot_tests" scripts/cifar-agreement.sh
    fi
    if [ "${SLURM_SELFTEST:-1}" != 0 ]; then
      part "debian: Slurm self-test" env APRICOT="$(abs "$dir")/apricot" scripts/slurm/selftest.sh
    fi
    # Then each libFuzzer target for FUZZ_SECONDS on a copy of its seed corpus, built with clang in
    # build-fuzz/ (docs/RELIABILITY.md).
    if [ "${FUZZ_SECONDS:-10}" != 0 ]; then
      part "debian: fuzzing" scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
    fi
  fi
done
printf 'test.sh: %s\n' "${times[@]}" >&2
