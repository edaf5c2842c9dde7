#!/bin/bash
# Submits one work directory's phases as a chain of Slurm jobs on a shared work directory:
#   1. train-base (one job),
#   2. the rDLMs as a job array of K shards (rdlms.sbatch), after 1 succeeded,
#   3. `apricot run` (finds base and rDLMs done, runs every adaptation arm, prints the table), after 2,
#   4. `apricot report` into WORKDIR/report/, after 3.
# Usage: scripts/slurm/submit-rdlms.sh CONFIG WORKDIR K [apricot flags, e.g. --device cuda]
# Environment: APRICOT (binary, default apricot on PATH), SBATCH_ARGS (extra sbatch flags for every
# job, e.g. "--partition=gpu --gres=gpu:1"), DRY_RUN=1 prints the sbatch commands instead.
set -euo pipefail
usage="usage: $0 CONFIG WORKDIR K [apricot flags]"
CONFIG=${1:?$usage}
WORKDIR=${2:?$usage}
K=${3:?$usage}
shift 3
[[ $K =~ ^[1-9][0-9]*$ ]] || { echo "K must be a positive integer: $usage" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
APRICOT=${APRICOT:-apricot}
extra=""  # the apricot flags, quoted for the --wrap commands (printf with no argument would give '')
(($#)) && extra=$(printf ' %q' "$@")
# shellcheck source=submit-lib.sh
source "$here/submit-lib.sh"
base=$(submit base --job-name=apricot-base --cpus-per-task=8 \
  --wrap "$(printf '%q' "$APRICOT") train-base -c $(printf '%q' "$CONFIG") -w $(printf '%q' "$WORKDIR")$extra")
rdlms=$(submit rdlms --dependency=afterok:"$base" --array=0-$((K - 1)) -- "$here/rdlms.sbatch" "$CONFIG" "$WORKDIR" "$@")
adapt=$(submit adapt --dependency=afterok:"$rdlms" --job-name=apricot-adapt --cpus-per-task=8 \
  --wrap "$(printf '%q' "$APRICOT") run -c $(printf '%q' "$CONFIG") -w $(printf '%q' "$WORKDIR")$extra")
report=$(submit report --dependency=afterok:"$adapt" --job-name=apricot-report --cpus-per-task=1 \
  --wrap "$(printf '%q' "$APRICOT") report $(printf '%q' "$WORKDIR") --out $(printf '%q' "$WORKDIR/report") --force")
echo "submitted: base $base, rDLM array $rdlms (K=$K), adaptation $adapt, report $report"
