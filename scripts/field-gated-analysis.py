#!/usr/bin/python3
"""The gated-patch study's analysis (issue 33), fixed before the study ran (docs/FIELD.md, "The
gated-patch study").

  field-gated-analysis.py collect WORKDIR OUT.json --dataset D --scenario S --seed N
      keeps what the analysis needs of one run (WORKDIR/adapt-<arm>/result.json): per image of the
      field hold-out and of the clean test split the label, the base's answer and each arm's answer,
      and each arm's chosen candidate, selection score, breaks, images, seconds and cost; small
      enough to commit seed by seed.
  field-gated-analysis.py analyse DIR [--out PREFIX]
      reads DIR/<dataset>-<scenario>/seed-<S>.json and writes PREFIX.md and PREFIX.json.

What is compared (per setting = dataset x scenario, field size 1,000):
  * every arm (finetune, finetune-interp, head-only, gated, gated-distilled): the hold-out repair rate
    (share of the base's hold-out failures now right), the hold-out break rate, the clean test break
    rate and the test accuracy change, mean over seeds; repair and test break rates with a 95 %
    two-level bootstrap interval (seeds, then images), as scripts/field-analysis.py computes them;
  * the reference is the better of finetune and finetune-interp in that setting (higher mean hold-out
    repair rate);
  * gated and gated-distilled against the reference, paired by seed and image: the difference in
    hold-out repair rate with a two-level paired bootstrap interval (4,000 draws) and an exact
    two-sided sign-flip test over seeds, Holm-corrected over every (arm, setting) pair;
  * the targets, for gated: clean test breaks within 1.5 % (mean over seeds) and
      shift: mean difference >= 30 pp and Holm-adjusted p < 0.05, on each dataset;
      rare:  mean difference >= 10 pp and Holm-adjusted p < 0.05;
      pair:  not worse than the reference beyond its interval (the interval's upper end >= 0);
  * the arm to run per setting: the highest mean hold-out repair among the arms whose mean clean
    test break rate is within 1.5 %;
  * the rule's guarantee, checked per seed: gated's selection score is never below finetune's or
    finetune-interp's (they are among its candidates);
  * the composite's cost: parameters and inference time on the test split against the base.
Seeds where an arm is missing are left out of that arm's comparisons. Deterministic: the bootstrap's
generator is seeded with 0.
"""
import argparse
import importlib.util
import json
import os
import re
import sys

import numpy as np

from analysis_common import holm, write_outputs

_spec = importlib.util.spec_from_file_location("field_analysis", os.path.join(os.path.dirname(__file__),
                                                                               "field-analysis.py"))
fa = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fa)

ARMS = ["finetune", "finetune-interp", "head-only", "gated", "gated-distilled"]
NEW_ARMS = ["gated", "gated-distilled"]
BREAK_LIMIT = 0.015
TARGETS = {"shift": 0.30, "rare": 0.10}


def enc(values):
    """Answers as a string of digits when every class is below 10, else the list."""
    v = [int(x) for x in values]
    return "".join(map(str, v)) if all(0 <= x < 10 for x in v) else v


def dec(s):
    return np.asarray([int(c) for c in s] if isinstance(s, str) else s)


def collect(args):
    kept = {"dataset": args.dataset, "scenario": args.scenario, "seed": args.seed, "arms": {}}
    for arm in ARMS:
        p = os.path.join(args.workdir, "adapt-" + arm, "result.json")
        if not os.path.exists(p):
            continue
        with open(p) as f:
            r = json.load(f)
        fld = r["field"]
        for split, key in (("holdout", "holdout_answers"), ("test", "test_answers")):
            a = fld[key]
            if split not in kept:
                kept[split] = {"label": enc(a["label"]), "base": enc(a["base"])}
            elif kept[split]["label"] != enc(a["label"]) or kept[split]["base"] != enc(a["base"]):
                print(f"error: {p}: its {split} labels or base answers differ from the other arms'", file=sys.stderr)
                return 1
        entry = {"holdout_after": enc(fld["holdout_answers"]["after"]), "test_after": enc(fld["test_answers"]["after"]),
                 "gain_test": r["gain_test"], "val_breaks": r["changes"]["val"]["broken"]["count"],
                 "allowed_val_breaks": fld["allowed_val_breaks"], "score": fld["score"], "chosen": fld["chosen"],
                 "images": r["images"], "seconds": r["seconds"], "split": fld.get("split")}
        if "cost" in r:
            entry["cost"] = r["cost"]
        if "gates" in fld:
            entry["gates"] = fld["gates"]
        kept["arms"][arm] = entry
    if not kept["arms"]:
        print(f"error: no adapt-<arm>/result.json under {args.workdir}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(kept, f, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, args.out)
    return 0


def as_result(kept, arm):
    """The parts of a result.json that scripts/field-analysis.py's functions read."""
    e = kept["arms"][arm]
    h, t = kept["holdout"], kept["test"]
    return {"field": {"holdout_answers": {"label": dec(h["label"]), "base": dec(h["base"]), "after": dec(e["holdout_after"])},
                      "test_answers": {"label": dec(t["label"]), "base": dec(t["base"]), "after": dec(e["test_after"])}},
            "gain_test": e["gain_test"], "seconds": e["seconds"], "images": e["images"]}


def load(root):
    """{(dataset, scenario): {seed: kept}}"""
    runs = {}
    for d in sorted(os.listdir(root)):
        m = re.fullmatch(r"(.+)-(pair|shift|rare)", d)
        if not m or not os.path.isdir(os.path.join(root, d)):
            continue
        for s in sorted(os.listdir(os.path.join(root, d))):
            ms = re.fullmatch(r"seed-(\d+)\.json", s)
            if ms:
                with open(os.path.join(root, d, s)) as f:
                    runs.setdefault((m.group(1), m.group(2)), {})[int(ms.group(1))] = json.load(f)
    return runs


def analyse(args):
    runs = load(args.dir)
    if not runs:
        print(f"error: no results under {args.dir}/<dataset>-<scenario>/seed-<S>.json", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    out = {"settings": []}
    family = []
    for setting in sorted(runs):
        kept = runs[setting]
        by_seed = {s: {arm: as_result(k, arm) for arm in k["arms"]} for s, k in kept.items()}
        entry = {"dataset": setting[0], "scenario": setting[1], "seeds": sorted(by_seed), "arms": {},
                 "vs_reference": {}}
        for arm in ARMS:
            s = fa.arm_summary(by_seed, arm, rng)
            if s:
                entry["arms"][arm] = s
        known = [a for a in ("finetune", "finetune-interp") if a in entry["arms"]]
        ref = max(known, key=lambda a: entry["arms"][a]["repair"]) if known else None
        entry["reference"] = ref
        if ref:
            for arm in NEW_ARMS:
                c = fa.compare(by_seed, arm, ref, rng) if arm in entry["arms"] else None
                if c:
                    entry["vs_reference"][arm] = c
                    family.append((entry, arm, c))
        # The rule's guarantee on the selection data, and the composite's cost.
        below = [s for s, k in kept.items() if "gated" in k["arms"] and any(
            a in k["arms"] and k["arms"]["gated"]["score"] < k["arms"][a]["score"] - 1e-12
            for a in ("finetune", "finetune-interp"))]
        entry["gated_score_below_finetunes"] = below
        costs = [k["arms"]["gated"]["cost"] for k in kept.values() if "gated" in k["arms"] and "cost" in k["arms"]["gated"]]
        chosen = [k["arms"]["gated"]["chosen"] for k in kept.values() if "gated" in k["arms"]]
        entry["gated_cost"] = {
            "parameters_ratio": float(np.mean([c["parameters"] / c["base_parameters"] for c in costs])) if costs else None,
            "time_ratio": float(np.mean([c["time_ratio"] for c in costs])) if costs else None,
            "test_routed": float(np.mean([c.get("test_routed", 0.0) for c in costs])) if costs else None,
            "chose_composite": sum(1 for c in chosen if "gate" in c and c.get("tau") != "-inf"),
            "chose_plain_expert": sum(1 for c in chosen if c.get("tau") == "-inf"),
            "chose_base": sum(1 for c in chosen if c.get("base")),
            "gates_chosen": {g: sum(1 for c in chosen if c.get("gate") == g) for g in ("input", "logits")}}
        ok = [a for a, s in entry["arms"].items() if s["test_break"] <= BREAK_LIMIT]
        entry["recommended"] = max(ok, key=lambda a: entry["arms"][a]["repair"]) if ok else None
        out["settings"].append(entry)
    adj = holm([c["p"] for _, _, c in family])
    for (entry, arm, c), a in zip(family, adj):
        c["p_holm"] = a
    for entry in out["settings"]:
        c = entry["vs_reference"].get("gated")
        g = entry["arms"].get("gated")
        if not c or not g:
            continue
        breaks_ok = g["test_break"] <= BREAK_LIMIT
        sc = entry["scenario"]
        if sc in TARGETS:
            met = c["mean"] >= TARGETS[sc] and c["p_holm"] is not None and c["p_holm"] < 0.05
            rule = f"gated - reference >= {100 * TARGETS[sc]:.0f} pp, Holm p < 0.05, test breaks <= 1.5 %"
        else:
            met = c["ci"][1] >= 0
            rule = "gated - reference: the interval's upper end >= 0, test breaks <= 1.5 %"
        entry["target"] = {"rule": rule, "met": bool(met and breaks_ok), "breaks_ok": bool(breaks_ok)}

    lines = ["# The gated-patch study: analysis", "",
             "Generated by scripts/field-gated-analysis.py (the plan: docs/FIELD.md, \"The gated-patch study\"). "
             "Rates in %, differences in pp; [95 % two-level bootstrap interval over seeds and images]; p: exact "
             "sign-flip test over seeds, Holm over every (arm, setting) comparison with the reference.", ""]
    for e in out["settings"]:
        lines += [f"## {e['dataset']} / {e['scenario']} ({len(e['seeds'])} seeds: {', '.join(map(str, e['seeds']))})", "",
                  "| arm | hold-out repaired | hold-out broken | test broken | test gain (pp) | images | s |",
                  "|---|---|---|---|---|---|---|"]
        for arm, s in e["arms"].items():
            lines.append(f"| {arm} | {fa.pct(s['repair'])} [{fa.pct(s['repair_ci'][0])}, {fa.pct(s['repair_ci'][1])}] | "
                         f"{fa.pct(s['break'])} | {fa.pct(s['test_break'])} [{fa.pct(s['test_break_ci'][0])}, "
                         f"{fa.pct(s['test_break_ci'][1])}] | {fa.pp(s['test_gain'])} | {s['images']:.0f} | {s['seconds']:.0f} |")
        lines += ["", f"Reference (the better of finetune and finetune-interp here): **{e['reference']}**", "",
                  "| arm | repaired diff vs reference (pp) | interval | wins/losses | p | p Holm |",
                  "|---|---|---|---|---|---|"]
        for arm, c in e["vs_reference"].items():
            lines.append(f"| {arm} | {fa.pp(c['mean'])} | [{fa.pp(c['ci'][0])}, {fa.pp(c['ci'][1])}] | "
                         f"{c['wins']}/{c['losses']} | {c['p']:.3g} | {c['p_holm']:.3g} |")
        gc = e["gated_cost"]
        lines += [""]
        if "target" in e:
            lines.append(f"Target ({e['target']['rule']}): **{'met' if e['target']['met'] else 'not met'}**.")
        lines.append(f"Arm to run (most repairs with test breaks within 1.5 %): **{e['recommended']}**.")
        if gc["time_ratio"] is not None:
            lines.append(f"gated chose the composite in {gc['chose_composite']}, a plain expert in "
                         f"{gc['chose_plain_expert']}, the base in {gc['chose_base']} seeds (gates: "
                         f"{', '.join(f'{g} {n}' for g, n in gc['gates_chosen'].items())}); its model: "
                         f"{gc['parameters_ratio']:.2f}x the base's parameters, {gc['time_ratio']:.2f}x its test-split "
                         f"inference time, {100 * gc['test_routed']:.1f} % of clean test images sent to the expert.")
        lines.append("Seeds where gated's selection score is below finetune's or finetune-interp's: "
                     f"{e['gated_score_below_finetunes'] or 'none'}.")
        lines.append("")
    prefix = args.out or os.path.join(args.dir, "analysis")
    write_outputs(prefix, out, lines)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="keep one run's per-image answers and choices")
    c.add_argument("workdir")
    c.add_argument("out")
    c.add_argument("--dataset", required=True)
    c.add_argument("--scenario", required=True, choices=["pair", "shift", "rare"])
    c.add_argument("--seed", type=int, required=True)
    a = sub.add_parser("analyse", help="the analysis over every kept seed")
    a.add_argument("dir")
    a.add_argument("--out", help="output prefix (default DIR/analysis)")
    args = ap.parse_args()
    return collect(args) if args.cmd == "collect" else analyse(args)


if __name__ == "__main__":
    sys.exit(main())
