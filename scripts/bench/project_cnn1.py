#!/usr/bin/env python3
"""Tables and the projection of a full paper-settings cnn1 run from scripts/device-check.sh's output.

  project_cnn1.py OUT [WORKDIR]

OUT holds bench.jsonl (tool and peer training benchmarks), matmul.json, rdlms.jsonl, phases.jsonl,
base-metrics.jsonl and one-by-one-adapt-S.json / at-once-adapt-S.json (S in 1 2 3 none); WORKDIR
(default /tmp/cnn1-run) holds the rDLMs the timed phase trained. Missing pieces are skipped.

The projection (configs/cnn1.json: 20 base epochs; 20 rDLMs x 30 epochs on 10,000 images; each of
strategies 1, 2, 3 and the control retraining 20 epochs after every batch, at least 100 batches as
patience 100 allows) scales each measured phase linearly, and prints the arithmetic.
"""

import glob
import json
import os
import statistics
import sys

# Forward FLOPs per 3x32x32 image (2 x multiply-accumulates of convolutions and dense layers,
# counted with forward hooks on scripts/pytorch/models.py); a training step is taken as 3 x forward.
FWD_FLOPS = {"cnn1": 197e6, "cnn2": 58e6, "cnn3": 770e6, "resnet20": 82e6, "resnet32": 138e6}


def load_lines(path):
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path):
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def load(path):
    try:
        return json.load(open(path))
    except (OSError, json.JSONDecodeError):
        return None


def bench_table(out):
    rows = load_lines(os.path.join(out, "bench.jsonl"))
    matmul = load(os.path.join(out, "matmul.json"))
    rates = {r["dtype"]: r["tflops"] for r in (matmul or {}).get("rows", [])}
    if rates:
        print("measured matrix rate: " + ", ".join(f"{k} {v:.3g} TFLOP/s" for k, v in rates.items()))
    if not rows:
        return
    by = {}
    for r in rows:
        by.setdefault((r["arch"], r["precision"]), {})[(r["tool"], r.get("memory_format", "contiguous"))] = r
    print()
    print(f'{"model":9} {"prec":5} {"tool NCHW":>10} {"tool NHWC":>10} {"peer NCHW":>10} {"peer NHWC":>10} '
          f'{"best/best":>9} {"tool infer":>10} {"peer infer":>10} {"floor":>10} {"at":>6}')
    for (arch, prec), d in by.items():
        def rate(who, fmt, key="train_images_per_s"):
            return d.get((who, fmt), {}).get(key, 0)
        t, tc = rate("apricot", "contiguous"), rate("apricot", "channels_last")
        pc, pn = rate("peer", "contiguous"), rate("peer", "channels_last")
        ti = max(rate("apricot", f, "infer_images_per_s") for f in ("contiguous", "channels_last"))
        pi = max(rate("peer", f, "infer_images_per_s") for f in ("contiguous", "channels_last"))
        best, p = max(t, tc), max(pc, pn)
        matrix = rates.get("tf32" if prec == "fp32" else "bf16", rates.get("fp32", 0)) * 1e12
        floor = matrix / (3 * FWD_FLOPS[arch]) if arch in FWD_FLOPS and matrix else 0
        print(f"{arch:9} {prec:5} {t:10.0f} {tc:10.0f} {pc:10.0f} {pn:10.0f} {best / p if p else 0:9.2f} {ti:10.0f} {pi:10.0f} "
              f"{floor:10.0f} {100 * best / floor if floor else 0:5.1f}%")
    print("floor: images/s if a training step ran at the measured matrix rate (TF32 for fp32, bf16 for bf16)")


def rdlm_table(out):
    rows = load_lines(os.path.join(out, "rdlms.jsonl"))
    for r in rows:
        print(f'bench rdlms {r["arch"]} k={r["k"]} batch {r["batch"]}: one at a time {r["sequential_images_per_s"]:.0f} '
              f'images/s, all at once {r["concurrent_images_per_s"]:.0f} images/s ({r["speedup"]:.2f}x)')


def projection(out, workdir):
    phases = {p["phase"]: p for p in load_lines(os.path.join(out, "phases.jsonl"))}
    if not phases:
        return
    print()
    for name, p in phases.items():
        print(f'phase {name}: {p["seconds"]:.1f} s (rc {p["rc"]})')
    total = 0.0
    # Base: the mean epoch after the first (cuDNN autotuning), times 20 epochs.
    base = load_lines(os.path.join(out, "base-metrics.jsonl"))
    if len(base) >= 2:
        epoch = statistics.mean(e["seconds"] for e in base[1:])
        rate = statistics.mean(e["images_per_s"] for e in base[1:])
        startup = max(0.0, phases.get("base", {}).get("seconds", 0) - sum(e["seconds"] for e in base))
        b = startup + 20 * epoch
        total += b
        print(f"base: {startup:.1f} s start-up + 20 epochs x {epoch:.2f} s ({rate:.0f} images/s) = {b:.0f} s")
    # rDLMs: each ran 2 epochs, all 20 at once; their longest training time spans the phase.
    metas = [load(m) for m in sorted(glob.glob(os.path.join(workdir, "rdlms", "rdlm-*", "model.json")))]
    metas = [m for m in metas if m and "metrics" in m]
    spans = [m["metrics"]["train_seconds"] for m in metas]
    if spans and "rdlms-20-at-once" in phases:
        span = max(spans)
        images = sum(m.get("subset", {}).get("size", 10000) for m in metas) * 2
        wall = phases["rdlms-20-at-once"]["seconds"]
        r = (wall - span) + 15 * span
        total += r
        print(f"rDLMs: {len(spans)} at once, 2 epochs took {span:.1f} s of a {wall:.1f} s phase: "
              f"{wall - span:.1f} s other + 15 x {span:.1f} s (30 epochs) = {r:.0f} s "
              f"({images / span:.0f} images/s in all)")
    # Adaptation: per arm, 100 batches of (adjust + predict + evaluate) and a 20-epoch retraining.
    arms = {}
    for s in ("1", "2", "3", "none"):
        res = load(os.path.join(out, f"one-by-one-adapt-{s}.json"))
        if res and res.get("batches") and res.get("retrains"):
            arms[s] = res
    if arms:
        seq = 0.0
        for s, res in arms.items():
            t = res["time"]
            per_batch = (t["adjustment"] + t["prediction"] + t["evaluation"]) / res["batches"]
            retrain1 = t["retraining"] / res["retrains"]
            arm = t["other"] + 100 * (per_batch + 20 * retrain1)
            seq += arm
            print(f"arm {s}: {t['other']:.1f} s other + 100 x ({per_batch:.3f} s per batch + 20 x {retrain1:.2f} s "
                  f"per 1-epoch retraining) = {arm:.0f} s")
        speedup = 1.0
        if "arms-one-by-one" in phases and "arms-4-at-once" in phases:
            speedup = phases["arms-one-by-one"]["seconds"] / phases["arms-4-at-once"]["seconds"]
        a = seq / speedup
        total += a
        print(f"adaptation: {seq:.0f} s one arm at a time; the four arms at once ran {speedup:.2f}x faster on the "
              f"slice, so {a:.0f} s")
        print(f"projected full cnn1 run: {total:.0f} s = {total / 60:.1f} min (target: 30 min)")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/apricot-device"
    workdir = sys.argv[2] if len(sys.argv) > 2 else "/tmp/cnn1-run"
    bench_table(out)
    rdlm_table(out)
    projection(out, workdir)


if __name__ == "__main__":
    main()
