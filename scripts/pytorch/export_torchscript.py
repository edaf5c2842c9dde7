#!/usr/bin/env python3
"""Write an image classifier as a TorchScript file for apricot's `model.arch: torchscript`.

  /usr/bin/python3 scripts/pytorch/export_torchscript.py --model resnet18 --out resnet18.pt
  /usr/bin/python3 scripts/pytorch/export_torchscript.py --model vgg16_bn --out vgg16bn.pt \\
      --weights my_trained_vgg16bn_state_dict.pt
  /usr/bin/python3 scripts/pytorch/export_torchscript.py --model lenet5 --channels 1 --height 28 \\
      --width 28 --out lenet5.pt
  /usr/bin/python3 scripts/pytorch/export_torchscript.py --model cnn2 --seed 3 --out cnn2.pt
  /usr/bin/python3 scripts/pytorch/export_torchscript.py --model small --channels 1 --height 16 \\
      --width 16 --classes 4 --out small.pt --logits small.logits.txt
  /usr/bin/python3 scripts/pytorch/export_torchscript.py --model bn-dropout --channels 1 \\
      --height 16 --width 16 --classes 4 --trace --out traced.pt   # the trap, on purpose

Builds the model with torch.manual_seed(--seed) (or loads --weights, a state_dict saved with
torch.save(model.state_dict(), FILE)), compiles it with torch.jit.script, saves it with
torch.jit.save in eval mode, and checks the file:
  - the scripted module and the file reloaded with torch.jit.load give the eager model's eval-mode
    logits on a seeded random batch;
  - in train mode (on a fresh load, so the file is not touched) one forward moves every BatchNorm's
    running statistics, dropout draws a new mask per call, and the train-mode logits and the updated
    statistics are those of the eager model in train mode with the same RNG seed;
  - it prints the parameter count and the output shape of a forward pass on a zero batch of 2.
The exit status is 1 when a check fails (for a --trace file the train-mode checks are expected to
fail and only warn).

Why torch.jit.script and not torch.jit.trace: tracing runs forward once and records the operations
that ran, with every Python value folded into a constant, including `self.training`. A module traced
in eval mode always normalises with the running statistics and never drops units; one traced in
train mode always uses batch statistics and always drops. Calling .train()/.eval() on the traced
module flips its `training` attribute but the recorded graph never reads it, so the model silently
never trains (BatchNorm statistics frozen, no dropout) or never evaluates as it should.
torch.jit.script compiles the Python source instead, so BatchNorm and Dropout keep reading
`self.training` and the C++ module's train(bool)/eval() switch them as they should. --trace writes
a module traced in eval mode (the common mistake: model.eval(); torch.jit.trace(model, x)) so that
the tool's detection of the trap can be tested; it prints a warning.

Models (all take N x C x H x W float input and return N x classes logits):
  resnet18   torchvision's ResNet-18 adapted to 32x32 inputs as CIFAR-10 repair studies do: the first
             conv is 3x3 stride 1 (not 7x7 stride 2) and the max-pool is removed (nn.Identity), so
             a 32x32 input reaches layer4 as 4x4; 11,173,962 parameters for 3x32x32 and 10 classes.
  vgg16, vgg16_bn
             torchvision's VGG16 (without / with BatchNorm): the five max-pools take 32x32 to
             512x1x1, so avgpool (AdaptiveAvgPool2d((7, 7)) in torchvision, which would copy that one
             value 49 times) becomes AdaptiveAvgPool2d(1) - the identity on 32x32 inputs, an average
             on larger ones - and the 25088-4096-4096 classifier becomes Linear(512, 512), ReLU,
             Dropout(0.5), Linear(512, classes), initialised as torchvision does (normal(0, 0.01),
             zero bias). Needs inputs of at least 32x32. The first conv is rebuilt for --channels != 3.
  lenet5     LeNet-5 (LeCun et al. 1998) with ReLU and 2x2 max-pools: conv 5x5 6, pool, conv 5x5 16,
             pool, fc 120, fc 84, fc classes. The first conv pads by 2 when the input is smaller than
             32x32 (so 1x28x28 MNIST sees the 28x28 first feature map of the original's padded 32x32
             input); 61,706 parameters for 1x28x28 or 1x32x32 and 10 classes.
  small, cnn1, cnn2, cnn3, resnet20, resnet32
             the models.py twins of the tool's built-in architectures (same parameter names as in C++;
             --variant v1|preact for the ResNets). cnn2, cnn3 and the ResNets' forward use getattr with
             computed names, which TorchScript cannot compile; this file scripts a copy whose forward
             spells the same computation out (checked against the models.py forward on every export).
  bn-dropout a tiny test network with BatchNorm and Dropout (conv 3x3 8, BN, ReLU, pool, conv 3x3 16,
             BN, ReLU, pool, Dropout(0.5), fc): 2,324 parameters for 1x16x16 and 4 classes. Its
             BatchNorm weights, biases and running statistics start at seeded random values (not
             1, 0, 0, 1) so that the eval-mode logits depend on each of them.

--logits FILE writes the reloaded module's eval-mode logits for the deterministic batch
  torch.arange(2*C*H*W, dtype=torch.float32).reshape(2, C, H, W) / 512.0 - 0.25
one line per input, space-separated, 9 significant digits (enough to round-trip a float32), so that
C++ tests can check that they load the same function (tests/fixtures/README.md).

Reproducibility: the weights depend only on --seed (and PyTorch 1.13). For byte-identical files set
PYTHONHASHSEED=0 (Python's string hashing otherwise reorders the constant declarations in the saved
code) and run from a checkout at the same path (the saved debug info records source file paths).

Needs Debian's python3-torch and python3-torchvision (PyTorch 1.13; run with /usr/bin/python3): its
files load in the LibTorch 1.13 of Debian's libtorch-dev.
"""

import argparse
import copy
import os
import sys
import time
import warnings

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit(f"{sys.argv[0]}: no torch in {sys.executable}; install Debian's python3-torch and "
             "python3-torchvision and run this with /usr/bin/python3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

TORCHVISION = ("resnet18", "vgg16", "vgg16_bn")
MODELS = TORCHVISION + ("lenet5",) + models.ARCHS + ("bn-dropout",)
CHECK_BATCH = 4      # random inputs of the eval/train checks
CHECK_SEED = 20240   # their generator's seed (fixed, independent of --seed)


# --- scriptable twins of the models.py classes whose forward uses getattr(self, f"...") ---------
# Instances built by models.make_model get their class swapped to these subclasses (same __init__,
# same parameters), so their weights are exactly those of models.py for the same seed.

class Cnn2(models.Cnn2):
    def forward(self, x):
        x = self.bn1(F.elu(self.conv1(x)))
        x = models.pool(self.bn2(F.elu(self.conv2(x))))
        x = models.pool(self.bn3(F.elu(self.conv3(x))))
        x = self.bn4(F.elu(self.conv4(x)))
        x = models.pool(self.bn5(F.elu(self.conv5(x))))
        return self.fc(x.flatten(1))


class Cnn3(models.Cnn3):
    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = models.pool(F.relu(self.conv3(x)))
        x = F.relu(self.conv4(x))
        x = F.relu(self.conv5(x))
        x = models.pool(F.relu(self.conv6(x)))
        x = F.relu(self.conv7(x))
        return self.fc(x.mean((2, 3)))


class ResStack(models.ResStack):
    def forward(self, x):
        for block in self.children():  # block0, block1, ... in registration order
            x = block(x)
        return x


class ResNet(models.ResNet):
    def forward(self, x):
        x = self.conv1(x)
        if hasattr(self, "bn1"):         # v1 (resolved when compiling)
            x = F.relu(self.bn1(x))
        x = self.stack3(self.stack2(self.stack1(x)))
        if hasattr(self, "bn_final"):    # preact
            x = F.relu(self.bn_final(x))
        return self.fc(x.mean((2, 3)))


SCRIPTABLE = {models.Cnn2: Cnn2, models.Cnn3: Cnn3, models.ResStack: ResStack,
              models.ResNet: ResNet}


def scriptable_copy(model):
    twin = copy.deepcopy(model)
    for m in twin.modules():
        cls = SCRIPTABLE.get(type(m))
        if cls is not None:
            m.__class__ = cls
    return twin


# --- other models ------------------------------------------------------------------------------

class LeNet5(nn.Module):
    def __init__(self, channels, height, width, classes):
        super().__init__()
        pad = 2 if min(height, width) < 32 else 0
        h = ((height + 2 * pad - 4) // 2 - 4) // 2
        w = ((width + 2 * pad - 4) // 2 - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"lenet5 needs inputs of at least 12x12, got {height}x{width}")
        self.conv1 = nn.Conv2d(channels, 6, 5, padding=pad)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * h * w, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BnDropoutNet(nn.Module):
    """Tiny test network with BatchNorm (torch defaults: momentum 0.1, eps 1e-5) and Dropout."""

    def __init__(self, channels, height, width, classes):
        super().__init__()
        models.require_poolable(height, width, 2, "bn-dropout")
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(16 * (height // 4) * (width // 4), classes)
        # Non-trivial BatchNorm affine parameters and running statistics (not 1/0 and 0/1), so that
        # the eval-mode logits depend on every one of them and differ clearly from train mode's.
        with torch.no_grad():
            for bn in (self.bn1, self.bn2):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0.0, 0.1)
                bn.running_mean.normal_(0.0, 0.1)
                bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


def resnet18(channels, height, width, classes):
    import torchvision
    net = torchvision.models.resnet18(weights=None, num_classes=classes)
    net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    return net


def vgg16(channels, height, width, classes, batch_norm):
    import torchvision
    if height < 32 or width < 32:
        raise ValueError(f"vgg16 needs inputs of at least 32x32 (five 2x2 max-pools), "
                         f"got {height}x{width}")
    net = (torchvision.models.vgg16_bn if batch_norm else torchvision.models.vgg16)(weights=None)
    if channels != 3:
        net.features[0] = nn.Conv2d(channels, 64, 3, padding=1)
        nn.init.kaiming_normal_(net.features[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(net.features[0].bias)
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(0.5),
                                   nn.Linear(512, classes))
    for m in net.classifier:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return net


def build(name, channels, height, width, classes, variant):
    if min(channels, height, width, classes) < 1:
        raise ValueError("channels, height, width and classes must be positive")
    if name == "resnet18":
        return resnet18(channels, height, width, classes)
    if name in ("vgg16", "vgg16_bn"):
        return vgg16(channels, height, width, classes, name == "vgg16_bn")
    if name == "lenet5":
        return LeNet5(channels, height, width, classes)
    if name == "bn-dropout":
        return BnDropoutNet(channels, height, width, classes)
    return models.make_model(name, channels, height, width, classes, variant)


def load_weights(model, path):
    """Loads a state_dict (or a checkpoint dict holding one under 'state_dict', 'model_state_dict'
    or 'model', or a pickled whole module); a 'module.' prefix (DataParallel) is dropped."""
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"{path}: not a state_dict (a dict of parameter name -> tensor)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    want = model.state_dict()
    missing, extra = sorted(set(want) - set(obj)), sorted(set(obj) - set(want))
    if missing or extra:
        raise SystemExit(f"{path}: names differ from the model: missing {missing}, extra {extra}")
    for k, v in obj.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise SystemExit(f"{path}: '{k}' has shape {tuple(v.shape)}, the model needs "
                             f"{tuple(want[k].shape)} (check --channels/--height/--width/--classes)")
    model.load_state_dict(obj)


def count(model):
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return params, trainable, buffers


def bn_stats(module):
    """name -> clone of every BatchNorm statistic (running_mean/var, num_batches_tracked)."""
    return {k: v.clone() for k, v in module.named_buffers()
            if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}


def logits_batch(c, h, w):
    return torch.arange(2 * c * h * w, dtype=torch.float32).reshape(2, c, h, w) / 512.0 - 0.25


def max_diff(a, b):
    return (a - b).abs().max().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--variant", default="v1", choices=("v1", "preact"),
                    help="resnet20/resnet32 variant (models.py)")
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed before building")
    ap.add_argument("--weights", metavar="STATE_DICT.pt",
                    help="load these trained weights (torch.save(model.state_dict(), FILE)) first")
    ap.add_argument("--out", required=True, metavar="FILE", help="TorchScript file to write")
    ap.add_argument("--trace", action="store_true",
                    help="write a module traced in eval mode instead (the trap; for tests)")
    ap.add_argument("--logits", metavar="FILE",
                    help="also write the eval-mode logits of the deterministic batch (see --logits above)")
    args = ap.parse_args()
    c, h, w = args.channels, args.height, args.width

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    try:
        eager = build(args.model, c, h, w, args.classes, args.variant)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if args.weights:
        load_weights(eager, args.weights)
    eager.eval()
    x = torch.randn(CHECK_BATCH, c, h, w, generator=torch.Generator().manual_seed(CHECK_SEED))

    t1 = time.perf_counter()
    if args.trace:
        print("WARNING: --trace writes a module traced in eval mode: its BatchNorm layers always use "
              "the running statistics and its Dropout never drops, whatever train()/eval() say. "
              "Use it only to test the detection of that mistake.", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            scripted = torch.jit.trace(copy.deepcopy(eager), x)
    else:
        scripted = torch.jit.script(scriptable_copy(eager))
    scripted.eval()
    torch.jit.save(scripted, args.out)
    t2 = time.perf_counter()

    failures = []

    def check(ok, text, expected_failure=False):
        tag = "ok" if ok else ("EXPECTED FAILURE (traced)" if expected_failure else "FAIL")
        print(f"check {tag}: {text}")
        if not ok and not expected_failure:
            failures.append(text)

    params, trainable, buffers = count(eager)
    kind = "traced (eval mode)" if args.trace else "scripted"
    print(f"{args.model} {c}x{h}x{w} -> {args.classes} classes, seed {args.seed}"
          + (f", weights {args.weights}" if args.weights else "") + f": {kind}, wrote {args.out} "
          f"({os.path.getsize(args.out):,} bytes)")
    print(f"parameters {params:,} (trainable {trainable:,}); floating-point buffers {buffers:,} "
          f"(BatchNorm running mean/var); total {params + buffers:,}")

    with torch.no_grad():
        want = eager(x)
        got = scripted(x)
        check(torch.allclose(got, want, rtol=1e-5, atol=1e-6),
              f"{kind} module == eager, eval mode, random batch {tuple(x.shape)}: max |diff| "
              f"{max_diff(got, want):.3g}" + (" (bitwise equal)" if torch.equal(got, want) else ""))

        loaded = torch.jit.load(args.out)
        loaded.eval()
        got = loaded(x)
        check(torch.allclose(got, want, rtol=1e-5, atol=1e-6),
              f"torch.jit.load({args.out}) == eager, eval mode: max |diff| {max_diff(got, want):.3g}"
              + (" (bitwise equal)" if torch.equal(got, want) else ""))
        sd_e, sd_l = eager.state_dict(), loaded.state_dict()
        same = list(sd_e) == list(sd_l) and all(torch.equal(sd_e[k], sd_l[k]) for k in sd_e)
        check(same, f"reloaded parameters and buffers: {len(sd_l)} tensors, same names, order and "
              "values as eager")
        check(not loaded.training, "saved in eval mode (training = False)")
        y = loaded(torch.zeros(2, c, h, w))
        print(f"forward of a zero batch (2, {c}, {h}, {w}) in eval mode: output {tuple(y.shape)}")
        check(tuple(y.shape) == (2, args.classes), f"output shape is (2, {args.classes})")

        # Train mode, on a fresh load and a fresh eager copy with the same RNG seed.
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in eager.modules())
        has_dropout = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in eager.modules())
        if not has_bn and not has_dropout:
            print("train mode: no BatchNorm or Dropout, train and eval compute the same function")
        else:
            fresh = torch.jit.load(args.out)
            fresh.train()
            eager_t = copy.deepcopy(eager).train()
            before = bn_stats(fresh)
            torch.manual_seed(7)
            got = fresh(x)
            torch.manual_seed(7)
            want_t = eager_t(x)
            after = bn_stats(fresh)
            if has_bn:
                stats = [k for k in before if not k.endswith("num_batches_tracked")]
                moved = [k for k in stats if not torch.equal(before[k], after[k])]
                check(len(moved) == len(stats),
                      f"train mode: one forward moved {len(moved)} of {len(stats)} BatchNorm running "
                      "statistics", args.trace)
                counters = [k for k in before if k.endswith("num_batches_tracked")]
                bumped = [k for k in counters if after[k].item() == before[k].item() + 1]
                check(len(bumped) == len(counters),
                      f"train mode: num_batches_tracked went up by 1 in {len(bumped)} of "
                      f"{len(counters)} BatchNorm layers", args.trace)
                ref = bn_stats(eager_t)
                check(all(torch.allclose(after[k].double(), ref[k].double(), rtol=1e-5, atol=1e-6)
                          for k in after),
                      "train mode: updated statistics == eager's", args.trace)
            if has_dropout:
                torch.manual_seed(8)
                again = fresh(x)
                check(not torch.equal(got, again),
                      "train mode: Dropout active (two forwards with different RNG states differ)",
                      args.trace)
            check(torch.allclose(got, want_t, rtol=1e-4, atol=1e-5),
                  f"train mode: logits == eager train-mode logits (same RNG seed): max |diff| "
                  f"{max_diff(got, want_t):.3g}", args.trace)

        if args.logits:
            z = loaded(logits_batch(c, h, w))
            with open(args.logits, "w") as f:
                for row in z.tolist():
                    f.write(" ".join(f"{v:.9g}" for v in row) + "\n")
            print(f"wrote {args.logits}: eval-mode logits of arange(2*{c}*{h}*{w}).reshape(2, {c}, "
                  f"{h}, {w}) / 512 - 0.25")
    t3 = time.perf_counter()
    print(f"time: build {t1 - t0:.2f} s, {'trace' if args.trace else 'script'} + save "
          f"{t2 - t1:.2f} s, checks {t3 - t2:.2f} s")
    if failures:
        print(f"{len(failures)} check(s) FAILED", file=sys.stderr)
        sys.exit(1)
    if args.trace:
        print("WARNING: traced module written (see above); do not use it for training.",
              file=sys.stderr)


if __name__ == "__main__":
    main()
