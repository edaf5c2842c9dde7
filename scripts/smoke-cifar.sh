#!/usr/bin/env bash
# Smoke run on real data: `apricot run` with every arm (configs/cifar10-slice.json: cnn1, 3 rDLMs,
# 6 adaptation batches) on a real CIFAR-10 slice of 500 training and 200 test images read as an
# image folder (scripts/cifar-slice.sh), then checks that every arm wrote its result. Prints the
# table and the wall time. Skips (exit 0, with a message) where the CIFAR-10 JPEG tarball is absent.
# Env: APRICOT (binary, default build/apricot), CIFAR10_JPEG (the tarball), KEEP=1 keeps the files.
set -euo pipefail
cd "$(dirname "$0")/.."
APRICOT=${APRICOT:-$PWD/build/apricot}
start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/apricot-smoke.XXXXXX")
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$tmp"' EXIT
rc=0
scripts/cifar-slice.sh "$tmp/cifar10-slice" 50 20 || rc=$?
if ((rc == 3)); then
  echo "smoke-cifar: skipped (no CIFAR-10 JPEG tarball here)" >&2
  exit 0
elif ((rc != 0)); then
  exit "$rc"
fi
"$APRICOT" run -c configs/cifar10-slice.json -w "$tmp/w" --set data.root="$tmp/cifar10-slice"
strategies=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["adapt"]["strategies"]))' \
  configs/cifar10-slice.json 2>/dev/null || echo "1 2 3 none none-matched soup greedy-soup")
for s in $strategies; do
  [[ -f $tmp/w/adapt-$s/result.json ]] || { echo "smoke-cifar: arm $s wrote no result" >&2; exit 1; }
done
echo "smoke-cifar: every arm ran on the real CIFAR-10 slice in $(($(date +%s) - start)) s" >&2
