#!/usr/bin/env bash
# The CPU training benchmark against the peers people would pick, side by side in one run:
#   apricot bench train built on LibTorch 1.13 (Debian; build/) and on 2.15 (the pip build;
#   build-torch2.15.0/), against scripts/bench/peer_train.py under PyTorch 2.15 eager and under
#   torch.compile (inductor, C++/OpenMP kernels on the CPU);
#   the five paper models (3x32x32, 10 classes) and small (1x28x28), batch 128, fp32, NCHW;
#   training and inference images/s (each a median of REPEATS x STEPS steps after a warm-up).
# ROUNDS rounds, each running every tool once per model, one after another (drift of a shared machine
# touches every tool alike); a model's figure is the median over rounds, and the table gives each
# tool's ratio to the PyTorch 2.15 eager peer. torch.compile's compile time (warm-up) is not timed;
# its first round compiles, later ones hit inductor's cache. Needs both builds (scripts/setup.sh and
# scripts/setup.sh --torch pip). Writes OUT/bench.jsonl and OUT/table.md; prints the table.
# Usage: scripts/bench/peers.sh OUT   Env: ROUNDS (2), STEPS (5), REPEATS (3), THREADS (2),
# MODELS ("small cnn1 cnn2 cnn3 resnet20 resnet32"), TOOLS ("apricot-1.13 apricot-2.15 eager compile").
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh
out=${1:?usage: scripts/bench/peers.sh OUT}
mkdir -p "$out"
venv=$(apricot_cache)/torch-$APRICOT_PIP_TORCH
PY=$venv/bin/python
for f in build/apricot "build-torch$APRICOT_PIP_TORCH/apricot" "$PY"; do
  [[ -x $f ]] || { echo "peers.sh: $f missing (scripts/setup.sh; scripts/setup.sh --torch pip)" >&2; exit 2; }
done
ROUNDS=${ROUNDS:-2} STEPS=${STEPS:-5} REPEATS=${REPEATS:-3} THREADS=${THREADS:-2}
MODELS=${MODELS:-small cnn1 cnn2 cnn3 resnet20 resnet32}
TOOLS=${TOOLS:-apricot-1.13 apricot-2.15 eager compile}
: >"$out/bench.jsonl"
input_of() { [[ $1 == small ]] && echo 1,28,28 || echo 3,32,32; }
run_tool() {  # tool arch -> one JSON line
  local input common
  input=$(input_of "$2")
  common=(--arch "$2" --input "$input" --batch 128 --threads "$THREADS" --steps "$STEPS" --repeats "$REPEATS" --json)
  case $1 in
    apricot-1.13) build/apricot bench train "${common[@]}" --device cpu 2>>"$out/stderr.log" ;;
    apricot-2.15) "build-torch$APRICOT_PIP_TORCH/apricot" bench train "${common[@]}" --device cpu 2>>"$out/stderr.log" ;;
    eager) "$PY" -W ignore scripts/bench/peer_train.py "${common[@]}" --device cpu 2>>"$out/stderr.log" ;;
    compile) "$PY" -W ignore scripts/bench/peer_train.py "${common[@]}" --device cpu --compile 2>>"$out/stderr.log" ;;
  esac
}
t0=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
  for arch in $MODELS; do
    for tool in $TOOLS; do
      s=$SECONDS
      line=$(run_tool "$tool" "$arch" | tr -d '\n') || { echo "peers.sh: $tool $arch failed ($out/stderr.log)" >&2; exit 1; }
      "$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); d.update(tool=sys.argv[2], round=int(sys.argv[3]), wall_s=int(sys.argv[4])); print(json.dumps(d))' \
        "$line" "$tool" "$round" "$((SECONDS - s))" >>"$out/bench.jsonl"
      echo "peers.sh: round $round $arch $tool ($((SECONDS - s)) s)" >&2
    done
  done
done
"$PY" scripts/bench/peers_table.py "$out" "$((SECONDS - t0))" "$(uptime)"
