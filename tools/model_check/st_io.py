"""Minimal safetensors reader/writer on numpy (no torch, no safetensors package), and the FNV-1a
hash that ties reference logits to the exact checkpoint bytes they were computed from."""
import json
import struct

import numpy as np

_NP = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def to_bf16_bits(a):
    """float32 -> bf16 bit patterns (uint16), round to nearest even (NaN not expected)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def write(path, tensors, metadata=None):
    """tensors: name -> (array, dtype) with dtype in F32, F16, BF16, I32, I64."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr, dtype = tensors[name]
        if dtype == "BF16":
            raw = to_bf16_bits(arr).tobytes()
        else:
            raw = np.ascontiguousarray(arr, dtype=_NP[dtype]).astype("<" + np.dtype(_NP[dtype]).str[1:]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(arr)),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    """-> (name -> numpy array (float types as float32), metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base, out = 8 + n, {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        raw = data[base + b:base + e]
        if t["dtype"] == "BF16":
            arr = from_bf16_bits(np.frombuffer(raw, dtype="<u2"))
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_NP[t["dtype"]]).newbyteorder("<"))
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
        out[name] = arr.reshape(t["shape"])
    return out, meta


def crc32(path):
    """CRC-32 (IEEE, zlib's) of a file, hex; tests/model/model_test_util.h computes the same."""
    import zlib
    with open(path, "rb") as f:
        return "%08x" % (zlib.crc32(f.read()) & 0xFFFFFFFF)
