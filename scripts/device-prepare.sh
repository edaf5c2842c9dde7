#!/usr/bin/env bash
# Run on the CPU machine before a GPU check: fetches the Debian packages the GPU machine lacks
# (CLI11, spdlog, fmt, nlohmann-json, GoogleTest, zlib headers, libjpeg and libpng with their headers:
# image folders need both) and unpacks them into .device/deps, which scripts/setup.sh uses there with
# APRICOT_DEPS=.device/deps instead of apt-get; and copies the CIFAR-10 archive beside it. Carry
# `.device` with the device run (it is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device/debs .device/cifar
(cd .device/debs && apt-get download libcli11-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 \
  nlohmann-json3-dev libgtest-dev zlib1g-dev zlib1g libjpeg62-turbo-dev libjpeg62-turbo libpng-dev libpng16-16)
rm -rf .device/deps
for f in .device/debs/*.deb; do dpkg -x "$f" .device/deps; done
data=${APRICOT_SHARED_DATA:-../shared/data}
if [ -f "$data/cifar10-jpeg.tar.gz" ]; then cp "$data/cifar10-jpeg.tar.gz" "$data/make-cifar10-bin" .device/cifar/; fi
du -sh .device
