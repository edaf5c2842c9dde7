#!/usr/bin/python3
"""The field-repair study's analysis, fixed before the study ran (docs/FIELD.md, "The study").

Reads ROOT/<dataset>-<scenario>-<size>/seed-<S>/adapt-<arm>/result.json and writes OUT.md and
OUT.json (default ROOT/analysis).

What is compared (per setting = dataset x scenario x field size):
  * For every arm: the field hold-out's repair rate (share of the base's hold-out failures the
    repaired model gets right), its break rate (share of the base's right hold-out answers now
    wrong), the clean test split's break rate, and the test accuracy change; mean over seeds with
    a 95 % bootstrap interval.
  * The reference is the better of `finetune` and `finetune-interp` in that setting (the higher
    mean hold-out repair rate): the known methods at their best.
  * Each arm apricot offers beyond the known methods (soup-interp, apricot-interp) against that
    reference, paired by seed: the difference in hold-out repair rate.
      - interval: a two-level bootstrap (seeds with replacement, then within each drawn seed the
        hold-out images with replacement, the same draw for both arms), 4,000 draws, percentile
        95 % interval;
      - test: an exact two-sided sign-flip permutation test on the per-seed differences (all 2^n
        sign patterns), Holm-corrected over every (arm, setting) pair of the family;
      - the target (issue 24) is met in a setting when the mean difference is >= 2 pp and the
        Holm-adjusted p < 0.05; it is met overall when one arm meets it in >= 4 of the 6
        dataset x scenario settings at field size 1000.
  * head-only and finetune-interp are also compared with finetune (same test, reported, not part
    of the target family).
Seeds where an arm is missing are left out of that arm's comparisons (and counted in "seeds").
Deterministic: the bootstrap's generator is seeded with 0.
"""
import argparse
import itertools
import json
import math
import os
import re
import sys

import numpy as np

from analysis_common import holm, write_outputs

ARMS = ["finetune", "finetune-interp", "soup-interp", "apricot-interp", "head-only"]
NEW_ARMS = ["soup-interp", "apricot-interp"]
BOOT = 4000


def load(root):
    """{setting: {seed: {arm: result}}} where setting = (dataset, scenario, size)."""
    runs = {}
    for d in sorted(os.listdir(root)):
        m = re.fullmatch(r"(.+)-(pair|shift|rare)-(\d+)", d)
        if not m or not os.path.isdir(os.path.join(root, d)):
            continue
        setting = (m.group(1), m.group(2), int(m.group(3)))
        for s in sorted(os.listdir(os.path.join(root, d))):
            ms = re.fullmatch(r"seed-(\d+)", s)
            if not ms:
                continue
            for arm in ARMS:
                p = os.path.join(root, d, s, "adapt-" + arm, "result.json")
                if os.path.exists(p):
                    with open(p) as f:
                        runs.setdefault(setting, {}).setdefault(int(ms.group(1)), {})[arm] = json.load(f)
    return runs


def answers(res, split):
    a = res["field"][split + "_answers"]
    y, b, after = (np.asarray(a[k]) for k in ("label", "base", "after"))
    return y, b, after


def rates(y, b, a):
    """repair rate, break rate (as arrays of 0/1 contributions: repaired among base failures)."""
    wrong = b != y
    right = ~wrong
    rep = (a == y) & wrong
    brk = (a != y) & right
    return wrong, right, rep, brk


def rate(num, den):
    return float(num.sum()) / float(den.sum()) if den.sum() else 0.0


def boot_interval(seeds, fn, rng):
    """Two-level bootstrap of fn(list of (seed, image index array)) -> percentile 95 % interval."""
    vals = []
    for _ in range(BOOT):
        draw = rng.choice(len(seeds), size=len(seeds), replace=True)
        picks = []
        for i in draw:
            n = seeds[i][1]
            picks.append((seeds[i][0], rng.integers(0, n, size=n)))
        vals.append(fn(picks))
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def sign_flip_p(diffs):
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0:
        return None
    obs = abs(d.mean())
    count = 0
    total = 0
    for signs in itertools.product((1.0, -1.0), repeat=n):
        total += 1
        if abs((d * np.asarray(signs)).mean()) >= obs - 1e-15:
            count += 1
    return count / total


def per_seed_metrics(res):
    y, b, a = answers(res, "holdout")
    _, _, rep, brk = rates(y, b, a)
    wrong = b != y
    right = ~wrong
    ty, tb, ta = answers(res, "test")
    _, _, trep, tbrk = rates(ty, tb, ta)
    return {
        "repair": rate(rep, wrong),
        "break": rate(brk, right),
        "test_break": rate(tbrk, tb == ty),
        "test_gain": float(res["gain_test"]),
        "holdout_acc_after": float((a == y).mean()),
        "holdout_acc_before": float((b == y).mean()),
        "seconds": float(res["seconds"]),
        "images": int(res["images"]["total"]),
    }


def arm_summary(by_seed, arm, rng):
    seeds = sorted(s for s in by_seed if arm in by_seed[s])
    if not seeds:
        return None
    ms = [per_seed_metrics(by_seed[s][arm]) for s in seeds]
    out = {"seeds": len(seeds)}
    for k in ms[0]:
        out[k] = float(np.mean([m[k] for m in ms]))
    # Interval of the repair rate and the test break rate: two-level bootstrap.
    hold = [answers(by_seed[s][arm], "holdout") for s in seeds]
    test = [answers(by_seed[s][arm], "test") for s in seeds]

    def repair_of(picks):
        return float(np.mean([rate(*_rep_wrong(hold[i], idx)) for i, idx in picks]))

    def tbreak_of(picks):
        return float(np.mean([rate(*_brk_right(test[i], idx)) for i, idx in picks]))

    out["repair_ci"] = boot_interval([(i, len(hold[i][0])) for i in range(len(seeds))], repair_of, rng)
    out["test_break_ci"] = boot_interval([(i, len(test[i][0])) for i in range(len(seeds))], tbreak_of, rng)
    return out


def _rep_wrong(ans, idx):
    y, b, a = (x[idx] for x in ans)
    wrong = b != y
    return (a == y) & wrong, wrong


def _brk_right(ans, idx):
    y, b, a = (x[idx] for x in ans)
    right = b == y
    return (a != y) & right, right


def compare(by_seed, arm, ref, rng):
    """arm - ref in hold-out repair rate, paired by seed and by hold-out image."""
    seeds = sorted(s for s in by_seed if arm in by_seed[s] and ref in by_seed[s])
    if not seeds:
        return None
    A = [answers(by_seed[s][arm], "holdout") for s in seeds]
    R = [answers(by_seed[s][ref], "holdout") for s in seeds]
    for a, r in zip(A, R):  # the same hold-out and the same base in both arms of one seed
        assert (a[0] == r[0]).all() and (a[1] == r[1]).all(), "arms of one seed disagree on the hold-out"
    diffs = [rate(*_rep_wrong(a, np.arange(len(a[0])))) - rate(*_rep_wrong(r, np.arange(len(r[0]))))
             for a, r in zip(A, R)]

    def diff_of(picks):
        return float(np.mean([rate(*_rep_wrong(A[i], idx)) - rate(*_rep_wrong(R[i], idx)) for i, idx in picks]))

    return {
        "seeds": len(seeds),
        "mean": float(np.mean(diffs)),
        "per_seed": diffs,
        "wins": int(sum(d > 0 for d in diffs)),
        "losses": int(sum(d < 0 for d in diffs)),
        "ci": boot_interval([(i, len(A[i][0])) for i in range(len(seeds))], diff_of, rng),
        "p": sign_flip_p(diffs),
    }


def pp(x):
    return "-" if x is None else f"{100 * x:+.1f}"


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the study's results (runs/field)")
    ap.add_argument("--out", help="output prefix (default ROOT/analysis)")
    args = ap.parse_args()
    runs = load(args.root)
    if not runs:
        print(f"error: no results under {args.root}/<dataset>-<scenario>-<size>/seed-<S>/", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    out = {"settings": []}
    family = []
    for setting in sorted(runs):
        by_seed = runs[setting]
        entry = {"dataset": setting[0], "scenario": setting[1], "size": setting[2], "seeds": sorted(by_seed),
                 "arms": {}, "vs_reference": {}, "vs_finetune": {}}
        for arm in ARMS:
            s = arm_summary(by_seed, arm, rng)
            if s:
                entry["arms"][arm] = s
        known = [a for a in ("finetune", "finetune-interp") if a in entry["arms"]]
        ref = max(known, key=lambda a: entry["arms"][a]["repair"]) if known else None
        entry["reference"] = ref
        if ref:
            for arm in NEW_ARMS:
                c = compare(by_seed, arm, ref, rng) if arm in entry["arms"] else None
                if c:
                    entry["vs_reference"][arm] = c
                    family.append((entry, arm, c))
        if "finetune" in entry["arms"]:
            for arm in ("finetune-interp", "head-only", "soup-interp", "apricot-interp"):
                c = compare(by_seed, arm, "finetune", rng) if arm in entry["arms"] else None
                if c:
                    entry["vs_finetune"][arm] = c
        out["settings"].append(entry)
    adj = holm([c["p"] for _, _, c in family])
    for (entry, arm, c), a in zip(family, adj):
        c["p_holm"] = a
        c["meets_target"] = bool(c["mean"] >= 0.02 and a is not None and a < 0.05)
    met = {}
    for entry in out["settings"]:
        if entry["size"] != 1000:
            continue
        for arm, c in entry["vs_reference"].items():
            met.setdefault(arm, 0)
            met[arm] += int(c.get("meets_target", False))
    out["target"] = {"settings_met_at_1000": met, "met": any(v >= 4 for v in met.values()),
                     "rule": "an arm beyond the known methods repairs >= 2 pp more of the field hold-out than the "
                             "better of finetune and finetune-interp, Holm-adjusted p < 0.05, in >= 4 of 6 "
                             "dataset x scenario settings at field size 1000"}

    lines = ["# Field-repair study: analysis", "",
             "Generated by scripts/field-analysis.py (the plan: docs/FIELD.md). Rates in %, differences in pp; "
             "[95 % two-level bootstrap interval over seeds and images]; p: exact sign-flip test over seeds, "
             "Holm over the target family.", ""]
    for e in out["settings"]:
        lines += [f"## {e['dataset']} / {e['scenario']} / field {e['size']} ({len(e['seeds'])} seeds)", "",
                  "| arm | hold-out repaired | hold-out broken | test broken | test gain (pp) | images | s |",
                  "|---|---|---|---|---|---|---|"]
        for arm, s in e["arms"].items():
            lines.append(f"| {arm} | {pct(s['repair'])} [{pct(s['repair_ci'][0])}, {pct(s['repair_ci'][1])}] | "
                         f"{pct(s['break'])} | {pct(s['test_break'])} [{pct(s['test_break_ci'][0])}, "
                         f"{pct(s['test_break_ci'][1])}] | {pp(s['test_gain'])} | {s['images']} | {s['seconds']:.0f} |")
        lines += ["", f"Reference (the better known method here): **{e['reference']}**", "",
                  "| arm | vs | repaired diff (pp) | interval | wins/losses | p | p Holm | target |",
                  "|---|---|---|---|---|---|---|---|"]
        for arm, c in e["vs_reference"].items():
            lines.append(f"| {arm} | {e['reference']} | {pp(c['mean'])} | [{pp(c['ci'][0])}, {pp(c['ci'][1])}] | "
                         f"{c['wins']}/{c['losses']} | {c['p']:.3g} | {c['p_holm']:.3g} | "
                         f"{'met' if c['meets_target'] else 'not met'} |")
        for arm, c in e["vs_finetune"].items():
            lines.append(f"| {arm} | finetune | {pp(c['mean'])} | [{pp(c['ci'][0])}, {pp(c['ci'][1])}] | "
                         f"{c['wins']}/{c['losses']} | {c['p']:.3g} | (not corrected) | |")
        lines.append("")
    t = out["target"]
    lines += ["## Target", "", t["rule"] + ".", "",
              "Settings met at field size 1000: " + (", ".join(f"{a}: {n}" for a, n in t["settings_met_at_1000"].items())
                                                      or "none measured") + f". Target met: **{'yes' if t['met'] else 'no'}**.", ""]
    prefix = args.out or os.path.join(args.root, "analysis")
    write_outputs(prefix, out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
