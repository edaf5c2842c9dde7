#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing (including Debian's
# Fashion-MNIST package), builds the tool in Release, and runs every Apricot phase of
# configs/quickstart.json, ending with the results table. Rerunning skips finished phases.
# Extra arguments go to `apricot run` (e.g. --force, --workdir DIR, --set adapt.max_batches=50).
set -euo pipefail
cd "$(dirname "$0")/.."
APRICOT_TARGETS=apricot scripts/setup.sh dataset-fashion-mnist
exec "${BUILD_DIR:-build}/apricot" run -c configs/quickstart.json "$@"
