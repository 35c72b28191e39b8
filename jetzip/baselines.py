"""Classical codecs on the user's own jets, at the same bounds: what ``evaluate --baselines`` prints.

Each baseline stores the four stored columns (file units, roles of the representation) and
reports bytes per jet and the largest error per column (relative for pt, E, m; absolute for
eta, phi), so that they can be read side by side with jetzip's codecs:

- ``float16+zstd``: the columns cast to float16 in GeV (a pt in MeV above 65.5 GeV would
  overflow float16's 65,504), byte-shuffled, zstd level 19 (:func:`float16_zstd`, also what
  ``evaluate``'s "other ways" table shows, so the two tables agree);
- ``nanoaod-mantissa+lzma``: CMS NanoAOD's storage (cms-sw ``PhysicsTools/NanoAOD``
  ``common_cff.py`` P4Vars: pt and mass rounded to 10 mantissa bits, eta and phi to 12), each
  branch's big-endian float32 values compressed on their own with LZMA level 9, as ROOT
  compresses a branch's baskets in NanoAOD production; not bounded: the errors are what the
  rounding gives (zero when the input is already on that grid: :func:`nanoaod_grid`);
- ``nanoaod-mantissa+shuffle+lzma``: the same values byte-shuffled across the four columns
  before LZMA, a stronger compressor than ROOT's (a harder baseline);
- ``quantize+zstd``: scalar quantization to the bounds (log for relative bounds), the integer
  columns byte-shuffled and compressed with zstd level 19 (the bound holds);
- ``sz3``: SZ3 with an absolute bound per column on log values for relative bounds, when the
  ``pysz`` package is installed (skipped and said otherwise);
- ``jetzip-bounded``: this jetzip's error-bounded codec on the same jets, as ``compress``
  runs it by default (with the shipped learned entropy model; payload only).
"""
from __future__ import annotations

import lzma
import math
from typing import Any, Mapping

import numpy as np

RELATIVE_ROLES = {"pt", "E", "m"}
ENERGY_ROLES = {"E", "pt", "m", "px", "py", "pz"}  # in the file's units (GeV or MeV)
# Mantissa bits CMS NanoAOD keeps (cms-sw PhysicsTools/NanoAOD common_cff.py P4Vars)
NANOAOD_BITS = {"pt": 10, "m": 10, "eta": 12, "phi": 12}
MAX_JETS = 1_000_000  # jets measured by the baselines and by evaluate's "other ways" table
ZSTD_LEVEL = 19


def byte_shuffle(arrays: list[np.ndarray]) -> bytes:
    """The arrays' bytes, grouped by byte position (Blosc's shuffle), one array after the other."""
    return b"".join(np.ascontiguousarray(a).view(np.uint8).reshape(len(a), -1).T.tobytes() for a in arrays)


def _zstd(data: bytes, level: int = ZSTD_LEVEL) -> int:
    import zstandard

    return len(zstandard.ZstdCompressor(level=level).compress(data))


def float16_zstd(columns: Mapping[str, np.ndarray], units: str = "GeV",
                 level: int = ZSTD_LEVEL) -> tuple[float, dict[str, np.ndarray], int]:
    """The float16 baseline: each column cast to float16, byte-shuffled, zstd at `level`.

    Energy-like columns (E, pt, m, px, py, pz) are cast in GeV whatever the file's `units`:
    float16's largest value is 65,504, so a pt in MeV above 65.5 GeV would become inf.

    Returns:
        (bytes per jet, the decoded columns as float32 in the file's units, the number of
        values that overflowed to inf).
    """
    roles = list(columns)
    n = len(columns[roles[0]]) if roles else 0
    to_gev = 1e-3 if str(units).lower() == "mev" else 1.0
    half, back, overflow = {}, {}, 0
    for r in roles:
        v = np.asarray(columns[r], np.float32)
        f = np.float32(to_gev if r in ENERGY_ROLES else 1.0)
        with np.errstate(over="ignore"):  # what overflows is the baseline's loss, counted
            half[r] = (v * f).astype(np.float16)
        overflow += int((np.isinf(half[r]) & np.isfinite(v)).sum())
        back[r] = half[r].astype(np.float32) / f
    nbytes = _zstd(byte_shuffle(list(half.values())), level) if n else 0
    return (nbytes / n if n else 0.0), back, overflow


def nanoaod_grid(columns: Mapping[str, np.ndarray]) -> dict[str, float]:
    """For each column NanoAOD rounds (pt, m: 10 mantissa bits; eta, phi: 12), the fraction of
    its finite non-zero values already on that grid. Real NanoAOD files give 1.0; float32 values from
    elsewhere about 2^-13 (pt) or 2^-11 (eta)."""
    out = {}
    for role, bits in NANOAOD_BITS.items():
        if role in columns:
            v = np.asarray(columns[role], np.float32)
            v = v[np.isfinite(v) & (v != 0)]  # zero is on every grid
            out[role] = float((round_mantissa(v, bits) == v).mean()) if len(v) else 0.0
    return out


def already_nanoaod(columns: Mapping[str, np.ndarray], threshold: float = 0.99) -> list[str]:
    """The columns (of pt, eta, phi, m) whose values are (at least `threshold` of them) already
    rounded to NanoAOD's precision; [] when pt is not. Rounding such a column to NanoAOD's
    precision again changes nothing, and ``--error-bound nanoaod`` rounds it a second time."""
    grid = nanoaod_grid(columns)
    on = [r for r, f in grid.items() if f >= threshold]
    return on if "pt" in on else []


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 values with their mantissa rounded to `bits` bits (to nearest, ties away),
    as NanoAOD's ``precision`` does before ROOT compresses the baskets."""
    v = np.ascontiguousarray(x, np.float32).view(np.uint32).copy()
    drop = 23 - bits
    half = np.uint32(1 << (drop - 1))
    mask = np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    finite = np.isfinite(x)
    v[finite] = (v[finite] + half) & mask
    return v.view(np.float32)


def max_errors(original: Mapping[str, np.ndarray], decoded: Mapping[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for role, o in original.items():
        o = np.asarray(o, np.float64)
        d = np.asarray(decoded[role], np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            if role in RELATIVE_ROLES:
                err = np.where(o != 0, np.abs(d - o) / np.abs(o), np.where(d == 0, 0.0, np.inf))
            else:
                err = np.abs(d - o)
        out[role] = float(np.nanmax(err)) if len(err) else 0.0
    return out


def measure(columns: Mapping[str, np.ndarray], representation: str,
            bounds: Mapping[str, float] | None, counts: np.ndarray | None = None,
            units: str = "GeV", max_jets: int = MAX_JETS) -> dict[str, Any]:
    """Bytes per jet and max errors of each baseline on `columns` (see the module doc).

    Args:
        columns: role -> values (file units), one entry per jet.
        representation: the roles' representation (``PtEtaPhiM``, ``EPtEtaPhi``, ...).
        bounds: the bounds to hold (role -> bound); None uses NanoAOD's precision.
        counts: per-event jet counts, for jetzip's own codec (None: flat).
        units: the file's units (jetzip's codec places its context bins in GeV).
        max_jets: measure at most this many jets (the first ones).

    Returns:
        ``n_jets``, ``bounds``, ``already_nanoaod`` (a list, :func:`already_nanoaod`), and per
        baseline (the only dict values besides ``bounds``) ``{"bytes_per_jet", "max_error": {role: e},
        "bounded": bool}`` (or ``{"skipped": reason}``); ``float16+zstd`` adds ``overflow``
        (values beyond float16's range), the NanoAOD rounding baselines ``note`` when the
        input is already on their grid.
    """
    roles = list(columns)
    cols = {r: np.asarray(columns[r], np.float32)[:max_jets] for r in roles}
    n = len(cols[roles[0]])
    if counts is not None and int(np.sum(counts)) != len(np.asarray(columns[roles[0]])):
        counts = None
    if counts is not None and n < len(np.asarray(columns[roles[0]])):
        counts = None
    if bounds is None:
        bounds = {r: (2.0 ** -11 if r in RELATIVE_ROLES else 2.0 ** -12) for r in roles}
    out: dict[str, Any] = {"n_jets": n, "bounds": dict(bounds)}
    if n == 0:
        return out
    out["already_nanoaod"] = already_nanoaod(cols)
    per_jet, back16, overflow = float16_zstd(cols, units)
    out["float16+zstd"] = {"bytes_per_jet": per_jet, "max_error": max_errors(cols, back16), "bounded": False,
                           "overflow": overflow}
    # NanoAOD: 10 bits for pt and mass (and E), 12 for eta and phi
    nano = {r: round_mantissa(v, 10 if r in RELATIVE_ROLES else 12) for r, v in cols.items()}
    per_branch = sum(len(lzma.compress(v.astype(">f4").tobytes(), preset=9)) for v in nano.values())
    out["nanoaod-mantissa+lzma"] = {"bytes_per_jet": per_branch / n, "max_error": max_errors(cols, nano),
                                    "bounded": False}
    out["nanoaod-mantissa+shuffle+lzma"] = {
        "bytes_per_jet": len(lzma.compress(byte_shuffle(list(nano.values())), preset=9)) / n,
        "max_error": max_errors(cols, nano), "bounded": False}
    if out["already_nanoaod"]:
        note = (f"the input's {', '.join(out['already_nanoaod'])} are already rounded to NanoAOD's precision: "
                "rounding them again changes nothing (error 0)")
        out["nanoaod-mantissa+lzma"]["note"] = out["nanoaod-mantissa+shuffle+lzma"]["note"] = note
    # scalar quantization to the bounds
    q_arrays, back = [], {}
    for r, v in cols.items():
        b = float(bounds.get(r, min(bounds.values())))
        x = v.astype(np.float64)
        if r in RELATIVE_ROLES:
            step = 2 * math.log1p(b * 0.999) - 2 ** -22
            sign = np.signbit(x)
            mag = np.where(x != 0, np.abs(x), 1.0)
            q = np.rint(np.log(mag) / step).astype(np.int32)
            zero = x == 0
            q_arrays += [q, (sign.astype(np.int8) + 2 * zero.astype(np.int8))]
            rec = np.exp(q * step) * np.where(sign, -1.0, 1.0)
            rec[zero] = np.where(sign[zero], -0.0, 0.0)
        else:
            step = 2 * b * 0.999 - 2 * float(np.spacing(np.float32(max(np.abs(x).max(), 1.0))))
            q = np.rint(x / step).astype(np.int32)
            q_arrays.append(q)
            rec = q * step
        back[r] = rec.astype(np.float32)
    out["quantize+zstd"] = {"bytes_per_jet": _zstd(byte_shuffle(q_arrays)) / n,
                            "max_error": max_errors(cols, back), "bounded": True}
    out["sz3"] = _sz3(cols, bounds)
    # jetzip's own bounded codec
    if representation in ("EPtEtaPhi", "PtEtaPhiM"):
        from .codecs.bounded import BoundedCodec
        from .entropy.context import default_context_model

        codec = BoundedCodec(dict(bounds), representation, units, default_context_model())
        payload, dec = codec.roundtrip(cols, counts)
        out["jetzip-bounded"] = {"bytes_per_jet": len(payload) / n,
                                 "max_error": max_errors(cols, {r: v.astype(np.float32) for r, v in dec.items()}),
                                 "bounded": True}
    return out


def _sz3(cols: Mapping[str, np.ndarray], bounds: Mapping[str, float]) -> dict[str, Any]:
    """SZ3 (``pysz``) per column with an absolute bound: on log|x| for relative bounds (zeros and
    signs kept aside as a small zstd side array), on x for absolute ones."""
    try:
        import pysz
    except ImportError as exc:
        return {"skipped": f"pysz is not installed ({exc})"}

    def sz_abs(x: np.ndarray, eb: float) -> tuple[int, np.ndarray]:
        config = pysz.szConfig(x.shape)
        config.errorBoundMode = pysz.szErrorBoundMode.ABS
        config.absErrorBound = eb
        comp, _ = pysz.sz.compress(np.ascontiguousarray(x), config)
        dec, _ = pysz.sz.decompress(comp, x.dtype, x.shape)
        return len(comp), np.asarray(dec)

    total, back = 0, {}
    try:
        for r, v in cols.items():
            b = float(bounds.get(r, min(bounds.values())))
            x = v.astype(np.float64)
            if r in RELATIVE_ROLES:
                sign, zero = np.signbit(x), x == 0
                nbytes, dec = sz_abs(np.log(np.where(zero, 1.0, np.abs(x))), math.log1p(b) * 0.999 - 2 ** -22)
                rec = np.exp(dec) * np.where(sign, -1.0, 1.0)
                rec[zero] = np.where(sign[zero], -0.0, 0.0)
                total += nbytes + _zstd(np.packbits(sign).tobytes() + np.packbits(zero).tobytes())
            else:
                nbytes, rec = sz_abs(x, b * 0.999 - 2 * float(np.spacing(np.float32(max(np.abs(x).max(), 1.0)))))
                total += nbytes
            back[r] = np.asarray(rec, np.float32)
    except Exception as exc:  # pysz's API differs between releases: report, never fail evaluate
        return {"skipped": f"pysz failed ({exc.__class__.__name__}: {exc})"}
    n = len(next(iter(cols.values())))
    return {"bytes_per_jet": total / n, "max_error": max_errors(cols, back),
            "bounded": all(e <= bounds.get(r, 0) for r, e in max_errors(cols, back).items())}
