"""What the study analyses (scripts/study-analysis.py, scripts/field-analysis.py) share: Holm's
correction and writing OUT.json, OUT.md and the Markdown to stdout. Imported from the scripts'
own directory; standard library only."""
import json


def holm(ps):
    """Holm-adjusted p values, in the input order (None stays None)."""
    idx = [i for i, p in enumerate(ps) if p is not None]
    order = sorted(idx, key=lambda i: ps[i])
    m = len(order)
    adj = [None] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adj[i] = running
    return adj


def write_outputs(prefix, out, lines):
    """OUT.json (the numbers), OUT.md (the tables) and the tables on stdout."""
    with open(prefix + ".json", "w") as f:
        json.dump(out, f, indent=1)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
