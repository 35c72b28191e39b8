"""Jet 4-vector conventions, units and the normalization the model sees.

Data flow: a table reader hands over columns in the file's representation and units;
:func:`to_model_frame` turns them into the model frame ``(E, pt, eta, phi)`` in GeV;
:class:`Normalization` maps that frame to the network's inputs (log E, log pt, eta, phi,
each shifted and scaled) and back. On the way out, :func:`from_model_frame` rebuilds the
representation the input had.

Representations (``columns`` roles):
- ``EPtEtaPhi``: E, pt, eta, phi;
- ``PtEtaPhiM``: pt, eta, phi, m — E = sqrt(p^2 + m|m|) with p = pt cosh(eta), so a
  negative mass means E < p exactly as ROOT's ``TLorentzVector::SetPtEtaPhiM`` does;
  the mass is recomputed on output as sign(E^2 - p^2) sqrt(|E^2 - p^2|);
- ``PxPyPzE``: px, py, pz, E;
- ``PxPyPzM``: px, py, pz, m (the LHC Olympics 2020 features) — E = sqrt(p^2 + m|m|) with
  p = |(px, py, pz)|, the same convention as ``PtEtaPhiM``, and the mass recomputed the same way.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from .errors import InputError

MODEL_FEATURES = ("E", "pt", "eta", "phi")
REPRESENTATIONS: dict[str, tuple[str, ...]] = {
    "EPtEtaPhi": ("E", "pt", "eta", "phi"),
    "PtEtaPhiM": ("pt", "eta", "phi", "m"),
    "PxPyPzE": ("px", "py", "pz", "E"),
    "PxPyPzM": ("px", "py", "pz", "m"),
}
# Collections of pt, eta and phi without a mass or E (NanoAOD TrigObj, IsoTrack, FsrPhoton):
# coded by the error-bounded codec under --collection all, never a table's first collection
THREE_VECTORS: dict[str, tuple[str, ...]] = {"PtEtaPhi": ("pt", "eta", "phi")}
ALL_REPRESENTATIONS = {**REPRESENTATIONS, **THREE_VECTORS}
UNIT_SCALE = {"GeV": 1.0, "MeV": 1e-3, "TeV": 1e3}  # multiply by this to get GeV
ENERGY_ROLES = {"E", "pt", "m", "px", "py", "pz"}


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Wrap angles into [-pi, pi)."""
    return (phi + np.pi) % (2 * np.pi) - np.pi


def representation_of(roles: set[str] | frozenset[str]) -> str:
    """Name the representation that a set of column roles forms."""
    for name, needed in REPRESENTATIONS.items():
        if set(needed) <= set(roles):
            return name
    raise InputError(f"columns {sorted(roles)} do not form a 4-vector; need one of "
                     + "; ".join(",".join(r) for r in REPRESENTATIONS.values()))


def _quiet(fn):
    """Run `fn` with numpy's floating-point warnings off: overflow to inf and NaN from invalid
    input are expected here and handled by the callers (jetzip never writes numpy warnings
    to stderr)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    return wrapper


@_quiet
def to_model_frame(columns: Mapping[str, np.ndarray], representation: str,
                   units: str = "GeV") -> np.ndarray:
    """Columns of one representation -> float64 array (n, 4) of (E, pt, eta, phi) in GeV."""
    scale = UNIT_SCALE[units]
    c = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}
    if representation == "EPtEtaPhi":
        e, pt, eta, phi = c["E"] * scale, c["pt"] * scale, c["eta"], c["phi"]
    elif representation == "PtEtaPhiM":
        pt, eta, phi, m = c["pt"] * scale, c["eta"], c["phi"], c["m"] * scale
        p = pt * np.cosh(eta)
        with np.errstate(invalid="ignore"):
            e = np.sqrt(np.maximum(p * p + m * np.abs(m), 0.0))
    elif representation in ("PxPyPzE", "PxPyPzM"):
        px, py, pz = (c[k] * scale for k in ("px", "py", "pz"))
        pt = np.hypot(px, py)
        if representation == "PxPyPzE":
            e = c["E"] * scale
        else:
            m = c["m"] * scale
            p2 = pt * pt + pz * pz
            with np.errstate(invalid="ignore"):
                e = np.sqrt(np.maximum(p2 + m * np.abs(m), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.arcsinh(np.where(pt > 0, pz / pt, np.nan))
        phi = np.arctan2(py, px)
    else:
        raise InputError(f"unknown representation {representation!r}")
    out = np.empty((len(pt), 4), dtype=np.float64)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = e, pt, eta, phi
    return out


@_quiet
def from_model_frame(frame: np.ndarray, representation: str, units: str = "GeV",
                     dtype: np.dtype | type = np.float32) -> dict[str, np.ndarray]:
    """Array (n, 4) of (E, pt, eta, phi) in GeV -> columns of `representation` in `units`."""
    inv = 1.0 / UNIT_SCALE[units]
    f = frame.astype(np.float64, copy=False)
    e, pt, eta, phi = f[:, 0], f[:, 1], f[:, 2], wrap_phi(f[:, 3])
    if representation == "EPtEtaPhi":
        out = {"E": e * inv, "pt": pt * inv, "eta": eta, "phi": phi}
    elif representation == "PtEtaPhiM":
        p = pt * np.cosh(eta)
        m2 = e * e - p * p
        out = {"pt": pt * inv, "eta": eta, "phi": phi, "m": np.sign(m2) * np.sqrt(np.abs(m2)) * inv}
    elif representation == "PxPyPzE":
        out = {"px": pt * np.cos(phi) * inv, "py": pt * np.sin(phi) * inv,
               "pz": pt * np.sinh(eta) * inv, "E": e * inv}
    elif representation == "PxPyPzM":
        pz = pt * np.sinh(eta)
        m2 = e * e - pt * pt - pz * pz
        out = {"px": pt * np.cos(phi) * inv, "py": pt * np.sin(phi) * inv, "pz": pz * inv,
               "m": np.sign(m2) * np.sqrt(np.abs(m2)) * inv}
    else:
        raise InputError(f"unknown representation {representation!r}")
    return {k: v.astype(dtype) for k, v in out.items()}


def invalid_jets(frame: np.ndarray) -> np.ndarray:
    """Mask of jets the model cannot encode: non-finite values, E <= 0 or pt <= 0."""
    finite = np.isfinite(frame).all(axis=1)
    with np.errstate(invalid="ignore"):
        return ~finite | (frame[:, 0] <= 0) | (frame[:, 1] <= 0)


def unencodable_jets(frame: np.ndarray) -> np.ndarray:
    """What compress and train refuse: invalid jets, and E below pt by more than 0.1 %."""
    bad = invalid_jets(frame)
    with np.errstate(invalid="ignore"):
        bad |= frame[:, 0] < frame[:, 1] * (1 - 1e-3)
    return bad


def unencodable_reasons(frame: np.ndarray) -> dict[str, int]:
    """Count unencodable jets by the first reason that applies to each."""
    nonfinite = ~np.isfinite(frame).all(axis=1)
    with np.errstate(invalid="ignore"):
        e_bad = (frame[:, 0] <= 0) & ~nonfinite
        pt_bad = (frame[:, 1] <= 0) & ~nonfinite & ~e_bad
        e_lt = (frame[:, 0] < frame[:, 1] * (1 - 1e-3)) & ~nonfinite & ~e_bad & ~pt_bad
    counts = {"with NaN or inf": nonfinite, "with E <= 0": e_bad, "with pt <= 0": pt_bad,
              "with E < pt": e_lt}
    return {k: int(v.sum()) for k, v in counts.items() if v.any()}


def log_cosh(x: np.ndarray) -> np.ndarray:
    """log(cosh(x)) without overflow for large |x|."""
    a = np.abs(x)
    return a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)


# t0 = log(E / (pt cosh eta)): only the part of E that pt and eta do not fix (the mass);
# E is rebuilt analytically from the decoded pt and eta. The default: in full-length runs on
# 1.8M Pythia jets it gave pt, eta, phi residuals of 3-6e-4 and E 1.6e-2, against 3.1e-3,
# 2.2e-3, 4.6e-4 and 1.2e-2 for log E (models/README.md). (An 8-epoch A/B had pointed the
# other way: short runs mislead here.)
LOG_E_OVER_P = "log-E-over-p/log-pt/linear-eta-phi"
# t0 = log E: the network must learn log E = log pt + log cosh eta + ... itself.
LOG_E = "log-E-pt/linear-eta-phi"
NORMALIZATION_KINDS = (LOG_E_OVER_P, LOG_E)


def outside_ranges(frame: np.ndarray, ranges: Mapping) -> np.ndarray:
    """Jets outside the (pt, E, |eta|) box a model was trained on (its metadata training_ranges)."""
    pt_lo, pt_hi = ranges["pt"]
    e_lo, e_hi = ranges["E"]
    return ((frame[:, 1] < pt_lo) | (frame[:, 1] > pt_hi) | (frame[:, 0] < e_lo) | (frame[:, 0] > e_hi)
            | (np.abs(frame[:, 2]) > ranges["abs_eta"][1]))


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Feature transform: x -> (t(x) - shift) / scale, with t = (t0, log pt, eta, phi).

    Why logs: E and pt span four decades, and the user cares about their *relative* error,
    which is the absolute error of the log. eta and phi are kept linear because their
    *absolute* error is what matters; they are only centred and scaled to O(1).

    t0 is log(E / p) with p = pt cosh(eta) (default), which holds only what pt and eta do not
    fix (0.5 log(1 + m|m| / p^2)), so the relative E error is t0's error plus pt's plus
    tanh(eta) times eta's; or log E. See LOG_E_OVER_P for why the first is the default.
    """

    shift: tuple[float, float, float, float]
    scale: tuple[float, float, float, float]
    kind: str = LOG_E_OVER_P

    @classmethod
    def fit(cls, frame: np.ndarray, kind: str = LOG_E_OVER_P) -> "Normalization":
        """Fit on training jets (model frame): centre and scale each feature to std 1.

        phi is not centred (it is uniform on [-pi, pi)) and is scaled by pi.
        """
        t = _transform(frame, kind)
        shift = t.mean(axis=0)
        scale = t.std(axis=0)
        scale[scale == 0] = 1.0
        shift[3], scale[3] = 0.0, math.pi
        sh, sc = (float(x) for x in shift), (float(x) for x in scale)
        return cls((next(sh), next(sh), next(sh), next(sh)), (next(sc), next(sc), next(sc), next(sc)), kind)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Model frame (n, 4) -> normalized float32 network inputs, shape (n, 4).

        On the hot path of compress: computed in float32 (the inputs are float32 in the files
        and the network runs in float32), one contiguous column at a time, in place; the
        result is the transpose of a (4, n) array, which the matrix multiply reads as is.
        """
        f = np.asarray(frame)
        t = np.empty((4, len(f)), dtype=np.float32)
        t[0] = f[:, 0]
        np.log(t[0], out=t[0])
        t[1] = f[:, 1]
        np.log(t[1], out=t[1])
        t[2] = f[:, 2]
        if self.kind == LOG_E_OVER_P:  # t0 = log E - log pt - log cosh eta (a float32 error of ~3e-7)
            t[0] -= t[1]
            t[0] -= log_cosh(t[2])
        t[3] = f[:, 3]
        outside = (t[3] < -np.pi) | (t[3] >= np.pi)
        if outside.any():
            t[3, outside] = wrap_phi(f[outside, 3])
        for i in range(4):
            t[i] -= np.float32(self.shift[i])
            t[i] *= np.float32(1.0 / self.scale[i])
        return t.T

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Normalized network outputs -> model frame (n, 4) float64, phi wrapped."""
        t = x.astype(np.float64) * np.asarray(self.scale) + np.asarray(self.shift)
        out = np.empty_like(t)
        out[:, 1] = np.exp(t[:, 1])
        out[:, 2] = t[:, 2]
        out[:, 3] = wrap_phi(t[:, 3])
        if self.kind == LOG_E_OVER_P:
            out[:, 0] = np.exp(t[:, 0] + t[:, 1] + log_cosh(t[:, 2]))
        else:
            out[:, 0] = np.exp(t[:, 0])
        return out

    def to_json(self) -> dict:
        return {"kind": self.kind, "features": list(MODEL_FEATURES), "units": "GeV",
                "shift": list(self.shift), "scale": list(self.scale)}

    @classmethod
    def from_json(cls, d: Mapping) -> "Normalization":
        from .errors import FormatError
        try:
            if not isinstance(d["shift"], list) or not isinstance(d["scale"], list):
                raise TypeError("shift and scale must be lists")
            kind = str(d["kind"])
            shift = tuple(float(x) for x in d["shift"])
            scale = tuple(float(x) for x in d["scale"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise FormatError(f"malformed normalization record: {exc}") from None
        if kind not in NORMALIZATION_KINDS or len(shift) != 4 or len(scale) != 4:
            raise FormatError(f"unsupported normalization {kind!r}")
        if not all(math.isfinite(v) for v in shift + scale) or not all(s > 0 for s in scale):
            raise FormatError("normalization has non-finite or non-positive values")
        return cls(shift, scale, kind)


def _transform(frame: np.ndarray, kind: str) -> np.ndarray:
    t = np.empty(frame.shape, dtype=np.float64)
    t[:, 1] = np.log(frame[:, 1])
    t[:, 2] = frame[:, 2]
    t[:, 3] = wrap_phi(frame[:, 3])
    if kind == LOG_E_OVER_P:
        t[:, 0] = np.log(frame[:, 0]) - t[:, 1] - log_cosh(frame[:, 2])
    else:
        t[:, 0] = np.log(frame[:, 0])
    return t


def infer_units(columns: Mapping[str, np.ndarray]) -> tuple[str, str]:
    """Guess MeV or GeV from the jets' momenta; returns (units, the reason in words).

    Rule: jet tables in GeV have median pt (or |p| for px/py/pz) of tens to hundreds; in MeV
    the same jets read tens of thousands. A median of 1000 or more is taken as MeV.
    """
    if "pt" in columns:
        ref, what = np.asarray(columns["pt"], dtype=np.float64), "pt"
    else:
        ref = np.hypot(np.asarray(columns["px"], np.float64), np.asarray(columns["py"], np.float64))
        what = "pt (from px, py)"
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return "GeV", "no finite jets to look at; assumed GeV"
    median = float(np.median(ref))
    if median >= 1000.0:
        return "MeV", f"median jet {what} is {median:.4g}, implausible in GeV (>= 1000)"
    return "GeV", f"median jet {what} is {median:.4g}, plausible in GeV (< 1000)"


def describe_normalization(norm: dict) -> str:
    """One line for a stored normalization: kind, then shift/scale per model feature
    (E-term, pt, eta, phi)."""
    shift, scale = norm.get("shift") or [], norm.get("scale") or []
    pairs = ", ".join(f"{a:.4g}/{b:.4g}" for a, b in zip(shift, scale, strict=False))
    return f"{norm.get('kind', '?')} (shift/scale: {pairs})"
