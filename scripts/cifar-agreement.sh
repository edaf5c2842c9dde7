#!/usr/bin/env bash
# The image-folder loader against the CIFAR-10 binary loader on all 60,000 real images: unpacks the
# JPEG tarball (../shared/data/cifar10-jpeg.tar.gz beside the clone, or $CIFAR10_JPEG) as an image
# folder, writes the official binary layout from it with the make-cifar10-bin script beside the
# tarball (PIL's decoder), and runs the test ImageFolder.RealCifar10AgreesWithTheBinaryLoader, which
# checks every split holds the same (image, label) pairs and prints both load times.
# Skips (exit 0, with a message) where the tarball is absent; fails where it lacks its script.
# Needs /usr/bin/python3 with numpy and PIL (Debian: python3-numpy python3-pil; scripts/test.sh
# installs them). Env: APRICOT_TESTS (default build/apricot_tests), KEEP=1 keeps the files.
set -euo pipefail
# A relative $CIFAR10_JPEG is relative to where the script was started.
if [[ -n ${CIFAR10_JPEG:-} ]]; then CIFAR10_JPEG=$(realpath -m -- "$CIFAR10_JPEG"); fi
cd "$(dirname "$0")/.."
APRICOT_TESTS=${APRICOT_TESTS:-$PWD/build/apricot_tests}
tarball=${CIFAR10_JPEG:-../shared/data/cifar10-jpeg.tar.gz}
maker=$(dirname "$tarball")/make-cifar10-bin
if [[ ! -f $tarball ]]; then
  echo "cifar-agreement: skipped ($tarball not found)" >&2
  exit 0
fi
if [[ ! -x $maker ]]; then  # the tarball without its script: something is wrong with the data folder
  echo "cifar-agreement: $maker (the binary-layout writer beside the tarball) not found" >&2
  exit 1
fi
start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/apricot-cifar.XXXXXX")
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/folder" "$tmp/bin"
tar -xzf "$tarball" -C "$tmp/folder"
/usr/bin/python3 "$maker" "$tmp/bin" >/dev/null
log=$tmp/test.log
APRICOT_CIFAR_FOLDER="$tmp/folder" APRICOT_CIFAR_BIN="$tmp/bin/cifar-10-batches-bin" \
  "$APRICOT_TESTS" --gtest_filter=ImageFolder.RealCifar10AgreesWithTheBinaryLoader | tee "$log"
# A filter that matches nothing, or a skip, also exits 0: require the one test to have passed.
grep -q '^\[  PASSED  \] 1 test' "$log" && ! grep -q '^\[  SKIPPED \]' "$log" ||
  { echo "cifar-agreement: the agreement test did not run and pass" >&2; exit 1; }
echo "cifar-agreement: the image folder and the binary layout agree, image for image ($(($(date +%s) - start)) s)" >&2
