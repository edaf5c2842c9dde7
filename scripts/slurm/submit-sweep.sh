#!/bin/bash
# `apricot sweep` spread over a cluster: one array task per seed (sweep-seed.sbatch, ROOT/seed-N),
# then, once all succeeded, one job that writes the report over every seed into ROOT/report/.
# Usage: scripts/slurm/submit-sweep.sh CONFIG ROOT SEEDS [apricot flags]
#   SEEDS in Slurm's array syntax: 1-5, 1,3,7 (the task ID is the seed).
#   Choose the arms with a flag: --set 'adapt.strategies=["1","2","3","none"]'.
# Environment: APRICOT, SBATCH_ARGS and DRY_RUN=1 as in submit-rdlms.sh.
set -euo pipefail
usage="usage: $0 CONFIG ROOT SEEDS [apricot flags]"
CONFIG=${1:?$usage}
ROOT=${2:?$usage}
SEEDS=${3:?$usage}
shift 3
[[ $SEEDS =~ ^[0-9][0-9,-]*$ ]] || { echo "SEEDS like 1-5 or 1,3,7: $usage" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
APRICOT=${APRICOT:-apricot}
# shellcheck source=submit-lib.sh
source "$here/submit-lib.sh"
# Brace-free list of the seed directories for the report job, expanded here from SEEDS.
dirs=""
IFS=',' read -ra items <<<"$SEEDS"
for item in "${items[@]}"; do
  if [[ $item == *-* ]]; then
    for ((s = ${item%-*}; s <= ${item#*-}; s++)); do dirs+=" $(printf '%q' "$ROOT/seed-$s")"; done
  else
    dirs+=" $(printf '%q' "$ROOT/seed-$item")"
  fi
done
seeds=$(submit seeds --array="$SEEDS" -- "$here/sweep-seed.sbatch" "$CONFIG" "$ROOT" "$@")
report=$(submit report --dependency=afterok:"$seeds" --job-name=apricot-report --cpus-per-task=1 \
  --wrap "$(printf '%q' "$APRICOT") report$dirs --out $(printf '%q' "$ROOT/report") --force")
echo "submitted: seeds $seeds (array $SEEDS), report $report -> $ROOT/report/"
