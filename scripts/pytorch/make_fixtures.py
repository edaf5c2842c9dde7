#!/usr/bin/env python3
"""Write the TorchScript test fixtures for the ways people really save PyTorch classifiers.

  export PYTHONHASHSEED=0
  /usr/bin/python3 scripts/pytorch/make_fixtures.py --out-dir tests/fixtures
  /usr/bin/python3 scripts/pytorch/make_fixtures.py --out-dir /tmp/fx --only frozen tied

export_torchscript.py writes clean models (a plain CNN, BatchNorm + Dropout). Users' files are less
tidy; this script writes one small file per habit that a tool loading `torch.jit.load` files has to
survive, or refuse with a clear message. All take N x 1 x 16 x 16 float input (the `nonsquare` one
N x 1 x 16 x 24) and give 4 classes, are compiled with torch.jit.script and saved in eval mode:

  frozen        conv 3x3 8, BN, ReLU, pool, conv 3x3 8, BN, ReLU, pool, fc 16, fc 4, with
                requires_grad=False on both convs' and both BatchNorms' parameters (the usual
                "frozen feature extractor, trainable head"). torch.jit.save records requires_grad
                per tensor; the script checks that torch.jit.load gives the flags back.
  tuple-out     forward returns a tuple (logits, features) (features: the 16 hidden units).
  dict-out      forward returns Dict[str, Tensor] {"logits": ..., "features": ...}.
  groupnorm     GroupNorm(2, 8) instead of BatchNorm (no running statistics, same in train and eval).
  layernorm     LayerNorm(128) over the flattened features, before the head.
  intbuf        an int64 buffer `perm` (a fixed random permutation of the 8 channels, applied with
                index_select between the two convs: the logits depend on it) and an int64 scalar
                buffer `steps` that forward increments in training mode (a step counter), plus a
                BatchNorm (whose num_batches_tracked is the usual integer buffer). Averaging or
                "adjusting" `perm` like a weight destroys the function.
  nonsquare     input N x 1 x 16 x 24 (height 16, width 24).
  tied          Linear layers `a` and `b` of the same shape with `b.weight = a.weight` (weight
                tying), both used in forward. The scripted module's named_parameters() lists the
                shared tensor once (as `a.weight`), its state_dict() under both names; after
                torch.jit.load both attributes are the same tensor object (checked).
  nograd        forward standardises each input and runs the stem conv under `with torch.no_grad():`
                (the stem's parameters still have requires_grad=True but never get a gradient).
  gpu-saved     the file torch.jit.save writes for a module on cuda:0: every storage's persistent id
                in data.pkl names the location "cuda:0" (the bytes are the same). This machine has
                no GPU, so the script saves the module on the CPU and rewrites the location strings
                of the pickled persistent ids (see rewrite_locations), re-writing the archive with
                PyTorch's own zip writer (same layout and 64-byte alignment as torch.jit.save).
                torch.jit.load(f, map_location="cpu") loads it; torch.jit.load(f) fails on a
                machine without CUDA.
  cuda-in-forward
                forward creates a tensor with a hard-coded device="cuda" (common in user code): the
                file loads anywhere, but a forward on a CPU-only machine fails. No logits file.
  view-flatten  the gpu-saved layers, flattened with x.view(x.size(0), -1) (needs NCHW activations).
  tensor-attr   the gpu-saved layers after (x - self.mean) / self.std, with mean and std plain tensor
                attributes (neither parameters nor buffers: PyTorch's .to() leaves them behind).
  rmsnorm       nn.RMSNorm(128) before the head: PyTorch 2.4 and later only (skipped before); its
                scripted code calls aten::rms_norm, which LibTorch 1.13 does not have.

For each file the script checks, and exits 1 if a check fails: the reloaded file gives the eager
model's eval-mode output on a seeded random batch (bitwise or within 1e-6), the same state_dict
names and values, training == False in every submodule, and the fixture's own property above.
With --logits (the default) it writes NAME.logits.txt next to each file: the eval-mode logits for
the deterministic batch

  torch.arange(2*C*H*W, dtype=torch.float32).reshape(2, C, H, W) / 512.0 - 0.25

one line per input, space-separated, 9 significant digits (tests/fixtures/README.md); for
tuple-out and dict-out, the logits element.

Every model is built right after torch.manual_seed(--seed), so each file's weights depend only on
the seed and the PyTorch version, not on which others are written. For byte-identical files set
PYTHONHASHSEED=0 (Python's string hashing otherwise reorders the constant declarations in the saved
code) and run from a checkout at the same path (code/*.debug_pkl records the source file's path).

With Debian's python3-torch (PyTorch 1.13; run with /usr/bin/python3) it writes tests/fixtures,
which LibTorch 1.13 and every later one load; with PyTorch 2.15 (the venv of scripts/setup.sh
--torch pip) tests/fixtures/pytorch-2.15, the files users of a current PyTorch have.
"""

import argparse
import copy
import io
import os
import pickle
import pickletools
import sys
import time
import zipfile
from typing import Dict, Tuple

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit(f"{sys.argv[0]}: no torch in {sys.executable}; install Debian's python3-torch and "
             "run this with /usr/bin/python3")

CHECK_BATCH = 4      # random inputs of the eval checks
CHECK_SEED = 20240   # their generator's seed (fixed, independent of --seed)


def randomize_norm(*layers):
    """Non-trivial affine parameters (and running statistics) so that the logits depend on them."""
    with torch.no_grad():
        for m in layers:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


class FrozenNet(nn.Module):
    """Frozen feature extractor (convs + BatchNorms, requires_grad=False), trainable 2-layer head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc1 = nn.Linear(128, 16)
        self.fc2 = nn.Linear(16, 4)
        randomize_norm(self.bn1, self.bn2)
        for m in (self.conv1, self.bn1, self.conv2, self.bn2):
            for p in m.parameters():
                p.requires_grad_(False)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class TupleOutNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc1 = nn.Linear(128, 16)
        self.fc2 = nn.Linear(16, 4)

    def features(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x) -> Tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.fc2(f), f


class DictOutNet(TupleOutNet):
    def forward(self, x) -> Dict[str, torch.Tensor]:
        f = self.features(x)
        return {"logits": self.fc2(f), "features": f}


class GroupNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.gn1 = nn.GroupNorm(2, 8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.gn2 = nn.GroupNorm(2, 8)
        self.fc = nn.Linear(128, 4)
        randomize_norm(self.gn1, self.gn2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.gn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.gn2(self.conv2(x))), 2)
        return self.fc(x.flatten(1))


class LayerNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.ln = nn.LayerNorm(128)
        self.fc1 = nn.Linear(128, 16)
        self.fc2 = nn.Linear(16, 4)
        randomize_norm(self.ln)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(self.ln(x.flatten(1)))))


class IntBufNet(nn.Module):
    """BatchNorm plus two integer buffers of the model's own: `perm` (used by every forward) and
    `steps` (incremented by every training-mode forward)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(128, 4)
        randomize_norm(self.bn1)
        self.register_buffer("perm", torch.randperm(8))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        if self.training:
            self.steps.add_(1)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = x.index_select(1, self.perm)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


class NonSquareNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 6, 4)
        randomize_norm(self.bn1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


class TiedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc_in = nn.Linear(64, 16)
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.b.weight = self.a.weight   # tied: one tensor, two names; b keeps its own bias
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        x = F.max_pool2d(F.max_pool2d(F.relu(self.conv1(x)), 2), 2)
        h = F.relu(self.fc_in(x.flatten(1)))
        h = F.relu(self.a(h))
        h = F.relu(self.b(h))
        return self.out(h)


class NoGradNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(128, 4)

    def forward(self, x):
        with torch.no_grad():
            x = (x - x.mean(dim=[1, 2, 3], keepdim=True)) / (x.std(dim=[1, 2, 3], keepdim=True) + 1e-5)
            x = F.max_pool2d(F.relu(self.stem(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


class PlainBnNet(nn.Module):
    """conv 8, BN, ReLU, pool, conv 8, BN, ReLU, pool, fc 4 (the gpu-saved module)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(128, 4)
        randomize_norm(self.bn1, self.bn2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(x.flatten(1))


class CudaInForwardNet(PlainBnNet):
    def forward(self, x):
        shift = torch.full([1, 1, 1, 1], 0.5, device="cuda")   # hard-coded device
        x = x - shift
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(x.flatten(1))


class ViewFlattenNet(PlainBnNet):
    """The same layers, flattened with x.view(x.size(0), -1), as many user models do: a view needs
    NCHW-contiguous activations, so a tool must not hand this forward channels-last ones."""

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(x.view(x.size(0), -1))


class TensorAttrNet(PlainBnNet):
    """The PlainBnNet layers after a per-channel standardisation whose constants are plain tensor
    attributes (`self.mean = torch.tensor(...)`: neither parameters nor buffers, a common habit).
    PyTorch's own .to(device) leaves such attributes where they are; a forward on a GPU then mixes
    devices unless the tool moves them too."""

    def __init__(self):
        super().__init__()
        self.mean = torch.tensor([0.25]).reshape(1, 1, 1, 1)
        self.std = torch.tensor([0.5]).reshape(1, 1, 1, 1)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(x.flatten(1))


class RmsNormNet(nn.Module):
    """conv 8, ReLU, pool, conv 8, ReLU, pool, RMSNorm(128), fc 4: nn.RMSNorm came with PyTorch 2.4,
    so its scripted code calls aten::rms_norm, an operator LibTorch 1.13 does not have. The file a
    user of a current PyTorch saves that an older LibTorch cannot load."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.norm = nn.RMSNorm(128)
        self.fc = nn.Linear(128, 4)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(self.norm(x.flatten(1)))


# name -> (class, (C, H, W)); the file is NAME-CxHxW-4.pt
FIXTURES = {
    "frozen": (FrozenNet, (1, 16, 16)),
    "tuple-out": (TupleOutNet, (1, 16, 16)),
    "dict-out": (DictOutNet, (1, 16, 16)),
    "groupnorm": (GroupNormNet, (1, 16, 16)),
    "layernorm": (LayerNormNet, (1, 16, 16)),
    "intbuf": (IntBufNet, (1, 16, 16)),
    "nonsquare": (NonSquareNet, (1, 16, 24)),
    "tied": (TiedNet, (1, 16, 16)),
    "nograd": (NoGradNet, (1, 16, 16)),
    "gpu-saved": (PlainBnNet, (1, 16, 16)),
    "cuda-in-forward": (CudaInForwardNet, (1, 16, 16)),
    "view-flatten": (ViewFlattenNet, (1, 16, 16)),
    "tensor-attr": (TensorAttrNet, (1, 16, 16)),
    "rmsnorm": (RmsNormNet, (1, 16, 16)),
}
# Fixtures that need a newer PyTorch than the one running (skipped there, with a message).
NEEDS_TORCH = {"rmsnorm": (2, 4)}


def file_stem(name):
    c, h, w = FIXTURES[name][1]
    return f"{name}-{c}x{h}x{w}-4"


def logits_of(out):
    if isinstance(out, tuple):
        return out[0]
    if isinstance(out, dict):
        return out["logits"]
    return out


def logits_batch(c, h, w):
    return torch.arange(2 * c * h * w, dtype=torch.float32).reshape(2, c, h, w) / 512.0 - 0.25


# --- gpu-saved: rewrite the storages' locations in the pickles --------------------------------

STRING_OPS = ("BINUNICODE", "SHORT_BINUNICODE", "UNICODE", "BINUNICODE8")
MEMO_PUT = ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE")
MEMO_GET = ("BINGET", "LONG_BINGET", "GET")


def rewrite_locations(data, location):
    """The pickle `data` (as torch.jit.save's C++ pickler writes it: protocol 2, strings memoized)
    with the location string of every storage persistent id, the tuple
        ('storage', torch.<T>Storage, key, location, numel)
    that BINPERSID consumes, set to `location`. The pickler writes each distinct string once
    (BINUNICODE + BINPUT) and refers to it afterwards with BINGET, so the string ops that first
    spelled a location are rewritten in place; memo indices, and so every later BINGET, are
    unchanged. Refuses (ValueError) if such a string is also used outside a location slot."""
    ops = list(pickletools.genops(data))
    memo = {}          # memo index -> position of the string op stored there (None: not a string)
    src = []           # per op: position of the string op whose value it pushes, else None
    for op, arg, pos in ops:
        if op.name in STRING_OPS:
            src.append(pos)
        elif op.name in MEMO_GET:
            src.append(memo.get(arg))
        else:
            if op.name == "MEMOIZE":
                raise ValueError("MEMOIZE (protocol 4) not expected in a TorchScript pickle")
            if op.name in MEMO_PUT:
                memo[arg] = src[-1] if src else None   # the value just pushed
            src.append(None)
    strings = {pos: arg for op, arg, pos in ops if op.name in STRING_OPS}
    # The ops that push stack items (memo puts push nothing), in order.
    pushes = [i for i, (op, _, _) in enumerate(ops) if op.name not in MEMO_PUT]
    loc_positions, loc_slots = set(), set()
    for j, i in enumerate(pushes):
        if ops[i][0].name != "BINPERSID":
            continue
        # MARK, 'storage', GLOBAL torch.<T>Storage (or BINGET of it), key, location, numel, TUPLE
        win = pushes[j - 7:j]
        storage = src[win[1]] if len(win) == 7 else None
        if (len(win) != 7 or ops[win[0]][0].name != "MARK" or ops[win[6]][0].name != "TUPLE"
                or strings.get(storage) != "storage"):
            raise ValueError(f"unexpected persistent id layout before byte {ops[i][2]}")
        if src[win[4]] is None:
            raise ValueError(f"persistent id before byte {ops[i][2]} has no string location")
        loc_positions.add(src[win[4]])
        loc_slots.add(win[4])
    other = [ops[i][2] for i in pushes if src[i] in loc_positions and i not in loc_slots]
    if other:
        raise ValueError(f"a location string is also used elsewhere (bytes {other})")
    out, done = bytearray(), 0
    enc = location.encode("utf-8")
    for op, arg, pos in ops:
        if pos not in loc_positions:
            continue
        if op.name == "SHORT_BINUNICODE":
            new, old_len = op.code.encode() + bytes([len(enc)]) + enc, 2 + len(arg.encode())
        elif op.name == "BINUNICODE":
            new, old_len = op.code.encode() + len(enc).to_bytes(4, "little") + enc, 5 + len(arg.encode())
        else:
            raise ValueError(f"location written with {op.name}")
        out += data[done:pos] + new
        done = pos + old_len
    out += data[done:]
    return bytes(out)


class _Stub:
    """Stands for any class in a pickle: records its name, accepts any state."""
    def __init__(self, *args):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class PidRecorder(pickle.Unpickler):
    """Unpickles a TorchScript pickle without torch, recording every persistent id."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.pids = []

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        return type(f"{module}.{name}", (_Stub,), {})

    def persistent_load(self, pid):
        self.pids.append(tuple(x if isinstance(x, (str, int)) else x.__name__ for x in pid))
        return None


def persistent_ids(data):
    u = PidRecorder(data)
    u.load()
    return u.pids


def write_as_saved_on(src, dst, location):
    """Copy the TorchScript archive `src` to `dst` with every storage's location in data.pkl and
    constants.pkl set to `location` (what torch.jit.save records for tensors on that device),
    written with PyTorch's zip writer in the original record order."""
    reader = torch._C.PyTorchFileReader(src)
    with zipfile.ZipFile(src) as z:
        names = z.namelist()
    prefix = names[0].split("/", 1)[0] + "/"
    records = [n[len(prefix):] for n in names]
    version = int(bytes(reader.get_record("version")).decode().strip())
    changed = {}
    writer = torch._C.PyTorchFileWriter(dst)
    writer.set_min_version(version)
    for rec in records:
        if rec == "version":            # the writer writes it at the end, as torch.jit.save does
            continue
        data = bytes(reader.get_record(rec))
        if rec in ("data.pkl", "constants.pkl"):
            new = rewrite_locations(data, location)
            changed[rec] = (persistent_ids(data), persistent_ids(new))
            data = new
        writer.write_record(rec, data, len(data))
    writer.write_end_of_file()
    return changed


# --- checks ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="tests/fixtures", help="where to write the files")
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed before building each model")
    ap.add_argument("--only", nargs="+", choices=list(FIXTURES), metavar="NAME",
                    help=f"write only these ({', '.join(FIXTURES)})")
    ap.add_argument("--no-logits", dest="logits", action="store_false",
                    help="do not write the NAME.logits.txt files")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    failures = []

    def check(ok, text):
        print(f"  check {'ok' if ok else 'FAIL'}: {text}")
        if not ok:
            failures.append(text)

    def close(a, b):
        return torch.allclose(a, b, rtol=1e-5, atol=1e-6)

    for name in args.only or FIXTURES:
        t0 = time.perf_counter()
        cls, (c, h, w) = FIXTURES[name]
        need = NEEDS_TORCH.get(name)
        have = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
        if need and have < need:
            print(f"{name}: skipped (needs PyTorch {need[0]}.{need[1]} or later; this is {torch.__version__})")
            continue
        path = os.path.join(args.out_dir, file_stem(name) + ".pt")
        torch.manual_seed(args.seed)
        eager = cls().eval()
        scripted = torch.jit.script(copy.deepcopy(eager))
        scripted.eval()
        if name == "gpu-saved":
            tmp = path + ".cpu.tmp"
            torch.jit.save(scripted, tmp)
            changed = write_as_saved_on(tmp, path, "cuda:0")
            os.remove(tmp)
        else:
            torch.jit.save(scripted, path)
        params = sum(p.numel() for p in eager.parameters())
        print(f"{name}: {cls.__name__}, input (N, {c}, {h}, {w}), wrote {path} "
              f"({os.path.getsize(path):,} bytes), {params:,} parameters")
        x = torch.randn(CHECK_BATCH, c, h, w, generator=torch.Generator().manual_seed(CHECK_SEED))

        if name == "cuda-in-forward":
            loaded = torch.jit.load(path)
            check(not loaded.training, "loads; saved in eval mode")
            try:
                loaded(x)
                check(torch.cuda.is_available(), "forward on the CPU fails")
            except Exception as e:  # noqa: BLE001 - any error is the point
                msg = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                why = next((ln for ln in msg if "Could not run" in ln or "CUDA" in ln), msg[0] if msg else "")
                print(f"  forward: {type(e).__name__}: {why}")
                check(not torch.cuda.is_available(), "forward on a CPU-only machine fails")
            print(f"  time {time.perf_counter() - t0:.2f} s")
            continue

        if name == "gpu-saved":
            for rec, (before, after) in changed.items():
                locs = sorted({p[3] for p in after})
                print(f"  {rec}: {len(after)} storages, locations now {locs}")
                if not after:
                    continue
                check(len(before) == len(after)
                      and all(b[:3] + b[4:] == a[:3] + a[4:] for b, a in zip(before, after))
                      and all(a[3] == "cuda:0" for a in after),
                      f"{rec}: only the storages' locations changed, all to cuda:0")
            try:
                torch.jit.load(path)
                check(torch.cuda.is_available(), "torch.jit.load without map_location fails here")
            except Exception as e:  # noqa: BLE001
                msg = str(e).strip().splitlines()
                print(f"  torch.jit.load(f): {type(e).__name__}: {msg[0] if msg else ''}")
                check(True, "torch.jit.load without map_location fails on this CPU-only machine")
            loaded = torch.jit.load(path, map_location="cpu")
        else:
            loaded = torch.jit.load(path)

        with torch.no_grad():
            want = logits_of(eager(x))
            got = logits_of(loaded(x))
            check(close(got, want), "reloaded == eager, eval mode: max |diff| "
                  f"{(got - want).abs().max().item():.3g}" + (" (bitwise)" if torch.equal(got, want) else ""))
            if name in ("tuple-out", "dict-out"):
                out = loaded(x)
                fe = eager.features(x)
                ff = out[1] if name == "tuple-out" else out["features"]
                check(torch.equal(ff, fe) or close(ff, fe), f"features output {tuple(ff.shape)} == eager")
            sd_e, sd_l = eager.state_dict(), loaded.state_dict()
            check(list(sd_e) == list(sd_l) and all(torch.equal(sd_e[k], sd_l[k]) for k in sd_e),
                  f"state_dict: {len(sd_l)} tensors, same names, order and values as eager")
            check(not any(m.training for m in loaded.modules()), "saved in eval mode (every submodule)")
            check(tuple(got.shape) == (CHECK_BATCH, 4), "logits shape (N, 4)")

        if name == "frozen":
            flags = {k: p.requires_grad for k, p in loaded.named_parameters()}
            want_flags = {k: p.requires_grad for k, p in eager.named_parameters()}
            print("  requires_grad after torch.jit.load: "
                  + ", ".join(f"{k}={v}" for k, v in flags.items()))
            check(flags == want_flags, "requires_grad flags survive torch.jit.save/load")
        if name == "tied":
            print(f"  scripted named_parameters: {[k for k, _ in scripted.named_parameters()]}")
            print(f"  loaded   named_parameters: {[k for k, _ in loaded.named_parameters()]}")
            print(f"  loaded   state_dict:       {list(loaded.state_dict())}")
            check(loaded.a.weight is loaded.b.weight, "after torch.jit.load a.weight is b.weight")
            check("b.weight" not in dict(loaded.named_parameters()),
                  "named_parameters lists the tied tensor once (as a.weight)")
            # Reference: one plain SGD step (lr 0.1, no momentum) on the deterministic batch.
            m = torch.jit.load(path)
            m.train()
            y = torch.tensor([0, 1])
            loss = F.cross_entropy(m(logits_batch(c, h, w)), y)
            loss.backward()
            g = m.a.weight.grad.clone()
            w0 = m.a.weight.detach().clone()
            with torch.no_grad():
                for p in m.parameters():     # each tensor once
                    p -= 0.1 * p.grad
            print(f"  one SGD step (lr 0.1, labels [0, 1], deterministic batch): |grad a.weight| "
                  f"{g.norm().item():.6g}, |delta| {(m.a.weight - w0).norm().item():.6g}")
        if name == "intbuf":
            m = torch.jit.load(path)
            check(m.perm.dtype == torch.int64 and not torch.equal(m.perm, torch.arange(8)),
                  f"perm is int64 and not the identity: {m.perm.tolist()}")
            with torch.no_grad():
                ident = torch.jit.load(path)
                ident.perm.copy_(torch.arange(8))
                check(not close(ident(x), m(x)), "the logits depend on perm")
                m.train()
                m(x)
                m(x)
            check(m.steps.item() == 2 and m.bn1.num_batches_tracked.item() == 2,
                  f"two train-mode forwards: steps {m.steps.item()}, "
                  f"bn1.num_batches_tracked {m.bn1.num_batches_tracked.item()}")
        if name == "nograd":
            m = torch.jit.load(path)
            m.train()
            F.cross_entropy(m(x), torch.tensor([0, 1, 2, 3])).backward()
            none = [k for k, p in m.named_parameters() if p.grad is None]
            print(f"  after backward, parameters without a gradient: {none}")
            check(none == ["stem.weight", "stem.bias"], "only the no_grad stem gets no gradient")
        if name == "tensor-attr":
            attrs = [k for k in ("mean", "std") if isinstance(getattr(loaded, k), torch.Tensor)]
            plain = not any(k in dict(loaded.named_buffers()) or k in dict(loaded.named_parameters())
                            for k in attrs)
            check(attrs == ["mean", "std"] and plain,
                  "mean and std are plain tensor attributes (neither parameters nor buffers)")
        if name in ("groupnorm", "layernorm"):
            m = torch.jit.load(path)
            with torch.no_grad():
                e = m(x)
                m.train()
                t = m(x)
            check(torch.equal(e, t), "train and eval mode compute the same function")

        if args.logits:
            with torch.no_grad():
                z = logits_of(loaded(logits_batch(c, h, w)))
            lpath = os.path.join(args.out_dir, file_stem(name) + ".logits.txt")
            with open(lpath, "w") as f:
                for row in z.tolist():
                    f.write(" ".join(f"{v:.9g}" for v in row) + "\n")
            print(f"  wrote {lpath}")
        print(f"  time {time.perf_counter() - t0:.2f} s")

    if failures:
        print(f"{len(failures)} check(s) FAILED", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
