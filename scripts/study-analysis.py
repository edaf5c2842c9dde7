#!/usr/bin/python3
"""The whole-set study's analysis (docs/FINDINGS.md), fixed before the study runs.

Reads ROOT/<variant>/seed-<S>/adapt-<arm>/result.json (scripts/study.sh's layout) and writes
OUT.md and OUT.json (default ROOT/analysis).

What is compared, per variant (a config of the study directory) and per arm that is not a control:
  * primary: the arm's final test accuracy minus the budget-matched control's (`none-matched`, the
    same variant and seed): what the rDLMs add over spending their training images on the base;
  * loop-free (arms with a start candidate: soup, greedy-soup, greedy-soup-split): the start
    candidate as it was, before the loop's retraining and selection, minus the matched control's
    start candidate (the base after its budget-matched training), so the loop's share is visible;
  * secondary: the final test accuracy minus the plain control's (`none`).
Statistics of each comparison, over the seeds where both arms have a result:
  * the mean difference and a 95 % percentile interval of a two-level bootstrap (seeds with
    replacement, then within each drawn seed the test images with replacement, the same draw for
    both arms), 4,000 draws, generator seeded with 0;
  * the paired t-test over seeds (two-sided; it ignores the test set's noise) and the exact
    two-sided sign test (ties dropped);
  * Holm's correction over the primary comparisons of the whole study (all variants and arms), for
    the t-test and for the sign test separately;
  * a verdict: "better" when the interval lies above 0 and both Holm-adjusted p < 0.05, "worse" when
    it lies below 0 and both p < 0.05, else "undecided"; and whether one more seed could overturn
    it: the verdict is recomputed (t-test and sign test, Holm redone over the family) with one extra
    seed at the least favourable difference observed (an undecided one: at either extreme seen);
    "stable" if it stays.
Results without per-image answers (made before result.json kept them) get a seeds-only bootstrap,
marked in the output.
"""
import argparse
import json
import math
import os
import re
import sys

try:
    import numpy as np
except ImportError:  # Debian's python3-numpy (scripts/study.sh and scripts/test.sh install it)
    print("study-analysis: needs numpy for /usr/bin/python3 (apt-get install python3-numpy)", file=sys.stderr)
    sys.exit(77 if sys.argv[1:] == ["--self-test"] else 2)

from analysis_common import holm, write_outputs

BOOT = 4000
CONTROLS = ("none", "none-matched")
START_ARMS = ("soup", "greedy-soup", "greedy-soup-split")


# ---- statistics -------------------------------------------------------------------------------

def _betacf(a, b, x):
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_test_p(diffs):
    """Two-sided p of the paired t-test (None below 2 seeds or without spread)."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return None
    sd = d.std(ddof=1)
    if sd == 0:
        return None if d.mean() == 0 else 0.0
    t = d.mean() / (sd / math.sqrt(n))
    df = n - 1
    return betainc(df / 2, 0.5, df / (df + t * t))


def sign_test_p(diffs):
    """Exact two-sided sign test (ties dropped); None without a non-tie."""
    wins = sum(1 for x in diffs if x > 0)
    losses = sum(1 for x in diffs if x < 0)
    n = wins + losses
    if n == 0:
        return None
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def boot_interval(per_seed, rng):
    """per_seed: list of (right_a, right_b) 0/1 arrays over one seed's test images, or (d, None) for a
    seed with only its accuracy difference d. Two-level percentile 95 % interval of the mean
    difference."""
    k = len(per_seed)
    vals = np.empty(BOOT)
    for b in range(BOOT):
        draw = rng.integers(0, k, size=k)
        total = 0.0
        for i in draw:
            a, r = per_seed[i]
            if r is None:
                total += a
            else:
                idx = rng.integers(0, len(a), size=len(a))
                total += a[idx].mean() - r[idx].mean()
        vals[b] = total / k
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def verdict(ci, p_t, p_s):
    if p_t is None or p_s is None:
        return "undecided"
    if ci[0] > 0 and p_t < 0.05 and p_s < 0.05:
        return "better"
    if ci[1] < 0 and p_t < 0.05 and p_s < 0.05:
        return "worse"
    return "undecided"


def p_only_verdict(mean, p_t, p_s):
    """The verdict without the interval, for the extra-seed check."""
    if p_t is None or p_s is None or p_t >= 0.05 or p_s >= 0.05:
        return "undecided"
    return "better" if mean > 0 else "worse"


# ---- data -------------------------------------------------------------------------------------

def load(root):
    """{variant: {seed: {arm: result}}}."""
    runs = {}
    for v in sorted(os.listdir(root)):
        vdir = os.path.join(root, v)
        if not os.path.isdir(vdir):
            continue
        for s in sorted(os.listdir(vdir)):
            m = re.fullmatch(r"seed-(\d+)", s)
            if not m:
                continue
            for d in sorted(os.listdir(os.path.join(vdir, s))):
                if not d.startswith("adapt-"):
                    continue
                p = os.path.join(vdir, s, d, "result.json")
                if os.path.exists(p):
                    with open(p) as f:
                        runs.setdefault(v, {}).setdefault(int(m.group(1)), {})[d[len("adapt-"):]] = json.load(f)
    return runs


def right_of(res, start=False):
    """0/1 per test image of the final model (or the start candidate), or None without answers."""
    a = res.get("test_answers")
    if not a:
        return None
    y = np.asarray(a["label"])
    pred = res.get("start", {}).get("test_after") if start else a["after"]
    if pred is None:
        return None
    return (np.asarray(pred) == y).astype(float)


def acc_of(res, start=False):
    if start:
        return (res.get("start") or {}).get("test_acc")
    return res["final"]["test_acc"]


def compare(by_seed, arm, ref, rng, start=False):
    seeds = sorted(s for s in by_seed if arm in by_seed[s] and ref in by_seed[s]
                   and acc_of(by_seed[s][arm], start) is not None and acc_of(by_seed[s][ref], start) is not None)
    if not seeds:
        return None
    diffs, per_seed, images = [], [], True
    for s in seeds:
        a, r = by_seed[s][arm], by_seed[s][ref]
        d = acc_of(a, start) - acc_of(r, start)
        diffs.append(d)
        ra, rr = right_of(a, start), right_of(r, start)
        if ra is not None and rr is not None and len(ra) == len(rr):
            assert (np.asarray(a["test_answers"]["label"]) == np.asarray(r["test_answers"]["label"])).all(), \
                f"seed {s}: {arm} and {ref} were measured on different test splits"
            per_seed.append((ra, rr))
        else:
            per_seed.append((d, None))
            images = False
    return {"seeds": seeds, "n": len(seeds), "mean": float(np.mean(diffs)), "per_seed": diffs,
            "wins": sum(1 for x in diffs if x > 0), "ties": sum(1 for x in diffs if x == 0),
            "losses": sum(1 for x in diffs if x < 0),
            "test_images": int(len(per_seed[0][0])) if images else None,
            "ci": boot_interval(per_seed, rng), "ci_over": "seeds and test images" if images else "seeds only",
            "p_t": t_test_p(diffs), "p_sign": sign_test_p(diffs)}


def extra_seed_stable(family, i):
    """Does comparison i's verdict survive one more seed? The seed is the least favourable difference
    seen (for an undecided verdict: the most extreme either way, which could decide it); its t-test and
    sign-test p replace the comparison's own and Holm is redone over the whole family."""
    c = family[i][2]
    v = c["verdict"]
    extras = [min(c["per_seed"]) if v == "better" else max(c["per_seed"])] if v != "undecided" else \
        [max(c["per_seed"]), min(c["per_seed"])]
    for extra in extras:
        d = c["per_seed"] + [extra]
        pts = [x["p_t"] for _, _, x in family]
        pss = [x["p_sign"] for _, _, x in family]
        pts[i], pss[i] = t_test_p(d), sign_test_p(d)
        at, as_ = holm(pts)[i], holm(pss)[i]
        if p_only_verdict(float(np.mean(d)), at, as_) != (v if v != "undecided" else "undecided"):
            return False
    return True


def self_test():
    """Known values of the statistics (run by the test suite: ctest -R StudyAnalysis)."""
    assert abs(t_test_p([1, 2, 3, 4, 5.0]) - 0.013236) < 1e-5             # t = 4.243, df 4
    assert abs(betainc(5, 0.5, 10 / (10 + 4.0)) - 0.073388) < 1e-5        # t = 2, df 10: p 0.0734
    assert sign_test_p([1, 1, 1, 1, 1]) == 0.0625 and sign_test_p([1, -1, 0]) == 1.0
    assert abs(sign_test_p([1] * 9 + [-1]) - 0.021484375) < 1e-12           # 2 * 11 / 1024
    assert holm([0.01, 0.04, None, 0.03]) == [0.03, 0.06, None, 0.06]
    rng = np.random.default_rng(0)
    same = [(np.ones(100), np.ones(100))] * 5
    assert boot_interval(same, rng) == [0.0, 0.0]
    better = [(np.r_[np.ones(60), np.zeros(40)], np.r_[np.ones(50), np.zeros(50)])] * 5
    lo, hi = boot_interval(better, rng)
    assert 0 < lo < 0.1 < hi < 0.25, (lo, hi)
    def one(d):
        return ("v", "a", {"per_seed": d, "p_t": t_test_p(d), "p_sign": sign_test_p(d), "verdict": "better"})
    fragile = [0.02] * 8 + [-0.01]  # sign test 8/1: p 0.039; one more loss: 8/2, p 0.109
    assert sign_test_p(fragile) < 0.05 and not extra_seed_stable([one(fragile)], 0)
    firm = [0.02, 0.03, 0.025, 0.02, 0.03, 0.02, 0.025, 0.03]
    assert extra_seed_stable([one(firm)], 0)
    print("study-analysis: self-test passed")
    return 0


# ---- report -----------------------------------------------------------------------------------

def pp(x):
    return "-" if x is None else f"{100 * x:+.2f}"


def pv(x):
    return "-" if x is None else f"{x:.3g}"


def table(rows, title, note):
    out = [f"### {title}", "", note, "",
           "| variant | arm | seeds | mean (pp) | 95 % interval (pp) | wins/ties/losses | p t-test | p sign | "
           "p t Holm | p sign Holm | verdict | one more seed |",
           "|---|---|---:|---:|---|---|---:|---:|---:|---:|---|---|"]
    for v, arm, c in rows:
        out.append(f"| {v} | {arm} | {c['n']} | {pp(c['mean'])} | [{pp(c['ci'][0])}, {pp(c['ci'][1])}]"
                   f"{'' if c['ci_over'] == 'seeds and test images' else ' (seeds only)'} | "
                   f"{c['wins']}/{c['ties']}/{c['losses']} | {pv(c['p_t'])} | {pv(c['p_sign'])} | "
                   f"{pv(c.get('p_t_holm'))} | {pv(c.get('p_sign_holm'))} | {c.get('verdict', '-')} | "
                   f"{'cannot overturn' if c.get('stable') else 'could overturn' if 'stable' in c else '-'} |")
    return out + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the study's results (scripts/study.sh's ROOT)")
    ap.add_argument("--out", help="output prefix (default ROOT/analysis)")
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    args = ap.parse_args()
    if not os.path.isdir(args.root):
        print(f"error: {args.root} is not a directory (the ROOT given to scripts/study.sh)", file=sys.stderr)
        return 2
    runs = load(args.root)
    if not runs:
        print(f"error: no results under {args.root}/<variant>/seed-<S>/adapt-<arm>/result.json", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    out = {"variants": {}}
    primary, loop_free, secondary = [], [], []
    for v, by_seed in runs.items():
        arms = sorted({a for s in by_seed.values() for a in s})
        entry = {"seeds": sorted(by_seed), "arms": arms, "vs_matched": {}, "loop_free_vs_matched": {},
                 "vs_control": {}}
        for arm in arms:
            if arm in CONTROLS or "field" in next(iter(r for r in by_seed.values() if arm in r))[arm]:
                continue
            c = compare(by_seed, arm, "none-matched", rng)
            if c:
                entry["vs_matched"][arm] = c
                primary.append((v, arm, c))
            if arm in START_ARMS:
                c = compare(by_seed, arm, "none-matched", rng, start=True)
                if c:
                    entry["loop_free_vs_matched"][arm] = c
                    loop_free.append((v, arm, c))
            c = compare(by_seed, arm, "none", rng)
            if c:
                entry["vs_control"][arm] = c
                secondary.append((v, arm, c))
        out["variants"][v] = entry
    for family in (primary, loop_free):
        adj_t = holm([c["p_t"] for _, _, c in family])
        adj_s = holm([c["p_sign"] for _, _, c in family])
        for (_, _, c), at, as_ in zip(family, adj_t, adj_s):
            c["p_t_holm"], c["p_sign_holm"] = at, as_
            c["verdict"] = verdict(c["ci"], at, as_)
        for i, (_, _, c) in enumerate(family):
            c["stable"] = extra_seed_stable(family, i)
    out["settled"] = bool(primary) and all(c["stable"] for _, _, c in primary)

    lines = ["# Whole-set study: analysis", "",
             "Generated by scripts/study-analysis.py (the plan: its docstring, committed before the study ran). "
             "Differences in test accuracy, percentage points; 95 % two-level bootstrap interval over seeds and "
             "test images; paired t-test and exact sign test over seeds; Holm over the comparisons of one table. "
             "Verdict: better/worse when the interval excludes 0 and both Holm-adjusted p < 0.05. \"One more seed\": "
             "whether a further seed at the least favourable difference seen could change the verdict.", ""]
    for v, e in out["variants"].items():
        lines.append(f"- {v}: seeds {','.join(map(str, e['seeds']))}; arms {', '.join(e['arms'])}")
    lines.append("")
    lines += table(primary, "Final model minus the budget-matched control (primary)",
                   "Each arm's final test accuracy minus `none-matched`'s, same variant and seed.")
    lines += table(loop_free, "Loop-free: start candidate minus the matched control's start candidate",
                   "Before any retraining or selection: the soup as averaged against the base after its "
                   "budget-matched training.")
    lines += table(secondary, "Final model minus the plain control (not corrected)",
                   "Each arm's final test accuracy minus `none`'s (the same loop without weight adjustment).")
    lines += [f"Every primary verdict cannot be overturned by one more seed: **{'yes' if out['settled'] else 'no'}**.",
              ""]
    prefix = args.out or os.path.join(args.root, "analysis")
    write_outputs(prefix, out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
