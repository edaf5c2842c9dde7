#!/usr/bin/env bash
# The variants study (docs/FINDINGS.md): every config of a study directory run for every seed, seed
# by seed (all variants of seed 1, then of seed 2, ...: a study stopped early is balanced over its
# variants), then one report over all of them and the analysis (scripts/study-analysis.py: the
# bootstrap intervals over seeds and test images, paired t-test, sign test, Holm).
#
#   scripts/study.sh configs/study/converged runs/study/converged 1-15 [apricot options, e.g. --threads 2]
#
# SEEDS is a list as `apricot sweep --seeds` reads it: "1-15" is fifteen seeds, "1,3,7" three.
# The variants share what they can, so that a study costs one base per seed, not one per variant:
# before each variant runs a seed, its seed directory is given copies of what an earlier variant of
# the same seed already made and the variant would make identically: the base model (the same seed
# and train section), the rDLMs (the same rdlm section), and the two control arms (the same loop
# settings; the matched control also the same rDLM budget). apricot itself decides whether a copy
# is reused: a result is reused only when its recorded provenance matches the variant's
# configuration, so a wrong copy is an error, never a silent reuse.
# Env: ANALYSIS=0 skips the report and the analysis (to run a study in several invocations; the
# last invocation's report and analysis cover every seed under ROOT). Each sweep also leaves a report
# of its own seed in ROOT/<config>/report; ROOT/report is the study's.
# Needs python3 (for comparing JSON sections; Debian's, with python3-numpy, for the analysis) and a
# built apricot (build/apricot or APRICOT=...).
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 CONFIG_DIR ROOT SEEDS [apricot options]" >&2
  echo "  e.g. $0 configs/study/converged runs/study/converged 1-15 --threads 2" >&2
  exit 2
fi
config_dir=$1 root=$2 seeds=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
apricot=${APRICOT:-$here/build/apricot}
[[ -x $apricot ]] || { echo "error: $apricot is not built; run scripts/setup.sh first (or set APRICOT)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 is needed to compare the configs' sections" >&2; exit 2; }
shopt -s nullglob
configs=("$config_dir"/*.json)
[[ ${#configs[@]} -gt 0 ]] || { echo "error: no *.json configs in $config_dir" >&2; exit 2; }

# Seeds as apricot reads them ("1-5", "1,3,7").
seed_list=$(python3 - "$seeds" <<'EOF'
import sys
out = []
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    out += range(int(a), int(b or a) + 1)
print(" ".join(map(str, out)))
EOF
)

# What `what` of an earlier config's work directory may be copied into a later one's: "yes" when the
# sections it depends on are equal in both configs.
same() {  # same WHAT CONFIG_A CONFIG_B
  python3 - "$@" <<'EOF'
import json, sys
import re
def load(path):  # configs may hold // comments on lines of their own, as apricot allows
    return json.loads(re.sub(r"(?m)^\s*//.*$", "", open(path).read()))
what, a, b = sys.argv[1], load(sys.argv[2]), load(sys.argv[3])
def adapt_loop(c):  # the adaptation keys a control arm reads
    ad = dict(c.get("adapt", {}))
    for k in ("strategies", "step", "step_mode", "direction", "adjust_buffers", "bn_recalibrate", "parallel"):
        ad.pop(k, None)
    return ad
def budget(c):
    r = c.get("rdlm", {})
    epochs = r.get("finetune", {}).get("epochs") if r.get("init") == "base" else r.get("epochs")
    f = dict(r.get("finetune") or {})
    for k in ("lr_factors", "augment"):  # vary the rDLMs only; the matched training never reads them
        f.pop(k, None)
    return (r.get("count"), r.get("size"), epochs, f)
def early(c):  # base-early keeps the base's epoch-init_epochs copy (base/early.pt) beside the base
    r = c.get("rdlm", {})
    return r.get("init_epochs", 3) if r.get("init") == "base-early" else None
keys = {
    "base": lambda c: (c.get("data"), c.get("model"), c.get("train")),
    "rdlms": lambda c: (c.get("data"), c.get("model"), c.get("train"), c.get("rdlm")),
    "adapt-none": lambda c: (c.get("data"), c.get("model"), c.get("train"), adapt_loop(c)),
    "adapt-none-matched": lambda c: (c.get("data"), c.get("model"), c.get("train"), adapt_loop(c), budget(c)),
}
same = keys[what](a) == keys[what](b)
if what == "base" and early(b) is not None and early(a) != early(b):
    same = False  # the copy would lack (or hold another) early.pt
print("yes" if same else "no")
EOF
}

t0=$(date +%s)
dirs=()
for seed in $seed_list; do
  for i in "${!configs[@]}"; do
    cfg=${configs[$i]}
    name=$(basename "$cfg" .json)
    dst=$root/$name/seed-$seed
    dirs+=("$dst")
    mkdir -p "$dst"
    for what in base rdlms adapt-none adapt-none-matched; do
      [[ -e $dst/$what ]] && continue
      for ((j = 0; j < i; j++)); do
        src=$root/$(basename "${configs[$j]}" .json)/seed-$seed/$what
        # Only finished phases: no state.json of an interrupted run in it (rDLMs keep one each).
        if [[ -e $src && ! -e $src/state.json ]] && ! compgen -G "$src/rdlm-*/state.json" >/dev/null &&
           [[ $(same "$what" "${configs[$j]}" "$cfg") == yes ]]; then
          cp -r "$src" "$dst/$what"
          echo "study: $name seed $seed: $what copied from $(basename "${configs[$j]}" .json)"
          break
        fi
      done
    done
    echo "study: $name seed $seed"
    "$apricot" sweep -c "$cfg" -w "$root/$name" --seeds "$seed" "$@"
  done
done
if [[ ${ANALYSIS:-1} != 0 ]]; then
  . "$here/scripts/lib/common.sh"
  ensure_packages study python3-numpy
  # Every seed of the study's configs under ROOT, those of earlier invocations too (as the analysis
  # reads them). Each variant's own ROOT/<config>/report covers only the seeds of its last sweep.
  dirs=()
  for cfg in "${configs[@]}"; do
    for d in "$root/$(basename "$cfg" .json)"/seed-*/; do [[ -d $d ]] && dirs+=("${d%/}"); done
  done
  "$apricot" report "${dirs[@]}" -o "$root/report" --force
  /usr/bin/python3 "$here/scripts/study-analysis.py" "$root" --out "$root/analysis" >/dev/null
  echo "study: analysis in $root/analysis.md"
fi
echo "study: $(( $(date +%s) - t0 )) s; report in $root/report/report.md"
