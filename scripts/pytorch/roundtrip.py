"""The PyTorch side of apricot's safetensors round trip (tests/models/test_pytorch_interop.cpp runs it).

  export-check MODEL.safetensors INPUT.bin OUT_LOGITS.bin
      Loads weights written by `apricot export` into the models.py twin the metadata names (arch,
      input "C,H,W", classes, resnet_variant), in eval mode, and writes the logits of INPUT.bin
      (raw float32 N x C x H x W, already normalised) as raw float32 N x classes.
  make ARCH C,H,W CLASSES SEED OUT.safetensors [--variant v1|preact] [--images N]
      Builds the twin with torch.manual_seed(SEED), gives every bias and BatchNorm affine parameter
      and running statistic non-trivial values, and saves it with the metadata `apricot import`
      needs. Beside it, OUT.input.bin (N seeded standard-normal images, default 4) and
      OUT.logits.bin (the model's eval-mode logits on them), both raw float32.
  batch JOBS
      Runs each line of the file JOBS as one of the commands above (blank and # lines skipped), so
      that a test pays for `import torch` once.

Needs Debian's python3-torch (run with /usr/bin/python3), not the `safetensors` package: st_io.py
reads and writes the format. Does not train, normalise pixels or handle anything but these models.
"""

import json
import os
import shlex
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import st_io  # noqa: E402


def weight_names(model):
    """What apricot exports and imports: parameters and floating-point buffers (running mean/var;
    num_batches_tracked is not a weight), in registration order."""
    out = dict(model.named_parameters())
    out.update((k, b) for k, b in model.named_buffers() if b.is_floating_point())
    return out


def parse_input(text):
    c, h, w = (int(v) for v in text.split(","))
    return c, h, w


def export_check(model_path, input_path, out_path):
    tensors, meta = st_io.load(model_path)
    c, h, w = parse_input(meta["input"])
    model = models.make_model(meta["arch"], c, h, w, int(meta["classes"]),
                              meta.get("resnet_variant", "v1"))
    want = weight_names(model)
    if set(want) != set(tensors):
        raise SystemExit(f"{model_path}: names differ from models.py {meta['arch']}: "
                         f"missing {sorted(set(want) - set(tensors))}, "
                         f"extra {sorted(set(tensors) - set(want))}")
    with torch.no_grad():
        for name, dst in want.items():
            if tuple(tensors[name].shape) != tuple(dst.shape):
                raise SystemExit(f"{model_path}: '{name}' has shape {tuple(tensors[name].shape)}, "
                                 f"models.py needs {tuple(dst.shape)}")
            dst.copy_(tensors[name])
    model.eval()
    x = torch.from_file(input_path, size=os.path.getsize(input_path) // 4, dtype=torch.float32)
    with torch.no_grad():
        logits = model(x.reshape(-1, c, h, w))
    with open(out_path, "wb") as f:
        f.write(st_io.to_bytes(logits.float()))


def make(arch, input_text, classes, seed, out_path, variant="v1", images=4):
    c, h, w = parse_input(input_text)
    torch.manual_seed(int(seed))
    model = models.make_model(arch, c, h, w, int(classes), variant)
    with torch.no_grad():
        # Keras-style init leaves biases 0, BatchNorm at identity; a name or order mix-up among
        # those would go unseen, so give each a distinct random value.
        for name, t in weight_names(model).items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or t.dim() == 1:
                t.add_(0.1 * torch.randn_like(t))
    model.eval()
    x = torch.randn(int(images), c, h, w)
    with torch.no_grad():
        logits = model(x)
    meta = {"format": "pt", "arch": arch, "resnet_variant": variant, "input": input_text,
            "classes": str(int(classes)), "normalization": json.dumps({"kind": "scale"}),
            "producer": "scripts/pytorch/roundtrip.py"}
    st_io.save(out_path, {k: v.detach() for k, v in weight_names(model).items()}, meta)
    base = out_path[:-len(".safetensors")] if out_path.endswith(".safetensors") else out_path
    for suffix, t in ((".input.bin", x), (".logits.bin", logits)):
        with open(base + suffix, "wb") as f:
            f.write(st_io.to_bytes(t.float()))


def run(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "export-check" and len(args) == 3:
        export_check(*args)
    elif cmd == "make" and len(args) >= 5:
        opts = {"--variant": "v1", "--images": "4"}
        rest = args[5:]
        while rest:
            if rest[0] not in opts or len(rest) < 2:
                raise SystemExit(f"make: unknown or incomplete option {rest[0]!r}")
            opts[rest[0]], rest = rest[1], rest[2:]
        make(*args[:5], variant=opts["--variant"], images=int(opts["--images"]))
    elif cmd == "batch" and len(args) == 1:
        with open(args[0]) as f:
            for line in f:
                if line.strip() and not line.lstrip().startswith("#"):
                    run(shlex.split(line))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    run(sys.argv[1:])
