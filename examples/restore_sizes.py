#!/usr/bin/env python3
"""Restored files against their inputs (issue 20: restored HDF5 at most 1.5x the input for jet
tables; Parquet written with zstd).

Compresses each file of ../shared with no options but the codec (``--error-bound 1e-3`` where
the table stores (pt, eta, phi) with E or the mass, the default codec otherwise), decompresses
it to HDF5 (and Parquet inputs to Parquet) and prints input bytes, restored bytes and their ratio.

Usage:
    python examples/restore_sizes.py
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FILES = [
    ("cases/pandas_fixed.h5", ".h5"),
    ("cases/pandas_table.h5", ".h5"),
    ("cases/h5py_vlen_jagged.h5", ".h5"),
    ("cases/toplandscape_like.h5", ".h5"),
    ("data/public/nano_dy.parquet", ".parquet"),
    ("data/public/nano_dy.parquet", ".h5"),
    ("cases/nano_tt_v12_lzma9_200.root", ".h5"),
]


def main() -> int:
    import jetzip
    from jetzip.tables import open_table

    missing = [f for f, _ in FILES if not (SHARED / f).exists()]
    if missing:
        print(f"missing under {SHARED}: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"{'input':36s} {'restored as':11s} {'codec':8s} {'input B':>10s} {'restored B':>11s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, ext in FILES:
            path = SHARED / name
            src = open_table(path)
            bounded = src.info.representation in ("EPtEtaPhi", "PtEtaPhiM")
            src.close()
            aez = Path(tmp) / "x.aez"
            out = Path(tmp) / f"back{ext}"
            jetzip.compress(path, aez, error_bound="1e-3" if bounded else None, force=True)
            jetzip.decompress(aez, out, force=True)
            size_in, size_out = os.path.getsize(path), os.path.getsize(out)
            print(f"{name:36s} {ext:11s} {'1e-3' if bounded else 'default':8s} {size_in:10d} {size_out:11d} "
                  f"{size_out / size_in:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
