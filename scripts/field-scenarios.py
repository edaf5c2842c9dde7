#!/usr/bin/python3
"""Build the "field repair" scenarios as NumPy datasets (data.format "npy").

Each scenario is a directory OUT/<dataset>-<scenario>/ holding

    x_train.npy y_train.npy x_test.npy y_test.npy   training and (clean) test data
    field-1000/x_field.npy field-1000/y_field.npy   1,000 field images with their true labels
    field-200/x_field.npy  field-200/y_field.npy    the first 200 rows of field-1000
    scenario.json                                   what was built, from what, with which seed

Images are uint8, N x H x W (Fashion-MNIST, gray) or N x H x W x 3 (CIFAR-10, RGB); labels are
int64. The tool carves its own validation split out of x_train/y_train.

Splits are disjoint: field images are drawn from the official training pool and never used for
training; x_test comes from the official test set and is never corrupted.

Scenarios
  pair   a confused pair (Fashion-MNIST Shirt/T-shirt, CIFAR-10 cat/dog): the field set is 500
         images of each of the two classes; training keeps all classes, balanced.
  shift  corrupted inputs: the field set is 1,000 images of all classes (balanced), each with one
         corruption in rotation (row i gets corruption i mod 3): Gaussian noise (sigma 20 in 0-255
         pixel units), Gaussian blur (sigma 1 px, radius 3, reflect padding), contrast reduction
         (x' = mean + 0.4 (x - mean), per image). field-*/corruption.npy holds each row's code
         (int8: 0 noise, 1 blur, 2 contrast). Training and test data are clean.
  rare   an under-represented class (Fashion-MNIST Pullover, CIFAR-10 bird): in training it keeps
         10 % of its balanced share (the other classes keep theirs, so x_train holds fewer than
         --*-train images); the field set is 1,000 images of that class only.

Field rows are ordered round-robin over their classes (random class order each round), so
field-200 has the same class mix as field-1000 (exactly 100/100 for pair, 20 a class for shift)
and, for shift, the same corruption mix (67/67/66).

Determinism: everything follows from --seed through numpy.random.default_rng. Each (dataset,
scenario) has its own stream, default_rng([seed, dataset_id, scenario_id]); the test subset of a
dataset comes from default_rng([seed, dataset_id, 0]), so the three scenarios of one dataset share
the same x_test. The field set is drawn before the training set, so it does not depend on
--*-train.

Sources
  fashion  Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist/ (Debian package
           dataset-fashion-mnist), 60,000 training and 10,000 test images.
  cifar10  the CIFAR-10 JPEG tarball (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg), by default
           ../shared/data/cifar10-jpeg.tar.gz beside the repository, or $CIFAR10_JPEG. It is read
           as a stream, twice (the listing, then the needed members); only the images a scenario
           uses are decoded, nothing is extracted to disk. Skipped with a message when missing
           (exit 3 when it was the only dataset asked for).

Needs numpy, and PIL for CIFAR-10 (Debian: python3-numpy python3-pil); scripts/field-scenarios.sh
installs them when missing and runs this script.

Usage
  scripts/field-scenarios.py --out OUT [--datasets fashion,cifar10] [--scenarios pair,shift,rare]
                             [--seed 0] [--fashion-train 12000] [--fashion-test 10000]
                             [--cifar-train 10000] [--cifar-test 10000]
Exit status: 0 done, 2 bad arguments, 3 a required source is missing or malformed.
"""
import argparse
import gzip
import io
import json
import os
import shutil
import sys
import tarfile
import time

import numpy as np

FIELD_SIZE = 1000          # rows of field-1000
FIELD_SMALL = 200          # rows of field-200 (a prefix of field-1000)
RARE_FRACTION = 0.10       # rare scenario: the rare class keeps this part of its balanced share

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]

# Per-dataset settings. "id" and the scenario ids below are only used to derive rng streams:
# never renumber them, or every dataset built so far changes.
DATASETS = {
    "fashion": {"id": 1, "classes": FASHION_CLASSES, "pair": (6, 0), "rare": 2,
                "source": FASHION_DIR},
    "cifar10": {"id": 2, "classes": CIFAR_CLASSES, "pair": (3, 5), "rare": 2, "source": None},
}
SCENARIOS = {"pair": 1, "shift": 2, "rare": 3}
TEST_STREAM = 0

# The shift scenario's corruptions, by code (the value stored in corruption.npy).
NOISE_SIGMA = 20.0         # in 0-255 pixel units
BLUR_SIGMA = 1.0           # pixels
BLUR_RADIUS = 3            # kernel taps: 2 * radius + 1
CONTRAST_FACTOR = 0.4
CORRUPTIONS = [
    {"code": 0, "name": "gaussian_noise",
     "severity": {"sigma": NOISE_SIGMA, "units": "pixel values 0-255"},
     "formula": "x' = clip(rint(x + N(0, sigma^2)), 0, 255), independent per pixel and channel"},
    {"code": 1, "name": "gaussian_blur",
     "severity": {"sigma_px": BLUR_SIGMA, "radius_px": BLUR_RADIUS},
     "formula": "separable normalised Gaussian kernel of 2*radius+1 taps over rows then columns, "
                "numpy 'reflect' padding (edge pixel not repeated), then rint and clip"},
    {"code": 2, "name": "contrast_reduction",
     "severity": {"factor": CONTRAST_FACTOR},
     "formula": "x' = clip(rint(m + factor * (x - m)), 0, 255), m = the image's mean over all "
                "pixels and channels"},
]


class SourceMissing(Exception):
    """A dataset source is not there or not in the expected layout (exit 3)."""


# ----------------------------------------------------------------------------------------------
# Sources

def read_idx(path):
    """One gzip-compressed IDX file (uint8 payload) as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SourceMissing(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise SourceMissing(f"{path}: {payload.size} bytes of data for shape {tuple(dims)}")
    return payload.reshape(dims)


class FashionSource:
    """Fashion-MNIST, all in memory (about 55 MB)."""

    def __init__(self, root=FASHION_DIR):
        names = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
                 "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
        missing = [n for n in names.values() if not os.path.isfile(os.path.join(root, n))]
        if missing:
            raise SourceMissing(f"Fashion-MNIST: {', '.join(missing)} not found in {root} "
                                "(install the Debian package dataset-fashion-mnist)")
        a = {k: read_idx(os.path.join(root, n)) for k, n in names.items()}
        self.images = {"train": a["x_train"], "test": a["x_test"]}
        self.labels = {"train": a["y_train"].astype(np.int64), "test": a["y_test"].astype(np.int64)}
        self.source = root

    def load(self, split, indices):
        return self.images[split][np.asarray(indices, dtype=np.int64)]


class CifarJpegSource:
    """CIFAR-10 from the JPEG tarball: lists it once, decodes only the images asked for."""

    def __init__(self, tarball):
        self.tarball = tarball
        self.source = os.path.realpath(tarball)
        self.names = {"train": [], "test": []}
        with tarfile.open(tarball, "r|gz") as tar:
            for m in tar:
                parts = m.name.split("/")
                if not m.isfile() or len(parts) != 3 or not parts[2].endswith(".jpg"):
                    continue
                if parts[0] in self.names and parts[1] in CIFAR_CLASSES:
                    self.names[parts[0]].append(m.name)
        for split in self.names:
            self.names[split].sort()   # pool index = position in name order
            if not self.names[split]:
                raise SourceMissing(f"{tarball}: no {split}/<class>/*.jpg members")
        self.labels = {s: np.array([CIFAR_CLASSES.index(n.split("/")[1]) for n in names],
                                   dtype=np.int64) for s, names in self.names.items()}
        self.cache = {}   # member name -> decoded 32x32x3 uint8 image

    def prefetch(self, wanted):
        """Decode, in one pass over the tarball, the images of {split: indices} not cached yet."""
        from PIL import Image   # only CIFAR-10 needs PIL
        need = {self.names[s][i] for s, idx in wanted.items() for i in np.asarray(idx).tolist()}
        need -= self.cache.keys()
        if not need:
            return
        with tarfile.open(self.tarball, "r|gz") as tar:
            for m in tar:
                if m.name in need:
                    img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
                    a = np.asarray(img, dtype=np.uint8)
                    if a.shape != (32, 32, 3):
                        raise SourceMissing(f"{self.tarball}: {m.name} is {a.shape}, not 32x32 RGB")
                    self.cache[m.name] = a
        lost = need - self.cache.keys()
        if lost:
            raise SourceMissing(f"{self.tarball}: {len(lost)} members vanished between passes")

    def load(self, split, indices):
        indices = np.asarray(indices, dtype=np.int64)
        self.prefetch({split: indices})
        out = np.empty((len(indices), 32, 32, 3), dtype=np.uint8)
        for row, i in enumerate(indices.tolist()):
            out[row] = self.cache[self.names[split][i]]
        return out


# ----------------------------------------------------------------------------------------------
# Sampling

def balanced_counts(available, total):
    """Per-class counts summing to min(total, sum(available)), as equal as availability allows.

    Water-filling: each round splits what is left equally over the classes that still have images
    (the remainder going to the lowest class ids); a class that runs out passes its deficit on.
    """
    available = np.asarray(available, dtype=np.int64)
    counts = np.zeros_like(available)
    left = int(min(total, available.sum()))
    active = [c for c in range(len(available)) if available[c] > 0]
    while left > 0 and active:
        base, extra = divmod(left, len(active))
        for i, c in enumerate(active):
            give = int(min(base + (i < extra), available[c] - counts[c]))
            counts[c] += give
            left -= give
        active = [c for c in active if counts[c] < available[c]]
    return counts


def draw(labels, pool_mask, counts, rng):
    """Per class c, counts[c] random indices i with labels[i] == c and pool_mask[i] set.

    Returns a list of index arrays (one per class, each in random order)."""
    groups = []
    for c, k in enumerate(counts):
        candidates = np.flatnonzero(pool_mask & (labels == c))
        if k > len(candidates):
            raise ValueError(f"class {c}: {k} images asked for, {len(candidates)} in the pool")
        groups.append(rng.choice(candidates, size=int(k), replace=False))
    return groups


def interleave(groups, rng):
    """Round-robin over the groups (random group order each round): every prefix keeps the mix."""
    out = []
    for r in range(max((len(g) for g in groups), default=0)):
        live = [g for g in groups if r < len(g)]
        for j in rng.permutation(len(live)):
            out.append(live[j][r])
    return np.array(out, dtype=np.int64)


def class_counts(labels, k):
    return [int(n) for n in np.bincount(labels, minlength=k)]


def plan_scenario(spec, scenario, train_labels, n_train, rng):
    """Choose the field rows and the training rows of one scenario (indices into the train pool).

    Returns (field_idx in field order, train_idx shuffled, info dict for scenario.json)."""
    k = len(spec["classes"])
    everything = np.ones(len(train_labels), dtype=bool)
    available = np.bincount(train_labels, minlength=k)
    info = {}
    if scenario == "pair":
        a, b = spec["pair"]
        per = np.zeros(k, dtype=np.int64)
        per[a] = FIELD_SIZE // 2
        per[b] = FIELD_SIZE - FIELD_SIZE // 2
        groups = draw(train_labels, everything, per, rng)
        field = interleave([groups[a], groups[b]], rng)
        info["classes_involved"] = [a, b]
    elif scenario == "shift":
        per = balanced_counts(available, FIELD_SIZE)
        field = interleave(draw(train_labels, everything, per, rng), rng)
        info["classes_involved"] = list(range(k))
    else:  # rare
        r = spec["rare"]
        per = np.zeros(k, dtype=np.int64)
        per[r] = FIELD_SIZE
        field = interleave(draw(train_labels, everything, per, rng), rng)
        info["classes_involved"] = [r]
    if len(field) != FIELD_SIZE:
        raise ValueError(f"field set of {len(field)} images, {FIELD_SIZE} expected")

    pool = everything.copy()
    pool[field] = False
    left = np.bincount(train_labels[pool], minlength=k)
    counts = balanced_counts(left, n_train)
    if scenario == "rare":
        r = spec["rare"]
        share = int(counts[r])
        counts[r] = max(1, int(round(RARE_FRACTION * share)))
        info["rare_class"] = {"class": r, "balanced_share": share, "kept": int(counts[r]),
                              "fraction": RARE_FRACTION}
    if counts.sum() < n_train and scenario != "rare":
        print(f"warning: {spec['name']}-{scenario}: only {counts.sum()} training images "
              f"available of {n_train} asked for", file=sys.stderr)
    train = np.concatenate(draw(train_labels, pool, counts, rng))
    train = train[rng.permutation(len(train))]
    assert not np.intersect1d(train, field).size
    return field, train, info


# ----------------------------------------------------------------------------------------------
# Corruptions (shift scenario)

def gaussian_kernel(sigma=BLUR_SIGMA, radius=BLUR_RADIUS):
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-x * x / (2.0 * sigma * sigma))
    return k / k.sum()


def blur(x):
    """Separable Gaussian blur of a batch (n, H, W[, C]) of float images, reflect padding."""
    kern = gaussian_kernel()
    r = BLUR_RADIUS
    for axis in (1, 2):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (r, r)
        p = np.pad(x, pad, mode="reflect")
        n = x.shape[axis]
        x = sum(w * np.take(p, np.arange(j, j + n), axis=axis) for j, w in enumerate(kern))
    return x


def corrupt(images, codes, rng):
    """Apply corruption codes[i] to images[i] (uint8 in, uint8 out)."""
    out = images.astype(np.float64)
    spatial = tuple(range(1, images.ndim))
    sel = codes == 0
    out[sel] += rng.normal(0.0, NOISE_SIGMA, size=out[sel].shape)
    sel = codes == 1
    out[sel] = blur(out[sel])
    sel = codes == 2
    m = out[sel].mean(axis=spatial, keepdims=True)
    out[sel] = m + CONTRAST_FACTOR * (out[sel] - m)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Output

def to_json(value, indent=0):
    """JSON text with objects indented and lists of scalars kept on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {to_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}" if items else "{}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + to_json(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value)


def save(directory, **arrays):
    os.makedirs(directory, exist_ok=True)
    for name, a in arrays.items():
        np.save(os.path.join(directory, name + ".npy"), np.ascontiguousarray(a))


def build_scenario(spec, scenario, src, plan, test_idx, seed, out_root):
    """Write OUT/<dataset>-<scenario>/ from plan = (rng, field_idx, train_idx, info), the rng
    being the scenario's stream after plan_scenario; return the summary line."""
    start = time.time()
    name = f"{spec['name']}-{scenario}"
    k = len(spec["classes"])
    rng, field_idx, train_idx, info = plan
    y_field = src.labels["train"][field_idx]
    x_field = src.load("train", field_idx)
    codes = None
    if scenario == "shift":
        codes = (np.arange(len(field_idx)) % len(CORRUPTIONS)).astype(np.int8)
        x_field = corrupt(x_field, codes, rng)
    x_train, y_train = src.load("train", train_idx), src.labels["train"][train_idx]
    x_test, y_test = src.load("test", test_idx), src.labels["test"][test_idx]

    # Write into a temporary directory, then swap it in, so a failed run leaves no half scenario.
    final = os.path.join(out_root, name)
    tmp = os.path.join(out_root, f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for size in (FIELD_SIZE, FIELD_SMALL):
        extra = {} if codes is None else {"corruption": codes[:size]}
        save(os.path.join(tmp, f"field-{size}"), x_field=x_field[:size], y_field=y_field[:size],
             **extra)

    classes = spec["classes"]
    desc = {
        "dataset": spec["name"],
        "scenario": scenario,
        "format": "npy",
        "description": {
            "pair": "confused pair: field images of two classes the model mixes up",
            "shift": "corrupted inputs: field images of all classes, one corruption each",
            "rare": "under-represented class: rare in training, the whole field set",
        }[scenario],
        "classes": classes,
        "classes_involved": info["classes_involved"],
        "classes_involved_names": [classes[c] for c in info["classes_involved"]],
        "image_shape": list(x_train.shape[1:]),
        "source": src.source,
        "seed": seed,
        "rng_stream": {"scenario": [seed, spec["id"], SCENARIOS[scenario]],
                       "test_subset": [seed, spec["id"], TEST_STREAM],
                       "generator": "numpy.random.default_rng"},
        "counts": {
            "train": {"total": len(y_train), "per_class": class_counts(y_train, k)},
            "test": {"total": len(y_test), "per_class": class_counts(y_test, k)},
            f"field-{FIELD_SIZE}": {"total": FIELD_SIZE,
                                    "per_class": class_counts(y_field, k)},
            f"field-{FIELD_SMALL}": {"total": FIELD_SMALL,
                                     "per_class": class_counts(y_field[:FIELD_SMALL], k)},
        },
        "splits": "field images come from the official training pool and are not in x_train; "
                  "x_test is a class-balanced subset of the official test set, never corrupted; "
                  f"field-{FIELD_SMALL} is the first {FIELD_SMALL} rows of field-{FIELD_SIZE}",
        "corruptions": [],
    }
    if scenario == "shift":
        desc["corruptions"] = CORRUPTIONS
        desc["corruption_file"] = "field-*/corruption.npy (int8 code per row; row i has i mod 3)"
        for size in (FIELD_SIZE, FIELD_SMALL):
            desc["counts"][f"field-{size}"]["per_corruption"] = \
                [int(n) for n in np.bincount(codes[:size], minlength=len(CORRUPTIONS))]
    if scenario == "rare":
        desc["rare_class"] = info["rare_class"]
    with open(os.path.join(tmp, "scenario.json"), "w") as f:
        f.write(to_json(desc) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)

    involved = ", ".join(f"{c} {classes[c]}" for c in info["classes_involved"]) \
        if scenario != "shift" else "all 10"
    return (f"{name}: train {len(y_train)}, test {len(y_test)}, field-{FIELD_SIZE} {FIELD_SIZE}, "
            f"field-{FIELD_SMALL} {FIELD_SMALL} (classes {involved}) -> {final} "
            f"[{time.time() - start:.1f} s]")


def test_subset(spec, labels, n_test, seed):
    """The dataset's test rows: class balanced, shared by all its scenarios, shuffled."""
    rng = np.random.default_rng([seed, spec["id"], TEST_STREAM])
    k = len(spec["classes"])
    counts = balanced_counts(np.bincount(labels, minlength=k), n_test)
    idx = np.concatenate(draw(labels, np.ones(len(labels), dtype=bool), counts, rng))
    return idx[rng.permutation(len(idx))]


# ----------------------------------------------------------------------------------------------

def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(
        description="Build the field-repair scenarios (pair, shift, rare) of Fashion-MNIST and "
                    "CIFAR-10 as NumPy datasets: OUT/<dataset>-<scenario>/{x,y}_{train,test}.npy, "
                    "field-1000/ and field-200/ ({x,y}_field.npy), scenario.json.",
        epilog="Exit status: 0 done, 2 bad arguments, 3 a required source is missing.")
    p.add_argument("--out", required=True, help="output directory (created if needed)")
    p.add_argument("--datasets", default="fashion,cifar10",
                   help="comma-separated subset of: fashion,cifar10 (default: both)")
    p.add_argument("--scenarios", default="pair,shift,rare",
                   help="comma-separated subset of: pair,shift,rare (default: all)")
    p.add_argument("--seed", type=int, default=0, help="source seed (default 0)")
    p.add_argument("--fashion-train", type=int, default=12000, metavar="N",
                   help="Fashion-MNIST training images kept after removing the field images, "
                        "class balanced (default 12000)")
    p.add_argument("--fashion-test", type=int, default=10000, metavar="N",
                   help="Fashion-MNIST test images, class balanced (default 10000 = all)")
    p.add_argument("--cifar-train", type=int, default=10000, metavar="N",
                   help="CIFAR-10 training images (default 10000)")
    p.add_argument("--cifar-test", type=int, default=10000, metavar="N",
                   help="CIFAR-10 test images (default 10000 = all)")
    p.add_argument("--cifar-tarball",
                   default=os.environ.get("CIFAR10_JPEG") or
                   os.path.join(here, "..", "..", "shared", "data", "cifar10-jpeg.tar.gz"),
                   help="CIFAR-10 JPEG tarball (default $CIFAR10_JPEG, else "
                        "../shared/data/cifar10-jpeg.tar.gz beside the repository)")
    a = p.parse_args(argv)

    def subset(value, allowed, what):
        items = [s.strip() for s in value.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if bad or not items:
            p.error(f"--{what}: {', '.join(bad) or 'empty'}; choose from {','.join(allowed)}")
        return [s for s in allowed if s in items]   # canonical order, no duplicates

    a.datasets = subset(a.datasets, list(DATASETS), "datasets")
    a.scenarios = subset(a.scenarios, list(SCENARIOS), "scenarios")
    if a.seed < 0:
        p.error("--seed must be 0 or more")
    for opt in ("fashion_train", "fashion_test", "cifar_train", "cifar_test"):
        if getattr(a, opt) < 1:
            p.error(f"--{opt.replace('_', '-')} must be 1 or more")
    return a


def main(argv=None):
    a = parse_args(argv)
    began = time.time()
    os.makedirs(a.out, exist_ok=True)
    built = 0
    missing = []
    for ds in a.datasets:
        spec = dict(DATASETS[ds], name=ds)
        t0 = time.time()
        try:
            if ds == "fashion":
                src = FashionSource()
                n_train, n_test = a.fashion_train, a.fashion_test
            else:
                if not os.path.isfile(a.cifar_tarball):
                    raise SourceMissing(f"CIFAR-10: {a.cifar_tarball} not found (set CIFAR10_JPEG "
                                        "or --cifar-tarball to the CIFAR-10 JPEG tarball)")
                src = CifarJpegSource(a.cifar_tarball)
                n_train, n_test = a.cifar_train, a.cifar_test
        except SourceMissing as e:
            print(f"field-scenarios: skipping {ds}: {e}", file=sys.stderr)
            missing.append(ds)
            continue
        # Choose every scenario's rows first (each from its own rng stream) ...
        test_idx = test_subset(spec, src.labels["test"], n_test, a.seed)
        plans = {}
        for sc in a.scenarios:
            rng = np.random.default_rng([a.seed, spec["id"], SCENARIOS[sc]])
            plans[sc] = (rng,) + plan_scenario(spec, sc, src.labels["train"], n_train, rng)
        # ... so that CIFAR-10 decodes all the images they need in one more pass over the tarball.
        if isinstance(src, CifarJpegSource):
            used = np.concatenate([np.concatenate(p[1:3]) for p in plans.values()])
            src.prefetch({"train": np.unique(used), "test": test_idx})
        print(f"{ds}: source read in {time.time() - t0:.1f} s ({src.source})", flush=True)
        for sc in a.scenarios:
            print(build_scenario(spec, sc, src, plans[sc], test_idx, a.seed, a.out), flush=True)
            built += 1
    print(f"field-scenarios: {built} scenario directories in {a.out} "
          f"[{time.time() - began:.1f} s]")
    if missing and built == 0:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
