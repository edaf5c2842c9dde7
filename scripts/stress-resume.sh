#!/usr/bin/env bash
# Kill-and-resume stress run: each phase (train-base, train-rdlms, adapt) is started and killed with
# SIGKILL at a random moment after it has saved a state, up to KILLS times or until a run completes
# first, then run to completion; its output must be bitwise equal to an uninterrupted run's. Usage: scripts/stress-resume.sh [KILLS] [APRICOT_BINARY]
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
# phase command | output compared | where its state appears
phases=("train-base|base/model.pt|base/state.json" "train-rdlms|rdlms/rdlm-02/model.pt|rdlms/rdlm-0*/state.json"
        "adapt --strategy 1|adapt-1/model.pt|adapt-1/state.json")
for p in "${phases[@]}"; do
  IFS='|' read -r cmd out state <<<"$p"
  "$bin" $cmd -c "$dir/config.json" -w "$dir/ref" --log-level warn
done
status=0
for p in "${phases[@]}"; do
  IFS='|' read -r cmd out state <<<"$p"
  killed=0 resumed=0
  for _ in $(seq "$kills"); do
    [ -e "$dir/run/$out" ] && break
    touch "$dir/mark"
    sleep 0.01
    "$bin" $cmd -c "$dir/config.json" -w "$dir/run" >"$dir/log" 2>&1 &
    pid=$!
    # Wait for this run to save a state (a kill before that only restarts it), then a random
    # 0-500 ms more, so kills land anywhere: mid-step, mid-save, mid-evaluation.
    while kill -0 "$pid" 2>/dev/null && ! find "$dir/run" -path "$dir/run/$state" -newer "$dir/mark" | grep -q .; do
      sleep 0.01
    done
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", r / 32767 * 0.5 }')"
    kill -9 "$pid" 2>/dev/null && killed=$((killed + 1)) || true
    wait "$pid" 2>/dev/null || true
    grep -q "resuming from saved state" "$dir/log" && resumed=$((resumed + 1)) || true
  done
  "$bin" $cmd -c "$dir/config.json" -w "$dir/run" >"$dir/log" 2>&1
  grep -q "resuming from saved state" "$dir/log" && resumed=$((resumed + 1)) || true
  if cmp -s "$dir/ref/$out" "$dir/run/$out"; then same=identical; else same=DIFFERENT; status=1; fi
  echo "${cmd%% *}: ${killed} kills, ${resumed} runs resumed from a saved state, result ${same}"
done
exit $status
