"""Compiled (numba) pieces of the entropy coder: rANS steps, even uniforms, the learned network.

Why not `constriction` here: payload version 3 of the bounded codec decodes several symbols per
jet, each with a model chosen by its context, at the speed a reader expects of a file format
(issue 22: at least as fast as uproot reads a ZLIB-1 ROOT file). `constriction` decodes a
categorical symbol by a binary search over its cumulative table, called from Python per group;
a slot lookup table inside one compiled loop over the jets decodes a symbol in a few
nanoseconds and lets the contexts be computed as the jets are decoded (measured in the same
run: about 3x faster per symbol). Versions 1 and 2 keep decoding with `constriction`
(:mod:`jetzip.entropy.legacy`).

The coder (range ANS, J. Duda, arXiv:1311.2540; the 32-bit state / 16-bit word variant of
F. Giesen's ``ryg_rans``):

- state x in [2^16, 2^32); a symbol of frequency f, cumulative start c, total 2^P (P <= 16):
  decode ``slot = x mod 2^P``, the symbol whose [c, c + f) holds slot,
  ``x = f (x >> P) + slot - c``, then if x < 2^16 read one 16-bit word: ``x = (x << 16) | w``;
- encode (symbols in reverse order): if ``x >= f << (32 - P)`` write ``x & 0xFFFF`` and shift
  x right by 16; then ``x = ((x // f) << P) + (x mod f) + c``;
- the encoder starts at x = 2^16 and ends by writing x's low then high 16 bits; the stream holds
  the words in the order the decoder reads them (the reverse of writing), so it starts with the
  final state's high word, and a decoder that ends anywhere but at x = 2^16 with every word
  read has been given a damaged stream;
- an "even uniform" on [0, w), w <= 2^16, has total 2^16 split as evenly as integers allow:
  q = 2^16 // w, the first r = 2^16 - q w values have frequency q + 1, the others q. Raw bits are
  pieces of at most 16 bits, lowest first, each an even uniform of 2^b values; a uniform wider
  than 2^16 is its high part (an even uniform on [0, ceil(w / 2^16))) then 16 raw bits.

Learned frequencies (:class:`jetzip.entropy.context.StreamModel`): :func:`network` computes
exactly the integers of ``StreamModel.frequencies`` (integer-valued float64, every sum below
2^53, tables for tanh and exp), merged into the kept buckets, then normalizes them to 2^16:
``1 + floor(F_k * ((2^16 - K) / T))`` (one IEEE division and multiplication: the same on every
machine), the remainder added to the first largest.

Why the helpers take scalars: numba counts references to every array handed to a function
that branches, an atomic operation per array per call; in a loop over symbols that costs more
than the coding. So the per-symbol helpers here take and return numbers only, and the loops
(:mod:`jetzip.codecs.bounded.kernels`) index their arrays themselves; the network takes its
weights as separate arrays (measured twice as fast as offsets into one array: each is known
not to overlap the others, so the dot products vectorize).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numba as nb
import numpy as np

L = 1 << 16  # lower end of the state; also the total of an even uniform and of learned frequencies
TANH_LAST = 8191
EXP_LAST = 1023
SLOTS = 5  # learned streams
MAX_FEATURE = 65536.0  # features are clipped here (entropy.context.MAX_FEATURE)


@nb.njit(cache=True, inline="always")
def even_decode(w: int, slot: int) -> tuple[int, int, int]:
    """(value, start, frequency) of 16-bit `slot` in an even uniform on [0, w), 2 <= w <= 2^16."""
    q = L // w
    r = L - q * w
    big = r * (q + 1)
    if slot < big:
        v = slot // (q + 1)
        return v, v * (q + 1), q + 1
    v = r + (slot - big) // q
    return v, big + (v - r) * q, q


@nb.njit(cache=True, inline="always")
def even_encode(w: int, v: int) -> tuple[int, int]:
    """(start, frequency) of value `v` in an even uniform on [0, w)."""
    q = L // w
    r = L - q * w
    if v < r:
        return v * (q + 1), q + 1
    return r * (q + 1) + (v - r) * q, q


@nb.njit(cache=True, inline="always")
def renorm(x: int, p: int, words: np.ndarray, nw: int) -> tuple:
    """Read one word when x < 2^16 (branch-free; past the end it reads the last word again and
    the caller's final check fails)."""
    w = np.int64(words[min(p, nw - 1)])
    low = x < L
    return ((x << 16) | w) if low else x, (p + 1) if low else p


@nb.njit(cache=True, inline="always")
def put(x: int, out: np.ndarray, o: int, c: int, f: int, p: int) -> tuple:
    """Encode one symbol (start `c`, frequency `f` >= 1, total 2^p) onto the state; a word goes
    to out[o] (branch-free: out[o] is written always, `o` advances only when it is kept). The
    division is unsigned (x and f are positive: the same quotient as ``//``, without the sign
    fix-ups of Python's floor division)."""
    emit = x >= (f << (32 - p))
    out[o] = x & 0xFFFF
    xu = np.uint64((x >> 16) if emit else x)
    fu = np.uint64(f)
    d = xu // fu
    return (np.int64(d) << p) + np.int64(xu - d * fu) + c, (o + 1) if emit else o


@nb.njit(cache=True, inline="always")
def put_raw(x: int, out: np.ndarray, o: int, piece: int, b: int) -> tuple:
    """:func:`put` of `b` raw bits (1 <= b <= 16): start ``piece << (16 - b)``, frequency
    ``2^(16 - b)``, total 2^16, with shifts and masks for the division by a power of two."""
    emit = x >= (np.int64(1) << (32 - b))
    out[o] = x & 0xFFFF
    x = (x >> 16) if emit else x
    return ((x >> (16 - b)) << 16) + (x & ((np.int64(1) << (16 - b)) - 1)) + (piece << (16 - b)), \
        (o + 1) if emit else o


@nb.njit(cache=True, nogil=True)
def build_lookup(prec: np.ndarray, alphabet: np.ndarray, fbase: np.ndarray, freq: np.ndarray,
                 cum: np.ndarray, lbase: np.ndarray, lut: np.ndarray) -> None:
    """Fill `cum` (cumulative starts) and `lut` (slot -> symbol, 2^P slots per table) from `freq`."""
    for t in range(len(prec)):
        if prec[t] == 0:
            continue
        c = 0
        b = fbase[t]
        o = lbase[t]
        for s in range(alphabet[t]):
            f = freq[b + s]
            cum[b + s] = c
            for j in range(f):
                lut[o + c + j] = s
            c += f


# -- the learned model's network ------------------------------------------------------------------

class ModelArrays:
    """A learned model's streams in the arrays the compiled loops take, one row per learned slot
    (zeros where a slot has no usable stream): ``w1`` (5, 4, H), ``b1`` (5, H), ``w2t`` (5, B + 1, H)
    (the second layer transposed: one dot product per bucket), ``b2`` (5, B + 1), ``owner``
    (5, B + 1: kept bucket of each bucket), ``keep`` (5, B + 1: bucket of each kept one),
    ``thr`` (5, B + 1: thresholds on the stream's integer symbols), ``dims`` (5, 4: features,
    hidden units, buckets + 1, kept buckets), ``tanh``, ``exp``; the weights are
    ``StreamModel._scaled()``'s.

    Args:
        models: (slot, StreamModel, thresholds) per usable slot.
        tanh, expt: the model's tables.
    """

    def __init__(self, models: Sequence[tuple[int, Any, np.ndarray]], tanh: np.ndarray, expt: np.ndarray) -> None:
        from .context import merge_plan

        hid = max([sm.w1.shape[1] for _, sm, _ in models] + [1])
        out = max([sm.w2.shape[1] for _, sm, _ in models] + [1])
        self.w1, self.b1 = np.zeros((SLOTS, 4, hid)), np.zeros((SLOTS, hid))
        self.w2t, self.b2 = np.zeros((SLOTS, out, hid)), np.zeros((SLOTS, out))
        self.owner, self.keep = np.zeros((SLOTS, out), np.int64), np.zeros((SLOTS, out), np.int64)
        self.thr = np.zeros((SLOTS, out), np.int64)
        self.dims = np.zeros((SLOTS, 4), np.int64)
        for slot, sm, thr in models:
            w1, b1, w2, b2 = sm._scaled()
            f, h = w1.shape
            o = w2.shape[1]
            kept, _ = merge_plan(thr)
            self.w1[slot, :f, :h], self.b1[slot, :h] = w1, b1
            self.w2t[slot, :o, :h], self.b2[slot, :o] = w2.T, b2
            self.owner[slot, :o] = np.searchsorted(kept, np.arange(o))
            self.keep[slot, :len(kept)] = kept
            self.thr[slot, :o] = thr
            self.dims[slot] = (f, h, o, len(kept))
        self.tanh = np.ascontiguousarray(tanh, np.float64)
        self.exp = np.ascontiguousarray(expt, np.float64)

    def network_args(self) -> tuple[np.ndarray, ...]:
        """The arrays :func:`network` takes after the features, in order."""
        return self.w1, self.b1, self.w2t, self.b2, self.owner, self.dims, self.tanh, self.exp


@nb.njit(cache=True, fastmath={"reassoc", "contract"})
def _layers(slot, x0, x1, x2, x3, w1, b1, w2t, b2, owner, dims, tanh, expt, hid, logit, f):
    """The network's merged bucket frequencies into f: (kept bucket count, their sum, the first
    largest).

    Every operand is an integer times a power of two and every sum stays below 2^53, so any
    order of the sums and fused multiply-adds gives the same numbers: reassociation is exact here
    (and lets the dot products and the sum use vector registers). No division or rounding is
    reassociated: those are in :func:`network`, compiled without it."""
    nh, nb1, nk = dims[slot, 1], dims[slot, 2], dims[slot, 3]
    for j in range(nh):
        z = b1[slot, j] + x0 * w1[slot, 0, j] + x1 * w1[slot, 1, j] + x2 * w1[slot, 2, j] + x3 * w1[slot, 3, j]
        # int() of the clipped value: the floor of the numpy reference (both are >= 0 here)
        hid[j] = tanh[int(min(max(z, 0.0), float(TANH_LAST)))]
    top = -math.inf
    for b in range(nb1):
        acc = b2[slot, b]
        for j in range(nh):
            acc += hid[j] * w2t[slot, b, j]
        logit[b] = acc
        top = max(top, acc)
    for k in range(nk):
        f[k] = 0.0
    for b in range(nb1):
        f[owner[slot, b]] += expt[int(min(top - logit[b], float(EXP_LAST)))]
    total = 0.0
    for k in range(nk):
        total += f[k]
    best = 0
    for k in range(1, nk):
        if f[k] > f[best]:
            best = k
    return nk, total, best


@nb.njit(cache=True)
def network(slot, x0, x1, x2, x3, w1, b1, w2t, b2, owner, dims, tanh, expt, hid, logit, f, fq, cq):
    """The learned stream `slot`'s frequencies for features (x0 .. x3; unused ones 0): the same
    integers as ``StreamModel.frequencies(x, tanh, exp, keep)`` merged into the kept buckets (f),
    normalized to 2^16 (fq, int64; module doc) with their starts (cq, int64); returns their
    count."""
    nk, total, best = _layers(slot, x0, x1, x2, x3, w1, b1, w2t, b2, owner, dims, tanh, expt, hid, logit, f)
    r = (L - nk) / total
    s = 0
    for k in range(nk):
        fq[k] = 1 + int(f[k] * r)  # f * r >= 0: int() is its floor
        s += fq[k]
    fq[best] += L - s
    c = 0
    for k in range(nk):
        cq[k] = c
        c += fq[k]
    cq[nk] = c
    return nk


@nb.njit(cache=True, nogil=True)
def network_batch(slot, x, w1, b1, w2t, b2, owner, dims, tanh, expt):
    """(merged integer frequencies before normalizing, normalized ones), (n, K) each, of rows of
    features x (n, F) (clipped to +-MAX_FEATURE here): what :func:`network` computes, for tests."""
    n = len(x)
    k = dims[slot, 3]
    raw = np.zeros((n, k))
    norm = np.zeros((n, k), np.int64)
    hid, logit, f = np.zeros(64), np.zeros(257), np.zeros(257)
    fq, cq = np.zeros(257, np.int64), np.zeros(258, np.int64)
    nf = x.shape[1]
    for i in range(n):
        f0 = min(max(x[i, 0], -MAX_FEATURE), MAX_FEATURE)
        f1 = min(max(x[i, 1], -MAX_FEATURE), MAX_FEATURE) if nf > 1 else 0.0
        f2 = min(max(x[i, 2], -MAX_FEATURE), MAX_FEATURE) if nf > 2 else 0.0
        f3 = min(max(x[i, 3], -MAX_FEATURE), MAX_FEATURE) if nf > 3 else 0.0
        network(slot, f0, f1, f2, f3, w1, b1, w2t, b2, owner, dims, tanh, expt, hid, logit, f, fq, cq)
        for j in range(k):
            raw[i, j] = f[j]
            norm[i, j] = fq[j]
    return raw, norm
