# Shell helpers the scripts share; source it: . "$(dirname "$0")/lib/common.sh" (or ../lib from
# scripts/pytorch).

# ensure_packages TAG PACKAGE...: installs the Debian packages among PACKAGE... that are missing
# (apt-get, through sudo when not root), saying so on stderr as "TAG: installing ...".
ensure_packages() {
  local tag=$1 p
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "$tag: installing ${missing[*]}" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# walkthrough_start NAME PYTHON_MODULES...: the preamble of the README walkthroughs. Skips the script
# (exit 0, with a message) when Debian's python3 lacks one of the modules; otherwise sets PY, start
# (the clock) and tmp (a fresh directory, removed on exit unless KEEP=1).
walkthrough_start() {
  local name=$1
  shift
  PY=/usr/bin/python3
  local imports
  imports=$(IFS=,; echo "$*")
  if ! $PY -c "import $imports" 2>/dev/null; then
    echo "$name: skipped (needs $* for $PY: Debian's python3-<module> packages)" >&2
    exit 0
  fi
  start=$(date +%s)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/apricot-$name.XXXXXX")
  [[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$tmp"' EXIT
}
