#!/usr/bin/env python3
"""Writes the tiny .npy/.safetensors fixtures that tests/Frontend.Tests reads.

The files are committed, so the tests need neither Python nor numpy; rerun this only to change them:

    python3 tools/gen_npy_fixtures.py

Needs numpy (Debian: apt-get install python3-numpy, then run it with /usr/bin/python3 if another python3 comes
first on PATH). The values are chosen to be exactly representable so the tests can compare them with ==.
The safetensors fixture is built by hand with struct/json (no safetensors package needed), which also gives the
reader a file that its own writer did not produce.
"""

import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Frontend.Tests", "Fixtures")


def save(name, arr, version=None):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        if version is None:
            np.lib.format.write_array(f, arr, allow_pickle=False)
        else:
            np.lib.format.write_array(f, arr, version=version, allow_pickle=False)
    print("wrote", os.path.relpath(path))


def safetensors(name, tensors, metadata):
    """tensors: list of (name, dtype code, shape, little-endian bytes), laid out in the given order."""
    header, data, offset = {"__metadata__": metadata}, b"", 0
    for tname, dtype, shape, raw in tensors:
        header[tname] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    print("wrote", os.path.relpath(path))


def main():
    os.makedirs(OUT, exist_ok=True)
    save("f4_2x3.npy", (np.arange(6, dtype="<f4").reshape(2, 3) * 1.5 - 2).astype("<f4"))
    save("f8_vec.npy", np.array([0.1, -2.5, 1e300, -0.0, 5e-324], dtype="<f8"))
    save("i4_2x2.npy", np.array([[1, -2], [2147483647, -2147483648]], dtype="<i4"))
    save("i8_vec.npy", np.array([1, -1, 2**62, -(2**63)], dtype="<i8"))
    save("f2_vec.npy", np.array([1.0, 0.5, 65504.0, -0.0], dtype="<f2"))
    save("f4_scalar.npy", np.array(3.25, dtype="<f4"))
    save("i4_empty_0x3.npy", np.zeros((0, 3), dtype="<i4"))
    save("f4_v2.npy", np.array([1.0, 2.0, 3.0], dtype="<f4"), version=(2, 0))
    # Must be rejected: column-major data and big-endian data.
    save("f4_fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    save("i4_bigendian.npy", np.arange(4, dtype=">i4"))

    f32 = np.array([[1.0, -2.0], [0.25, 8.0]], dtype="<f4")
    i64 = np.array([7, -7, 2**40], dtype="<i8")
    safetensors(
        "two.safetensors",
        [("weight", "F32", f32.shape, f32.tobytes()), ("bias", "I64", i64.shape, i64.tobytes())],
        {"format": "pt"},
    )


if __name__ == "__main__":
    main()
