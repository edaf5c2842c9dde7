#!/usr/bin/env python3
"""The PyTorch user's side of the README's walk-throughs (scripts/pytorch/walkthrough.sh and
field-walkthrough.sh), on an image folder (ROOT/train/<class>/*, ROOT/test/<class>/*, read with PIL
as torchvision's ImageFolder does, classes in sorted name order, pixels / 255) or on NumPy arrays
(ROOT/x_train.npy, y_train.npy, x_test.npy, y_test.npy, as data.format "npy" reads them):

  folder_classifier.py train ROOT --model lenet5 --epochs 8 --out STATE_DICT.pt
      trains a model of export_torchscript.py's (--model, 3x32x32 by default) with SGD on ROOT/train
      and saves its state_dict, as a user's own training script would;
  folder_classifier.py eval ROOT --module FILE.pt [--split test]
      loads a TorchScript file with torch.jit.load and prints its accuracy on the split as JSON
      {"n", "correct", "accuracy"}.

Needs Debian's python3-torch and python3-pil (run with /usr/bin/python3).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torchscript  # noqa: E402


def load_npy_split(root, split):
    """ROOT/x_<split>.npy, y_<split>.npy as data.format "npy" reads them (N x H x W gray or
    N x H x W x C), pixels / 255; the class count from the training labels."""
    x = np.load(os.path.join(root, f"x_{split}.npy"))
    y = np.load(os.path.join(root, f"y_{split}.npy")).reshape(-1)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    classes = int(np.load(os.path.join(root, "y_train.npy")).max()) + 1
    return torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0, torch.from_numpy(y.astype(np.int64)), classes


def load_split(root, split, channels):
    if os.path.exists(os.path.join(root, "x_train.npy")):
        return load_npy_split(root, split)
    classes = sorted(d for d in os.listdir(os.path.join(root, "train"))
                     if os.path.isdir(os.path.join(root, "train", d)))
    xs, ys = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, split, name)
        if not os.path.isdir(folder):
            continue
        for f in sorted(os.listdir(folder)):
            if f.startswith("."):
                continue
            with Image.open(os.path.join(folder, f)) as im:
                im = im.convert("RGB" if channels == 3 else "L")
                a = np.asarray(im, dtype=np.uint8)
            xs.append(a.reshape(a.shape[0], a.shape[1], channels).transpose(2, 0, 1))
            ys.append(label)
    x = torch.from_numpy(np.stack(xs)).float() / 255.0
    return x, torch.tensor(ys, dtype=torch.int64), len(classes)


def train(args):
    x, y, classes = load_split(args.root, "train", args.channels)
    torch.manual_seed(args.seed)
    model = export_torchscript.build(args.model, args.channels, x.shape[2], x.shape[3], classes, "v1")
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    model.train()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(y))
        total, correct = 0.0, 0
        for i in range(0, len(y), args.batch_size):
            idx = perm[i:i + args.batch_size]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y[idx]).sum().item()
        print(f"epoch {epoch + 1}: loss {total / len(y):.4f}, train accuracy {correct / len(y):.4f}",
              file=sys.stderr)
    torch.save(model.state_dict(), args.out)


def evaluate(args):
    x, y, _ = load_split(args.root, args.split, args.channels)
    module = torch.jit.load(args.module)
    module.eval()
    with torch.no_grad():
        pred = torch.cat([module(x[i:i + 256]).argmax(1) for i in range(0, len(y), 256)])
    correct = int((pred == y).sum())
    print(json.dumps({"n": len(y), "correct": correct, "accuracy": correct / len(y)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("root")
    t.add_argument("--model", default="lenet5", choices=export_torchscript.MODELS)
    t.add_argument("--channels", type=int, default=3)
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    e = sub.add_parser("eval")
    e.add_argument("root")
    e.add_argument("--module", required=True)
    e.add_argument("--channels", type=int, default=3)
    e.add_argument("--split", default="test", choices=("train", "test"))
    args = ap.parse_args()
    train(args) if args.cmd == "train" else evaluate(args)


if __name__ == "__main__":
    main()
