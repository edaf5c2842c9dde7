#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ (small, valid examples of each real format).
Rerun after changing it; the fuzzers never write here (scripts/fuzz.sh copies the corpus to a
temporary directory first). Usage: python3 tests/fuzz/make_corpus.py"""
import gzip
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


shutil.rmtree(OUT, ignore_errors=True)

# config: the presets as they are, one with comments, one with --set overrides (see fuzz_config.cpp).
for name in ["smoke.json", "quickstart.json", "cnn2.json", "resnet20.json"]:
    with open(os.path.join(ROOT, "configs", name), "rb") as f:
        write("config", name, f.read())
write("config", "comments.json", '// a comment\n{ "seed": 7, /* inline */ "device": "cuda:1",\n'
      '  "adapt": { "strategies": [1, "none"], "retrain": { "epochs": 0.5 } } }\n')
write("config", "overrides.txt", '{ "threads": 2 }\n--set\ntrain.epochs=5\nadapt.strategies=[1,2]\n'
      'data.root=/tmp/x\ntrain.augment.shift=0.125')

# idx: first byte = how fuzz_idx.cpp presents the rest (0 as is, 1 gzip, 2 two gzip members, 3 cut gzip).
images = idx([2, 3, 3], range(18))
labels = idx([2], [0, 1])
write("idx", "images", b"\x00" + images)
write("idx", "labels", b"\x00" + labels)
write("idx", "images.gz", b"\x00" + gzip.compress(images, mtime=0))
write("idx", "labels-as-gzip", b"\x01" + labels)
write("idx", "images-two-members", b"\x02" + images)
write("idx", "images-cut-gzip", b"\x03" + images)
write("idx", "4d", b"\x00" + idx([1, 2, 1, 2], [9, 8, 7, 6]))

# cifar: one record (label 3) and two records (labels 0, 9).
write("cifar", "one-record.bin", bytes([3]) + bytes((i * 7) & 0xFF for i in range(3072)))
write("cifar", "two-records.bin", bytes([0]) + bytes(range(256)) * 12 + bytes([9]) + bytes(3072))

# checkpoint_meta: model.json as checkpoint_meta() + save_checkpoint write it.
base = {
    "format": "apricot-checkpoint", "format_version": 1, "arch": "small", "resnet_variant": "v1",
    "input": [1, 12, 12], "classes": 4,
    "dataset": {"name": "synthetic", "fingerprint": "0123456789abcdef", "train": 500, "val": 100, "test": 200},
    "tool_version": "0.1.0", "libtorch_version": "1.13.1", "created": "2024-01-01T00:00:00Z",
    "weights": {"file": "model.pt", "bytes": 12345, "crc32": "deadbeef"},
}
write("checkpoint_meta", "scale.json", json.dumps(dict(base, normalization={"kind": "scale"}), indent=2))
write("checkpoint_meta", "channel.json", json.dumps(dict(
    base, arch="resnet20", resnet_variant="preact", input=[3, 32, 32], classes=10,
    normalization={"kind": "channel", "mean": [[[0.49]], [[0.48]], [[0.45]]], "std": [[[0.25]], [[0.24]], [[0.26]]]},
    seed=0, config={"seed": 0, "train": {"epochs": 3, "batch_size": 32, "eval_batch_size": 1000},
                    "rdlm": {"count": 20, "parallel": 1, "epochs": 30}, "model": {"arch": "resnet20"}},
    metrics={"val_acc": 0.9}), indent=2))
write("checkpoint_meta", "pixel.json", json.dumps(dict(
    base, input=[1, 2, 2], normalization={"kind": "pixel", "mean": [[[0.1, 0.2], [0.3, 0.4]]]}), indent=2))

# safetensors: what `apricot export` writes (metadata strings, F32 weights, I64 buffer), and more dtypes.
f32 = struct.pack("<6f", 0.5, -1.0, 2.0, 0.0, 1e-3, 3.25)
write("safetensors", "export.safetensors", safetensors(
    [("conv.weight", "F32", [2, 3], f32), ("bn.num_batches_tracked", "I64", [], struct.pack("<q", 7))],
    {"arch": "small", "input": "1,12,12", "classes": "4", "normalization": '{"kind":"scale"}'}))
write("safetensors", "dtypes.safetensors", safetensors(
    [("b", "BOOL", [3], bytes([1, 0, 1])), ("u", "U8", [2, 2], bytes([1, 2, 3, 4])),
     ("h", "F16", [1], bytes([0, 60])), ("z", "F32", [0, 4], b""), ("d", "F64", [1], struct.pack("<d", 1.5)),
     ("i", "I32", [2], struct.pack("<2i", -1, 2))]))
write("safetensors", "empty.safetensors", safetensors([]))


def npy(descr, shape, data, fortran=False):
    """A .npy file as numpy.save writes it (format 1.0, header padded to 64 bytes)."""
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


# npy: uint8 images in the three layouts, and labels of several integer types.
write("npy", "nhwc", npy("|u1", [2, 3, 3, 3], bytes(range(54))))
write("npy", "nchw", npy("|u1", [2, 1, 4, 4], bytes(range(32))))
write("npy", "nhw", npy("|u1", [3, 2, 2], bytes(range(12))))
write("npy", "labels-i8", npy("<i8", [3], struct.pack("<3q", 0, 2, 1)))
write("npy", "labels-i4-column", npy("<i4", [2, 1], struct.pack("<2i", 1, 0)))
write("npy", "labels-u1", npy("|u1", [4], bytes([0, 1, 1, 0])))

for target in sorted(os.listdir(OUT)):
    files = os.listdir(os.path.join(OUT, target))
    size = sum(os.path.getsize(os.path.join(OUT, target, f)) for f in files)
    print(f"{target}: {len(files)} files, {size} bytes")
