# Sourced by the submit-*.sh scripts: submit LABEL SBATCH-ARGS... submits one job with the extra
# flags in SBATCH_ARGS and prints its id; with DRY_RUN=1 it prints the sbatch command on stderr and
# "<LABEL>" in place of the id, so a chain can be checked on a machine without Slurm.
# shellcheck shell=bash
submit() {
  local label=$1
  shift
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    printf 'sbatch' >&2; printf ' %q' "$@" >&2; echo >&2
    echo "<$label>"
  else
    # shellcheck disable=SC2086
    sbatch --parsable ${SBATCH_ARGS:-} "$@" | cut -d';' -f1
  fi
}
