#!/usr/bin/env bash
# The field-repair study (docs/FINDINGS.md, "Field repair"; the plan in docs/FIELD.md): for each
# dataset, scenario, field size and seed, one `apricot run` of the field arms, then the analysis.
#
#   scripts/field-study.sh DATASETS SCENARIOS SIZES SEEDS [apricot options, e.g. --threads 2]
#   scripts/field-study.sh fashion pair,shift,rare 1000,200 0-9 --threads 2
#
# Data: scripts/field-scenarios.sh writes runs/field-data/<dataset>-<scenario>/ once (its own seed 0:
# the scenarios are fixed; the run seed varies the validation split, the hold-out split, the base and
# every fine-tune). Results: runs/field/<dataset>-<scenario>-<size>/seed-<S>/. The base of a seed is
# trained once, in the first size's directory, and copied to the others (apricot checks the copy:
# a base made with another recipe is refused). The analysis (scripts/field-analysis.py) then writes
# runs/field/analysis.{md,json}.
# Env: APRICOT (default build/apricot), DATA (default runs/field-data), ROOT (default runs/field),
# ANALYSIS=0 skips the analysis at the end.
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 DATASETS SCENARIOS SIZES SEEDS [apricot options]" >&2
  echo "  e.g. $0 fashion pair,shift,rare 1000,200 0-9 --threads 2" >&2
  exit 2
fi
datasets=$1 scenarios=$2 sizes=$3 seeds=$4
shift 4
here=$(cd "$(dirname "$0")/.." && pwd)
apricot=${APRICOT:-$here/build/apricot}
data=${DATA:-runs/field-data}
root=${ROOT:-runs/field}
[[ -x $apricot ]] || { echo "error: $apricot is not built; run scripts/setup.sh first (or set APRICOT)" >&2; exit 2; }

. "$here/scripts/lib/common.sh"
seed_list "$seeds"
IFS=, read -ra dataset_list <<<"$datasets"
IFS=, read -ra scenario_list <<<"$scenarios"
IFS=, read -ra size_list <<<"$sizes"

for ds in "${dataset_list[@]}"; do
  missing=()
  for sc in "${scenario_list[@]}"; do [[ -f $data/$ds-$sc/scenario.json ]] || missing+=("$sc"); done
  if ((${#missing[@]})); then
    scen=$(IFS=,; echo "${missing[*]}")
    "$here/scripts/field-scenarios.sh" --out "$data" --datasets "$ds" --scenarios "$scen"
  fi
done

for ds in "${dataset_list[@]}"; do
  config=$here/configs/field/$ds.json
  [[ -f $config ]] || { echo "error: no study config $config" >&2; exit 2; }
  for sc in "${scenario_list[@]}"; do
    for seed in "${seed_list[@]}"; do
      first=""
      for size in "${size_list[@]}"; do
        wd=$root/$ds-$sc-$size/seed-$seed
        if [[ -n $first && ! -e $wd/base/model.pt && -e $first/base/model.pt ]]; then
          mkdir -p "$wd" && cp -r "$first/base" "$wd/base"
        fi
        mkdir -p "$(dirname "$wd")"
        echo "== $ds $sc field-$size seed $seed -> $wd" >&2
        "$apricot" run -c "$config" -w "$wd" --set seed="$seed" --set data.root="$data/$ds-$sc" \
          --set field.root="$data/$ds-$sc/field-$size" "$@" >"$wd.log" 2>&1 ||
          { echo "error: the run failed; see $wd.log" >&2; tail -5 "$wd.log" >&2; exit 1; }
        [[ -n $first ]] || first=$wd
      done
    done
  done
done
[[ ${ANALYSIS:-1} == 0 ]] || /usr/bin/python3 "$here/scripts/field-analysis.py" "$root" --out "$root/analysis"
