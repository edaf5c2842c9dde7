#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing (including Debian's
# Fashion-MNIST package), builds the tool in Release, and runs every Apricot phase of
# configs/quickstart.json, ending with the results table. Rerunning skips finished phases.
# `--torch pip` first builds against PyTorch 2.15's LibTorch instead of Debian's 1.13 (as
# scripts/setup.sh --torch pip: a 5 GB download once, into ~/.cache/apricot).
# Extra arguments go to `apricot run` (e.g. --force, --workdir DIR, --set adapt.max_batches=50).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
torch=()
build=${BUILD_DIR:-build}
if [[ ${1:-} == --torch ]]; then
  torch=(--torch "${2:?"scripts/demo.sh: --torch needs debian or pip"}")
  [[ $2 == pip ]] && build=${BUILD_DIR:-build-torch$APRICOT_PIP_TORCH}
  [[ $2 == debian || $2 == pip ]] || { echo "scripts/demo.sh: --torch is debian or pip" >&2; exit 2; }
  shift 2
fi
BUILD_DIR=$build APRICOT_TARGETS=apricot scripts/setup.sh ${torch[@]+"${torch[@]}"} dataset-fashion-mnist
exec "$build/apricot" run -c configs/quickstart.json "$@"
