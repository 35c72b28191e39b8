"""Decoding of bounded payload versions 1 and 2 (files written before version 3), checked.

No encoder writes these versions any more; every file written with them decodes forever, through
the same ``constriction`` models, and every chunk is checked against its file's configuration
before its values are used (see :mod:`.spec` for the layout and what is refused). The returned
symbols go through the same reconstruction and checks as version 3 (:mod:`.quantize`).
"""
from __future__ import annotations

import struct

import numpy as np

from ...entropy import context as ctxm
from ...entropy.context import ContextModel
from ...entropy.legacy import BitReader, RansDecoder, SymbolTable, _counts_of, raw_nbytes
from ...errors import FormatError
from .events import POSITIONS, Features, events, usable_thresholds
from .params import (ETA_EDGES, ETA_PT_EDGES_GEV, ETA_PT_MIN_JETS, GRIDS, PT_EDGES_GEV, UNIT_SCALE, grid_index,
                     legacy_phi_limit, legacy_step_choices, thresholds)
from .quantize import KIND_M, MASS_CLASSES, Symbols
from .spec import LEARNED_STREAMS
from .spec import refuse_unless as _check

MAX_LEARNED_ROUNDS = 256  # version 2 coded the learned pt drops one position per call: up to this many jets


def _context_ids(q_pt: np.ndarray, q_eta: np.ndarray, pt_thr: np.ndarray, eta_thr: np.ndarray) -> np.ndarray:
    pt_bin = np.searchsorted(pt_thr, q_pt, side="right")
    eta_bin = np.searchsorted(eta_thr, np.abs(q_eta), side="right")
    return pt_bin * (len(eta_thr) + 1) + eta_bin


def _groups(ctx: np.ndarray, n_ctx: int) -> list[np.ndarray]:
    """Positions of each context's members, in order (one stable sort)."""
    order = np.argsort(ctx, kind="stable")
    sizes = np.bincount(ctx, minlength=n_ctx)
    return np.split(order, np.cumsum(sizes)[:-1])


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


class _LearnedReader:
    """The decoder's side of :class:`_Learned`."""

    def __init__(self, model: ContextModel | None, mask: int, n_esc: tuple[int, ...], fourth: str,
                 r: "_Reader", where: str) -> None:
        self.model = model
        names = [fourth if x == "fourth" else x for x in LEARNED_STREAMS]
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
        if not usable_thresholds(thr):
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


class LegacyDecoder:
    """The version 1 and 2 decoder of one configuration.

    Args:
        bounds: role -> bound (the file's header).
        fourth: ``"m"`` or ``"E"``.
        kind: KIND_E or KIND_M.
        units: the table's energy units.
        context_model: the learned model (version 2), or None.
    """

    def __init__(self, bounds: dict[str, float], fourth: str, kind: int, units: str,
                 context_model: ContextModel | None) -> None:
        self.bounds = bounds
        self.fourth = fourth
        self.kind = kind
        self.units = units
        self.context_model = context_model
        self._legacy_steps = {r: legacy_step_choices(r, b) for r, b in bounds.items()}

    def decode(self, payload: bytes | memoryview, n: int, counts: np.ndarray | None, where: str,
               account: dict[str, float] | None = None
               ) -> tuple[Symbols, tuple[float, float, float, float], memoryview, int]:
        """(symbols, steps, verbatim block, verbatim count) of a chunk; `account`, if given,
        collects the bytes each column's streams take.

        Raises:
            FormatError: the payload is malformed, truncated, inconsistent with `n`, or holds
                what no encoder of this configuration wrote.
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
        names = [self.fourth if x == "fourth" else x for x in LEARNED_STREAMS]
        self._check_head(steps, phi_min, phi_n, pt_thr, eta_thr, eta_pt_thr, n, where)
        if mask >> len(LEARNED_STREAMS) or any(k > n for k in n_esc) or \
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
        lead, position, _ = events(counts, n)
        position = np.minimum(position, POSITIONS - 1)
        ev = Features(counts, n, steps, self.units)
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
        k_pt, k_eta = GRIDS[grid_index(len(idx))]
        _check(np.array_equal(pt_thr, thresholds(PT_EDGES_GEV, k_pt, steps[0], True, scale))
               and np.array_equal(eta_thr, thresholds(ETA_EDGES, k_eta, steps[1], False, 1.0)),
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
        return Symbols(q_pt, q_eta, q_phi, q_4, m_class), steps, ex, n_exact

    def _check_head(self, steps: tuple[float, float, float, float], phi_min: int, phi_n: int,
                    pt_thr: np.ndarray, eta_thr: np.ndarray, eta_pt_thr: np.ndarray, n: int, where: str) -> None:
        """A version 1 or 2 chunk head holds only what an encoder could write for this config:
        steps from the bounds (:func:`legacy_step_choices`), a phi range of jets within pi +
        the bound, thresholds of the fixed grids. Raises FormatError naming the field."""
        for role, step in zip(("pt", "eta", "phi", self.fourth), steps):
            _check(step in self._legacy_steps[role], where,
                   f"the {role} quantization step {step:.6g} is not one the file's bounds allow")
        lim = legacy_phi_limit(steps[2], self.bounds["phi"])
        _check(-lim <= phi_min <= 0 <= phi_min + phi_n - 1 <= lim, where, "the phi range is wider than |phi| <= pi")
        scale = UNIT_SCALE.get(self.units, 1.0)
        classes = (thresholds(ETA_PT_EDGES_GEV, len(ETA_PT_EDGES_GEV), steps[0], True, scale)
                   if n >= ETA_PT_MIN_JETS else np.zeros(0, np.int64))
        _check(np.array_equal(eta_pt_thr, classes), where, "the eta pt classes are not the codec's")
        _check(any(np.array_equal(pt_thr, thresholds(PT_EDGES_GEV, k_pt, steps[0], True, scale))
                   and np.array_equal(eta_thr, thresholds(ETA_EDGES, k_eta, steps[1], False, 1.0))
                   for k_pt, k_eta in GRIDS), where, f"the {self.fourth} context grid is not the codec's")
