#!/usr/bin/env bash
# Kill-and-resume stress run: each phase (train-base, train-rdlms, adapt) is started and killed with
# SIGKILL at a random moment (20-80% of its uninterrupted duration), up to KILLS times or until a
# run completes first, then run to completion; its output must be bitwise equal to an uninterrupted
# run's. Usage: scripts/stress-resume.sh [KILLS] [APRICOT_BINARY]
# Prints one line per phase: kills, resumes seen, and whether the result matched.
set -euo pipefail
kills=${1:-10}
bin=${2:-build/apricot}
dir=$(mktemp -d /tmp/apricot-stress.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/config.json" <<'JSON'
{
  "seed": 11, "threads": 1,
  "data": {"format": "synthetic", "synthetic_train": 1500, "synthetic_test": 300, "val_size": 200,
           "synthetic_shape": [1, 16, 16], "synthetic_classes": 4},
  "model": {"arch": "small"},
  "train": {"epochs": 8, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
            "augment": {"shift": 0.1, "flip": true}},
  "rdlm": {"count": 3, "size": 700, "stride": 400, "epochs": 5},
  "adapt": {"max_batches": 45, "batch_size": 20, "step": 0.01, "retrain_every": 4,
            "retrain": {"steps": 8, "batch_size": 32, "optimizer": "sgd", "lr": 0.01}},
  "resume": {"every_epochs": 1, "every_batches": 2}
}
JSON
phases=("train-base|base/model.pt" "train-rdlms|rdlms/rdlm-02/model.pt" "adapt --strategy 1|adapt-1/model.pt")
for p in "${phases[@]}"; do
  "$bin" ${p%%|*} -c "$dir/config.json" -w "$dir/ref" --log-level warn
done
status=0
for p in "${phases[@]}"; do
  cmd=${p%%|*} out=${p##*|}
  # How long the phase takes uninterrupted bounds the kill delays.
  start=$(date +%s%N)
  "$bin" $cmd -c "$dir/config.json" -w "$dir/timing" --log-level warn
  span_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  killed=0 resumed=0
  for _ in $(seq "$kills"); do
    [ -e "$dir/run/$out" ] && break
    "$bin" $cmd -c "$dir/config.json" -w "$dir/run" >"$dir/log" 2>&1 &
    pid=$!
    sleep "$(awk -v r="$RANDOM" -v s="$span_ms" 'BEGIN { printf "%.3f", (0.2 + 0.6 * r / 32767) * s / 1000 }')"
    kill -9 "$pid" 2>/dev/null && killed=$((killed + 1)) || true
    wait "$pid" 2>/dev/null || true
    grep -q "resuming from saved state" "$dir/log" && resumed=$((resumed + 1)) || true
  done
  "$bin" $cmd -c "$dir/config.json" -w "$dir/run" >"$dir/log" 2>&1
  grep -q "resuming from saved state" "$dir/log" && resumed=$((resumed + 1)) || true
  if cmp -s "$dir/ref/$out" "$dir/run/$out"; then same=identical; else same=DIFFERENT; status=1; fi
  echo "${cmd%% *}: ${killed} kills (span ${span_ms} ms), ${resumed} resumes, result ${same}"
done
exit $status
