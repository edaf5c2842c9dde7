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
  $sudo apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# walkthrough_start NAME PYTHON_MODULES...: the preamble of the README walkthroughs. The user's Python
# is APRICOT_PYTHON (default Debian's /usr/bin/python3 with python3-torch, PyTorch 1.13; the venv of
# `scripts/setup.sh --torch pip` has PyTorch 2.15). Skips the script (exit 0, with a message) when
# that Python lacks one of the modules; otherwise sets PY, start (the clock) and tmp (a fresh
# directory, removed on exit unless KEEP=1).
walkthrough_start() {
  local name=$1
  shift
  PY=${APRICOT_PYTHON:-/usr/bin/python3}
  local imports
  imports=$(IFS=,; echo "$*")
  if ! $PY -c "import $imports" 2>/dev/null; then
    echo "$name: skipped (needs $* for $PY: Debian's python3-<module> packages, or APRICOT_PYTHON=a Python that has them)" >&2
    exit 0
  fi
  echo "$name: PyTorch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null) ($PY), apricot $APRICOT" >&2
  start=$(date +%s)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/apricot-$name.XXXXXX")
  [[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$tmp"' EXIT
}

# The PyTorch that `scripts/setup.sh --torch pip` installs (pinned), and what its venv holds besides:
# numpy and pillow for the tests and walkthroughs that run PyTorch against that build.
APRICOT_PIP_TORCH=2.15.0
APRICOT_PIP_PACKAGES=("torch==$APRICOT_PIP_TORCH" numpy==2.4.6 pillow==13.0.0)

# apricot_cache: the cache folder apricot's scripts own (APRICOT_CACHE, default ~/.cache/apricot).
apricot_cache() { echo "${APRICOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apricot}"; }

# ensure_pip_torch: makes (once) a virtual environment with APRICOT_PIP_PACKAGES in the cache folder
# and prints its path. A venv whose install did not finish has no stamp and is completed next time.
ensure_pip_torch() {
  local venv stamp want py
  venv=$(apricot_cache)/torch-$APRICOT_PIP_TORCH
  stamp=$venv/.apricot-installed
  want="${APRICOT_PIP_PACKAGES[*]}"
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $venv/bin/python ]]; then
    echo "$venv"
    return 0
  fi
  # Any Python 3 with venv and ensurepip; on a bare Debian that is /usr/bin/python3 with python3-venv.
  py=$(command -v python3 || true)
  if [[ -z $py ]] || ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
    ensure_packages "apricot setup" python3 python3-venv
    py=/usr/bin/python3
  fi
  [[ -x $venv/bin/python ]] || {
    echo "apricot setup: making a Python venv for PyTorch $APRICOT_PIP_TORCH in $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv" >&2
  }
  echo "apricot setup: pip install ${want} (with its CUDA libraries: about 5 GB, once)" >&2
  "$venv/bin/pip" install --no-input --disable-pip-version-check -q "${APRICOT_PIP_PACKAGES[@]}" >&2
  echo "$want" >"$stamp"
  echo "$venv"
}

# cuda_home: the CUDA toolkit's folder (CUDA_HOME, else /usr/local/cuda, else the nvcc on PATH's), or
# nothing where there is no nvcc.
cuda_home() {
  local home nvcc
  for home in ${CUDA_HOME:-} /usr/local/cuda; do
    [[ -x $home/bin/nvcc ]] && { echo "$home"; return 0; }
  done
  nvcc=$(command -v nvcc || true)
  [[ -n $nvcc ]] && dirname "$(dirname "$(readlink -f "$nvcc")")"
  return 0
}

# cuda_cmake_args: the CMake options that point a CUDA LibTorch's configuration at the CUDA toolkit
# (cuda_home); fails with a hint where there is no nvcc.
cuda_cmake_args() {
  local home
  home=$(cuda_home)
  if [[ -z $home ]]; then
    echo "apricot setup: no nvcc (CUDA_HOME, /usr/local/cuda, PATH): a CUDA LibTorch needs the CUDA toolkit to configure" >&2
    echo "  hint: install the CUDA toolkit (13.x for PyTorch $APRICOT_PIP_TORCH) or set CUDA_HOME to it" >&2
    return 2
  fi
  echo "-DCUDAToolkit_ROOT=$home -DCMAKE_CUDA_COMPILER=$home/bin/nvcc"
}

# seed_list SEEDS: the seeds "0-9" or "1,3,7" (or both, "0-4,9") name, into the array seed_list;
# exit 2 with a message for anything else.
seed_list() {
  seed_list=()
  local p s parts
  IFS=, read -ra parts <<<"$1"
  for p in "${parts[@]}"; do
    if [[ $p =~ ^([0-9]+)-([0-9]+)$ ]]; then
      for ((s = BASH_REMATCH[1]; s <= BASH_REMATCH[2]; s++)); do seed_list+=("$s"); done
    elif [[ $p =~ ^[0-9]+$ ]]; then
      seed_list+=("$p")
    else
      echo "error: seeds '$1': write 0-9 or 1,3,7" >&2
      exit 2
    fi
  done
}
