#!/usr/bin/env python3
"""The table of scripts/bench/peers.sh from OUT/bench.jsonl: per model and tool the median images/s
over the rounds, and each tool's ratio to the PyTorch eager peer; writes OUT/table.md and prints it.

  peers_table.py OUT [WALL_SECONDS] [UPTIME_TEXT]
"""
import collections, json, statistics, sys
out = sys.argv[1]
wall = int(sys.argv[2]) if len(sys.argv) > 2 else None
load = sys.argv[3] if len(sys.argv) > 3 else ""
rows = [json.loads(l) for l in open(f"{out}/bench.jsonl")]
tools = list(dict.fromkeys(r["tool"] for r in rows))
archs = list(dict.fromkeys(r["arch"] for r in rows))
med = collections.defaultdict(dict)
for arch in archs:
    for tool in tools:
        rs = [r for r in rows if r["arch"] == arch and r["tool"] == tool]
        med[arch][tool] = {k: statistics.median(r[k] for r in rs) for k in ("train_images_per_s", "infer_images_per_s")}
lines = []
for key, what in (("train_images_per_s", "training"), ("infer_images_per_s", "inference")):
    lines.append(f"**{what} images/s** (median over {max(r['round'] for r in rows)} rounds; ratio to the PyTorch 2.15 eager peer)\n")
    lines.append("| model | " + " | ".join(tools) + " | " + " | ".join(f"{t}/eager" for t in tools if t != "eager") + " |")
    lines.append("|---|" + "---:|" * (len(tools) + len([t for t in tools if t != "eager"])))
    for arch in archs:
        m = med[arch]
        base = m.get("eager", {}).get(key)
        vals = [f"{m[t][key]:,.0f}" for t in tools]
        ratios = [f"{m[t][key] / base:.2f}" if base else "-" for t in tools if t != "eager"]
        lines.append(f"| {arch} | " + " | ".join(vals) + " | " + " | ".join(ratios) + " |")
    lines.append("")
compile_warm = [r["warmup_seconds"][0] for r in rows if r["tool"] == "compile" and r["round"] == 1]
if compile_warm:
    lines.append(f"torch.compile warm-up (compiling) in round 1: {min(compile_warm):.0f}-{max(compile_warm):.0f} s a model for training.")
if wall is not None:
    lines.append(f"Wall time {wall} s; {load.strip()}")
text = "\n".join(lines)
open(f"{out}/table.md", "w").write(text + "\n")
print(text)
