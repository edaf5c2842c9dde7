#!/usr/bin/env bash
# One prepared run for the GPU machine (after scripts/device-prepare.sh here, with `.device`
# carried): builds against the CUDA LibTorch inside the installed PyTorch with all cores, runs the
# CUDA-relevant tests, the training benchmarks of the tool and of the PyTorch eager peer for each
# model, the adjustment benchmark, and timed phases of a CIFAR-10 run of cnn1; prints a table last.
# Logs and JSON go to $OUT (default /tmp/apricot-device). QUICK=1 skips the benchmarks.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/apricot-device}
mkdir -p "$OUT"
DEPS=$PWD/.device/deps/usr
export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/gpu.txt"

t0=$(date +%s)
# -I (searched before every -isystem): Debian's fmt 9, which its spdlog needs, must win over the newer fmt
# headers shipped inside the PyTorch wheel.
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-I$DEPS/include" \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS" \
  -DCLI11_DIR="$DEPS/share/cmake/CLI11" -Dnlohmann_json_DIR="$DEPS/share/cmake/nlohmann_json" \
  -Dspdlog_DIR="$DEPS/lib/x86_64-linux-gnu/cmake/spdlog" -Dfmt_DIR="$DEPS/lib/x86_64-linux-gnu/cmake/fmt" \
  -DGTest_DIR="$DEPS/lib/x86_64-linux-gnu/cmake/GTest" \
  -DZLIB_INCLUDE_DIR="$DEPS/include" >"$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; exit 1; }
cmake --build build-cuda -j"$(nproc)" >"$OUT/build.log" 2>&1 || { grep -E "error|Error" "$OUT/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
A=build-cuda/apricot

build-cuda/apricot_tests --gtest_brief=1 --gtest_filter='*Cuda*:Train.*:Weights*:Config.*:Models*' \
  >"$OUT/tests.log" 2>&1; echo "tests rc=$? ($(grep -c '^\[       OK' "$OUT/tests.log" || true) ok)"; tail -5 "$OUT/tests.log"

: >"$OUT/bench.jsonl"
if [ -z "${QUICK:-}" ]; then
bench() {  # arch precision
  timeout 120 $A bench train --arch "$1" --precision "$2" --batch 128 --device cuda --json --steps 30 --repeats 5 \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); d["tool"]="apricot"; print(json.dumps(d))' >>"$OUT/bench.jsonl"
  timeout 120 python3 scripts/bench/peer_train.py --arch "$1" --precision "$2" --batch 128 --device cuda --json \
    --steps 30 --repeats 5 | python3 -c 'import json,sys; d=json.load(sys.stdin); d["tool"]="peer"; print(json.dumps(d))' \
    >>"$OUT/bench.jsonl"
}
for arch in cnn1 cnn2 cnn3 resnet20 resnet32; do bench "$arch" fp32; done
for arch in cnn1 resnet20; do bench "$arch" bf16; done
$A bench adjust --device cuda --json >"$OUT/adjust.json" 2>"$OUT/adjust.err"; cat "$OUT/adjust.json"
fi

# Timed phases of cnn1 on real CIFAR-10, for a projection of the full paper-settings run.
if [ -f .device/cifar/cifar10-jpeg.tar.gz ]; then
  python3 .device/cifar/make-cifar10-bin /tmp/cifar >/dev/null 2>&1
  W=/tmp/cnn1-run
  common="-c configs/cnn1.json -w $W --device cuda --set data.root=/tmp/cifar/cifar-10-batches-bin --log-level info"
  ( time $A train-base $common --set train.epochs=3 ) >"$OUT/cnn1-base.log" 2>&1
  ( time $A train-rdlms $common --set rdlm.count=2 --set rdlm.epochs=3 ) >"$OUT/cnn1-rdlms.log" 2>&1
  ( time $A adapt $common --strategy 1 --set rdlm.count=2 --set adapt.max_batches=40 --set adapt.retrain_every=20 \
      --set adapt.retrain.epochs=1 --json ) >"$OUT/cnn1-adapt.log" 2>&1
  grep -hE "epoch .*img/s|real|base model|rdlm-0[0-9]:|adapt-1:" "$OUT"/cnn1-*.log
  grep -h '"time"' -A6 "$OUT/cnn1-adapt.log" | head -8
fi

python3 - "$OUT/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows: by.setdefault((r["arch"], r["precision"]), {})[r["tool"]] = r
print(f'{"arch":10} {"prec":5} {"tool train":>12} {"peer train":>12} {"ratio":>6} {"tool infer":>12} {"peer infer":>12}')
for (a, pr), d in by.items():
    t, p = d.get("apricot", {}), d.get("peer", {})
    tt, pt = t.get("train_images_per_s", 0), p.get("train_images_per_s", 0)
    print(f'{a:10} {pr:5} {tt:12.0f} {pt:12.0f} {tt / pt if pt else 0:6.2f} {t.get("infer_images_per_s", 0):12.0f} {p.get("infer_images_per_s", 0):12.0f}')
PY
