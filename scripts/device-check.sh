#!/usr/bin/env bash
# One prepared run for the GPU machine (after scripts/device-prepare.sh here, with `.device`
# carried). Builds against the CUDA LibTorch inside the installed PyTorch with all cores, runs the
# CUDA-relevant tests, then the benchmarks side by side (the tool's training step in both memory
# orders against the PyTorch eager peer, k rDLMs at once against one at a time, the matrix rate),
# then timed phases of configs/cnn1.json on a real CIFAR-10 slice (base, 20 rDLMs at once, the four
# arms one by one and at once), and prints the tables and the projection of the full paper-settings
# run last (scripts/bench/project_cnn1.py). Logs and JSON go to $OUT (default /tmp/apricot-device).
#   QUICK=1   build and tests only
#   PHASES=0  skip the CIFAR-10 phases
# About 7-8 minutes on one H200 with 16 cores (build ~95 s).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/apricot-device}
mkdir -p "$OUT"
# The Debian packages of scripts/device-prepare.sh, unpacked: the build's (through setup.sh) and the
# run's shared libraries (spdlog, fmt, libjpeg, libpng).
export APRICOT_DEPS=$PWD/.device/deps
export LD_LIBRARY_PATH=$APRICOT_DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
# The installed PyTorch's LibTorch, through the same setup path as every build (scripts/setup.sh
# --torch DIR: DIR/bin/python3 is the Python with torch).
PY_PREFIX=$(python3 -c 'import sys; print(sys.prefix)')
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/gpu.txt"
stamp() { echo "[$(date +%T)] $*"; }

t0=$(date +%s)
# (The fmt clash of the wheel's newer fmt headers with Debian's spdlog is handled in CMakeLists.txt.)
BUILD_DIR=build-cuda scripts/setup.sh --torch "$PY_PREFIX" >"$OUT/build.log" 2>&1 ||
  { grep -E "error|Error|hint" "$OUT/build.log" | head -40; exit 1; }
stamp "build: $(( $(date +%s) - t0 )) s"
A=build-cuda/apricot

build-cuda/apricot_tests --gtest_brief=1 --gtest_filter='*Cuda*:*Gpu*:Train.*:Weights*:Config.*:Models*:Parallel.*:Device.Deterministic*:TorchScript*' \
  >"$OUT/tests.log" 2>&1; stamp "tests rc=$? ($(grep -c '^\[       OK' "$OUT/tests.log" || true) ok)"; tail -5 "$OUT/tests.log"
[ -n "${QUICK:-}" ] && exit 0

# ---- benchmarks: the tool against the peer, side by side ----
: >"$OUT/bench.jsonl"
tag() { python3 -c 'import json,sys; d=json.load(sys.stdin); d.update(json.loads(sys.argv[1])); print(json.dumps(d))' "$1"; }
bench() {  # arch precision
  for fmt in contiguous channels_last; do
    timeout 120 $A bench train --arch "$1" --precision "$2" --batch 128 --device cuda --json --steps 30 --repeats 5 \
      --memory-format $fmt | tag "{\"tool\": \"apricot\"}" >>"$OUT/bench.jsonl"
  done
  for fmt in contiguous channels_last; do
    timeout 120 python3 scripts/bench/peer_train.py --arch "$1" --precision "$2" --batch 128 --device cuda --json \
      --steps 30 --repeats 5 --memory-format $fmt | tag '{"tool": "peer"}' >>"$OUT/bench.jsonl"
  done
}
$A bench matmul --device cuda -n 8192 --json >"$OUT/matmul.json" 2>"$OUT/matmul.err"; cat "$OUT/matmul.json"
for arch in cnn1 cnn2 cnn3 resnet20 resnet32; do bench "$arch" fp32; done
for arch in cnn1 resnet20; do bench "$arch" bf16; done
stamp "training benchmarks done"
: >"$OUT/rdlms.jsonl"
for arch in cnn1 resnet20; do
  timeout 180 $A bench rdlms --arch "$arch" -k 20 --batch 256 --device cuda --steps 10 --repeats 3 --json \
    2>>"$OUT/rdlms.err" | tag '{}' >>"$OUT/rdlms.jsonl"
done
$A bench adjust --device cuda --json >"$OUT/adjust.json" 2>"$OUT/adjust.err"
stamp "rDLM and adjustment benchmarks done"

# ---- timed phases of cnn1 on real CIFAR-10 (for the projection of the full run) ----
if [ "${PHASES:-1}" != 0 ] && [ -f .device/cifar/cifar10-jpeg.tar.gz ]; then
  python3 .device/cifar/make-cifar10-bin /tmp/cifar >"$OUT/cifar.log" 2>&1 || tail -5 "$OUT/cifar.log"
  W=/tmp/cnn1-run
  common="-c configs/cnn1.json --device cuda --set data.root=/tmp/cifar/cifar-10-batches-bin --log-level info"
  timed() {  # name command...: wall seconds into $OUT/phases.jsonl
    local name=$1; shift
    local s; s=$(date +%s.%N)
    "$@" >"$OUT/$name.log" 2>&1; local rc=$?
    python3 -c 'import json,sys; print(json.dumps({"phase": sys.argv[1], "rc": int(sys.argv[2]), "seconds": float(sys.argv[4]) - float(sys.argv[3])}))' \
      "$name" "$rc" "$s" "$(date +%s.%N)" | tee -a "$OUT/phases.jsonl"
  }
  : >"$OUT/phases.jsonl"
  timed base $A train-base $common -w $W --set train.epochs=3
  cp $W/base/metrics.jsonl "$OUT/base-metrics.jsonl"
  timed rdlms-one-by-one $A train-rdlms $common -w $W-seq --set rdlm.count=2 --set rdlm.epochs=2
  timed rdlms-20-at-once $A train-rdlms $common -w $W --set rdlm.epochs=2 --parallel 20
  ADAPT="--set rdlm.epochs=2 --set adapt.max_batches=5 --set adapt.retrain.epochs=1"
  # Each run starts without the rDLM correctness cache, so neither inherits the other's predictions.
  rm -f $W/rdlms/correctness.pt*
  timed arms-one-by-one $A adapt $common -w $W $ADAPT --arms 1
  for s in 1 2 3 none; do cp $W/adapt-$s/result.json "$OUT/one-by-one-adapt-$s.json"; rm -rf $W/adapt-$s; done
  rm -f $W/rdlms/correctness.pt*
  timed arms-4-at-once $A adapt $common -w $W $ADAPT --arms 4
  for s in 1 2 3 none; do cp $W/adapt-$s/result.json "$OUT/at-once-adapt-$s.json"; done
  stamp "phases done"
fi

python3 scripts/bench/project_cnn1.py "$OUT" /tmp/cnn1-run
