"""Quantization of jets to integer symbols and back, the same function on both sides.

Closed-loop quantization (``../shared/GUIDE.md`` section 11 measured it best):

- ``q_pt = round(log(pt) / s_pt)``, ``q_eta = round(eta / s_eta)``, ``q_phi = round(phi / s_phi)``;
- E tables: ``q_E = round((log E - log(pt^ cosh eta^)) / s_E)`` from the *decoded* pt^ and eta^,
  so only the part of E that pt and eta do not fix (the mass) is coded;
- mass tables: a class (0 positive, 1 negative, 2 +0.0, 3 -0.0: exact zeros and signs are kept),
  then ``q_m = round((log|m| - log pt^) / s_m)`` for classes 0 and 1.

A relative bound b holds when ``|log x^ - log x| <= s/2 <= log1p(b)``, an absolute one when
``|x^ - x| <= s/2``; the steps (:mod:`.params`) sit a little inside. The encoder decodes every jet
again with :func:`reconstruct` and keeps any jet that misses a bound (pt <= 0, overflow, ...)
verbatim (:func:`verify`), so the bound holds for every jet by construction; floating-point
differences between machines (an ulp in exp or cosh) stay far inside the margin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .params import RELATIVE
from .spec import refuse_unless

KIND_E, KIND_M = 0, 1
MASS_CLASSES = 4  # positive, negative, +0.0, -0.0
MAX_ABS_ETA = 1e4  # |eta| (and |phi|) beyond this is stored verbatim


@dataclass
class Symbols:
    """Integer symbols of one chunk (the quantized jets), int64 arrays of the chunk's length."""

    q_pt: np.ndarray
    q_eta: np.ndarray
    q_phi: np.ndarray
    q_4: np.ndarray
    m_class: np.ndarray | None  # mass tables only


def quantize(columns: Mapping[str, np.ndarray], fourth: str, steps: tuple[float, float, float, float]
             ) -> tuple[Symbols, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(symbols, usable mask, the four columns as float64) of one chunk; jets not usable
    (pt <= 0, E <= 0, |eta| or |phi| beyond MAX_ABS_ETA, NaN) get placeholder symbols 0."""
    pt = np.asarray(columns["pt"], np.float64)
    eta = np.asarray(columns["eta"], np.float64)
    phi = np.asarray(columns["phi"], np.float64)
    x4 = np.asarray(columns[fourth], np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        usable = (np.isfinite(pt) & np.isfinite(eta) & np.isfinite(phi) & np.isfinite(x4) & (pt > 0)
                  & (np.abs(eta) < MAX_ABS_ETA) & (np.abs(phi) < MAX_ABS_ETA))
        if fourth == "E":
            usable &= x4 > 0
        q_pt = np.rint(np.log(np.where(usable, pt, 1.0)) / steps[0])
        q_eta = np.rint(np.where(usable, eta, 0.0) / steps[1])
        q_phi = np.rint(np.where(usable, phi, 0.0) / steps[2])
        log_pt_hat = q_pt * steps[0]
        m_class = None
        if fourth == "E":
            d = np.log(np.where(usable, x4, 1.0)) - log_pt_hat - np.log(np.cosh(q_eta * steps[1]))
            q_4 = np.rint(d / steps[3])
        else:
            m_class = np.where(x4 > 0, 0, np.where(x4 < 0, 1, np.where(np.signbit(x4), 3, 2)))
            mag = np.where(x4 != 0, np.abs(x4), 1.0)
            q_4 = np.rint((np.log(np.where(usable, mag, 1.0)) - log_pt_hat) / steps[3])
            q_4[m_class >= 2] = 0
        q_4 = np.nan_to_num(q_4, nan=0.0, posinf=0.0, neginf=0.0)
    sym = Symbols(q_pt.astype(np.int64), q_eta.astype(np.int64), q_phi.astype(np.int64), q_4.astype(np.int64),
                  None if m_class is None else m_class.astype(np.int64))
    return sym, usable, (pt, eta, phi, x4)


def reconstruct(kind: int, steps: tuple[float, float, float, float], s: Symbols) -> dict[str, np.ndarray]:
    """Decoded columns (float64; ``pt``, ``eta``, ``phi``, ``fourth``) from symbols."""
    s_pt, s_eta, s_phi, s_4 = steps
    log_pt = s.q_pt.astype(np.float64) * s_pt
    eta = s.q_eta.astype(np.float64) * s_eta
    phi = np.clip(s.q_phi.astype(np.float64) * s_phi, -math.pi, math.pi)
    with np.errstate(over="ignore", invalid="ignore"):
        pt = np.exp(log_pt)
        if kind == KIND_E:
            fourth = np.exp(log_pt + s.q_4.astype(np.float64) * s_4) * np.cosh(eta)
        else:
            assert s.m_class is not None
            mag = np.exp(log_pt + s.q_4.astype(np.float64) * s_4)
            fourth = np.where(s.m_class == 0, mag, -mag)
            fourth[s.m_class == 2] = 0.0
            fourth[s.m_class == 3] = -0.0
    return {"pt": pt, "eta": eta, "phi": phi, "fourth": fourth}


def within(decoded: np.ndarray, original: np.ndarray, bound: float, relative: bool) -> np.ndarray:
    """Per value: ``decoded`` within `bound` of ``original`` (relative: exact zeros stay zeros
    of the same sign) and finite."""
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(decoded - original)
        limit = bound * np.abs(original) if relative else bound
        ok = err <= limit
        if relative:
            zero = original == 0
            ok[zero] = (decoded[zero] == 0) & (np.signbit(decoded[zero]) == np.signbit(original[zero]))
    return ok & np.isfinite(decoded)


def verify(decoded: Mapping[str, np.ndarray], originals: tuple[np.ndarray, ...], bounds: Mapping[str, float],
           fourth: str, float64_roles: set[str]) -> np.ndarray:
    """Jets whose decoded values meet every bound as a writer stores them (float32), and as
    float64 for the roles in `float64_roles` (columns the input held as float64)."""
    ok = np.ones(len(originals[0]), bool)
    with np.errstate(over="ignore"):
        for name, role, orig in (("pt", "pt", originals[0]), ("eta", "eta", originals[1]),
                                 ("phi", "phi", originals[2]), ("fourth", fourth, originals[3])):
            rel = RELATIVE[role]
            ok &= within(decoded[name].astype(np.float32).astype(np.float64), orig, bounds[role], rel)
            if role in float64_roles:
                ok &= within(decoded[name], orig, bounds[role], rel)
    return ok


def check_decoded(kind: int, out: Mapping[str, np.ndarray], fourth: str, m_class: np.ndarray | None,
                  coded: np.ndarray, where: str) -> None:
    """What every coded (not verbatim) jet of an honest payload satisfies, because its encoder
    checked the decoded values as float32 against the originals (:func:`verify`): finite, pt > 0,
    E > 0, a nonzero mass of its class's sign, |eta| below MAX_ABS_ETA + 1.

    Raises:
        FormatError: naming the column.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        pt = out["pt"][coded].astype(np.float32)
        eta = out["eta"][coded].astype(np.float32)
        x4 = out[fourth][coded].astype(np.float32)
        refuse_unless(bool(np.all(np.isfinite(pt) & (pt > 0))), where, "a coded pt is not finite and positive")
        refuse_unless(bool(np.all(np.abs(eta) <= MAX_ABS_ETA + 1)), where, "a coded |eta| is beyond 10^4")
        refuse_unless(bool(np.all(np.isfinite(out["phi"][coded]))), where, "a coded phi is not finite")
        if kind == KIND_E:
            refuse_unless(bool(np.all(np.isfinite(x4) & (x4 > 0))), where, "a coded E is not finite and positive")
        else:
            assert m_class is not None
            c = m_class[coded]
            ok = np.where(c == 0, x4 > 0, np.where(c == 1, x4 < 0, x4 == 0)) & np.isfinite(x4)
            refuse_unless(bool(np.all(ok)), where, "a coded mass is not finite or not of its class's sign")


def placeholders(sym: Symbols, ok: np.ndarray) -> None:
    """Give the jets stored verbatim (not `ok`) the median symbols of the others, in place (any
    value decodes: the verbatim values replace it; the median keeps the streams small)."""
    bad = ~ok
    if not bad.any():
        return
    for arr in (sym.q_pt, sym.q_eta, sym.q_phi, sym.q_4):
        arr[bad] = int(np.median(arr[ok])) if ok.any() else 0
    if sym.m_class is not None:
        sym.m_class[bad] = 0
