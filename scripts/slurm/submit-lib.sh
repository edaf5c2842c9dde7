# Sourced by the submit-*.sh scripts: `submit LABEL SBATCH-OPTION... [-- SCRIPT ARG...]` submits one
# job and prints its id. The flags in SBATCH_ARGS go after the job's own options, so that they win
# (sbatch takes the last of a repeated option): SBATCH_ARGS=--cpus-per-task=2 lowers every job's
# CPUs, --cpus-per-task=8 by default. With DRY_RUN=1 it prints the sbatch command on stderr and
# "<LABEL>" in place of the id, so a chain can be checked on a machine without Slurm.
# shellcheck shell=bash
submit() {
  local label=$1
  shift
  local options=() user=()
  while (($#)) && [[ $1 != -- ]]; do options+=("$1"); shift; done
  (($#)) && shift  # the --
  # shellcheck disable=SC2206
  user=(${SBATCH_ARGS:-})
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    printf 'sbatch --parsable' >&2; printf ' %q' "${options[@]}" ${user[@]+"${user[@]}"} "$@" >&2; echo >&2
    echo "<$label>"
  else
    sbatch --parsable "${options[@]}" ${user[@]+"${user[@]}"} "$@" | cut -d';' -f1
  fi
}
