"""The compiled loops of payload version 3: one walk over the jets, the same plan both ways.

Every loop here visits the events in order, the jets of each event in order, and for each jet
the streams of :data:`.streams.PLAN` in its order (the encoder's last pass visits all of it in
exactly the reverse order: rANS is a stack). Which jets have a symbol in a stream
(:func:`active`), what the symbol is (:func:`value`, and its inverse :func:`unvalue`), its static
context (:func:`context`, with :func:`bin_of`), the learned model's features (:func:`features`),
and the decoded values (:func:`reconstruct`, which the encoder's check of every jet uses too) are
each one function of what is already known at that point (earlier jets, earlier streams of this
jet), so the encoder and decoder cannot disagree. Symbol coding is
:mod:`jetzip.entropy.kernels`'s.

The helpers take numbers only (see that module on why), and the loops keep what later jets need
as numbers too (the previous jet's q_pt, the event's first jet's q_pt and q_phi): the decoder
writes the four output columns and nothing else per jet.

Common arguments: ``counts`` (jets per event; a flat table passes ones, with ``flat`` set where
the jet count feature matters: every jet first, jet count 0), ``pli`` (mass classes coded, Q of
phi, a table of constituents, Cartesian columns), ``plf`` (s_pt * 64, s_eta * 64, the log pt
unit offset), ``steps`` (s_pt, s_eta, s_phi, s_4), the eta class thresholds and the grid's pt
and |eta| thresholds, the chunk's static tables (``spec.Tables``), and the learned model's
arrays (:class:`jetzip.entropy.kernels.ModelArrays`).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ...entropy.kernels import L, even_decode, even_encode, network, put, put_raw, renorm

# Stream indices, in the plan's order (streams.PLAN checks it), and their learned slot (-1: none)
PT_FIRST, PT_DROP, ETA, ETA_REL, PHI_FIRST, PHI_REL, M_CLASS, FOURTH = range(8)
N_STREAMS = 8
LEARNED_SLOT = np.array([0, 1, 2, -1, -1, 3, -1, 4], np.int64)
MAX_COUNT = 31  # position and jet count features are capped here (entropy.context.MAX_COUNT)
MAX_FEATURE = 65536.0  # entropy.context.MAX_FEATURE
MAX_ABS = 1e4  # quantize.MAX_ABS_ETA: |eta|, |phi| beyond are stored verbatim
# decode statuses
OK, BAD_PHI, BAD_PHI_REL, BAD_CLASS, BAD_OFFSET, BAD_ESCAPE, BAD_PT, BAD_ETA, BAD_FOURTH, BAD_XYZ = range(10)


# -- the plan, one function each (numbers in, numbers out) -----------------------------------------

@nb.njit(cache=True, inline="always")
def active(s: int, pos: int, cls: int, mass: int, const: int) -> bool:
    """Whether a jet at position `pos` of its event (mass class `cls`) has a symbol in stream `s`
    (`const`: a table of constituents, whose particles' eta is relative to the first one's)."""
    if s == PT_FIRST or s == PHI_FIRST:
        return pos == 0
    if s == PT_DROP or s == PHI_REL:
        return pos > 0
    if s == ETA:
        return pos == 0 or const == 0
    if s == ETA_REL:
        return pos > 0 and const != 0
    if s == M_CLASS:
        return mass != 0
    return cls < 2


@nb.njit(cache=True, inline="always")
def value(s: int, q_pt: int, q_prev: int, q_eta: int, q_eta_lead: int, q_phi: int, q_phi_lead: int, cls: int,
          q_4: int, big_q: int) -> int:
    """The symbol of a jet in stream `s` (q_prev: the previous jet's q_pt; q_eta_lead,
    q_phi_lead: the event's first jet's)."""
    if s == PT_FIRST:
        return q_pt
    if s == PT_DROP:
        return q_prev - q_pt
    if s == ETA:
        return q_eta
    if s == ETA_REL:
        return q_eta - q_eta_lead
    if s == PHI_FIRST:
        return q_phi
    if s == PHI_REL:
        d = q_phi - q_phi_lead
        return d + 2 * big_q + 1 if d < 0 else d
    if s == M_CLASS:
        return cls
    return q_4


@nb.njit(cache=True, inline="always")
def unvalue(s: int, v: int, q_prev: int, q_eta_lead: int, q_phi_lead: int, big_q: int) -> tuple[int, int]:
    """The inverse of :func:`value`: (the jet's quantity the stream codes: q_pt, q_eta, q_phi,
    class or q_4; status, not OK for a symbol no encoder writes)."""
    if s == PT_DROP:
        return q_prev - v, OK
    if s == ETA_REL:
        return q_eta_lead + v, OK
    if s == PHI_FIRST:
        return v, (OK if -big_q <= v <= big_q else BAD_PHI)
    if s == PHI_REL:
        if not 0 <= v <= 2 * big_q:
            return 0, BAD_PHI_REL
        r = q_phi_lead + v
        return r - 2 * big_q - 1 if r > big_q else r, OK
    if s == M_CLASS:
        return v, (OK if 0 <= v <= 3 else BAD_CLASS)
    return v, OK


@nb.njit(cache=True, inline="always")
def bin_of(thr: np.ndarray, v: int) -> int:
    """``searchsorted(thr, v, side="right")`` of a short sorted array: the count of thresholds
    <= v, without a branch on v (a loop stopping at v's bin mispredicts about once a call)."""
    c = 0
    for i in range(len(thr)):
        c += thr[i] <= v
    return c


@nb.njit(cache=True, inline="always")
def needs_pt_bin(s: int, const: int) -> bool:
    """Whether stream `s`'s context is (or holds) a pt bin of the chunk's grid: the jet's own, or
    for the pt drop of a particle, the previous particle's."""
    return s == FOURTH or (const != 0 and (s == ETA_REL or s == PHI_REL or s == PT_DROP))


@nb.njit(cache=True, inline="always")
def context(s: int, pos: int, eta_class: int, pt_bin: int, eta_bin: int, n_eta_bins: int, const: int) -> int:
    """The static context (table within stream `s`) of a jet: its position class for the pt
    drops (and relative phi of jets), its pt class for eta, its (pt bin, |eta| bin) for the 4th
    column, a particle's pt bin for its eta and phi relative to the first particle and the
    previous particle's for its pt drop (the loops
    compute a class or bin with :func:`bin_of` only for the stream that uses it)."""
    if s == PT_DROP and const != 0:
        return pt_bin  # of the previous particle
    if s == PT_DROP or (s == PHI_REL and const == 0):
        return min(pos, 2) - 1
    if s == ETA:
        return eta_class
    if s == FOURTH:
        return pt_bin * n_eta_bins + eta_bin
    if s == ETA_REL or s == PHI_REL:
        return pt_bin
    return 0


@nb.njit(cache=True, inline="always")
def _log_pt(q: int, sf_pt: float, unit: float) -> float:
    return math.floor(float(q) * sf_pt) - unit


@nb.njit(cache=True, inline="always")
def _clip(x: float) -> float:
    return min(max(x, -MAX_FEATURE), MAX_FEATURE)


@nb.njit(cache=True, inline="always")
def features(slot: int, pos: int, nj: int, q_prev: int, q_lead: int, q_pt: int, q_eta: int, sf_pt: float,
             sf_eta: float, unit: float) -> tuple[float, float, float, float]:
    """The learned stream `slot`'s integer features of a jet (``events.Features``; unused 0)."""
    p = float(min(pos, MAX_COUNT))
    n = float(min(nj, MAX_COUNT))
    if slot == 0:
        return n, 0.0, 0.0, 0.0
    if slot == 1:
        return p, n, _clip(_log_pt(q_prev, sf_pt, unit)), _clip(_log_pt(q_lead, sf_pt, unit))
    lp = _log_pt(q_pt, sf_pt, unit)
    if slot == 2:
        return _clip(lp), p, n, 0.0
    if slot == 3:
        return _clip(lp), _clip(_log_pt(q_lead, sf_pt, unit) - lp), p, n
    return _clip(lp), _clip(math.floor(float(abs(q_eta)) * sf_eta)), p, n


@nb.njit(cache=True, inline="always")
def reconstruct(kind_e: int, q_pt: int, q_eta: int, q_phi: int, q_4: int, cls: int, s_pt: float, s_eta: float,
                s_phi: float, s_4: float) -> tuple[float, float, float, float]:
    """(pt, eta, phi, E or mass) of a jet's symbols (``quantize`` module doc); the encoder checks
    every jet with this same function."""
    log_pt = float(q_pt) * s_pt
    eta = float(q_eta) * s_eta
    return finish(kind_e, math.exp(log_pt), math.cosh(eta) if kind_e else 1.0, log_pt, eta, q_phi, q_4, cls, s_phi,
                  s_4)


@nb.njit(cache=True, inline="always")
def finish(kind_e: int, pt: float, cosh_eta: float, log_pt: float, eta: float, q_phi: int, q_4: int, cls: int,
           s_phi: float, s_4: float) -> tuple[float, float, float, float]:
    """:func:`reconstruct` given its pt = exp(log_pt) and (E only) cosh(eta), which the loops
    may have kept: in a window of values of consecutive symbols, NaN until first computed by the
    same math call of the same argument, so bit for bit the value (the loops write this out: a
    helper taking the window array would cost its reference counts per jet)."""
    phi = min(max(float(q_phi) * s_phi, -math.pi), math.pi)
    mag = math.exp(log_pt + float(q_4) * s_4)
    if kind_e:
        return pt, eta, phi, mag * cosh_eta
    if cls == 0:
        return pt, eta, phi, mag
    if cls == 1:
        return pt, eta, phi, -mag
    return pt, eta, phi, (0.0 if cls == 2 else -0.0)


WINDOW = 1 << 13  # values of exp(q_pt s_pt) and cosh(q_eta s_eta) kept by a loop


@nb.njit(cache=True, inline="always")
def _within(d: float, o: float, bound: float, relative: bool) -> bool:
    """``quantize.within`` for one value."""
    if not math.isfinite(d):
        return False
    if relative:
        if o == 0.0:
            return d == 0.0 and (math.copysign(1.0, d) == math.copysign(1.0, o))
        return abs(d - o) <= bound * abs(o)
    return abs(d - o) <= bound


@nb.njit(cache=True, inline="always")
def _kept(d: float, o: float, bound: float, relative: bool, wide: bool) -> bool:
    """The decoded value meets its bound as a writer stores it (float32), and as float64 for a
    column the input held as float64."""
    ok = _within(float(np.float32(d)), o, bound, relative)
    if wide:
        ok = ok and _within(d, o, bound, relative)
    return ok


# -- encoding ----------------------------------------------------------------------------------------

@nb.njit(cache=True, inline="always")
def polar(px: float, py: float, pz: float) -> tuple[float, float, float]:
    """(pt, eta, phi) of a Cartesian momentum (eta NaN or inf where pt = 0)."""
    pt = math.hypot(px, py)
    return pt, (math.asinh(pz / pt) if pt > 0 else math.nan), math.atan2(py, px)


@nb.njit(cache=True, inline="always")
def cartesian(pt: float, eta: float, phi: float) -> tuple[float, float, float]:
    """(px, py, pz) of a polar momentum."""
    return pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)


@nb.njit(cache=True, nogil=True)
def quantize_verify(pt, eta, phi, x4, kind_e, steps, bounds, wide, big_q, xyz):
    """Symbols of a chunk's jets, (n, 5) int64 (q_pt, q_eta, q_phi, mass class, q_4), and which
    jets decode within every bound (:func:`reconstruct`, then :func:`_kept`); the others (not
    usable: pt <= 0, E <= 0, |eta| or |phi| beyond MAX_ABS, NaN, a miss) get symbols 0 and are
    stored verbatim by the caller. `wide`: per column, the input is float64. With `xyz`, the
    columns are (px, py, pz, E or mass): quantized in (pt, eta, phi), and the bounds are Cartesian
    (|dpx|, |dpy| <= b pt, |dpz| <= b |p| of the original; :func:`.params.polar_bounds`)."""
    n = len(pt)
    q = np.zeros((n, 5), np.int64)
    ok = np.zeros(n, np.bool_)
    s_pt, s_eta, s_phi, s_4 = steps[0], steps[1], steps[2], steps[3]
    # exp(q_pt s_pt) kept around the first usable jet's q_pt, cosh(q_eta s_eta) around 0 (:func:`finish`)
    exp_pt = np.full(WINDOW, np.nan)
    pt_from = np.iinfo(np.int64).max - WINDOW  # (no key reaches it)
    cosh_eta = np.full(WINDOW if kind_e else 0, np.nan)
    for j in range(n):
        a, b, c, d = float(pt[j]), float(eta[j]), float(phi[j]), float(x4[j])
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c) and math.isfinite(d)):
            continue
        x, y, z = a, b, c
        if xyz:
            a, b, c = polar(x, y, z)
            if not math.isfinite(b):
                continue
        if not (a > 0 and abs(b) < MAX_ABS and abs(c) < MAX_ABS) or (kind_e and not d > 0):
            continue
        q_pt = np.rint(math.log(a) / s_pt)
        q_eta = np.rint(b / s_eta)
        q_phi = np.rint(c / s_phi)
        cls = 0
        ch = 1.0
        if kind_e:
            if -WINDOW // 2 <= q_eta < WINDOW // 2:
                ch = cosh_eta[np.int64(q_eta) + WINDOW // 2]
                if ch != ch:
                    ch = math.cosh(q_eta * s_eta)
                    cosh_eta[np.int64(q_eta) + WINDOW // 2] = ch
            else:
                ch = math.cosh(q_eta * s_eta)
            q_4 = np.rint((math.log(d) - q_pt * s_pt - math.log(ch)) / s_4)
        elif d != 0.0:
            cls = 0 if d > 0 else 1
            q_4 = np.rint((math.log(abs(d)) - q_pt * s_pt) / s_4)
        else:
            cls = 3 if math.copysign(1.0, d) < 0 else 2
            q_4 = 0.0
        if not (abs(q_phi) <= big_q and abs(q_4) < 1e15 and abs(q_pt) < 1e15 and abs(q_eta) < 1e15):
            continue
        # reconstruct(kind_e, qp, qe, q_phi, q_4, cls, ...), with exp(log_pt) and cosh(eta) kept: the same
        # math call of the same argument (float(qe) * s_eta is q_eta * s_eta: q_eta is an integer below 2^53)
        qp = np.int64(q_pt)
        if pt_from == np.iinfo(np.int64).max - WINDOW:
            pt_from = qp - WINDOW // 2
        log_pt = float(qp) * s_pt
        if pt_from <= qp < pt_from + WINDOW:
            rp = exp_pt[qp - pt_from]
            if rp != rp:
                rp = math.exp(log_pt)
                exp_pt[qp - pt_from] = rp
        else:
            rp = math.exp(log_pt)
        rp, re, rf, r4 = finish(kind_e, rp, ch, log_pt, float(np.int64(q_eta)) * s_eta, np.int64(q_phi), np.int64(q_4),
                                cls, s_phi, s_4)
        if xyz:
            rx, ry, rz = cartesian(rp, re, rf)
            p = math.hypot(a, z)
            if not (_kept(rx, x, bounds[0] * a, False, wide[0]) and _kept(ry, y, bounds[1] * a, False, wide[1])
                    and _kept(rz, z, bounds[2] * p, False, wide[2]) and _kept(r4, d, bounds[3], True, wide[3])):
                continue
        elif not (_kept(rp, a, bounds[0], True, wide[0]) and _kept(re, b, bounds[1], False, wide[1])
                  and _kept(rf, c, bounds[2], False, wide[2]) and _kept(r4, d, bounds[3], True, wide[3])):
            continue
        q[j, 0], q[j, 1], q[j, 2], q[j, 3], q[j, 4] = np.int64(q_pt), np.int64(q_eta), np.int64(q_phi), cls, \
            np.int64(q_4)
        ok[j] = True
    return q, ok


@nb.njit(cache=True)
def _group_arrays(n, n_groups):
    """The arrays :func:`group_symbols` fills for `n` jets: (group, value) per symbol, and per
    group its count, smallest and largest value."""
    return (np.empty(n * N_STREAMS, np.int32), np.empty(n * N_STREAMS, np.int64), np.zeros(n_groups, np.int64),
            np.full(n_groups, np.iinfo(np.int64).max, np.int64), np.full(n_groups, np.iinfo(np.int64).min, np.int64))


@nb.njit(cache=True)
def _groups_done(group, found, m, size, vmin, vmax):
    """:func:`group_symbols`' result from its arrays: the `m` symbols, an empty group's range 0."""
    for g in range(len(size)):
        if size[g] == 0:
            vmin[g] = 0
            vmax[g] = 0
    return group[:m], found[:m], size, vmin, vmax


@nb.njit(cache=True, nogil=True)
def group_symbols(counts, q, pli, eta_cls, pt_thr, eta_thr, group_base, n_groups):
    """Every stream's symbols with their group (stream, static context): (group (m,) int32, value
    (m,) int64, in jet order; per group its symbol count, smallest and largest value) with group
    g = group_base[stream] + context (what the encoder fits its tables on: :func:`histograms`).
    Jets (not constituents) take :func:`group_jets`."""
    mass, big_q, const = pli[0], pli[1], pli[2]
    if const == 0:
        return group_jets(counts, q, mass, big_q, eta_cls, pt_thr, eta_thr, group_base, n_groups)
    n_eta_bins = len(eta_thr) + 1
    group, found, size, vmin, vmax = _group_arrays(len(q), n_groups)
    m = 0
    j = 0
    for e in range(len(counts)):
        lead = j
        for pos in range(counts[e]):
            q_prev = q[j - 1, 0] if j > 0 else 0
            for s in range(N_STREAMS):
                if not active(s, pos, q[j, 3], mass, const):
                    continue
                q_pt, q_eta = q[j, 0], q[j, 1]
                ref = q_prev if s == PT_DROP else q_pt  # the pt whose bin is a context
                c = context(s, pos, bin_of(eta_cls, q_pt) if s == ETA else 0,
                            bin_of(pt_thr, ref) if needs_pt_bin(s, const) else 0,
                            bin_of(eta_thr, abs(q_eta)) if s == FOURTH else 0, n_eta_bins, const)
                g = group_base[s] + c
                v = value(s, q_pt, q_prev, q_eta, q[lead, 1], q[j, 2], q[lead, 2], q[j, 3], q[j, 4], big_q)
                group[m] = g
                found[m] = v
                vmin[g] = min(vmin[g], v)
                vmax[g] = max(vmax[g], v)
                size[g] += 1
                m += 1
            j += 1
    return _groups_done(group, found, m, size, vmin, vmax)


@nb.njit(cache=True, nogil=True)
def group_jets(counts, q, mass, big_q, eta_cls, pt_thr, eta_thr, group_base, n_groups):
    """:func:`group_symbols` of a table of jets, in straight-line code per jet (the plan's
    streams of jets, written out: pt, eta, phi, mass class, E or mass)."""
    n_eta_bins = len(eta_thr) + 1
    group, found, size, vmin, vmax = _group_arrays(len(q), n_groups)
    m = 0
    j = 0
    q_prev = 0
    for e in range(len(counts)):
        lead = j
        for pos in range(counts[e]):
            q_pt, q_eta, q_phi, cls, q_4 = q[j, 0], q[j, 1], q[j, 2], q[j, 3], q[j, 4]
            for c in range(5):
                if c == 0:
                    g = group_base[PT_FIRST] if pos == 0 else group_base[PT_DROP] + min(pos, 2) - 1
                    v = q_pt if pos == 0 else q_prev - q_pt
                elif c == 1:
                    g = group_base[ETA] + bin_of(eta_cls, q_pt)
                    v = q_eta
                elif c == 2:
                    g = group_base[PHI_FIRST] if pos == 0 else group_base[PHI_REL] + min(pos, 2) - 1
                    v = q_phi if pos == 0 else value(PHI_REL, 0, 0, 0, 0, q_phi, q[lead, 2], 0, 0, big_q)
                elif c == 3:
                    if mass == 0:
                        continue
                    g = group_base[M_CLASS]
                    v = cls
                else:
                    if cls >= 2:
                        continue
                    g = group_base[FOURTH] + bin_of(pt_thr, q_pt) * n_eta_bins + bin_of(eta_thr, abs(q_eta))
                    v = q_4
                group[m] = g
                found[m] = v
                vmin[g] = min(vmin[g], v)
                vmax[g] = max(vmax[g], v)
                size[g] += 1
                m += 1
            q_prev = q_pt
            j += 1
    return _groups_done(group, found, m, size, vmin, vmax)


@nb.njit(cache=True, nogil=True)
def histograms(group, found, shift, lo, hbase):
    """Per group g, the histogram of ``(v >> shift[g]) - lo[g]`` over its values v, at
    hist[hbase[g]:hbase[g + 1]] (int64): ``np.bincount`` of each group's values, in one pass."""
    hist = np.zeros(hbase[-1], np.int64)
    for i in range(len(group)):
        g = group[i]
        hist[hbase[g] + (found[i] >> shift[g]) - lo[g]] += 1
    return hist


@nb.njit(cache=True, inline="always")
def _estimate_bits(hist, n: int, shift: int) -> float:
    """What coding `n` values with this histogram of their high parts costs, estimated: the
    entropy, `shift` raw bits each, 14 bits per used and half a bit per empty bin of the table."""
    s = 0.0
    used = 0
    for i in range(len(hist)):
        h = hist[i]
        if h > 0:
            s += float(h) * math.log2(float(n) / float(h))
            used += 1
    return s + n * shift + 14.0 * used + 0.5 * (len(hist) - used)


@nb.njit(cache=True, nogil=True)
def fit_histograms(hist, hbase, size, shift, lo, prec, table_bits):
    """``streams.fit_histogram`` of every group at once: group g's histogram
    hist[hbase[g]:hbase[g + 1]] of its size[g] values' high parts at (shift[g], lo[g]) is
    coarsened by pairs of bins while the estimated cost falls (it is close to convex: two
    steps without a gain end the search), then normalized to 2^prec[g] (every used bin at least
    1, the remainder to the first largest bin). Returns per group (shift, precision, offset,
    bits: the estimated cost with the table's `table_bits`) and the frequencies at
    freq[fbase[g]:fbase[g + 1]] (empty for a group of one bin or none)."""
    n_groups = len(size)
    k_out = np.zeros(n_groups, np.int64)
    p_out = np.zeros(n_groups, np.int64)
    lo_out = np.zeros(n_groups, np.int64)
    bits = np.zeros(n_groups)
    fbase = np.zeros(n_groups + 1, np.int64)
    freq = np.zeros(len(hist) + 1, np.int64)
    for g in range(n_groups):
        n = size[g]
        fbase[g + 1] = fbase[g]
        if n == 0:
            bits[g] = table_bits
            continue
        cap = np.int64(1) << prec[g]
        cur = hist[hbase[g]:hbase[g + 1]].copy()
        k, b = shift[g], lo[g]
        best, best_k, best_lo, best_h = _estimate_bits(cur, n, k), k, b, cur
        worse = 0
        while len(cur) > 1 and worse < 2:
            odd = b & 1
            m = len(cur) + odd
            nxt = np.zeros((m + 1) // 2, np.int64)
            for i in range(len(cur)):
                nxt[(i + odd) >> 1] += cur[i]
            cur = nxt
            b >>= 1
            k += 1
            cost = _estimate_bits(cur, n, k)
            if cost < best:
                best, best_k, best_lo, best_h, worse = cost, k, b, cur, 0
            else:
                worse += 1
        k_out[g], lo_out[g] = best_k, best_lo
        if len(best_h) == 1:
            bits[g] = n * best_k + table_bits
            continue
        used = 0
        top = 0
        for i in range(len(best_h)):
            used += best_h[i] > 0
            if best_h[i] > best_h[top]:
                top = i
        f0 = fbase[g]
        total = 0
        for i in range(len(best_h)):
            f = 1 + best_h[i] * (cap - used) // n if best_h[i] > 0 else 0
            freq[f0 + i] = f
            total += f
        freq[f0 + top] += cap - total
        coded = 0.0
        for i in range(len(best_h)):
            if best_h[i] > 0:
                coded += float(best_h[i]) * (prec[g] - math.log2(float(freq[f0 + i])))
        p_out[g] = prec[g]
        fbase[g + 1] = f0 + len(best_h)
        bits[g] = coded + n * best_k + table_bits + 14.0 * used + 0.5 * (len(best_h) - used)
    return k_out, p_out, lo_out, bits, freq[:fbase[n_groups]].copy(), fbase


@nb.njit(cache=True, nogil=True)
def learned_pass(s, counts, flat, q, pli, plf, w1, b1, w2t, b2, owner, dims, tanh, expt, thr):
    """Learned stream `s` over a chunk: (bits of its bucket and offset symbols, escapes aside;
    per symbol in jet order the bucket's normalized start << 17 | frequency; the escaped values)."""
    slot = LEARNED_SLOT[s]
    mass, big_q, const = pli[0], pli[1], pli[2]
    n_b = dims[slot, 2] - 1
    lo_thr, hi_thr = thr[slot, 0], thr[slot, n_b]
    n = len(q)
    coded = np.zeros(n, np.int64)
    escaped = np.zeros(n, np.int64)
    m = 0
    n_esc = 0
    sc = _scratch()
    hid, logit, f_, fq, cq, first_fq, first_cq = sc
    bits = 0.0
    j = 0
    for e in range(len(counts)):
        lead = j
        nj = 0 if flat else counts[e]
        for pos in range(counts[e]):
            q_prev = q[j - 1, 0] if j > 0 else 0
            if active(s, pos, q[j, 3], mass, const):
                _frequencies(slot, pos, nj, q_prev, q[lead, 0], q[j, 0], q[j, 1], plf, w1, b1, w2t, b2, owner, dims,
                             tanh, expt, hid, logit, f_, fq, cq, first_fq, first_cq)
                v = value(s, q[j, 0], q_prev, q[j, 1], q[lead, 1], q[j, 2], q[lead, 2], q[j, 3], q[j, 4], big_q)
                b = n_b
                if lo_thr <= v < hi_thr:
                    b = 0
                    while thr[slot, b + 1] <= v:
                        b += 1
                    bits += math.log2(thr[slot, b + 1] - thr[slot, b])
                else:
                    escaped[n_esc] = v
                    n_esc += 1
                k = owner[slot, b]
                coded[m] = (cq[k] << 17) | fq[k]
                m += 1
                bits += 16.0 - math.log2(fq[k])
            j += 1
    return bits, coded[:m].copy(), escaped[:n_esc].copy()


@nb.njit(cache=True, nogil=True)
def encode_chunk(counts, q, pli, eta_cls, pt_thr, eta_thr, shift, prec, offset, fbase, freq, cum, base,
                 learned, dims, thr, coded, coded_base):
    """The rANS words of a chunk (what :func:`decode_chunk` reads): every symbol in the reverse of
    the decoder's order; a learned stream s's symbols use coded[coded_base[s]:...] from
    :func:`learned_pass`. A table of jets in static tables only takes :func:`encode_jets`."""
    n = len(q)
    mass, big_q, const = pli[0], pli[1], pli[2]
    if const == 0 and not learned.any():
        return encode_jets(counts, q, mass, big_q, eta_cls, pt_thr, eta_thr, shift, prec, offset, fbase, freq, cum,
                           base)
    n_eta_bins = len(eta_thr) + 1
    out = np.zeros(1024 + 8 * n, np.uint16)
    o = 0
    x = np.int64(L)
    # per learned stream, the next symbol from the end
    nxt = np.zeros(N_STREAMS, np.int64)
    for s in range(N_STREAMS):
        nxt[s] = coded_base[s + 1] - 1
    # the lead (first jet) of each event: its index, for q_lead_phi
    starts = np.zeros(len(counts) + 1, np.int64)
    for e in range(len(counts)):
        starts[e + 1] = starts[e] + counts[e]
    for e in range(len(counts) - 1, -1, -1):
        for jj in range(counts[e] - 1, -1, -1):
            j = starts[e] + jj
            pos = jj
            lead = starts[e]
            if o + 64 > len(out):
                bigger = np.zeros(2 * len(out), np.uint16)
                bigger[:o] = out[:o]
                out = bigger
            q_prev = q[j - 1, 0] if j > 0 else 0
            for s in range(N_STREAMS - 1, -1, -1):
                if not active(s, pos, q[j, 3], mass, const):
                    continue
                q_pt, q_eta = q[j, 0], q[j, 1]
                v = value(s, q_pt, q_prev, q_eta, q[lead, 1], q[j, 2], q[lead, 2], q[j, 3], q[j, 4], big_q)
                if learned[s] == 0:
                    ref = q_prev if s == PT_DROP else q_pt  # the pt whose bin is a context
                    t = base[s] + context(s, pos, bin_of(eta_cls, q_pt) if s == ETA else 0,
                                          bin_of(pt_thr, ref) if needs_pt_bin(s, const) else 0,
                                          bin_of(eta_thr, abs(q_eta)) if s == FOURTH else 0, n_eta_bins, const)
                else:
                    slot = LEARNED_SLOT[s]
                    n_b = dims[slot, 2] - 1
                    t = base[s]  # the escape table, unless the value is in a bucket
                    if thr[slot, 0] <= v < thr[slot, n_b]:  # the offset in its bucket (pieces in reverse)
                        b = 0
                        while thr[slot, b + 1] <= v:
                            b += 1
                        w = thr[slot, b + 1] - thr[slot, b]
                        off = v - thr[slot, b]
                        t = -1
                        if w > L:
                            c0, f = even_encode(L, off & 0xFFFF)
                            x, o = put(x, out, o, c0, f, 16)
                            c0, f = even_encode(((w - 1) >> 16) + 1, off >> 16)
                            x, o = put(x, out, o, c0, f, 16)
                        elif w > 1:
                            c0, f = even_encode(w, off)
                            x, o = put(x, out, o, c0, f, 16)
                if t >= 0:  # a static table: raw low bits (highest piece first), then the high part
                    k = shift[t]
                    for i in range((k + 15) // 16 - 1, -1, -1):
                        b = min(16, k - 16 * i)
                        piece = (v >> (16 * i)) & ((1 << b) - 1)
                        x, o = put_raw(x, out, o, piece, b)
                    if prec[t] > 0:
                        i = fbase[t] + (v >> k) - offset[t]
                        x, o = put(x, out, o, np.int64(cum[i]), np.int64(freq[i]), prec[t])
                if learned[s] != 0:
                    cf = coded[nxt[s]]
                    nxt[s] -= 1
                    x, o = put(x, out, o, cf >> 17, cf & 0x1FFFF, 16)
    if o + 2 > len(out):
        bigger = np.zeros(o + 2, np.uint16)
        bigger[:o] = out[:o]
        out = bigger
    out[o] = x & 0xFFFF
    out[o + 1] = x >> 16
    return out[:o + 2][::-1].copy()


@nb.njit(cache=True, nogil=True)
def encode_jets(counts, q, mass, big_q, eta_cls, pt_thr, eta_thr, shift, prec, offset, fbase, freq, cum, base):
    """:func:`encode_chunk` of a table of jets in static tables only, in straight-line code per
    jet (the streams of jets written out, in reverse: E or mass, mass class, phi, eta, pt)."""
    n = len(q)
    n_eta_bins = len(eta_thr) + 1
    out = np.zeros(1024 + 8 * n, np.uint16)
    o = 0
    x = np.int64(L)
    starts = np.zeros(len(counts) + 1, np.int64)
    for e in range(len(counts)):
        starts[e + 1] = starts[e] + counts[e]
    for e in range(len(counts) - 1, -1, -1):
        lead = starts[e]
        for pos in range(counts[e] - 1, -1, -1):
            j = lead + pos
            if o + 64 > len(out):
                bigger = np.zeros(2 * len(out), np.uint16)
                bigger[:o] = out[:o]
                out = bigger
            q_pt, q_eta, q_phi, cls, q_4 = q[j, 0], q[j, 1], q[j, 2], q[j, 3], q[j, 4]
            for c in range(4, -1, -1):  # E or mass, mass class, phi, eta, pt
                if c == 4:
                    if cls >= 2:
                        continue
                    t = base[FOURTH] + bin_of(pt_thr, q_pt) * n_eta_bins + bin_of(eta_thr, abs(q_eta))
                    v = q_4
                elif c == 3:
                    if mass == 0:
                        continue
                    t = base[M_CLASS]
                    v = cls
                elif c == 2:
                    t = base[PHI_FIRST] if pos == 0 else base[PHI_REL] + min(pos, 2) - 1
                    v = q_phi if pos == 0 else value(PHI_REL, 0, 0, 0, 0, q_phi, q[lead, 2], 0, 0, big_q)
                elif c == 1:
                    t = base[ETA] + bin_of(eta_cls, q_pt)
                    v = q_eta
                else:
                    t = base[PT_FIRST] if pos == 0 else base[PT_DROP] + min(pos, 2) - 1
                    v = q_pt if pos == 0 else q[j - 1, 0] - q_pt
                k = shift[t]  # raw low bits (highest piece first), then the high part
                for i in range((k + 15) // 16 - 1, -1, -1):
                    b = min(16, k - 16 * i)
                    x, o = put_raw(x, out, o, (v >> (16 * i)) & ((1 << b) - 1), b)
                if prec[t] > 0:
                    i = fbase[t] + (v >> k) - offset[t]
                    x, o = put(x, out, o, np.int64(cum[i]), np.int64(freq[i]), prec[t])
    if o + 2 > len(out):
        bigger = np.zeros(o + 2, np.uint16)
        bigger[:o] = out[:o]
        out = bigger
    out[o] = x & 0xFFFF
    out[o + 1] = x >> 16
    return out[:o + 2][::-1].copy()


# -- decoding ----------------------------------------------------------------------------------------

@nb.njit(cache=True)
def _scratch():
    """Work arrays of the learned network, and the first jets' 32 tables (jet count 0 .. 31)."""
    return (np.zeros(64), np.zeros(257), np.zeros(257), np.zeros(257, np.int64), np.zeros(258, np.int64),
            np.zeros((MAX_COUNT + 1, 257), np.int64), np.full((MAX_COUNT + 1, 258), -1, np.int64))


@nb.njit(cache=True)
def _frequencies(slot, pos, nj, q_prev, q_lead, q_pt, q_eta, plf, w1, b1, w2t, b2, owner, dims, tanh, expt,
                 hid, logit, f, fq, cq, first_fq, first_cq):
    """The normalized frequencies of learned stream `slot` for a jet into (fq, cq); returns their
    count. The first jets' stream depends on the jet count only: its 32 tables are kept."""
    if slot == 0:
        nc = min(nj, MAX_COUNT)
        nk = dims[0, 3]
        if first_cq[nc, 0] < 0:
            network(0, float(nc), 0.0, 0.0, 0.0, w1, b1, w2t, b2, owner, dims, tanh, expt, hid, logit, f, fq, cq)
            for k in range(nk + 1):
                first_fq[nc, k] = fq[k]
                first_cq[nc, k] = cq[k]
        for k in range(nk + 1):
            fq[k] = first_fq[nc, k]
            cq[k] = first_cq[nc, k]
        return nk
    f0, f1, f2, f3 = features(slot, pos, nj, q_prev, q_lead, q_pt, q_eta, plf[0], plf[1], plf[2])
    return network(slot, f0, f1, f2, f3, w1, b1, w2t, b2, owner, dims, tanh, expt, hid, logit, f, fq, cq)


@nb.njit(cache=True, nogil=True)
def decode_chunk(words, counts, flat, shift, prec, offset, fbase, lbase, freq, cum, lut, base, learned, pli, plf,
                 steps, kind_e, eta_cls, pt_thr, eta_thr, w1, b1, w2t, b2, owner, dims, tanh, expt, keep, thr,
                 ex_index, ex_values, out_pt, out_eta, out_phi, out_4, account):
    """Decode a chunk into the four output columns (verbatim jets included): (status, final state,
    words read, bits per stream). A status other than OK names what a crafted chunk got wrong
    (decoding stops there); every coded jet is checked as :func:`quantize_verify` kept it
    (finite, pt > 0, E > 0, a mass of its class's sign, |eta| <= MAX_ABS + 1; px, py, pz finite);
    with pli[3] set the columns written are (px, py, pz, E or mass)."""
    acct = np.zeros(N_STREAMS)
    nw = len(words)
    if nw < 2:
        return OK, 0, 0, acct
    x = (np.int64(words[0]) << 16) | np.int64(words[1])
    p = 2
    mass, big_q, const, xyz = pli[0], pli[1], pli[2], pli[3]
    s_pt, s_eta, s_phi, s_4 = steps[0], steps[1], steps[2], steps[3]
    n_eta_bins = len(eta_thr) + 1
    hid, logit, f_, fq, cq, first_fq, first_cq = _scratch()
    vi = 0
    j = 0
    q_prev = 0
    for e in range(len(counts)):
        q_lead_pt = 0
        q_lead_eta = 0
        q_lead_phi = 0
        nj = 0 if flat else counts[e]
        for pos in range(counts[e]):
            q_pt = 0
            q_eta = 0
            q_phi = 0
            cls = 0
            q_4 = 0
            status = OK
            for s in range(N_STREAMS):
                if not active(s, pos, cls, mass, const):
                    continue
                t = -1
                v = 0
                if learned[s] == 0:
                    ref = q_prev if s == PT_DROP else q_pt  # the pt whose bin is a context
                    t = base[s] + context(s, pos, bin_of(eta_cls, q_pt) if s == ETA else 0,
                                          bin_of(pt_thr, ref) if needs_pt_bin(s, const) else 0,
                                          bin_of(eta_thr, abs(q_eta)) if s == FOURTH else 0, n_eta_bins, const)
                else:  # the bucket with the network's frequencies, then the offset or the escaped value
                    slot = LEARNED_SLOT[s]
                    nk = _frequencies(slot, pos, nj, q_prev, q_lead_pt, q_pt, q_eta, plf, w1, b1, w2t, b2, owner,
                                      dims, tanh, expt, hid, logit, f_, fq, cq, first_fq, first_cq)
                    r = x & 0xFFFF
                    k = 0
                    while k + 1 < nk and cq[k + 1] <= r:
                        k += 1
                    f = fq[k]
                    x = f * (x >> 16) + r - cq[k]
                    x, p = renorm(x, p, words, nw)
                    if account:
                        acct[s] += 16.0 - math.log2(f)
                    n_b = dims[slot, 2] - 1
                    b = keep[slot, k]
                    if b == n_b:
                        t = base[s]  # the stream's escape table
                    else:
                        start = thr[slot, b]
                        w = thr[slot, b + 1] - start
                        off = 0
                        parts = 2 if w > L else 1
                        for part in range(parts):
                            ww = (((w - 1) >> 16) + 1) if part < parts - 1 else (L if parts == 2 else w)
                            if ww > 1:
                                r = x & 0xFFFF
                                vv, c0, f = even_decode(ww, r)
                                x = f * (x >> 16) + r - c0
                                x, p = renorm(x, p, words, nw)
                                off = (off << 16) | vv
                        if account:
                            acct[s] += math.log2(w)
                        if off >= w:
                            status = BAD_OFFSET
                        v = start + off
                if t >= 0:  # a static table: the high part, then the raw low bits
                    pt_ = prec[t]
                    hi = 0
                    if pt_ > 0:
                        r = x & ((1 << pt_) - 1)
                        hi = np.int64(lut[lbase[t] + r])
                        i = fbase[t] + hi
                        f = np.int64(freq[i])
                        x = f * (x >> pt_) + r - np.int64(cum[i])
                        x, p = renorm(x, p, words, nw)
                        if account:
                            acct[s] += pt_ - math.log2(f)
                    k = shift[t]
                    lo = 0
                    done = 0
                    while done < k:
                        b = min(16, k - done)
                        r = x & 0xFFFF
                        x = (np.int64(1) << (16 - b)) * (x >> 16) + (r & ((1 << (16 - b)) - 1))
                        x, p = renorm(x, p, words, nw)
                        lo |= (r >> (16 - b)) << done
                        done += b
                    if account:
                        acct[s] += k
                    v = ((offset[t] + hi) << k) | lo
                    if learned[s] != 0:
                        slot = LEARNED_SLOT[s]
                        if thr[slot, 0] <= v < thr[slot, dims[slot, 2] - 1]:
                            status = BAD_ESCAPE
                u, st = unvalue(s, v, q_prev, q_lead_eta, q_lead_phi, big_q)
                if status == OK:
                    status = st
                if s == PT_FIRST or s == PT_DROP:
                    q_pt = u
                elif s == ETA or s == ETA_REL:
                    q_eta = u
                elif s == PHI_FIRST or s == PHI_REL:
                    q_phi = u
                elif s == M_CLASS:
                    cls = u
                else:
                    q_4 = u
                if status != OK:
                    return status, x, p, acct
            if pos == 0:
                q_lead_pt, q_lead_eta, q_lead_phi = q_pt, q_eta, q_phi
            q_prev = q_pt
            if vi < len(ex_index) and ex_index[vi] == j:  # a jet stored verbatim (its symbols are placeholders)
                out_pt[j], out_eta[j], out_phi[j], out_4[j] = ex_values[vi, 0], ex_values[vi, 1], \
                    ex_values[vi, 2], ex_values[vi, 3]
                vi += 1
            else:
                a, b_, c_, d = reconstruct(kind_e, q_pt, q_eta, q_phi, q_4, cls, s_pt, s_eta, s_phi, s_4)
                a32, b32, d32 = np.float32(a), np.float32(b_), np.float32(d)
                if not (math.isfinite(a32) and a32 > 0):
                    return BAD_PT, x, p, acct
                if not abs(b32) <= MAX_ABS + 1:
                    return BAD_ETA, x, p, acct
                if not math.isfinite(d32) or (d32 <= 0 if (kind_e or cls == 0) else
                                              (d32 >= 0 if cls == 1 else d32 != 0)):
                    return BAD_FOURTH, x, p, acct
                if xyz:
                    a, b_, c_ = cartesian(a, b_, c_)
                    if not (math.isfinite(np.float32(a)) and math.isfinite(np.float32(b_))
                            and math.isfinite(np.float32(c_))):
                        return BAD_XYZ, x, p, acct
                out_pt[j], out_eta[j], out_phi[j], out_4[j] = a, b_, c_, d
            j += 1
    return OK, x, p, acct


# -- decoding, the common case -------------------------------------------------------------------------
#
# A chunk of jets (not constituents) in (pt, eta, phi, E or mass) with every stream in static
# tables, decoded without accounting: the same symbols, values and checks as decode_chunk, in
# straight-line code per jet (no loop over the plan's streams), with each table's fields in one
# row, the slot lookup in bytes for tables of at most 256 values (half the cache), a frequency
# and its start in one word, and exp(q_pt s_pt) (E's cosh(q_eta s_eta)) kept in a window of
# values filled on first use by the same math.exp (math.cosh) of the same argument: bit for bit
# reconstruct()'s. Any status other than OK makes the caller decode the chunk again with
# decode_chunk, which names the first fault as it always did.

@nb.njit(cache=True, nogil=True)
def common_tables(prec, shift, offset, fbase, lbase, freq, cum, lut):
    """The chunk's static tables as :func:`decode_common` reads them: (rows (T, 4): slot
    lookup start, frequency start, precision | shift << 8 | narrow << 16, offset; slot lookups
    of narrow tables (uint8), of the others (uint16); frequency | start << 32 per value). A
    table of one value (precision 0) gets one slot of frequency 1 (x is kept, as no symbol
    coded)."""
    n_t = len(prec)
    rows = np.zeros((n_t, 4), np.int64)
    alphabet = np.ones(n_t, np.int64)
    n8 = 0
    n16 = 0
    nf = 0
    for t in range(n_t):
        if prec[t] > 0:
            alphabet[t] = (fbase[t + 1] if t + 1 < n_t else len(freq)) - fbase[t]
        slots = np.int64(1) << prec[t]
        if alphabet[t] <= 256:
            n8 += slots
        else:
            n16 += slots
        nf += alphabet[t]
    lut8 = np.zeros(n8, np.uint8)
    lut16 = np.zeros(n16, np.uint16)
    fcum = np.zeros(nf, np.int64)
    o8 = 0
    o16 = 0
    of = 0
    for t in range(n_t):
        pr = prec[t]
        narrow = alphabet[t] <= 256
        rows[t, 0] = o8 if narrow else o16
        rows[t, 1] = of
        rows[t, 2] = pr | (shift[t] << 8) | (np.int64(narrow) << 16)
        rows[t, 3] = offset[t]
        if pr == 0:
            fcum[of] = 1
        else:
            for v in range(alphabet[t]):
                fcum[of + v] = np.int64(freq[fbase[t] + v]) | (np.int64(cum[fbase[t] + v]) << 32)
            for r in range(1 << pr):
                if narrow:
                    lut8[o8 + r] = lut[lbase[t] + r]
                else:
                    lut16[o16 + r] = lut[lbase[t] + r]
        if narrow:
            o8 += np.int64(1) << pr
        else:
            o16 += np.int64(1) << pr
        of += alphabet[t]
    return rows, lut8, lut16, fcum


@nb.njit(cache=True, nogil=True)
def decode_common(words, counts, rows, lut8, lut16, fcum, base, mass, big_q, eta_cls, pt_thr, eta_thr, steps, kind_e,
                  ex_index, ex_values, out_pt, out_eta, out_phi, out_4):
    """:func:`decode_chunk` of a chunk of the common case (tables of :func:`common_tables`):
    (status, final state, words read)."""
    nw = len(words)
    if nw < 2:
        return OK, 0, 0
    x = (np.int64(words[0]) << 16) | np.int64(words[1])
    p = 2
    n_eta_bins = len(eta_thr) + 1
    two_q = 2 * big_q
    s_pt, s_eta, s_phi, s_4 = steps[0], steps[1], steps[2], steps[3]
    # the windows of kept values: q_pt from a quarter below the first jets' table's, q_eta around 0
    exp_pt = np.full(WINDOW, np.nan)
    t = base[PT_FIRST]
    pt_from = (rows[t, 3] << ((rows[t, 2] >> 8) & 0xFF)) - WINDOW // 4
    cosh_eta = np.full(WINDOW if kind_e else 0, np.nan)
    vi = 0
    j = 0
    q_prev = 0
    q_lead_phi = 0
    for e in range(len(counts)):
        for pos in range(counts[e]):
            q_pt = 0
            q_eta = 0
            q_phi = 0
            cls = 0
            q_4 = 0
            for c in range(5):  # pt, eta, phi, mass class, E or mass: decode_chunk's streams
                if c == 0:
                    t = base[PT_FIRST] if pos == 0 else base[PT_DROP] + min(pos, 2) - 1
                elif c == 1:
                    t = base[ETA] + bin_of(eta_cls, q_pt)
                elif c == 2:
                    t = base[PHI_FIRST] if pos == 0 else base[PHI_REL] + min(pos, 2) - 1
                elif c == 3:
                    if mass == 0:
                        continue
                    t = base[M_CLASS]
                else:
                    if cls >= 2:
                        continue
                    t = base[FOURTH] + bin_of(pt_thr, q_pt) * n_eta_bins + bin_of(eta_thr, abs(q_eta))
                # the symbol of static table t: its high part, then its raw low bits
                packed = rows[t, 2]
                pr = packed & 0xFF
                k = (packed >> 8) & 0xFF
                r = x & ((1 << pr) - 1)
                hi = np.int64(lut8[rows[t, 0] + r]) if (packed >> 16) & 1 else np.int64(lut16[rows[t, 0] + r])
                fc = fcum[rows[t, 1] + hi]
                x = (fc & 0xFFFFFFFF) * (x >> pr) + r - (fc >> 32)
                w = np.int64(words[min(p, nw - 1)])
                low = x < L
                x = ((x << 16) | w) if low else x
                p = (p + 1) if low else p
                b = min(16, k)  # the first piece of raw bits always (0 bits: x is kept, no word read)
                r = x & 0xFFFF
                x = ((x >> 16) << (16 - b)) | (r & ((1 << (16 - b)) - 1))
                w = np.int64(words[min(p, nw - 1)])
                low = x < L
                x = ((x << 16) | w) if low else x
                p = (p + 1) if low else p
                lo = r >> (16 - b)
                done = b
                while done < k:
                    b = min(16, k - done)
                    r = x & 0xFFFF
                    x = ((x >> 16) << (16 - b)) | (r & ((1 << (16 - b)) - 1))
                    w = np.int64(words[min(p, nw - 1)])
                    low = x < L
                    x = ((x << 16) | w) if low else x
                    p = (p + 1) if low else p
                    lo |= (r >> (16 - b)) << done
                    done += b
                v = ((rows[t, 3] + hi) << k) | lo
                if c == 0:
                    q_pt = v if pos == 0 else q_prev - v
                elif c == 1:
                    q_eta = v
                elif c == 2:
                    if pos == 0:
                        if not -big_q <= v <= big_q:
                            return BAD_PHI, x, p
                        q_phi = v
                        q_lead_phi = v
                    else:
                        if not 0 <= v <= two_q:
                            return BAD_PHI_REL, x, p
                        r = q_lead_phi + v
                        q_phi = r - two_q - 1 if r > big_q else r
                elif c == 3:
                    if not 0 <= v <= 3:
                        return BAD_CLASS, x, p
                    cls = v
                else:
                    q_4 = v
            q_prev = q_pt
            if vi < len(ex_index) and ex_index[vi] == j:  # a jet stored verbatim (its symbols are placeholders)
                out_pt[j], out_eta[j], out_phi[j], out_4[j] = ex_values[vi, 0], ex_values[vi, 1], \
                    ex_values[vi, 2], ex_values[vi, 3]
                vi += 1
                j += 1
                continue
            # reconstruct(), with exp(log_pt) and cosh(eta) kept (:func:`finish`)
            log_pt = float(q_pt) * s_pt
            eta = float(q_eta) * s_eta
            if pt_from <= q_pt < pt_from + WINDOW:
                pt = exp_pt[q_pt - pt_from]
                if pt != pt:
                    pt = math.exp(log_pt)
                    exp_pt[q_pt - pt_from] = pt
            else:
                pt = math.exp(log_pt)
            ch = 1.0
            if kind_e:
                if -WINDOW // 2 <= q_eta < WINDOW // 2:
                    ch = cosh_eta[q_eta + WINDOW // 2]
                    if ch != ch:
                        ch = math.cosh(eta)
                        cosh_eta[q_eta + WINDOW // 2] = ch
                else:
                    ch = math.cosh(eta)
            pt, eta, phi, d = finish(kind_e, pt, ch, log_pt, eta, q_phi, q_4, cls, s_phi, s_4)
            a32, b32, d32 = np.float32(pt), np.float32(eta), np.float32(d)
            if not (math.isfinite(a32) and a32 > 0):
                return BAD_PT, x, p
            if not abs(b32) <= MAX_ABS + 1:
                return BAD_ETA, x, p
            if not math.isfinite(d32) or (d32 <= 0 if (kind_e or cls == 0) else (d32 >= 0 if cls == 1 else d32 != 0)):
                return BAD_FOURTH, x, p
            out_pt[j], out_eta[j], out_phi[j], out_4[j] = pt, eta, phi, d
            j += 1
    return OK, x, p
