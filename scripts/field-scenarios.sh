#!/usr/bin/env bash
# Builds the field-repair scenarios (pair, shift, rare) of Fashion-MNIST and CIFAR-10 as NumPy
# datasets: installs the Debian packages scripts/field-scenarios.py needs (only those missing, as
# scripts/setup.sh does), then runs it with Debian's python3 (which sees those packages) and all
# arguments. See `scripts/field-scenarios.sh --help`.
# Usage: scripts/field-scenarios.sh --out OUT [--datasets fashion,cifar10] [--scenarios pair,shift,rare]
#        [--seed 0] [--fashion-train 12000] [--fashion-test 10000] [--cifar-train 10000] [--cifar-test 10000]
# Env: CIFAR10_JPEG (default ../shared/data/cifar10-jpeg.tar.gz beside the repository; a relative
# path is relative to where the script was started). Exit 3 when the only dataset asked for is missing.
set -euo pipefail

. "$(dirname "$0")/lib/common.sh"
ensure_packages field-scenarios python3-numpy python3-pil dataset-fashion-mnist

# No cd: --out and a relative CIFAR10_JPEG stay relative to the caller's directory.
exec /usr/bin/python3 "$(dirname "$0")/field-scenarios.py" "$@"
