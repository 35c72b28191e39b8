#!/usr/bin/env python3
"""The E residual a model gets if it keeps pt, eta, phi exactly and drops the jet mass.

E = p exp(t0) with p = pt cosh(eta) and t0 = 0.5 log(1 + m^2/p^2): pt and eta fix p, and the
mass only enters through t0. A code that knows nothing of the mass can at best rebuild E with
the mean t0 of jets of the same (pt, |eta|). This prints that floor (the mean t0 in cells of a
log-pt x |eta| grid with ~100 jets per cell, close to the best such predictor on large samples),
overall and by pt, to compare with a model's measured E residual (``models/measure.py``). If the two agree, the model
carries no mass information in its latents: whatever E precision it lacks is the mass.

    python models/mass_floor.py data/heldout_200k.root
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import jetzip
from jetzip.features import to_model_frame

PT_BINS = ((5, 10), (10, 15), (15, 20), (20, 50), (50, 200), (200, np.inf), (20, np.inf))


def read_frame(path: str) -> np.ndarray:
    src = jetzip.open_table(path)
    try:
        return np.concatenate([to_model_frame(c.columns, src.info.representation, src.info.units)
                               for c in src.chunks()])
    finally:
        src.close()


def grid_size(n_jets: int) -> int:
    """Cells per axis: about 100 jets per cell, so the cell means are means, not the jets."""
    return int(np.clip(np.sqrt(n_jets / 100), 2, 100))


def mass_floor(frame: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per jet: t0, and the relative E residual of E = p exp(mean t0 | pt, |eta| cell)."""
    e, pt, eta = frame[:, 0], frame[:, 1], frame[:, 2]
    t0 = np.log(e / (pt * np.cosh(eta)))
    lp, ae = np.log(pt), np.abs(eta)
    i = np.clip(((lp - lp.min()) / (np.ptp(lp) + 1e-12) * bins).astype(int), 0, bins - 1)
    j = np.clip((ae / (ae.max() + 1e-12) * bins).astype(int), 0, bins - 1)
    cell = i * bins + j
    mean = np.bincount(cell, t0, bins * bins) / np.maximum(np.bincount(cell, minlength=bins * bins), 1)
    return t0, np.expm1(t0 - mean[cell])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="+")
    args = ap.parse_args()
    for path in args.data:
        try:
            frame = read_frame(path)
        except jetzip.JetzipError as exc:
            print(f"mass_floor.py: {exc} (the held-out jets come from `bash models/train_default.sh`)",
                  file=sys.stderr)
            return 1
        bins = grid_size(len(frame))
        t0, r = mass_floor(frame, bins)
        pt = frame[:, 1]
        print(f"\n{path}: {len(frame)} jets, {bins} x {bins} cells in (log pt, |eta|); "
              "E residual with the mass dropped (std / p99 |r|)\n")
        print("| pt (GeV) | jets | spread of t0 (std) | E floor: std / p99 abs |")
        print("|---|---|---|---|")
        print(f"| all | {len(frame):,} | {t0.std():.2e} | {r.std():.2e} / {np.percentile(np.abs(r), 99):.2e} |")
        for lo, hi in PT_BINS:
            sel = (pt >= lo) & (pt < hi)
            if sel.sum() < 10:
                continue
            label = f"> {lo}" if hi == np.inf else f"{lo}-{hi}"
            print(f"| {label} | {int(sel.sum()):,} | {t0[sel].std():.2e} | "
                  f"{r[sel].std():.2e} / {np.percentile(np.abs(r[sel]), 99):.2e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
