#!/usr/bin/env bash
# The README's "Your own PyTorch model" section, start to end, on real CIFAR-10 images: a user trains
# LeNet-5 in PyTorch on an image folder (scripts/pytorch/folder_classifier.py), scripts it
# (export_torchscript.py --weights), repairs it with apricot (the README's config, smaller budgets),
# exports the repaired model as TorchScript, and PyTorch's torch.jit.load of that file must score
# exactly what `apricot eval` reports on the test images (and the original file what apricot
# measured for the base). Prints each step's figures and the wall time.
# Skips (exit 0, with a message) without python3-torch/python3-pil or the CIFAR-10 JPEG tarball.
# Env: APRICOT (binary, default build/apricot), THREADS (default 2), KEEP=1 keeps the files.
set -euo pipefail
cd "$(dirname "$0")/../.."
APRICOT=${APRICOT:-$PWD/build/apricot}
. scripts/lib/common.sh
walkthrough_start walkthrough torch PIL numpy
rc=0
scripts/cifar-slice.sh "$tmp/mydata" 100 30 || rc=$?
if ((rc == 3)); then echo "walkthrough: skipped (no CIFAR-10 JPEG tarball)" >&2; exit 0; fi
((rc == 0)) || exit "$rc"
# 1. The user's own training, in PyTorch.
$PY scripts/pytorch/folder_classifier.py train "$tmp/mydata" --model lenet5 --epochs 15 --lr 0.05 --out "$tmp/lenet5.state.pt"
$PY scripts/pytorch/export_torchscript.py --model lenet5 --weights "$tmp/lenet5.state.pt" --out "$tmp/mymodel.pt" >/dev/null
# 2. The README's config (budgets cut to fit a minute or two on 2 cores).
cat >"$tmp/my.json" <<JSON
{"workdir": "$tmp/runs/my", "threads": ${THREADS:-2},
 "data": {"format": "imagefolder", "root": "$tmp/mydata", "val_size": 200, "normalize": "scale"},
 "model": {"arch": "torchscript", "path": "$tmp/mymodel.pt", "pretrained": true},
 "train": {"batch_size": 32, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9},
 "rdlm": {"init": "base", "count": 4, "size": 400, "stride": 200, "epochs": 2},
 "adapt": {"max_batches": 20, "step": 0.01, "strategies": ["1", "none"], "retrain_every": 2,
           "retrain": {"steps": 20, "lr": 0.01}}}
JSON
"$APRICOT" run -c "$tmp/my.json" --log-level warn
"$APRICOT" export -m "$tmp/runs/my/adapt-1/model.pt" --format torchscript -o "$tmp/repaired.pt" --log-level warn
# 3. Back in PyTorch: the same accuracy as apricot's, image for image on the test folder.
theirs_base=$($PY scripts/pytorch/folder_classifier.py eval "$tmp/mydata" --module "$tmp/mymodel.pt")
theirs=$($PY scripts/pytorch/folder_classifier.py eval "$tmp/mydata" --module "$tmp/repaired.pt")
ours=$("$APRICOT" eval -c "$tmp/my.json" --model "$tmp/runs/my/adapt-1/model.pt" --split test --json --log-level warn)
ours_base=$("$APRICOT" eval -c "$tmp/my.json" --model "$tmp/runs/my/base/model.pt" --split test --json --log-level warn)
$PY - "$theirs_base" "$ours_base" "$theirs" "$ours" <<'PY'
import json, sys
tb, ob, tr, orr = (json.loads(a) for a in sys.argv[1:])
print(f"base:     PyTorch {tb['correct']}/{tb['n']}, apricot eval {ob['accuracy'] * ob['n']:.0f}/{ob['n']}")
print(f"repaired: PyTorch {tr['correct']}/{tr['n']}, apricot eval {orr['accuracy'] * orr['n']:.0f}/{orr['n']}")
ok = tb["n"] == ob["n"] and abs(tb["accuracy"] - ob["accuracy"]) < 1e-12 and \
     tr["n"] == orr["n"] and abs(tr["accuracy"] - orr["accuracy"]) < 1e-12
sys.exit(0 if ok else "walkthrough: PyTorch and apricot disagree")
PY
echo "walkthrough: trained in PyTorch, repaired by apricot, loaded back in PyTorch with the same accuracy ($(($(date +%s) - start)) s)" >&2
