#!/usr/bin/env bash
# The gated-patch study (issue 33; the plan in docs/FIELD.md, "The gated-patch study"): for each seed,
# dataset and scenario (seed by seed, so that a study stopped early is balanced over its settings),
# one `apricot run` of configs/field/gated-<dataset>.json, then its per-image answers kept small in
# docs/study/field-gated/<dataset>-<scenario>/seed-<S>.json (commit them as they come: the study may
# run over several sessions), then the analysis over every kept seed.
#
#   scripts/field-gated-study.sh DATASETS SEEDS [apricot options, e.g. --threads 2]
#   scripts/field-gated-study.sh fashion 0-9 --threads 2
#   scripts/field-gated-study.sh cifar10 0-4 --threads 2
#
# Data: scripts/field-scenarios.sh writes runs/field-data/<dataset>-<scenario>/ once (field size 1,000).
# Work directories: runs/field-gated/<dataset>-<scenario>/seed-<S>/ (a finished one is reused: apricot
# skips what is up to date). Env: APRICOT (default build/apricot), DATA (runs/field-data), ROOT
# (runs/field-gated), KEEP (docs/study/field-gated), SCENARIOS (pair,shift,rare), ANALYSIS=0 skips
# the analysis (written to docs/study/field-gated-analysis.{md,json}).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 DATASETS SEEDS [apricot options]" >&2
  echo "  e.g. $0 fashion 0-9 --threads 2" >&2
  exit 2
fi
datasets=$1 seeds=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
apricot=${APRICOT:-$here/build/apricot}
data=${DATA:-runs/field-data}
root=${ROOT:-runs/field-gated}
keep=${KEEP:-$here/docs/study/field-gated}
scenarios=${SCENARIOS:-pair,shift,rare}
[[ -x $apricot ]] || { echo "error: $apricot is not built; run scripts/setup.sh first (or set APRICOT)" >&2; exit 2; }

. "$here/scripts/lib/common.sh"
seed_list "$seeds"
IFS=, read -ra dataset_list <<<"$datasets"
IFS=, read -ra scenario_list <<<"$scenarios"

for ds in "${dataset_list[@]}"; do
  [[ -f $here/configs/field/gated-$ds.json ]] || { echo "error: no study config configs/field/gated-$ds.json" >&2; exit 2; }
  missing=()
  for sc in "${scenario_list[@]}"; do [[ -f $data/$ds-$sc/scenario.json ]] || missing+=("$sc"); done
  if ((${#missing[@]})); then
    scen=$(IFS=,; echo "${missing[*]}")
    "$here/scripts/field-scenarios.sh" --out "$data" --datasets "$ds" --scenarios "$scen"
  fi
done

for seed in "${seed_list[@]}"; do
  for ds in "${dataset_list[@]}"; do
    for sc in "${scenario_list[@]}"; do
      wd=$root/$ds-$sc/seed-$seed
      out=$keep/$ds-$sc/seed-$seed.json
      mkdir -p "$(dirname "$wd")"
      echo "== $ds $sc seed $seed -> $wd" >&2
      "$apricot" run -c "$here/configs/field/gated-$ds.json" -w "$wd" --set seed="$seed" \
        --set data.root="$data/$ds-$sc" --set field.root="$data/$ds-$sc/field-1000" "$@" >"$wd.log" 2>&1 ||
        { echo "error: the run failed; see $wd.log" >&2; tail -5 "$wd.log" >&2; exit 1; }
      /usr/bin/python3 "$here/scripts/field-gated-analysis.py" collect "$wd" "$out" --dataset "$ds" --scenario "$sc" \
        --seed "$seed"
    done
  done
done
[[ ${ANALYSIS:-1} == 0 ]] || /usr/bin/python3 "$here/scripts/field-gated-analysis.py" analyse "$keep" \
  --out "$here/docs/study/field-gated-analysis"
