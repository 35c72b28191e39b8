#!/usr/bin/env python3
"""Bytes per particle of jet constituents under the bounded codec's Cartesian bound (issue 21).

Constituents (px, py, pz, E) of the JetClass-like file (``../shared/cases/jetclass_like.root``:
``part_px/py/pz/energy``, one row per jet) and of the top-tagging landscape-like file
(``toplandscape_like.h5``: pandas table of ``E_i, PX_i, PY_i, PZ_i``, zero-padded to 200; the
padding is left out and the particles of each jet counted), coded:

- as a table of jets (``kind="jets"``: each jet's particles as an event's jets);
- as constituents (``kind="constituents"``: each particle's eta and phi relative to its jet's
  first particle, contexts of the particle's pt);

at several bounds b (|dpx|, |dpy| <= b pt, |dpz| <= b |p|, E relative), each chunk one file's
particles, with the largest error of each column as a fraction of its bound (every particle is
checked), next to lossless references of the same float32 values: raw, gzip-9, LZMA-9 and
zstd-19, each also byte-shuffled (the four columns' bytes grouped by significance).

Usage::

    python examples/measure_constituents.py [--out docs/results/constituents.md]
"""
from __future__ import annotations

import argparse
import gzip
import lzma
import re
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "cases"
BOUNDS = ("1e-2", "3.46e-3", "1e-3", "5e-4")


def jetclass() -> tuple[dict[str, np.ndarray], np.ndarray]:
    import awkward as ak
    import uproot

    with uproot.open(SHARED / "jetclass_like.root") as f:
        a = f["tree"].arrays(["part_px", "part_py", "part_pz", "part_energy"])
    counts = ak.num(a["part_px"]).to_numpy().astype(np.uint32)
    return {r: ak.flatten(a[k]).to_numpy() for r, k in
            (("px", "part_px"), ("py", "part_py"), ("pz", "part_pz"), ("E", "part_energy"))}, counts


def toplandscape() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The constituents of each jet, the zero padding left out (E = 0 ends a jet's list)."""
    import h5py

    with h5py.File(SHARED / "toplandscape_like.h5") as h:
        t = h["table/table"]
        names = re.findall(rb"V([A-Za-z0-9_]+)\n", bytes(t.attrs["values_block_0_kind"]))
        values = t["values_block_0"][...]
    col = {n.decode(): i for i, n in enumerate(names)}
    n_max = max(int(k[2:]) for k in col if k.startswith("E_")) + 1
    grid = {r: values[:, [col[f"{r}_{i}"] for i in range(n_max)]] for r in ("E", "PX", "PY", "PZ")}
    real = grid["E"] > 0
    counts = real.sum(axis=1).astype(np.uint32)
    return {r: grid[k][real] for r, k in (("px", "PX"), ("py", "PY"), ("pz", "PZ"), ("E", "E"))}, counts


def lossless(cols: dict[str, np.ndarray]) -> dict[str, float]:
    """B per particle of lossless storage of the four float32 columns."""
    import zstandard

    raw = np.stack([np.asarray(cols[r], np.float32) for r in ("px", "py", "pz", "E")], axis=1)
    plain = raw.tobytes()
    shuffled = raw.view(np.uint8).reshape(len(raw), 16).T.copy().tobytes()
    n = len(raw)
    out = {"float32": len(plain) / n}
    for name, fn in (("gzip-9", lambda b: gzip.compress(b, 9)), ("LZMA-9", lambda b: lzma.compress(b, preset=9)),
                     ("zstd-19", lambda b: zstandard.ZstdCompressor(level=19).compress(b))):
        out[name] = len(fn(plain)) / n
        out[f"{name} byte-shuffled"] = len(fn(shuffled)) / n
    return out


def measure(cols: dict[str, np.ndarray], counts: np.ndarray) -> list[dict]:
    from jetzip.codecs.bounded import BoundedCodec, parse_error_bound

    n = len(cols["px"])
    rows = []
    for spec in BOUNDS:
        bounds = parse_error_bound(spec, "PxPyPzE")
        for kind in ("jets", "constituents"):
            codec = BoundedCodec(bounds, "PxPyPzE", kind=kind)
            payload = codec.encode(cols, counts)
            dec = codec.decode(payload, n, counts)
            err = BoundedCodec.bound_errors(codec.get_config(), cols,
                                            {k: v.astype(np.float32) for k, v in dec.items()})
            rows.append({"bound": spec, "kind": kind, "bytes_per_particle": len(payload) / n,
                         "worst": {r: float(err[r].max()) / bounds[r] for r in bounds},
                         "within": all(float(err[r].max()) <= bounds[r] for r in bounds)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    lines = ["| file | particles (jets) | bound | as jets B/particle | as constituents B/particle | "
             "worst error / bound (px, py, pz, E) | all within |", "|---|---|---|---|---|---|---|"]
    refs = ["", "| file | " + " | ".join(["float32", "gzip-9", "LZMA-9", "zstd-19"]) + " |", "|---|---|---|---|---|"]
    ok = True
    for name, load in (("jetclass_like.root", jetclass), ("toplandscape_like.h5", toplandscape)):
        cols, counts = load()
        n = len(cols["px"])
        rows = measure(cols, counts)
        for spec in BOUNDS:
            jets, const = (next(r for r in rows if r["bound"] == spec and r["kind"] == k)
                           for k in ("jets", "constituents"))
            worst = ", ".join(f"{const['worst'][r]:.2f}" for r in ("px", "py", "pz", "E"))
            within = jets["within"] and const["within"]
            ok &= within
            lines.append(f"| {name} | {n} ({len(counts)}) | {spec} | {jets['bytes_per_particle']:.3f} | "
                         f"{const['bytes_per_particle']:.3f} | {worst} | {within} |")
        ref = lossless(cols)
        refs.append(f"| {name} | {ref['float32']:.1f} | " + " | ".join(
            f"{ref[k]:.1f} ({ref[k + ' byte-shuffled']:.1f})" for k in ("gzip-9", "LZMA-9", "zstd-19")) + " |")
    text = "\n".join(lines + refs + ["", "Lossless figures: B per particle, byte-shuffled in parentheses."])
    print(text)
    if args.out:
        Path(args.out).write_text("# Jet constituents under the bounded codec\n\nMade by "
                                  "`python examples/measure_constituents.py --out docs/results/constituents.md`; "
                                  "one chunk per file; the worst error is the largest over every particle, as a "
                                  "fraction of its bound (|dpx|, |dpy| <= b pt, |dpz| <= b |p|, E relative).\n\n"
                                  + text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
