#!/usr/bin/env bash
# The README's "Fix the failures you found" section, start to end: the confused-pair scenario from
# Fashion-MNIST (scripts/field-scenarios.sh), a LeNet-5 trained in PyTorch on its training images
# (folder_classifier.py, the user's own training) and scripted (export_torchscript.py --weights),
# repaired on the 1,000 field images by the field arms with a 1 % break bound, the gated patch
# exported as one TorchScript module (and the WiSE-FT repair as the user's module), and PyTorch's
# torch.jit.load of each must score exactly what apricot measured on the clean test split. Prints the field table and the wall time.
# Skips (exit 0, with a message) without python3-torch. Env: APRICOT (default build/apricot),
# THREADS (default 2), KEEP=1 keeps the files.
set -euo pipefail
cd "$(dirname "$0")/../.."
APRICOT=${APRICOT:-$PWD/build/apricot}
. scripts/lib/common.sh
walkthrough_start field-walkthrough torch numpy
# 1. The field images: 500 shirts and 500 T-shirts the training set never saw.
scripts/field-scenarios.sh --out "$tmp/myfield" --datasets fashion --scenarios pair >/dev/null
# 2. The user's model, trained and scripted in PyTorch.
$PY scripts/pytorch/folder_classifier.py train "$tmp/myfield/fashion-pair" --channels 1 --model lenet5 \
  --epochs 3 --lr 0.02 --out "$tmp/lenet5.state.pt"
$PY scripts/pytorch/export_torchscript.py --model lenet5 --channels 1 --height 28 --width 28 \
  --weights "$tmp/lenet5.state.pt" --out "$tmp/mymodel.pt" >/dev/null
# 3. The repair: the README's config.
cat >"$tmp/myfield.json" <<JSON
{"workdir": "$tmp/runs/myfield", "threads": ${THREADS:-2},
 "data": {"format": "npy", "root": "$tmp/myfield/fashion-pair", "val_size": 2000},
 "model": {"arch": "torchscript", "path": "$tmp/mymodel.pt", "pretrained": true},
 "adapt": {"strategies": ["finetune", "finetune-interp", "head-only", "gated"], "max_break_rate": 0.01},
 "field": {"format": "npy", "root": "$tmp/myfield/fashion-pair/field-1000", "optimizer": "adam",
           "momentum": 0.0, "lrs": [0.0003, 0.0001, 0.00003, 0.00001], "checkpoint_every": 2}}
JSON
"$APRICOT" run -c "$tmp/myfield.json" --log-level warn | sed -n '/^field repair/,$p'
for arm in finetune-interp gated; do
  "$APRICOT" export -m "$tmp/runs/myfield/adapt-$arm/model.pt" --format torchscript -o "$tmp/repaired-$arm.pt" \
    --log-level warn
  # 4. Back in PyTorch: the repaired module scores on the clean test split what apricot measured.
  theirs=$($PY scripts/pytorch/folder_classifier.py eval "$tmp/myfield/fashion-pair" --channels 1 \
    --module "$tmp/repaired-$arm.pt")
  $PY - "$theirs" "$tmp/runs/myfield/adapt-$arm/result.json" "$arm" <<'PY'
import json, sys
theirs = json.loads(sys.argv[1])
r = json.load(open(sys.argv[2]))
ours = r["final"]["test_acc"]
print(f"repaired ({sys.argv[3]}, chose {json.dumps(r['field']['chosen'])}): PyTorch {theirs['correct']}/{theirs['n']} "
      f"on the test split, apricot {ours * theirs['n']:.0f}")
sys.exit(0 if abs(theirs["accuracy"] - ours) < 1e-12 else "field-walkthrough: PyTorch and apricot disagree")
PY
done
echo "field-walkthrough: trained in PyTorch, repaired by apricot, loaded back in PyTorch ($(($(date +%s) - start)) s)" >&2
