#!/usr/bin/python3
"""Writes samples/sw_layer.safetensors: seeded random weights for samples/sw_layer.swir.

Small-conv weights ~ N(0, 0.3^2); BN weight ~ U(0.5, 1.5), bias ~ N(0, 0.1^2), running mean ~ N(0, 0.2^2),
running var ~ U(0.5, 2) so that eval-mode BN is not the identity. Needs numpy only; the safetensors layout
(8-byte little-endian header length, JSON header, raw little-endian data) is written by hand.

Rerun from the repository root: python3 tools/make_sample_weights.py
"""
import json
import os
import struct

import numpy as np

rng = np.random.default_rng(20251127)
R, SUB = 2, 6
tensors = {
    "LoRAs.0.weight": rng.normal(0, 0.3, (SUB, 1, 3, 3)),
    "LoRAs.1.weight": rng.normal(0, 0.3, (SUB, 1, 3, 3)),
}
for bn in ("bn_lora1", "bn_lora2", "bn_small"):
    tensors[bn + ".weight"] = rng.uniform(0.5, 1.5, R)
    tensors[bn + ".bias"] = rng.normal(0, 0.1, R)
    tensors[bn + ".running_mean"] = rng.normal(0, 0.2, R)
    tensors[bn + ".running_var"] = rng.uniform(0.5, 2.0, R)

header, blobs, offset = {}, [], 0
for name in sorted(tensors):
    data = tensors[name].astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples", "sw_layer.safetensors")
with open(out + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
os.replace(out + ".tmp", out)
print("wrote", os.path.normpath(out), offset, "bytes of data")
