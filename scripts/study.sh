#!/usr/bin/env bash
# The variants study (docs/FINDINGS.md): `apricot sweep` over every config of a study directory, in
# name order, then one report over all of them.
#
#   scripts/study.sh configs/study/quickstart runs/study/quickstart 1-5 [apricot options, e.g. --threads 2]
#
# The variants share what they can, so that a study costs one base per seed, not one per variant:
# before each variant's sweep, its seed directories are given copies of what an earlier variant of
# the same seed already made and the variant would make identically: the base model (the same seed
# and train section), the rDLMs (the same rdlm section), and the two control arms (the same loop
# settings; the matched control also the same rDLM budget). apricot itself decides whether a copy
# is reused: a result is reused only when its recorded provenance matches the variant's
# configuration, so a wrong copy is an error, never a silent reuse.
# Needs python3 (for comparing JSON sections) and a built apricot (build/apricot or APRICOT=...).
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 CONFIG_DIR ROOT SEEDS [apricot options]" >&2
  echo "  e.g. $0 configs/study/quickstart runs/study/quickstart 1-5 --threads 2" >&2
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
what, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def adapt_loop(c):  # the adaptation keys a control arm reads
    ad = dict(c.get("adapt", {}))
    for k in ("strategies", "step", "step_mode", "direction", "adjust_buffers", "bn_recalibrate", "parallel"):
        ad.pop(k, None)
    return ad
def budget(c):
    r = c.get("rdlm", {})
    epochs = r.get("finetune", {}).get("epochs") if r.get("init") == "base" else r.get("epochs")
    return (r.get("count"), r.get("size"), epochs, r.get("finetune"))
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
for i in "${!configs[@]}"; do
  cfg=${configs[$i]}
  name=$(basename "$cfg" .json)
  for seed in $seed_list; do
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
  done
  echo "study: sweep $name (seeds $seeds)"
  "$apricot" sweep -c "$cfg" -w "$root/$name" --seeds "$seeds" "$@"
done
"$apricot" report "${dirs[@]}" -o "$root/report" --force
echo "study: $(( $(date +%s) - t0 )) s; report in $root/report/report.md"
