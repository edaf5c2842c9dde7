#!/usr/bin/env python3
"""Peer for the side-by-side training benchmark: the same models in plain PyTorch, eager or compiled.

Needs PyTorch (Debian: `apt-get install python3-torch`, then run with /usr/bin/python3 if another
python3 comes first on PATH). The models come from ../pytorch/models.py, which mirrors
src/models/builtin.cpp name for name.

Data: N = batch * 8 random uint8 images and random labels, held on the device. One training step
indexes a random batch, converts it to float / 255 (the tool's "scale" normalisation), runs forward,
cross-entropy, backward and an SGD step (lr 0.01, momentum 0.9). Inference is the same gather and
scaling, then forward and argmax, in eval mode under torch.no_grad(). Each phase runs `warmup`
untimed steps, then `repeats` timed runs of `steps` steps (with torch.cuda.synchronize() before
and after each on CUDA); the median images/s over the repeats is reported.

--compile (PyTorch 2.x) runs the model through torch.compile (TorchInductor: C++/OpenMP kernels on
the CPU, Triton on CUDA) with its default mode; the warm-up steps include the compilation (about
a minute per model and mode on 2 CPU cores), which is not timed, and the time it took is reported
as warmup_seconds (train, then eval: each compiles once).

  peer_train.py --arch resnet20 --batch 128 [--precision fp32|bf16] [--device cpu|cuda]
                [--memory-format contiguous|channels_last]
                [--steps 20] [--repeats 5] [--warmup 3] [--input 3,32,32] [--classes 10]
                [--threads T] [--variant v1|preact] [--compile] [--json]
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pytorch"))
from models import ARCHS, make_model  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PyTorch eager peer for the training benchmark")
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--memory-format", default="contiguous", choices=("contiguous", "channels_last"),
                   help="weights and batches NCHW or NHWC (as apricot bench train --memory-format)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing each phase")
    p.add_argument("--input", default="3,32,32", help="input shape C,H,W")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--variant", default="v1", choices=("v1", "preact"), help="ResNet variant")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch 2.x, inductor)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    try:
        shape = tuple(int(v) for v in a.input.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        p.error(f"--input '{a.input}' is not C,H,W (for example 3,32,32)")
    a.shape = shape
    if a.batch < 1 or a.steps < 1 or a.repeats < 1 or a.warmup < 0 or a.classes < 2:
        p.error("need --batch, --steps, --repeats >= 1, --warmup >= 0, --classes >= 2")
    if a.threads is not None and a.threads < 1:
        p.error("--threads must be >= 1")
    return a


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, a, device, warmup_seconds=None):
    """Median images/s of `repeats` runs of `steps` calls of step(), after `warmup` calls (at least
    one; their wall time is appended to warmup_seconds)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(max(1, a.warmup)):
        step()
    sync(device)
    if warmup_seconds is not None:
        warmup_seconds.append(time.perf_counter() - t0)
    rates = []
    for _ in range(a.repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        sync(device)
        rates.append(a.steps * a.batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def run(a):
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch.cuda.is_available() is False")
    threads = a.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)

    c, h, w = a.shape
    fmt = torch.channels_last if a.memory_format == "channels_last" else torch.contiguous_format
    model = make_model(a.arch, c, h, w, a.classes, a.variant).to(device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    net = model
    if a.compile:
        if not hasattr(torch, "compile"):
            raise SystemExit(f"error: --compile needs PyTorch 2.x (this is {torch.__version__})")
        net = torch.compile(model)

    n = a.batch * 8
    images = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, device=device)
    labels = torch.randint(0, a.classes, (n,), dtype=torch.int64, device=device)
    bf16 = a.precision == "bf16"

    def batch():
        idx = torch.randint(0, n, (a.batch,), device=device)
        x = images.index_select(0, idx).float().div_(255.0).contiguous(memory_format=fmt)
        return x, labels.index_select(0, idx)

    def train_step():
        x, y = batch()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step():
        x, _ = batch()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            net(x).argmax(1)

    warmups = []
    model.train()
    train_rate = timed(train_step, a, device, warmups)
    model.eval()
    with torch.no_grad():
        infer_rate = timed(infer_step, a, device, warmups)

    return {
        "arch": a.arch,
        "batch": a.batch,
        "precision": a.precision,
        "memory_format": a.memory_format,
        "device": a.device,
        "train_images_per_s": round(train_rate, 1),
        "infer_images_per_s": round(infer_rate, 1),
        "peer": "pytorch-compile" if a.compile else "pytorch-eager",
        "warmup_seconds": [round(t, 2) for t in warmups],
        "torch_version": torch.__version__,
        "threads": threads,
        "input": list(a.shape),
        "classes": a.classes,
        "variant": a.variant,
        "steps": a.steps,
        "repeats": a.repeats,
        "warmup": a.warmup,
    }


def main(argv=None):
    a = parse_args(argv)
    r = run(a)
    if a.json:
        print(json.dumps(r))
    else:
        shape = "x".join(str(v) for v in a.shape)
        print(f"{r['peer']} {torch.__version__}: {r['arch']} {shape} batch {r['batch']} "
              f"{r['precision']} on {r['device']} ({r['threads']} threads): "
              f"train {r['train_images_per_s']:.1f} img/s, infer {r['infer_images_per_s']:.1f} img/s "
              f"(median of {a.repeats} x {a.steps} steps)")


if __name__ == "__main__":
    main()
