"""The stream plan of payload version 3, and the coder that walks it both ways.

:data:`PLAN` declares the streams a jet's symbols go to, in the order a decoder reads them
(``spec`` documents each). Everything that depends on it is derived from it: the number and
order of a chunk's symbol tables (:func:`table_counts`), which streams the learned model may
code, the columns inspect accounts bytes to, and the walk itself (:mod:`.kernels` visits the
streams in this order, checked at import).

Per chunk the encoder fits one table per static context (:func:`fit_table`), asks the learned
model what each stream it covers would cost (exactly, with the frequencies it will code with),
keeps the cheaper of the two per stream, and codes every symbol into one rANS stream.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...entropy import context as ctxm
from ...entropy.context import ContextModel
from . import kernels as _kernels
from ..base import pack_verbatim, unpack_verbatim
from .events import stream_thresholds, usable_thresholds
from .params import ETA_PT_MIN_JETS, config_tag, eta_class_thresholds, grid_index, grid_thresholds, grids, phi_limit
from .spec import LEARNED_STREAMS, TABLE, Head, Tables, parse, refuse_unless


K: Any = _kernels  # compiled loops (numba dispatchers: their arguments are checked when compiled)
MAX_TABLE_PRECISION = 12


@dataclass(frozen=True)
class Stream:
    """One stream of the plan: which jets have a symbol in it, what the symbol is, and what
    selects its table."""

    name: str
    column: str  # the column inspect accounts it to ("fourth": the table's E or mass)
    jets: str
    value: str
    contexts: str
    learned: bool  # the entropy model may code it (a stream of the same name, "fourth": m or E)


PLAN = (
    Stream("pt_first", "pt", "the first jet of each event (every jet of a flat table)", "q_pt", "one", True),
    Stream("pt_drop", "pt", "second and later jets", "q_pt of the previous jet - q_pt",
           "position (2nd, later); constituents: the previous particle's pt bin", True),
    Stream("eta", "eta", "every jet (constituents: the first particle of each jet)", "q_eta",
           "pt class (3 from 2,000 jets on, else 1)", True),
    Stream("eta_rel", "eta", "constituents only: second and later particles", "q_eta - q_eta of the first particle",
           "the particle's pt bin", False),
    Stream("phi_first", "phi", "first jets", "q_phi in [-Q, Q]", "one", False),
    Stream("phi_rel", "phi", "second and later jets", "(q_phi - q_phi of the event's first jet) mod (2Q + 1)",
           "position (2nd, later); constituents: the particle's pt bin", True),
    Stream("m_class", "fourth", "every jet of a mass table", "0 positive, 1 negative, 2 +0.0, 3 -0.0", "one",
           False),
    Stream("fourth", "fourth", "every jet but mass classes 2 and 3", "q_E or q_m",
           "the grid's pt bin x |eta| bin", True),
)
assert [s.name for s in PLAN] == ["pt_first", "pt_drop", "eta", "eta_rel", "phi_first", "phi_rel", "m_class",
                                  "fourth"]
assert [i for i, s in enumerate(PLAN) if s.learned] == [i for i in range(K.N_STREAMS) if K.LEARNED_SLOT[i] >= 0]
assert tuple(s.name for s in PLAN if s.learned) == LEARNED_STREAMS


def table_counts(mass: bool, grid: int, eta_classes: int, learned: int, kind: str = "jets") -> list[int]:
    """Symbol tables of each stream of :data:`PLAN` in a chunk: one per static context, or one
    (for escaped values) where the model codes the stream (`learned`: bit per learned stream)."""
    k_pt, k_eta = grids(kind)[grid]
    const = kind == "constituents"
    by_pt = k_pt + 1  # constituents: the pt bins of the grid
    static = {"pt_first": 1, "pt_drop": by_pt if const else 2, "eta": 3 if eta_classes else 1,
              "eta_rel": by_pt if const else 0, "phi_first": 1, "phi_rel": by_pt if const else 2,
              "m_class": 1 if mass else 0, "fourth": by_pt * (k_eta + 1)}
    bits = {name: learned >> i & 1 for i, name in enumerate(LEARNED_STREAMS)}
    return [1 if bits.get(s.name) else static[s.name] for s in PLAN]


# -- tables -------------------------------------------------------------------------------------

@dataclass
class Table:
    """One static table: value v -> high part ``(v >> shift) - offset`` coded with ``freq``
    (summing to 2^prec; prec 0: one high part, nothing coded), then `shift` raw bits."""

    shift: int
    prec: int
    offset: int
    freq: np.ndarray  # int64 (alphabet,), empty when prec == 0
    bits: float  # what coding its stream with it costs, the table included

    @property
    def alphabet(self) -> int:
        return max(1, len(self.freq))


def precision_for(n: int) -> int:
    """The frequency precision of a stream of `n` symbols: 2^P >= 2n, within 2^8 .. 2^12. Four
    thousand slots of lookup (8 kB) per table keep the tables a jet touches in the core's cache;
    2^16 slots cost the decoder 2x in speed for 0.2 % in size (measured on 1M Pythia jets)."""
    return min(MAX_TABLE_PRECISION, max(8, int(n).bit_length() + 1))


def fit_table(values: np.ndarray) -> Table:
    """The table that codes `values` (int64) in the fewest estimated bits: the smallest shift
    whose alphabet fits the precision (:func:`first_shift`), coarsened by pairs of bins while
    that pays (:func:`fit_histogram`)."""
    v = np.asarray(values, np.int64)
    n = len(v)
    if n == 0:
        return fit_histogram(np.zeros(0, np.int64), 0, 0, 0)
    k, lo = first_shift(int(v.min()), int(v.max()), n)
    return fit_histogram(np.bincount((v >> k) - lo).astype(np.int64), n, k, lo)


def first_shift(vmin: int, vmax: int, n: int) -> tuple[int, int]:
    """(k, lo): the smallest shift k at which `n` values in [vmin, vmax] span fewer high parts
    than the precision's slots, and the lowest high part ``vmin >> k``."""
    cap = 1 << precision_for(n)
    k = 0
    while (vmax >> k) - (vmin >> k) >= cap:
        k += 1
    return k, vmin >> k


def fit_histogram(hist: np.ndarray, n: int, k: int, lo: int) -> Table:
    """:func:`fit_table` of `n` values given the histogram (int64) of their high parts
    ``(v >> k) - lo`` at :func:`first_shift`'s (k, lo): ``np.bincount`` of them."""
    return fit_histograms(np.asarray(hist, np.int64), np.array([0, len(hist)], np.int64), [n], [k], [lo])[0]


def fit_histograms(hist: np.ndarray, hbase: np.ndarray, size: Any, shift: Any, lo: Any) -> list[Table]:
    """:func:`fit_histogram` of every group: group g's histogram is hist[hbase[g]:hbase[g + 1]]
    of its size[g] values at (shift[g], lo[g]) (:func:`group_histograms`); in one compiled
    loop (:func:`.kernels.fit_histograms`)."""
    size = np.asarray(size, np.int64)
    prec = np.array([precision_for(int(n)) for n in size], np.int64)
    k, p, off, bits, freq, fbase = K.fit_histograms(hist, hbase, size, np.asarray(shift, np.int64),
                                                    np.asarray(lo, np.int64), prec, 8.0 * TABLE.size)
    return [Table(int(k[g]), int(p[g]), int(off[g]), freq[fbase[g]:fbase[g + 1]], float(bits[g]))
            for g in range(len(size))]


def group_histograms(counts: np.ndarray, q: np.ndarray, pli: np.ndarray, classes: np.ndarray, pt_thr: np.ndarray,
                     eta_thr: np.ndarray, group_base: np.ndarray
                     ) -> tuple[np.ndarray, list[int], list[int], np.ndarray, np.ndarray]:
    """What :func:`fit_histogram` takes for every group (stream, static context) of a chunk's
    symbols (:func:`.kernels.group_symbols`): (symbols per group, :func:`first_shift`'s k and lo
    per group, where each group's histogram starts (n_groups + 1,), the histograms)."""
    n_groups = int(group_base[-1])
    group, found, size, vmin, vmax = K.group_symbols(counts, q, pli, classes, pt_thr, eta_thr, group_base, n_groups)
    firsts = [first_shift(int(vmin[g]), int(vmax[g]), int(size[g])) if size[g] else (0, 0) for g in range(n_groups)]
    shift, lo = [k for k, _ in firsts], [b for _, b in firsts]
    bins = [((int(vmax[g]) >> shift[g]) - lo[g] + 1) if size[g] else 0 for g in range(n_groups)]
    hbase = np.concatenate([[0], np.cumsum(bins)]).astype(np.int64)
    hist = K.histograms(group, found, np.array(shift, np.int64), np.array(lo, np.int64), hbase)
    return size, shift, lo, hbase, hist


def pack_tables(tables: list[Table]) -> Tables:
    return Tables(np.array([t.shift for t in tables], np.int64), np.array([t.prec for t in tables], np.int64),
                  np.array([t.offset for t in tables], np.int64), np.array([t.alphabet for t in tables], np.int64),
                  np.concatenate([t.freq for t in tables] + [np.zeros(0, np.int64)]).astype(np.int32))


# -- the coder ------------------------------------------------------------------------------------

class Coder:
    """Version 3 coding of a configuration's chunks: its steps, phi range, grids and learned
    model arrays are computed once.

    Args:
        config: the codec's configuration (for the tag).
        steps: (s_pt, s_eta, s_phi, s_4).
        fourth: ``"m"`` or ``"E"``.
        units: the table's energy units.
        model: the learned entropy model, or None.
        kind: ``"jets"`` or ``"constituents"``.
        xyz: the columns are (px, py, pz, E or mass).
    """

    def __init__(self, config: dict[str, Any], steps: tuple[float, float, float, float], fourth: str, units: str,
                 model: ContextModel | None, kind: str = "jets", xyz: bool = False) -> None:
        self.tag = config_tag(config)
        self.steps = steps
        self.mass = fourth == "m"
        self.units = units
        self.kind = kind
        self.q = phi_limit(steps[2])
        self.eta_classes = eta_class_thresholds(steps[0], units)
        self.grids = [grid_thresholds(g, steps[0], steps[1], units, kind) for g in range(len(grids(kind)))]
        names = [fourth if x == "fourth" else x for x in LEARNED_STREAMS]
        self.usable = [False] * len(names)
        models = []
        for slot, name in enumerate(names):
            thr = stream_thresholds(name, model, steps, units)
            if model is not None and thr is not None and usable_thresholds(thr):
                self.usable[slot] = True
                models.append((slot, model.streams[name], thr))
        from ...entropy.kernels import ModelArrays

        self.model = ModelArrays(models, model.tanh if model is not None else np.zeros(1),
                                 model.exp if model is not None else np.zeros(1))
        self.pli = np.array([int(self.mass), self.q, int(kind == "constituents"), int(xyz)], np.int64)
        self.plf = np.array([steps[0] * ctxm.FIXED, steps[1] * ctxm.FIXED,
                             float(ctxm.LOG_UNITS_FIXED.get(units, 0))], np.float64)

    def plan(self, grid: int, eta_classes: int, counts: list[int], learned: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(first table of each stream, learned flag of each stream, eta class thresholds, the
        4th column's pt and |eta| thresholds) of a chunk."""
        base = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        flags = np.array([learned >> int(K.LEARNED_SLOT[s]) & 1 if K.LEARNED_SLOT[s] >= 0 else 0
                          for s in range(K.N_STREAMS)], np.int64)
        pt_thr, eta_thr = self.grids[grid]
        classes = self.eta_classes if eta_classes else np.zeros(0, np.int64)
        return base, flags, classes, pt_thr, eta_thr

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, columns: tuple[np.ndarray, ...], counts: np.ndarray | None, bounds: tuple[float, ...],
               wide: tuple[bool, ...]) -> bytes:
        """The payload of a chunk: (pt, eta, phi, E or mass) columns, per-event counts (None: a
        flat table), the bounds and which columns the input held as float64."""
        n = len(columns[0])
        cnt = np.ones(n, np.int64) if counts is None else np.asarray(counts, np.int64)
        flat = counts is None
        if len({np.asarray(c).dtype for c in columns}) > 1 or np.asarray(columns[0]).dtype.kind != "f":
            columns = tuple(np.asarray(c, np.float64) for c in columns)
        q, ok = K.quantize_verify(*(np.ascontiguousarray(c) for c in columns), int(not self.mass),
                                  np.array(self.steps), np.array(bounds, np.float64), np.array(wide), self.q,
                                  bool(self.pli[3]))
        exact = np.flatnonzero(~ok)
        if len(exact):  # the median symbols of the others keep the streams small (any value decodes)
            for col in range(5):
                q[exact, col] = int(np.median(q[ok, col])) if ok.any() else 0
            q[exact, 3] = 0
        const = self.kind == "constituents"
        grid = grid_index(n if const else int((q[:, 3] < 2).sum()), self.kind)
        eta_classes = int(n >= ETA_PT_MIN_JETS and not const)
        static = table_counts(self.mass, grid, eta_classes, 0, self.kind)
        _, _, classes, pt_thr, eta_thr = self.plan(grid, eta_classes, static, 0)
        group_base = np.concatenate([[0], np.cumsum(static)]).astype(np.int64)
        size, shift0, lo, hbase, hist = group_histograms(cnt, q, self.pli, classes, pt_thr, eta_thr, group_base)
        fitted = fit_histograms(hist, hbase, size, shift0, lo)
        tables: list[list[Table]] = []
        learned = 0
        coded: list[np.ndarray] = [np.zeros(0, np.int64)] * len(PLAN)
        for s in range(len(PLAN)):
            groups = range(int(group_base[s]), int(group_base[s + 1]))
            own = fitted[int(group_base[s]):int(group_base[s + 1])]
            tables.append(own)
            slot = int(K.LEARNED_SLOT[s])
            if slot < 0 or not self.usable[slot] or not any(size[g] > 0 for g in groups):
                continue
            bits, codes, escaped = K.learned_pass(s, cnt, flat, q, self.pli, self.plf, *self.model.network_args(),
                                                  self.model.thr)
            esc = fit_table(escaped)
            if bits + esc.bits < sum(t.bits for t in own):
                tables[s] = [esc]
                learned |= 1 << slot
                coded[s] = codes
        flat_tables = [t for ts in tables for t in ts]
        packed = pack_tables(flat_tables)
        base, flags, _, _, _ = self.plan(grid, eta_classes, [len(ts) for ts in tables], learned)
        shift, prec, offset, fbase, _, freq, cum, _ = packed.arrays()
        coded_base = np.concatenate([[0], np.cumsum([len(c) for c in coded])]).astype(np.int64)
        words = K.encode_chunk(cnt, q, self.pli, classes, pt_thr, eta_thr, shift, prec, offset, fbase, freq, cum,
                               base, flags, self.model.dims, self.model.thr, np.concatenate(coded), coded_base)
        head = Head(self.tag, learned, grid, eta_classes, len(flat_tables))
        ex = pack_verbatim(exact, np.stack([np.asarray(c, np.float64)[exact] for c in columns], axis=1)) \
            if len(exact) else b""
        return (head.pack() + packed.pack() + struct.pack("<I", len(words)) + words.astype("<u2").tobytes()
                + struct.pack("<II", len(exact), len(ex)) + ex)

    # -- decoding -----------------------------------------------------------------------------
    def decode(self, payload: bytes | memoryview, n: int, counts: np.ndarray | None, where: str,
               account: dict[str, float] | None = None) -> tuple[np.ndarray, ...]:
        """(pt, eta, phi, E or mass), float64, of a chunk; `account` collects bytes per stream's
        column.

        Raises:
            FormatError: anything a version 3 encoder of this configuration would not write.
        """
        buf = memoryview(payload)
        head, tables, words, ex, n_exact = parse(buf, n, where)
        refuse_unless(head.tag == self.tag, where, "the chunk belongs to a file of another configuration (tag)")
        refuse_unless(head.grid < len(self.grids) and head.eta_classes <= int(self.kind == "jets"), where,
                      "the context grid is not the codec's")
        allowed = sum(1 << i for i, ok in enumerate(self.usable) if ok)
        refuse_unless(head.learned & ~allowed == 0, where, "learned streams the entropy model cannot code")
        counts_of = table_counts(self.mass, head.grid, head.eta_classes, head.learned, self.kind)
        refuse_unless(head.n_tables == sum(counts_of), where,
                      f"{head.n_tables} symbol tables where this chunk's streams need {sum(counts_of)}")
        index, vals = unpack_verbatim(ex, n_exact, n, where)
        if n_exact:
            refuse_unless(bool(np.all(np.diff(index) > 0)), where, "verbatim jets out of order")
            refuse_unless(bool(np.isfinite(vals).all()), where, "a verbatim jet holds NaN or inf")
        base, flags, classes, pt_thr, eta_thr = self.plan(head.grid, head.eta_classes, counts_of, head.learned)
        cnt = np.ones(n, np.int64) if counts is None else np.asarray(counts, np.int64)
        out = tuple(np.empty(n) for _ in range(4))
        arrays = tables.arrays()
        index, vals = np.array(index, np.int64), np.array(vals, np.float64).reshape(-1, 4)
        if self.common(head.learned) and account is None and self._decode_common(
                words, cnt, arrays, (base, classes, pt_thr, eta_thr), index, vals, out):
            return out
        status, x, read, acct = K.decode_chunk(
            words, cnt, counts is None, *arrays, base, flags, self.pli, self.plf, np.array(self.steps),
            int(not self.mass), classes, pt_thr, eta_thr, *self.model.network_args(), self.model.keep, self.model.thr,
            index, vals, *out, account is not None)
        refuse_unless(status == K.OK, where, STATUS.get(int(status), "the entropy-coded stream is corrupted"))
        refuse_unless(x == 1 << 16 and read == len(words), where, "the entropy-coded stream is corrupted "
                      "(it does not end where it should)")
        if account is not None:
            self._account(account, acct, tables, counts_of)
        return out

    def common(self, learned: int) -> bool:
        """Whether chunks of this coder with these learned streams take the common case's
        decoder (:func:`.kernels.decode_common`): jets (not constituents) in (pt, eta, phi, E or
        mass), every stream in static tables."""
        return learned == 0 and self.kind == "jets" and not self.pli[3]

    def _decode_common(self, words: np.ndarray, cnt: np.ndarray, arrays: tuple[np.ndarray, ...],
                       plan: tuple[np.ndarray, ...], index: np.ndarray, vals: np.ndarray,
                       out: tuple[np.ndarray, ...]) -> bool:
        """Decode a chunk of the common case into `out`: True where it decoded cleanly (any fault
        leaves it to :func:`.kernels.decode_chunk`, which names the first one)."""
        shift, prec, offset, fbase, lbase, freq, cum, lut = arrays
        base, classes, pt_thr, eta_thr = plan
        common = K.common_tables(prec, shift, offset, fbase, lbase, freq, cum, lut)
        status, x, read = K.decode_common(words, cnt, *common, base, int(self.mass), self.q, classes, pt_thr, eta_thr,
                                          np.array(self.steps), int(not self.mass), index, vals, *out)
        return bool(status == K.OK and x == 1 << 16 and read == len(words))

    @staticmethod
    def _account(account: dict[str, float], acct: np.ndarray, tables: Tables, counts_of: list[int]) -> None:
        """Bytes per column: the streams' coded bits, and their tables (descriptor and frequency
        share of the compressed block)."""
        sizes = np.where(tables.prec > 0, tables.alphabet, 0)
        block = len(zlib.compress(tables.freq.astype("<u2").tobytes(), 9))
        per_entry = block / max(1, int(sizes.sum()))
        t = 0
        for s, stream in enumerate(PLAN):
            column = stream.column
            extra = sum(TABLE.size + per_entry * float(sizes[i]) for i in range(t, t + counts_of[s]))
            t += counts_of[s]
            account[column] = account.get(column, 0.0) + float(acct[s]) / 8 + extra


STATUS = {K.BAD_PHI: "a phi symbol is outside [-Q, Q]", K.BAD_PHI_REL: "a relative phi symbol is out of range",
          K.BAD_CLASS: "a mass class is out of range", K.BAD_OFFSET: "a learned offset is beyond its bucket",
          K.BAD_ESCAPE: "an escaped symbol lies inside the learned buckets",
          K.BAD_PT: "a coded pt is not finite and positive", K.BAD_ETA: "a coded |eta| is beyond 10^4",
          K.BAD_FOURTH: "a coded E or mass is not finite or not of its class's sign"}
