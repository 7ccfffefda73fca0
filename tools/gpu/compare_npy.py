#!/usr/bin/env python3
"""Compares two .npy arrays: relative L2 error of ACTUAL against EXPECTED, and the largest absolute difference.

    compare_npy.py ACTUAL.npy EXPECTED.npy [--tol 1e-5] [--label TEXT]

Prints one line; exit 0 when the shapes match, both are finite and the relative L2 error is at most --tol, else 1.
Needs numpy only.
"""
import argparse
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("actual")
    ap.add_argument("expected")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    label = (a.label + ": ") if a.label else ""
    try:
        x = np.load(a.actual).astype(np.float64)
        y = np.load(a.expected).astype(np.float64)
    except (OSError, ValueError) as e:
        print(f"{label}cannot read the arrays: {e}")
        return 1
    if x.shape != y.shape:
        print(f"{label}shape {x.shape} of {a.actual} differs from {y.shape} of {a.expected}")
        return 1
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        print(f"{label}non-finite values ({np.count_nonzero(~np.isfinite(x))} in {a.actual}, "
              f"{np.count_nonzero(~np.isfinite(y))} in {a.expected})")
        return 1
    denom = np.linalg.norm(y)
    rel = np.linalg.norm(x - y) / denom if denom > 0 else np.linalg.norm(x - y)
    ok = rel <= a.tol
    print(f"{label}relative L2 {rel:.3e} (tolerance {a.tol:g}), max |diff| {np.abs(x - y).max():.3e}, "
          f"{x.size} values, shape {x.shape}: {'ok' if ok else 'TOO LARGE'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
