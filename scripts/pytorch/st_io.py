"""Reading and writing safetensors files with torch alone (Python's `safetensors` package is not in
Debian): an 8-byte little-endian header length N, N bytes of JSON header (each tensor's dtype, shape
and data_offsets, plus "__metadata__" of string values), then the raw little-endian tensor bytes.
Whole files in memory; enough for apricot's export/import, not a general replacement.
"""

import json
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}

if sys.byteorder != "little":
    raise RuntimeError("st_io assumes a little-endian host, as safetensors stores little-endian data")


def to_bytes(t):
    """A tensor's bytes in row-major order (any dtype, including bfloat16 and 0-d)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def load(path):
    """Returns ({name: tensor}, {metadata key: value}); raises ValueError on a malformed file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, e in header.items():
        dtype = DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        numel = 1
        for s in e["shape"]:
            numel *= s
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not 0 <= begin <= end <= len(data) or end - begin != numel * itemsize:
            raise ValueError(f"{path}: tensor '{name}' has offsets {begin}..{end}, "
                             f"not {numel} x {itemsize} bytes inside the data section")
        raw = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.uint8) if end > begin \
            else torch.empty(0, dtype=torch.uint8)
        tensors[name] = raw.view(dtype).reshape(e["shape"]).clone()
    return tensors, meta


def save(path, tensors, metadata=None):
    """Writes {name: tensor} in the given order; metadata values are converted to strings."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        raw = to_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad so the data section starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
