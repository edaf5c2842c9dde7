#!/usr/bin/env bash
# Unpacks a small, class-balanced slice of the real CIFAR-10 images into the image-folder layout
# (OUT/train/<class>/NNNN.jpg, OUT/test/<class>/NNNN.jpg): the first TRAIN and TEST files of every
# class from the JPEG tarball (../shared/data/cifar10-jpeg.tar.gz beside the clone, or $CIFAR10_JPEG).
# Usage: scripts/cifar-slice.sh OUT [TRAIN_PER_CLASS (50)] [TEST_PER_CLASS (20)]
# Exit 3 when the tarball is not there.
set -euo pipefail
# A relative $CIFAR10_JPEG is relative to where the script was started.
if [[ -n ${CIFAR10_JPEG:-} ]]; then CIFAR10_JPEG=$(realpath -m -- "$CIFAR10_JPEG"); fi
cd "$(dirname "$0")/.."
usage="usage: $0 OUT [TRAIN_PER_CLASS] [TEST_PER_CLASS]"
out=${1:?$usage}
train=${2:-50}
test=${3:-20}
[[ $train =~ ^[1-9][0-9]*$ && $train -le 5000 && $test =~ ^[1-9][0-9]*$ && $test -le 1000 ]] ||
  { echo "per-class counts: 1-5000 training and 1-1000 test images: $usage" >&2; exit 2; }
tarball=${CIFAR10_JPEG:-../shared/data/cifar10-jpeg.tar.gz}
if [ ! -f "$tarball" ]; then
  echo "cifar-slice: $tarball not found (set CIFAR10_JPEG to the CIFAR-10 JPEG tarball)" >&2
  exit 3
fi
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for class in airplane automobile bird cat deer dog frog horse ship truck; do
  for ((i = 0; i < train; i++)); do printf 'train/%s/%04d.jpg\n' "$class" "$i"; done
  for ((i = 0; i < test; i++)); do printf 'test/%s/%04d.jpg\n' "$class" "$i"; done
done >"$list"
rm -rf "$out"
mkdir -p "$out"
tar -xzf "$tarball" -C "$out" -T "$list"
echo "$out: $((10 * train)) training and $((10 * test)) test images of 10 classes" >&2
