"""Residuals between original and decoded jets, and their summary statistics.

Conventions (the ones physicists judge a lossy format by): E, pt and m residuals are
*relative*, (decoded - original) / original; eta and phi residuals are *absolute*, with phi
wrapped into [-pi, pi) so that a jet at pi - 1e-4 decoded at -pi + 1e-4 is 2e-4 off, not 2 pi.
Tails matter as much as widths, so every summary has p99 and max |residual| beside the std.
The relative mass residual is taken only for jets whose original mass is at least
``MIN_MASS_GEV`` (1 GeV): for massless jets it is undefined, and for nearly massless ones it
measures nothing useful; those jets are counted in ``n_undefined``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .features import wrap_phi

RELATIVE = ("E", "pt", "m")
MIN_MASS_GEV = 1.0
ABSOLUTE = ("eta", "phi")


def residuals(original: Mapping[str, np.ndarray], decoded: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-variable residuals for the variables both mappings hold."""
    out: dict[str, np.ndarray] = {}
    for name in ("E", "pt", "m", "eta", "phi", "px", "py", "pz"):
        if name not in original or name not in decoded:
            continue
        o = np.asarray(original[name], dtype=np.float64)
        d = np.asarray(decoded[name], dtype=np.float64)
        if name == "phi":
            out[name] = wrap_phi(d - o)
        elif name in ABSOLUTE:
            out[name] = d - o
        elif name == "m":
            with np.errstate(divide="ignore", invalid="ignore"):
                out[name] = np.where(o >= MIN_MASS_GEV, (d - o) / np.where(o != 0, o, 1.0), np.nan)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[name] = np.where(o != 0, (d - o) / np.where(o != 0, o, 1.0), np.nan)
    return out


def frame_columns(frame: np.ndarray) -> dict[str, np.ndarray]:
    """Model-frame array (n, 4) -> {'E', 'pt', 'eta', 'phi'} columns."""
    return {"E": frame[:, 0], "pt": frame[:, 1], "eta": frame[:, 2], "phi": frame[:, 3]}


def summarize(r: np.ndarray) -> dict[str, float]:
    """mean, std, median, p1, p99, p99 and max of |r|, and tail fractions beyond k sigma."""
    r = np.asarray(r, dtype=np.float64)
    finite = r[np.isfinite(r)]
    if finite.size == 0:
        return {"n": 0}
    mean, std = float(finite.mean()), float(finite.std())
    a = np.abs(finite)
    stats = {
        "n": int(finite.size),
        "n_undefined": int(r.size - finite.size),
        "mean": mean,
        "std": std,
        "median": float(np.median(finite)),
        "p1": float(np.percentile(finite, 1)),
        "p99": float(np.percentile(finite, 99)),
        "p99_abs": float(np.percentile(a, 99)),
        "max_abs": float(a.max()),
    }
    for k in (1, 2, 3):
        stats[f"frac_beyond_{k}sigma"] = float(np.mean(np.abs(finite - mean) > k * std)) if std > 0 else 0.0
    return stats


def summarize_all(res: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {k: summarize(v) for k, v in res.items()}
