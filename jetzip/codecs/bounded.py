"""The error-bounded codec: every decoded value within a guaranteed maximum error.

Bounds (``--error-bound``): relative for pt and for E or the mass, absolute for eta and phi,
on the columns the source stores: (E, pt, eta, phi) tables bound E, (pt, eta, phi, mass)
tables such as NanoAOD bound the mass. ``nanoaod`` is the precision CMS NanoAOD stores
(cms-sw ``PhysicsTools/NanoAOD`` ``common_cff.py`` P4Vars: pt and mass with 10 mantissa bits,
relative 2^-11; eta and phi with 12 bits, whose rounding error is 2^-13 below |x| = 2, 2^-12 in
[2, 4) and 2^-11 beyond: the preset takes 2^-12, NanoAOD's largest error below |x| = 4).

Transform (closed-loop quantization; ``../shared/GUIDE.md`` section 11 measured it best):

- ``q_pt = round(log(pt) / s_pt)``, ``q_eta = round(eta / s_eta)``, ``q_phi = round(phi / s_phi)``;
- E tables: ``q_E = round((log E - log(pt^ cosh eta^)) / s_E)`` from the *decoded* pt^ and
  eta^, so only the part of E that pt and eta do not fix (the mass) is coded;
- mass tables: a class (positive, negative, +0.0, -0.0: exact zeros and signs are kept), then
  ``q_m = round((log|m| - log pt^) / s_m)``.

A relative bound b is |log x^ - log x| <= s/2 <= log1p(b); an absolute bound is |x^ - x| <= s/2.
The steps are chosen a little below the bounds (0.1 % and the float32 rounding of the output),
every jet is decoded again by the encoder with the decoder's own function and compared with
the original (as float32 and as float64), and a jet that misses any bound (pt <= 0, E <= 0,
overflow, ...) is stored verbatim. So the bound holds for every jet by construction, and
floating-point differences between machines (a few ulp in exp/cosh) stay far inside the margin.

Entropy coding (:mod:`jetzip.entropy`), per chunk, with tables fitted to the chunk itself:

- pt: the first jet of each event as ``q_pt``; the second and later jets (two streams) as
  ``q_prev - q_pt`` (NanoAOD and most files keep jets pt-ordered, so this is small and
  non-negative);
- eta: ``q_eta`` in pt classes (below 30, 30-100, above 100 GeV: harder jets are more central);
- phi: the first jet as ``q_phi``; the second and later jets (two streams) relative to the
  event's leading jet, modulo the chunk's phi range (back-to-back dijets make the second
  jet's peak near pi);
- E or mass: in contexts of (pt bin, |eta| bin) computed from the integer symbols with
  thresholds stored in the chunk, so every machine finds the same context.

Everything the decoder needs (steps, thresholds, tables) is in the chunk: chunks decode
independently, in any order or in parallel.

Every chunk is checked against the file's configuration before its values are used (a crafted
file's CRCs are recomputed in a second): steps exactly those the bounds give, a phi range of
|phi| <= pi + bound, thresholds of the codec's own grids, as many symbol tables as the chunk's
streams need and none with more values than its stream, learned streams only of the model's,
verbatim jets finite and in order, and every coded jet finite with pt > 0 (E > 0, a mass of its
class's sign) once decoded. A verbatim jet may hold pt <= 0 or |phi| > pi: the input had it.
Anything else is a FormatError naming the chunk and the field.

Chunk payload layout (little-endian)::

    u8  kind            0 = E tables, 1 = mass tables
    f64 x 4             steps s_pt, s_eta, s_phi, s_4 (s_E or s_m)
    i64 phi_min, u32 phi_n          range of q_phi in the chunk (for the modulo)
    u8  n_pt_thr, i64 x n           pt-bin thresholds on q_pt
    u8  n_eta_thr, i64 x n          |eta|-bin thresholds on |q_eta|
    u8  n_eta_pt_thr, i64 x n       pt-class thresholds on q_pt for the eta streams
    u16 n_tables, tables            :class:`jetzip.entropy.SymbolTable` each
    u32 rans_nbytes, rans words     one rANS stream of all high parts, in decode order
    u32 bits_nbytes, raw bits       the low parts
    u32 n_exact, zlib(u32 index x n, f64 x 4n)   jets stored verbatim
"""
from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..entropy import BitReader, BitWriter, RansDecoder, RansEncoder, SymbolTable, fit_table
from ..entropy import context as ctxm
from ..entropy.context import ContextModel
from ..entropy.tables import _counts_of, fit_table_cost, raw_nbytes
from ..errors import FormatError, InputError
from .base import Codec, DecodeContext, pack_verbatim, register, unpack_verbatim

# Role names of the 4th column per representation (features.REPRESENTATIONS)
FOURTH = {"EPtEtaPhi": "E", "PtEtaPhiM": "m"}
RELATIVE = {"pt": True, "eta": False, "phi": False, "E": True, "m": True}
ALIASES = {"pt": "pt", "eta": "eta", "phi": "phi", "e": "E", "energy": "E", "m": "m", "mass": "m"}
NANOAOD = {"pt": 2.0 ** -11, "eta": 2.0 ** -12, "phi": 2.0 ** -12, "E": 2.0 ** -11, "m": 2.0 ** -11}
PRESETS = {"nanoaod": NANOAOD}
MIN_RELATIVE, MAX_RELATIVE = 1e-6, 0.5
MIN_ABSOLUTE, MAX_ABSOLUTE = 1e-5, 1.0
SAFETY = 1e-3  # steps sit this fraction below the bound
F32_REL = 2.0 ** -23  # >= twice float32's relative rounding error
# Context grids tried per chunk for the 4th column: pt edges (GeV), |eta| edges
PT_EDGES_GEV = (10.0, 15.0, 20.0, 30.0, 45.0, 70.0, 100.0, 150.0, 250.0, 400.0, 700.0, 1200.0)
ETA_EDGES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
GRIDS = ((0, 0), (3, 1), (6, 2), (12, 4), (12, 8))  # how many of each edge list to use
GRID_MIN_JETS = (0, 2_000, 20_000, 150_000, 600_000)  # ... from this many coded jets on
KIND_E, KIND_M = 0, 1
POSITIONS = 3  # position classes in an event: first jet, second jet, later jets
ETA_PT_EDGES_GEV = (30.0, 100.0)  # eta is coded in these pt classes (central jets are harder)
ETA_PT_MIN_JETS = 2_000
MASS_CLASSES = 4  # positive, negative, +0.0, -0.0


def parse_error_bound(spec: str | float | Mapping[str, float], representation: str) -> dict[str, float]:
    """The per-column bounds for a table of `representation`, from the CLI's SPEC.

    Args:
        spec: one number (relative for pt and E or mass, absolute for eta and phi), a string
            ``"pt=5e-4,eta=2.5e-4,phi=2.5e-4,mass=1e-3"`` (physics names, whatever the file
            calls its columns; columns left out get the smallest bound given), a mapping of
            the same, or the preset ``"nanoaod"``.
        representation: ``EPtEtaPhi`` or ``PtEtaPhiM`` (other representations are refused).

    Returns:
        ``{"pt": b, "eta": b, "phi": b, "E" or "m": b}``.

    Raises:
        InputError: unknown names, unparsable or out-of-range numbers, a bound for a column
            the table does not store, or a table the codec cannot bound.
    """
    if representation not in FOURTH:
        raise InputError(f"--error-bound needs a table of (pt, eta, phi) with E or mass; this one "
                         f"stores {representation}; use the latent codec (no --error-bound)")
    fourth = FOURTH[representation]
    roles = ("pt", "eta", "phi", fourth)
    given: dict[str, float] = {}
    if isinstance(spec, str) and spec.strip().lower() in PRESETS:
        preset = PRESETS[spec.strip().lower()]
        return {r: preset[r] for r in roles}
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        given = {r: float(spec) for r in roles}
    elif isinstance(spec, str) and "=" not in spec:
        try:
            number = float(spec)
        except ValueError:
            raise InputError(f"--error-bound {spec!r}: expected a number, name=number pairs "
                             f"or one of {', '.join(PRESETS)}") from None
        given = {r: number for r in roles}
    else:
        items: list[tuple[str, Any]]
        if isinstance(spec, str):
            items = []
            for part in spec.split(","):
                name, sep, value = part.partition("=")
                if not sep:
                    raise InputError(f"--error-bound: {part.strip()!r} is not name=number")
                items.append((name, value))
        elif isinstance(spec, Mapping):
            items = list(spec.items())
        else:
            raise InputError(f"error bound must be a number, a string or a mapping, not {spec!r}")
        for name, value in items:
            key = ALIASES.get(str(name).strip().lower())
            if key is None:
                raise InputError(f"--error-bound: unknown column {str(name).strip()!r}; use pt, eta, "
                                 "phi and E or mass")
            if key in given:
                raise InputError(f"--error-bound: {'mass' if key == 'm' else key} is given twice")
            if key not in roles:
                raise InputError(f"--error-bound: this table stores {'mass' if fourth == 'm' else 'E'}, "
                                 f"not {'mass' if key == 'm' else 'E'}; bound "
                                 f"{'mass' if fourth == 'm' else 'E'} instead")
            try:
                given[key] = float(value)
            except (TypeError, ValueError):
                raise InputError(f"--error-bound: {name}={value!r} is not a number") from None
        if not given:
            raise InputError("--error-bound: no bounds given")
        _check_ranges(given)  # the columns named first, so an error names what the user wrote
        smallest = min(given.values())
        given = {r: given.get(r, smallest) for r in roles}
    _check_ranges(given)
    return given


def _check_ranges(given: Mapping[str, float]) -> None:
    for role, b in given.items():
        lo, hi = (MIN_RELATIVE, MAX_RELATIVE) if RELATIVE[role] else (MIN_ABSOLUTE, MAX_ABSOLUTE)
        if not (math.isfinite(b) and lo <= b <= hi):
            kind = "relative" if RELATIVE[role] else "absolute"
            raise InputError(f"--error-bound: {'mass' if role == 'm' else role} bound {b:g} is outside the "
                             f"supported {kind} range {lo:g} to {hi:g} (relative: pt, E, mass; absolute: "
                             "eta, phi)")


def steps_for(bounds: Mapping[str, float], max_abs: Mapping[str, float]) -> dict[str, float]:
    """Quantization steps a little inside the bounds (see module doc).

    Relative: ``s = 2 log1p(b (1 - SAFETY) - F32_REL)``; absolute: ``s = 2 (b (1 - SAFETY) -
    ulp)`` with ulp the float32 spacing at the largest |value| of the chunk.
    """
    out = {}
    for role, b in bounds.items():
        if RELATIVE[role]:
            out[role] = 2.0 * math.log1p(b * (1 - SAFETY) - F32_REL)
        else:
            x = max(float(max_abs.get(role, 4.0)), 1.0)
            ulp = float(np.spacing(np.float32(min(x, 3e38))))
            out[role] = 2.0 * max(b * (1 - SAFETY) - ulp, b * 0.25)
    return out


ULP_EXPONENTS = range(-23, 105)  # float32 spacing 2^k from |x| in [1, 2) up to 3e38 (k = 104)


def legacy_step_choices(role: str, bound: float) -> tuple[float, ...]:
    """Every step an encoder of payload versions 1 and 2 could write for `role` at `bound`
    (:func:`steps_for`: one value for a relative bound; for an absolute one, one per float32
    spacing 2^k of the chunk's largest |value|). A stored step outside this set is refused."""
    if RELATIVE[role]:
        return (2.0 * math.log1p(bound * (1 - SAFETY) - F32_REL),)
    return tuple(sorted({2.0 * max(bound * (1 - SAFETY) - 2.0 ** k, bound * 0.25) for k in ULP_EXPONENTS}))


def phi_symbol_limit(s_phi: float, b_phi: float) -> int:
    """Largest |q_phi| a jet the encoder keeps (not verbatim) can have: |phi| <= pi + b, so
    |round(phi / s)| <= (pi + b) / s + 1/2 (one more for rounding slack)."""
    return int(math.floor((math.pi + b_phi) / s_phi + 0.5)) + 1


def _check(ok: bool, where: str, what: str) -> None:
    """FormatError ``"<where>: <what> (a corrupted or crafted chunk)"`` unless `ok`."""
    if not ok:
        raise FormatError(f"{where}: {what} (a corrupted or crafted chunk)")


@dataclass
class _Symbols:
    """Integer symbols of one chunk (the quantized jets) and what they reconstruct to."""

    q_pt: np.ndarray
    q_eta: np.ndarray
    q_phi: np.ndarray
    q_4: np.ndarray
    m_class: np.ndarray | None  # mass tables only


def _reconstruct(kind: int, steps: tuple[float, float, float, float], s: _Symbols) -> dict[str, np.ndarray]:
    """Decoded columns (float64) from symbols: the one function both sides use."""
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


def _within(decoded: np.ndarray, original: np.ndarray, bound: float, relative: bool) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(decoded - original)
        limit = bound * np.abs(original) if relative else bound
        ok = err <= limit
        if relative:  # zeros: exact, sign included
            zero = original == 0
            ok[zero] = (decoded[zero] == 0) & (np.signbit(decoded[zero]) == np.signbit(original[zero]))
    return ok & np.isfinite(decoded)


def _events(counts: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per jet: (index of its event's first jet, position in the event, jets in the event);
    flat tables: every jet is first, and the jet count is 0 (no events)."""
    if counts is None:
        return np.arange(n, dtype=np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    c = counts.astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(c)[:-1]]) if len(c) else np.zeros(0, np.int64)
    lead = np.repeat(starts, c)
    return lead, np.arange(n, dtype=np.int64) - lead, np.repeat(c, c)


def _event_structure(counts: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(position class per jet: 0 the event's first jet, 1 the second, 2 later ones; index of
    the event's first jet); flat tables: every jet is first."""
    lead, position, _ = _events(counts, n)
    return np.minimum(position, POSITIONS - 1), lead


UNIT_SCALE = {"GeV": 1.0, "MeV": 1e3, "TeV": 1e-3}  # GeV -> file units
MAX_ABS_ETA = 1e4  # |eta| beyond this is stored verbatim


def check_decoded(kind: int, out: Mapping[str, np.ndarray], fourth: str, m_class: np.ndarray | None,
                  coded: np.ndarray, where: str) -> None:
    """What every coded (not verbatim) jet of an honest payload satisfies, because its encoder
    checked the decoded values as float32 against the originals: finite, pt > 0, E > 0, a
    nonzero mass of its class's sign, |eta| below MAX_ABS_ETA + 1. Raises FormatError."""
    with np.errstate(over="ignore", invalid="ignore"):
        pt = out["pt"][coded].astype(np.float32)
        eta = out["eta"][coded].astype(np.float32)
        x4 = out[fourth][coded].astype(np.float32)
        _check(bool(np.all(np.isfinite(pt) & (pt > 0))), where, "a coded pt is not finite and positive")
        _check(bool(np.all(np.abs(eta) <= MAX_ABS_ETA + 1)), where, "a coded |eta| is beyond 10^4")
        _check(bool(np.all(np.isfinite(out["phi"][coded]))), where, "a coded phi is not finite")
        if kind == KIND_E:
            _check(bool(np.all(np.isfinite(x4) & (x4 > 0))), where, "a coded E is not finite and positive")
        else:
            assert m_class is not None
            c = m_class[coded]
            ok = np.where(c == 0, x4 > 0, np.where(c == 1, x4 < 0, x4 == 0)) & np.isfinite(x4)
            _check(bool(np.all(ok)), where, "a coded mass is not finite or not of its class's sign")


class _Writer:
    def __init__(self) -> None:
        self.tables: list[SymbolTable] = []
        self.rans = RansEncoder()
        self.bits = BitWriter()

    def code(self, values: np.ndarray, table: SymbolTable | None = None) -> None:
        if table is None:
            table = fit_table(values)
        self.tables.append(table)
        hi, lo = table.split(values)
        self.rans.add(hi, table)
        self.bits.add(lo, table.shift)


class _Reader:
    def __init__(self, tables: list[SymbolTable], rans: RansDecoder, bits: BitReader, where: str,
                 account: dict[str, float] | None = None) -> None:
        self.tables = tables
        self.rans = rans
        self.bits = bits
        self.next = 0
        self.where = where
        self.account = account  # column -> bytes (entropy-coded, raw bits and tables), if asked

    def code(self, n: int, column: str) -> np.ndarray:
        if self.next >= len(self.tables):
            raise FormatError(f"{self.where}: fewer symbol tables than streams")
        table = self.tables[self.next]
        self.next += 1
        # an encoder's table has a count for each value its stream holds, no more
        if int(np.count_nonzero(_counts_of(table.codes))) > max(n, 1):
            raise FormatError(f"{self.where}: a {column} symbol table has more values than its stream")
        hi = self.rans.take(n, table)
        table.release()  # one model in memory at a time
        lo = self.bits.take(n, table.shift)
        if self.account is not None:
            counts = _counts_of(table.codes).astype(np.float64)
            p = np.maximum(counts[hi], 0.5) / counts.sum()
            self.account[column] = self.account.get(column, 0.0) + (
                float(-np.log2(p).sum()) / 8 + raw_nbytes(n, table.shift) + len(table.to_bytes()))
        return table.join(hi, lo)


def _context_ids(q_pt: np.ndarray, q_eta: np.ndarray, pt_thr: np.ndarray, eta_thr: np.ndarray) -> np.ndarray:
    pt_bin = np.searchsorted(pt_thr, q_pt, side="right")
    eta_bin = np.searchsorted(eta_thr, np.abs(q_eta), side="right")
    return pt_bin * (len(eta_thr) + 1) + eta_bin


def _thresholds(edges: tuple[float, ...], k: int, step: float, log: bool, scale: float) -> np.ndarray:
    if k == 0:
        return np.zeros(0, np.int64)
    chosen = np.array(edges, np.float64)[np.linspace(0, len(edges) - 1, k).round().astype(int)]
    chosen = np.unique(chosen)
    x = np.log(chosen * scale) if log else chosen
    return np.ceil(x / step).astype(np.int64)


def _groups(ctx: np.ndarray, n_ctx: int) -> list[np.ndarray]:
    """Positions of each context's members, in order (one stable sort instead of a pass per
    context)."""
    order = np.argsort(ctx, kind="stable")
    sizes = np.bincount(ctx, minlength=n_ctx)
    return np.split(order, np.cumsum(sizes)[:-1])


def _grouped_tables(values: np.ndarray, groups: list[np.ndarray]) -> tuple[float, list[SymbolTable]]:
    """Fit one table per context; returns (estimated bits, tables in context order)."""
    total, tables = 0.0, []
    for members in groups:
        t, cost = fit_table_cost(values[members])
        total += cost
        tables.append(t)
    return total, tables


LEARNED_ORDER = ("pt_first", "pt_drop", "eta", "phi_rel", "fourth")  # flag bits, in this order
LOG_UNITS = {"GeV": 0.0, "MeV": 6.907755278982137, "TeV": -6.907755278982137}  # log(GeV / file unit)
MAX_UNIFORM = 1 << 24  # constriction's largest uniform alphabet
SAMPLE = 8  # the encoder estimates a long learned stream's size from every 8th symbol
MAX_LEARNED_ROUNDS = 256  # the learned pt drop codes one position per call: events up to this many jets


class _Context:
    """Event structure and the learned models' integer features, from integer symbols only
    (``floor(q * (step * 64))``: one IEEE multiplication, the same on every machine)."""

    def __init__(self, counts: np.ndarray | None, n: int, steps: tuple[float, float, float, float],
                 units: str) -> None:
        self.lead, self.posx, nj = _events(counts, n)  # 0 jets: a flat table, no events
        self.pos = np.minimum(self.posx, ctxm.MAX_COUNT).astype(np.float64)
        self.nj = np.minimum(nj, ctxm.MAX_COUNT).astype(np.float64)
        self.steps = steps
        self.units = units
        self.unit_fixed = float(ctxm.LOG_UNITS_FIXED.get(units, 0))

    def rounds(self) -> list[np.ndarray]:
        """Indices of the second jets of all events, then the third jets, ... (decode order)."""
        later = np.flatnonzero(self.posx > 0)
        if not len(later):
            return []
        p = self.posx[later]
        order = np.argsort(p, kind="stable")
        return np.split(later[order], np.cumsum(np.bincount(p)[1:])[:-1])

    def _lp(self, q: np.ndarray) -> np.ndarray:
        return np.floor(q.astype(np.float64) * (self.steps[0] * ctxm.FIXED)) - self.unit_fixed

    def features(self, name: str, idx: np.ndarray, q_pt: np.ndarray, q_eta: np.ndarray | None = None) -> np.ndarray:
        """(len(idx), F) integer-valued float64 features of stream `name` (see ``context.STREAMS``)."""
        pos, nj = self.pos[idx], self.nj[idx]
        if name == "pt_first":
            cols = [nj]
        elif name == "pt_drop":
            cols = [pos, nj, self._lp(q_pt[idx - 1]), self._lp(q_pt[self.lead[idx]])]
        elif name == "eta":
            cols = [self._lp(q_pt[idx]), pos, nj]
        elif name == "phi_rel":
            lp = self._lp(q_pt[idx])
            cols = [lp, self._lp(q_pt[self.lead[idx]]) - lp, pos, nj]
        else:
            assert q_eta is not None
            cols = [self._lp(q_pt[idx]), np.floor(np.abs(q_eta[idx]).astype(np.float64) * (self.steps[1] * ctxm.FIXED)),
                    pos, nj]
        return np.stack(cols, axis=1) if len(idx) else np.zeros((0, len(cols)))

    def thresholds(self, name: str, model: ContextModel | None) -> np.ndarray | None:
        """Bucket starts on the integer symbols of stream `name`, or None without a model for it."""
        if model is None or name not in model.streams:
            return None
        step = {"pt_first": 0, "pt_drop": 0, "eta": 1, "phi_rel": 2}.get(name, 3)
        offset = LOG_UNITS.get(self.units, 0.0) if name == "pt_first" else 0.0
        return model.streams[name].thresholds(self.steps[step], offset)


def _usable(thr: np.ndarray | None) -> bool:
    """Thresholds a learned stream can code with: every bucket within a uniform alphabet, and
    at least one bucket holding a symbol beside the escape (constriction needs two symbols)."""
    return thr is not None and int(np.diff(thr).max(initial=0)) < MAX_UNIFORM and bool((np.diff(thr) > 0).any())


class _Learned:
    """The encoder's choice, per stream, of the learned model or the chunk's own tables (the
    smaller estimate wins, so a chunk never codes worse than without the model)."""

    def __init__(self, model: ContextModel | None) -> None:
        self.model = model
        self.use: dict[str, tuple] = {}

    def choose(self, name: str, values: np.ndarray, features, thr: np.ndarray | None,
               static_parts: list[np.ndarray], rounds: list[int] | None = None,
               static_bits: float | None = None) -> None:
        if self.model is None or not _usable(thr) or not len(values):
            return
        assert thr is not None
        sm = self.model.streams[name]
        feats = features()
        b, off, width = ctxm.buckets_of(values, thr)
        keep, remap = ctxm.merge_plan(thr)
        esc = b == sm.buckets
        b = remap[b].astype(np.int32)
        # the estimate from every SAMPLE-th symbol of a long stream (the choice is stored, the
        # decoder only reads it): the network runs once more on 1/SAMPLE of the symbols
        stride = SAMPLE if len(values) >= SAMPLE * 4096 else 1
        fs, bs, ws = feats[::stride], b[::stride], width[::stride]
        bits = 0.0
        for a in range(0, len(fs), ctxm.BATCH):
            c = a + ctxm.BATCH
            f = sm.frequencies(fs[a:c], self.model.tanh, self.model.exp, keep)
            bits += ctxm.model_bits(f, bs[a:c], ws[a:c])
        bits *= len(values) / max(1, len(fs))
        if esc.any():
            bits += fit_table_cost(values[esc])[1]
        if static_bits is None:
            static_bits = sum(fit_table_cost(v)[1] for v in static_parts)
        if bits < static_bits:
            self.use[name] = (sm, values, feats, b, off, width, esc, rounds or [len(values)], keep)

    def write(self, w: "_Writer", name: str, static_parts: list[np.ndarray],
              tables: list[SymbolTable] | None = None) -> None:
        if name not in self.use:
            for i, v in enumerate(static_parts):
                w.code(v, tables[i] if tables else None)
            return
        assert self.model is not None
        sm, values, feats, b, off, width, esc, rounds, keep = self.use[name]
        tanh, exp = self.model.tanh, self.model.exp
        if esc.any():
            w.code(values[esc])
        a = 0
        for k in rounds:
            sl = slice(a, a + k)
            f = feats[sl]
            w.rans.add_learned(b[sl], lambda i, j, f=f: sm.frequencies(f[i:j], tanh, exp, keep), ctxm.BATCH)
            w.rans.add_uniform(off[sl].astype(np.int32), width[sl].astype(np.int32))
            a += k

    def head(self, fourth: str) -> bytes:
        names = [fourth if x == "fourth" else x for x in LEARNED_ORDER]
        mask = sum(1 << i for i, x in enumerate(names) if x in self.use)
        n_esc = [int(self.use[x][6].sum()) if x in self.use else 0 for x in names]
        return struct.pack("<B5I", mask, *n_esc)


class _LearnedReader:
    """The decoder's side of :class:`_Learned`."""

    def __init__(self, model: ContextModel | None, mask: int, n_esc: tuple[int, ...], fourth: str,
                 r: "_Reader", where: str) -> None:
        self.model = model
        names = [fourth if x == "fourth" else x for x in LEARNED_ORDER]
        self.on = {x for i, x in enumerate(names) if mask >> i & 1}
        self.n_esc = dict(zip(names, n_esc))
        self.r = r
        self.where = where
        self.esc = np.zeros(0, np.int64)
        self.esc_next = 0
        if self.on and (model is None or not self.on <= set(model.streams)):
            raise FormatError(f"{where}: learned streams without their model")

    def start(self, name: str, column: str) -> None:
        """Read the stream's escaped symbols (they come first)."""
        self.finish()
        k = self.n_esc[name]
        self.esc = self.r.code(k, column) if k else np.zeros(0, np.int64)
        self.esc_next = 0

    def take(self, name: str, feats: np.ndarray, thr: np.ndarray | None, column: str) -> np.ndarray:
        assert self.model is not None
        if not _usable(thr):
            raise FormatError(f"{self.where}: learned stream {name} with unusable thresholds")
        assert thr is not None
        sm = self.model.streams[name]
        tanh, exp = self.model.tanh, self.model.exp
        rans = self.r.rans
        keep, _ = ctxm.merge_plan(thr)
        coded = rans.take_learned(len(feats), lambda i, j: sm.frequencies(feats[i:j], tanh, exp, keep), ctxm.BATCH)
        b = keep[coded]
        inside = b < sm.buckets
        start = thr[np.minimum(b, sm.buckets - 1)]
        width = np.where(inside, thr[np.minimum(b + 1, sm.buckets)] - start, 0)
        off = rans.take_uniform(width.astype(np.int32))
        vals = np.where(inside, start + off, 0).astype(np.int64)
        k = int((~inside).sum())
        if self.esc_next + k > len(self.esc):
            raise FormatError(f"{self.where}: more escaped symbols than stored")
        vals[~inside] = self.esc[self.esc_next:self.esc_next + k]
        self.esc_next += k
        if self.r.account is not None:
            bits = sum(ctxm.model_bits(sm.frequencies(feats[a:a + ctxm.BATCH], tanh, exp, keep),
                                       coded[a:a + ctxm.BATCH], width[a:a + ctxm.BATCH])
                       for a in range(0, len(b), ctxm.BATCH))
            self.r.account[column] = self.r.account.get(column, 0.0) + bits / 8
        return vals

    def finish(self) -> None:
        if self.esc_next != len(self.esc):
            raise FormatError(f"{self.where}: escaped symbols left over")


class BoundedCodec(Codec):
    """Error-bounded, entropy-coded jets (id ``bounded``); see the module doc.

    Args:
        bounds: per-role bounds as :func:`parse_error_bound` returns.
        representation: the source table's representation (``EPtEtaPhi`` or ``PtEtaPhiM``).
        units: the source's energy units (only used to place the pt context bins in GeV).
    """

    codec_id = "bounded"
    parallel = True
    invalid_text = "NaN or inf"

    def __init__(self, bounds: Mapping[str, float], representation: str, units: str = "GeV",
                 context_model: ContextModel | None = None) -> None:
        if representation not in FOURTH:
            raise InputError(f"the error-bounded codec cannot store {representation} tables")
        self.representation = representation
        self.fourth = FOURTH[representation]
        self.kind = KIND_E if self.fourth == "E" else KIND_M
        self.bounds = {r: float(bounds[r]) for r in ("pt", "eta", "phi", self.fourth)}
        self.units = units
        self.context_model = context_model
        self.context_model_file: str | None = None  # a model not shipped: where worker processes load it
        self._legacy_steps: dict[str, tuple[float, ...]] | None = None

    @property
    def version(self) -> int:  # type: ignore[override]
        return 2 if self.context_model is not None else 1

    def grid_steps(self) -> dict[str, float | None]:
        """role -> the quantization step every payload of this configuration uses; None for
        eta and phi in versions 1 and 2, whose steps depended on each chunk's largest value."""
        relative = steps_for(self.bounds, {})
        return {r: (relative[r] if RELATIVE[r] else None) for r in self.bounds}

    def get_config(self) -> dict[str, Any]:
        config = {"id": self.codec_id, "version": self.version, "representation": self.representation,
                  "units": self.units, "bounds": dict(self.bounds),
                  "bound_kinds": {r: "relative" if RELATIVE[r] else "absolute" for r in self.bounds}}
        if self.context_model is not None:
            config["entropy_model"] = self.context_model.reference()
        return config

    def task_config(self) -> dict[str, Any]:
        """The configuration a worker process rebuilds this codec from (with a model's path)."""
        config = self.get_config()
        if self.context_model_file:
            config["context_model_file"] = self.context_model_file
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: DecodeContext | None = None,
                    **runtime: Any) -> "BoundedCodec":
        """`context` (:class:`~jetzip.codecs.DecodeContext`): ``model``, the entropy model (a
        :class:`ContextModel` or a path to one) for files coded with a model that is not the
        shipped one; ``check_only``; ``task``."""
        ctx = DecodeContext.of(context, **runtime)
        try:
            version = int(config.get("version", 1))
            if version not in (1, 2):
                raise FormatError(f"bounded codec version {config.get('version')} is not supported; "
                                  "upgrade jetzip")
            bounds = {str(k): float(v) for k, v in dict(config["bounds"]).items()}
            rep = str(config["representation"])
            units = str(config.get("units", "GeV"))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"malformed bounded codec configuration ({exc})") from None
        if rep not in FOURTH or set(bounds) != {"pt", "eta", "phi", FOURTH[rep]} or \
                not all(math.isfinite(b) and b > 0 for b in bounds.values()):
            raise FormatError("malformed bounded codec configuration (representation or bounds)")
        model = None
        path = None
        if version == 2:
            ref = config.get("entropy_model")
            if not isinstance(ref, Mapping) or not re.fullmatch(r"[0-9a-f]{64}", str(ref.get("sha256"))) \
                    or not ctxm.NAME_PATTERN.fullmatch(str(ref.get("name"))):
                raise FormatError("malformed entropy model reference in the codec configuration")
        if version == 2 and not ctx.check_only:  # opening a file: the model is needed to decode
            # a model not shipped: given at run time (``--model``), or, in a worker process
            # only, the file its parent names (never a path from a file's header)
            hint = config.get("context_model_file") if ctx.task else None
            given = ctx.model or hint
            if isinstance(given, (str, os.PathLike)):
                path = str(given)
                try:
                    given = ContextModel.load(given)
                except FormatError:  # an autoencoder model file, say: not for this codec
                    given, path = None, None
            model = ctxm.resolve_context_model(config.get("entropy_model"),
                                               given if isinstance(given, ContextModel) else None)
        codec = cls(bounds, rep, units, model)
        codec.context_model_file = path
        return codec

    @classmethod
    def check_config(cls, config: Mapping[str, Any], where: str) -> None:
        """The configuration is usable (the learned model is looked up only to decode, where
        ``--model`` can supply it)."""
        cls.from_config(config, DecodeContext(path=where, check_only=True))

    # -- checks ---------------------------------------------------------------------------
    def invalid(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
        """Jets no bound can cover: NaN or inf in any column (as in the latent codec)."""
        bad = np.zeros(len(columns["pt"]), bool)
        for v in columns.values():
            bad |= ~np.isfinite(np.asarray(v, np.float64))
        return bad, ({"with NaN or inf": int(bad.sum())} if bad.any() else {})

    # -- encoding -------------------------------------------------------------------------
    def quantize(self, columns: Mapping[str, np.ndarray]) -> tuple[_Symbols, tuple[float, float, float, float],
                                                                 np.ndarray, tuple[np.ndarray, ...]]:
        """(integer symbols, steps, usable mask, the four columns as float64) of one chunk; jets
        not usable (pt <= 0, ...) get placeholder symbols. Used by ``encode`` and by training."""
        pt = np.asarray(columns["pt"], np.float64)
        eta = np.asarray(columns["eta"], np.float64)
        phi = np.asarray(columns["phi"], np.float64)
        x4 = np.asarray(columns[self.fourth], np.float64)
        finite = np.isfinite(pt) & np.isfinite(eta) & np.isfinite(phi) & np.isfinite(x4)
        max_abs = {"eta": float(np.abs(eta[finite]).max(initial=1.0)),
                   "phi": float(np.abs(phi[finite]).max(initial=4.0))}
        st = steps_for(self.bounds, max_abs)
        steps = (st["pt"], st["eta"], st["phi"], st[self.fourth])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            usable = finite & (pt > 0) & (np.abs(eta) < MAX_ABS_ETA) & (np.abs(phi) < 1e4)
            if self.kind == KIND_E:
                usable &= x4 > 0
            safe_pt = np.where(usable, pt, 1.0)
            q_pt = np.rint(np.log(safe_pt) / steps[0])
            q_eta = np.rint(np.where(usable, eta, 0.0) / steps[1])
            q_phi = np.rint(np.where(usable, phi, 0.0) / steps[2])
            log_pt_hat = q_pt * steps[0]
            m_class = None
            if self.kind == KIND_E:
                eta_hat = q_eta * steps[1]
                d = np.log(np.where(usable, x4, 1.0)) - log_pt_hat - np.log(np.cosh(eta_hat))
                q_4 = np.rint(d / steps[3])
            else:
                m_class = np.where(x4 > 0, 0, np.where(x4 < 0, 1, np.where(np.signbit(x4), 3, 2)))
                mag = np.where(x4 != 0, np.abs(x4), 1.0)
                q_4 = np.rint((np.log(np.where(usable, mag, 1.0)) - log_pt_hat) / steps[3])
                q_4[m_class >= 2] = 0
            sym = _Symbols(q_pt.astype(np.int64), q_eta.astype(np.int64), q_phi.astype(np.int64),
                           np.nan_to_num(q_4, nan=0.0, posinf=0.0, neginf=0.0).astype(np.int64),
                           None if m_class is None else m_class.astype(np.int64))
        return sym, steps, usable, (pt, eta, phi, x4)

    def encode(self, columns: Mapping[str, np.ndarray], counts: np.ndarray | None) -> bytes:
        """One chunk of jets (file units, roles of the representation) -> payload bytes."""
        n = len(columns["pt"])
        if counts is not None and int(np.sum(counts, dtype=np.int64)) != n:
            raise ValueError("event counts do not add up to the jets given")
        sym, steps, usable, (pt, eta, phi, x4) = self.quantize(columns)
        # Decode as the decoder will and keep the jets that miss a bound verbatim.
        dec = _reconstruct(self.kind, steps, sym)
        ok = usable.copy()
        for name, role, orig, rel in (("pt", "pt", pt, True), ("eta", "eta", eta, False),
                                      ("phi", "phi", phi, False), ("fourth", self.fourth, x4, True)):
            # as decoded, and as a writer stores it (jet columns are written as float32)
            ok &= _within(dec[name].astype(np.float32).astype(np.float64), orig, self.bounds[role], rel)
            if np.asarray(columns[role]).dtype == np.float64:
                ok &= _within(dec[name], orig, self.bounds[role], rel)
        exact = np.flatnonzero(~ok)
        if len(exact):
            # placeholders: the previous jet's symbols keep the context streams small
            for arr in (sym.q_pt, sym.q_eta, sym.q_phi, sym.q_4):
                arr[exact] = int(np.median(arr[ok])) if ok.any() else 0
            if sym.m_class is not None:
                sym.m_class[exact] = 0
        return self._pack(sym, steps, counts, n, exact, (pt, eta, phi, x4))

    def _pack(self, sym: _Symbols, steps: tuple[float, float, float, float], counts: np.ndarray | None,
              n: int, exact: np.ndarray, originals: tuple[np.ndarray, ...]) -> bytes:
        position, lead = _event_structure(counts, n)
        ev = _Context(counts, n, steps, self.units)
        learn = _Learned(self.context_model)
        w = _Writer()
        scale = UNIT_SCALE.get(self.units, 1.0)
        # pt: first jets plain; second and later jets as the drop from the previous jet
        first = np.flatnonzero(position == 0)
        learn.choose("pt_first", sym.q_pt[first], lambda: ev.features("pt_first", first, sym.q_pt, sym.q_eta),
                     ev.thresholds("pt_first", self.context_model), [sym.q_pt[first]])
        later = [np.flatnonzero(position == c) for c in range(1, POSITIONS)]
        drops = [sym.q_pt[idx - 1] - sym.q_pt[idx] for idx in later]
        rounds = ev.rounds()
        all_later = np.concatenate(rounds) if rounds else np.zeros(0, np.int64)
        if len(rounds) > MAX_LEARNED_ROUNDS:  # one coding call per position: not for huge events
            rounds = []
            all_later = np.zeros(0, np.int64)
        learn.choose("pt_drop", sym.q_pt[all_later - 1] - sym.q_pt[all_later],
                     lambda: ev.features("pt_drop", all_later, sym.q_pt, sym.q_eta),
                     ev.thresholds("pt_drop", self.context_model), drops, rounds=[len(r) for r in rounds])
        # eta, in pt classes
        eta_pt_thr = (_thresholds(ETA_PT_EDGES_GEV, len(ETA_PT_EDGES_GEV), steps[0], True, scale)
                      if n >= ETA_PT_MIN_JETS else np.zeros(0, np.int64))
        eta_class = np.searchsorted(eta_pt_thr, sym.q_pt, side="right")
        everyone = np.arange(n)
        learn.choose("eta", sym.q_eta, lambda: ev.features("eta", everyone, sym.q_pt, sym.q_eta),
                     ev.thresholds("eta", self.context_model),
                     [sym.q_eta[eta_class == c] for c in range(len(eta_pt_thr) + 1)])
        # phi: first jets plain, second and later ones relative to the leading jet, modulo the range
        phi_min = int(sym.q_phi.min(initial=0))
        phi_n = int(sym.q_phi.max(initial=0)) - phi_min + 1
        rel = [np.mod(sym.q_phi[idx] - sym.q_phi[lead[idx]], phi_n) for idx in later]
        later_all = np.flatnonzero(position > 0)
        # 4th column in (pt, |eta|) contexts
        if sym.m_class is not None:
            coded = sym.m_class < 2
        else:
            coded = np.ones(n, bool)
        values = sym.q_4[coded]
        # Finer contexts pay for their tables only with enough jets: a fixed rule (no search,
        # so the choice costs nothing and depends on nothing but the chunk's size).
        k_pt, k_eta = GRIDS[int(np.searchsorted(GRID_MIN_JETS, len(values), side="right")) - 1]
        pt_thr = _thresholds(PT_EDGES_GEV, k_pt, steps[0], True, scale)
        eta_thr = _thresholds(ETA_EDGES, k_eta, steps[1], False, 1.0)
        n_ctx = (len(pt_thr) + 1) * (len(eta_thr) + 1)
        ctx = _context_ids(sym.q_pt[coded], sym.q_eta[coded], pt_thr, eta_thr)
        groups = _groups(ctx, n_ctx)
        static_bits, tables = _grouped_tables(values, groups)
        coded_idx = np.flatnonzero(coded)
        # The order of the streams below is the decoder's order.
        learn.write(w, "pt_first", [sym.q_pt[first]])
        learn.write(w, "pt_drop", drops)
        learn.write(w, "eta", [sym.q_eta[eta_class == c] for c in range(len(eta_pt_thr) + 1)])
        w.code(sym.q_phi[position == 0])
        learn.choose("phi_rel", np.mod(sym.q_phi[later_all] - sym.q_phi[lead[later_all]], phi_n),
                     lambda: ev.features("phi_rel", later_all, sym.q_pt, sym.q_eta),
                     ev.thresholds("phi_rel", self.context_model), rel)
        learn.write(w, "phi_rel", rel)
        if sym.m_class is not None:
            w.code(sym.m_class)
        learn.choose(self.fourth, values, lambda: ev.features(self.fourth, coded_idx, sym.q_pt, sym.q_eta),
                     ev.thresholds(self.fourth, self.context_model), [values[m] for m in groups],
                     static_bits=static_bits)
        learn.write(w, self.fourth, [values[m] for m in groups], tables)
        head = struct.pack("<B4dqI", self.kind, *steps, phi_min, phi_n)
        head += struct.pack("<B", len(pt_thr)) + pt_thr.astype("<i8").tobytes()
        head += struct.pack("<B", len(eta_thr)) + eta_thr.astype("<i8").tobytes()
        head += struct.pack("<B", len(eta_pt_thr)) + eta_pt_thr.astype("<i8").tobytes()
        if self.context_model is not None:
            head += learn.head(self.fourth)
        head += struct.pack("<H", len(w.tables)) + b"".join(t.to_bytes() for t in w.tables)
        rans = w.rans.finish()
        bits = w.bits.finish()
        ex = pack_verbatim(exact, np.stack([o[exact] for o in originals], axis=1)) if len(exact) else b""
        return (head + struct.pack("<I", len(rans)) + rans + struct.pack("<I", len(bits)) + bits
                + struct.pack("<II", len(exact), len(ex)) + ex)

    # -- decoding -------------------------------------------------------------------------
    @classmethod
    def stream_sizes(cls, config: Mapping[str, Any], chunk: Any, context: DecodeContext | None = None,
                     **runtime: Any) -> dict[str, int]:
        """Bytes of one chunk's payload per column (entropy-coded part, raw bits, tables;
        the rest of the payload under ``"head"``), for ``inspect``."""
        account: dict[str, float] = {}
        ctx = DecodeContext.of(context, **runtime)
        codec = cls.from_config(config, ctx)
        codec.decode(chunk.payload, chunk.n_jets, chunk.counts, where=f"{ctx.path}: chunk {chunk.index}",
                     account=account)
        out = {k: int(round(v)) for k, v in account.items()}
        out["head"] = max(0, len(chunk.payload) - sum(out.values()))
        return out

    def decode(self, payload: bytes | memoryview, n: int, counts: np.ndarray | None,
               where: str = "chunk", account: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Payload -> columns (float64, file units, roles of the representation).

        `account`, if given, collects the bytes each column's streams take.

        Raises:
            FormatError: the payload is malformed, truncated or inconsistent with `n`.
        """
        buf = memoryview(payload)
        try:
            kind, *steps_l, phi_min, phi_n = struct.unpack_from("<B4dqI", buf, 0)
            pos = struct.calcsize("<B4dqI")
            steps = (steps_l[0], steps_l[1], steps_l[2], steps_l[3])
            (k,) = struct.unpack_from("<B", buf, pos)
            pt_thr = np.frombuffer(buf, "<i8", k, pos + 1).astype(np.int64)
            pos += 1 + 8 * k
            (k,) = struct.unpack_from("<B", buf, pos)
            eta_thr = np.frombuffer(buf, "<i8", k, pos + 1).astype(np.int64)
            pos += 1 + 8 * k
            (k,) = struct.unpack_from("<B", buf, pos)
            eta_pt_thr = np.frombuffer(buf, "<i8", k, pos + 1).astype(np.int64)
            pos += 1 + 8 * k
            mask, n_esc = 0, (0, 0, 0, 0, 0)
            if self.context_model is not None:
                mask, *esc_l = struct.unpack_from("<B5I", buf, pos)
                n_esc = tuple(esc_l)
                pos += struct.calcsize("<B5I")
            (n_tables,) = struct.unpack_from("<H", buf, pos)
            pos += 2
        except (struct.error, ValueError):
            raise FormatError(f"{where}: bounded chunk head is cut short") from None
        if kind != self.kind:
            raise FormatError(f"{where}: bounded chunk head is corrupted (a {('E', 'mass')[kind & 1]} table's "
                              "chunk under a header of the other kind)")
        if counts is not None and int(np.sum(counts, dtype=np.int64)) != n:
            raise FormatError(f"{where}: event counts do not add up to the chunk's {n} jets")
        names = [self.fourth if x == "fourth" else x for x in LEARNED_ORDER]
        self._check_head(steps, phi_min, phi_n, pt_thr, eta_thr, eta_pt_thr, n, where)
        if mask >> len(LEARNED_ORDER) or any(k > n for k in n_esc) or \
                any(k and not mask >> i & 1 for i, k in enumerate(n_esc)):
            raise FormatError(f"{where}: bounded chunk head is corrupted (learned streams)")
        on = {x for i, x in enumerate(names) if mask >> i & 1}
        esc = dict(zip(names, n_esc))

        def tables_of(name: str, static: int) -> int:  # a learned stream has one table, for its escapes
            return (1 if esc[name] else 0) if name in on else static

        expected = (tables_of("pt_first", 1) + tables_of("pt_drop", POSITIONS - 1)
                    + tables_of("eta", len(eta_pt_thr) + 1) + 1 + tables_of("phi_rel", POSITIONS - 1)
                    + (kind == KIND_M) + tables_of(self.fourth, (len(pt_thr) + 1) * (len(eta_thr) + 1)))
        if n_tables != expected:
            raise FormatError(f"{where}: {n_tables} symbol tables where this chunk's streams need {expected}")
        tables = []
        for _ in range(n_tables):
            t, pos = SymbolTable.from_bytes(buf, pos, where)
            tables.append(t)
        try:
            (n_rans,) = struct.unpack_from("<I", buf, pos)
            rans = buf[pos + 4:pos + 4 + n_rans]
            pos += 4 + n_rans
            (n_bits,) = struct.unpack_from("<I", buf, pos)
            bits = buf[pos + 4:pos + 4 + n_bits]
            pos += 4 + n_bits
            n_exact, n_ex = struct.unpack_from("<II", buf, pos)
            ex = buf[pos + 8:pos + 8 + n_ex]
            pos += 8 + n_ex
        except struct.error:
            raise FormatError(f"{where}: bounded chunk is cut short") from None
        if len(rans) != n_rans or len(bits) != n_bits or len(ex) != n_ex or pos != len(buf) or n_exact > n:
            raise FormatError(f"{where}: bounded chunk sizes are inconsistent")
        r = _Reader(tables, RansDecoder(rans, where), BitReader(bits, where), where, account)
        lr = _LearnedReader(self.context_model, mask, n_esc, self.fourth, r, where)
        position, lead = _event_structure(counts, n)
        ev = _Context(counts, n, steps, self.units)
        model = self.context_model
        q_pt = np.zeros(n, np.int64)
        q_eta = np.zeros(n, np.int64)
        first = np.flatnonzero(position == 0)
        if "pt_first" in lr.on:
            lr.start("pt_first", "pt")
            q_first = lr.take("pt_first", ev.features("pt_first", first, q_pt), ev.thresholds("pt_first", model), "pt")
        else:
            q_first = r.code(len(first), "pt")
        if "pt_drop" in lr.on:
            q_pt[first] = q_first
            lr.start("pt_drop", "pt")
            thr = ev.thresholds("pt_drop", model)
            rounds = ev.rounds()
            if len(rounds) > MAX_LEARNED_ROUNDS:
                raise FormatError(f"{where}: learned pt stream over events of more than "
                                  f"{MAX_LEARNED_ROUNDS} jets (the encoder never writes one)")
            for idx in rounds:  # the second jets of all events, then the third, ...
                q_pt[idx] = q_pt[idx - 1] - lr.take("pt_drop", ev.features("pt_drop", idx, q_pt), thr, "pt")
        else:
            steps_pt = np.zeros(n, np.int64)
            steps_pt[first] = q_first
            for c in range(1, POSITIONS):
                sel = position == c
                steps_pt[sel] = -r.code(int(sel.sum()), "pt")
            # within each event: q_j = q_first - sum of the drops up to j
            cs = np.cumsum(steps_pt)
            q_pt[:] = cs - (cs[lead] - steps_pt[lead])
        if "eta" in lr.on:
            lr.start("eta", "eta")
            q_eta[:] = lr.take("eta", ev.features("eta", np.arange(n), q_pt), ev.thresholds("eta", model), "eta")
        else:
            eta_class = np.searchsorted(eta_pt_thr, q_pt, side="right")
            for c in range(len(eta_pt_thr) + 1):
                sel = eta_class == c
                q_eta[sel] = r.code(int(sel.sum()), "eta")
        q_phi = np.empty(n, np.int64)
        q_phi[first] = r.code(len(first), "phi")
        if "phi_rel" in lr.on:
            lr.start("phi_rel", "phi")
            later = np.flatnonzero(position > 0)
            rel = lr.take("phi_rel", ev.features("phi_rel", later, q_pt), ev.thresholds("phi_rel", model), "phi")
            rel_parts = [(later, rel)]
        else:
            rel_parts = []
            for c in range(1, POSITIONS):
                idx = np.flatnonzero(position == c)
                rel_parts.append((idx, r.code(len(idx), "phi")))
        for idx, rel in rel_parts:
            if len(rel) and (rel.min() < 0 or rel.max() >= phi_n):
                raise FormatError(f"{where}: phi symbols out of range")
            q_phi[idx] = phi_min + np.mod(q_phi[lead[idx]] - phi_min + rel, phi_n)
        m_class = None
        coded = np.ones(n, bool)
        if kind == KIND_M:
            m_class = r.code(n, "m")
            if len(m_class) and (m_class.min() < 0 or m_class.max() >= MASS_CLASSES):
                raise FormatError(f"{where}: mass classes out of range")
            coded = m_class < 2
        q_4 = np.zeros(n, np.int64)
        idx = np.flatnonzero(coded)
        scale = UNIT_SCALE.get(self.units, 1.0)
        k_pt, k_eta = GRIDS[int(np.searchsorted(GRID_MIN_JETS, len(idx), side="right")) - 1]
        _check(np.array_equal(pt_thr, _thresholds(PT_EDGES_GEV, k_pt, steps[0], True, scale))
               and np.array_equal(eta_thr, _thresholds(ETA_EDGES, k_eta, steps[1], False, 1.0)),
               where, f"the {self.fourth} context grid is not the codec's")
        if self.fourth in lr.on:
            lr.start(self.fourth, self.fourth)
            q_4[idx] = lr.take(self.fourth, ev.features(self.fourth, idx, q_pt, q_eta),
                               ev.thresholds(self.fourth, model), self.fourth)
        else:
            ctx = _context_ids(q_pt[idx], q_eta[idx], pt_thr, eta_thr)
            n_ctx = (len(pt_thr) + 1) * (len(eta_thr) + 1)
            if len(ctx) and ctx.max() >= n_ctx:
                raise FormatError(f"{where}: context out of range")
            for members in _groups(ctx, n_ctx):
                sel = idx[members]
                q_4[sel] = r.code(len(sel), self.fourth)
        lr.finish()
        r.rans.check_done()
        r.bits.check_done()
        if r.next != len(tables):
            raise FormatError(f"{where}: more symbol tables than streams")
        dec = _reconstruct(kind, steps, _Symbols(q_pt, q_eta, q_phi, q_4, m_class))
        out = {"pt": dec["pt"], "eta": dec["eta"], "phi": dec["phi"], self.fourth: dec["fourth"]}
        index, vals = unpack_verbatim(ex, n_exact, n, where)
        if n_exact:
            _check(bool(np.all(np.diff(index) > 0)), where, "verbatim jets out of order")
            _check(bool(np.isfinite(vals).all()), where, "a verbatim jet holds NaN or inf")
        coded_jets = np.ones(n, bool)
        coded_jets[index] = False
        check_decoded(kind, out, self.fourth, m_class, coded_jets, where)
        for i, role in enumerate(("pt", "eta", "phi", self.fourth)):
            out[role][index] = vals[:, i]
        return out

    def _check_head(self, steps: tuple[float, float, float, float], phi_min: int, phi_n: int,
                    pt_thr: np.ndarray, eta_thr: np.ndarray, eta_pt_thr: np.ndarray, n: int, where: str) -> None:
        """A version 1 or 2 chunk head holds only what an encoder could write for this config:
        steps from the bounds (:func:`legacy_step_choices`), a phi range of jets within pi +
        the bound, thresholds of the fixed grids. Raises FormatError naming the field."""
        if self._legacy_steps is None:
            self._legacy_steps = {r: legacy_step_choices(r, b) for r, b in self.bounds.items()}
        for role, step in zip(("pt", "eta", "phi", self.fourth), steps):
            _check(step in self._legacy_steps[role], where,
                   f"the {role} quantization step {step:.6g} is not one the file's bounds allow")
        lim = phi_symbol_limit(steps[2], self.bounds["phi"])
        _check(-lim <= phi_min <= 0 <= phi_min + phi_n - 1 <= lim, where, "the phi range is wider than |phi| <= pi")
        scale = UNIT_SCALE.get(self.units, 1.0)
        classes = (_thresholds(ETA_PT_EDGES_GEV, len(ETA_PT_EDGES_GEV), steps[0], True, scale)
                   if n >= ETA_PT_MIN_JETS else np.zeros(0, np.int64))
        _check(np.array_equal(eta_pt_thr, classes), where, "the eta pt classes are not the codec's")
        _check(any(np.array_equal(pt_thr, _thresholds(PT_EDGES_GEV, k_pt, steps[0], True, scale))
                   and np.array_equal(eta_thr, _thresholds(ETA_EDGES, k_eta, steps[1], False, 1.0))
                   for k_pt, k_eta in GRIDS), where, f"the {self.fourth} context grid is not the codec's")

    @classmethod
    def describe(cls, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        kinds = dict(config.get("bound_kinds") or {})
        bounds = ", ".join(f"{k} {float(v):.3g}" + (f" ({kinds[k]})" if k in kinds else "")
                           for k, v in dict(config.get("bounds") or {}).items())
        rows = [("codec", "bounded (every value within its bound)"), ("bounds", bounds or "-")]
        model = config.get("entropy_model")
        if isinstance(model, Mapping):
            rows.append(("entropy model", f"{model.get('name')} (learned; sha256 {str(model.get('sha256'))[:12]}...)"))
        return rows

    @classmethod
    def guaranteed_bounds(cls, config: Mapping[str, Any]) -> dict[str, float] | None:
        return {str(k): float(v) for k, v in dict(config.get("bounds") or {}).items()}

    @classmethod
    def summary(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """``mass_usable`` (True), ``bounds``, ``entropy_model`` (its reference, or None: the
        chunks' own tables only)."""
        return {"mass_usable": True, "bounds": cls.guaranteed_bounds(config),
                "entropy_model": config.get("entropy_model")}

    @classmethod
    def payload_stats(cls, config: Mapping[str, Any], chunks: Any, context: DecodeContext | None = None
                      ) -> dict[str, Any]:
        """``stream_bytes``: bytes per column stream over `chunks` (see :meth:`stream_sizes`)."""
        streams: dict[str, int] = {}
        for chunk in chunks:
            for k, v in cls.stream_sizes(config, chunk, context).items():
                streams[k] = streams.get(k, 0) + v
        return {"stream_bytes": streams} if streams else {}


register(BoundedCodec)
