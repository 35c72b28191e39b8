"""The bounded codec's payload, every version: the layout of one chunk (for docs/FORMAT.md).

A file's header holds the codec configuration (JSON)::

    {"id": "bounded", "version": 3,
     "representation": "PtEtaPhiM" | "EPtEtaPhi" | "PxPyPzE" | "PxPyPzM", "units": "GeV",
     "bounds": {role: b, ...},                  roles of the representation (pt, eta, phi, m | E;
                                                or px, py, pz, E | m)
     "bound_kinds": {role: "relative" | "absolute" | "relative to pt" | "relative to |p|", ...},
     "kind": "constituents",                    only for a table of jet constituents (particles)
     "entropy_model": {"name": ..., "sha256": ...}}   only with a learned model (not constituents)

``version`` 1: each chunk's own tables; 2: the same with a learned entropy model; 3: steps from
the bounds only, one stream plan, the compiled rANS coder, Cartesian tables and constituents,
with or without ``entropy_model``. Every version decodes forever; an encoder writes version 3.
The steps, grids, thresholds and Q come from the configuration (:mod:`.params`); a Cartesian
table is quantized in (pt, eta, phi) at the polar bounds :func:`.params.polar_bounds` gives,
and restored in its own columns. Numbers are little-endian.

Payload version 3 (one chunk of n jets, or particles)::

    u32 tag                  params.config_tag(config): a chunk of another configuration is refused
    u8  learned              bit i: stream LEARNED_STREAMS[i] coded with the entropy model
    u8  grid                 the context grid: index into params.GRIDS (constituents:
                             params.CONSTITUENT_GRIDS)
    u8  eta_classes          1: eta in the pt classes of params.ETA_PT_EDGES_GEV; 0: one class
                             (always 0 for constituents)
    u16 n_tables             exactly what the plan needs (streams.table_counts)
    n_tables x table         u8 shift k, u8 precision P, i64 offset, u32 alphabet A
    u32 nbytes, zlib(u16 x sum of A over tables with P > 0)   each such table's frequencies, summing to 2^P
    u32 n_words, u16 x n_words                                 the rANS stream (entropy.kernels)
    u32 n_exact, u32 nbytes, zlib(u32 index x n_exact, f64 x 4 n_exact)   jets stored verbatim, in
                             increasing index, the four columns of the representation each

A table codes a value v as its high part ``(v >> k) - offset`` in [0, A) with the frequencies
(P = 0: A = 1, nothing coded), then its k low bits raw. An encoder writes P <= 12 (P <= 16 is
read); a decoder refuses more lookup slots in all than 2^8 per table plus 32 per jet. Tables are
stored in the plan's order: for each stream, one per static context, or, for a stream the model
codes, one for its escaped values. The decoder walks the events in order, their jets in order,
and per jet the streams of the plan in order (pos: the jet's position in its event; Q =
ceil(pi / s_phi); "lead": the event's first jet):

=========  ==============================  =====================================  ==================================
stream     jets                            value                                  static contexts
=========  ==============================  =====================================  ==================================
pt_first   pos 0 (flat tables: all)        q_pt                                   1
pt_drop    pos > 0                         q_pt of the previous jet - q_pt        2 (pos 1, pos > 1); constituents:
                                                                                  the previous particle's pt bin
eta        all (constituents: pos 0)       q_eta                                  pt classes (1 or 3)
eta_rel    constituents, pos > 0           q_eta - q_eta of the lead              the particle's pt bin
phi_first  pos 0                           q_phi in [-Q, Q]                       1
phi_rel    pos > 0                         (q_phi - q_phi of the lead) mod 2Q+1   2 (pos 1, pos > 1); constituents:
                                                                                  the particle's pt bin
m_class    all (mass tables)               0 > 0, 1 < 0, 2 +0.0, 3 -0.0            1
fourth     all but mass classes 2 and 3    q_E or q_m                             the grid's (pt bin, |eta| bin)
=========  ==============================  =====================================  ==================================

A learned stream codes each symbol's bucket with the model's frequencies (normalized to 2^16,
entropy.kernels), then the offset in the bucket as an even uniform, or, for the escape bucket,
the value with the stream's escape table. A verbatim jet's symbols are placeholders (any value
the streams can hold); its stored values replace them.

Payload versions 1 and 2 (decoded by :mod:`.legacy`)::

    u8  kind                 0 = E tables, 1 = mass tables
    f64 x 4                  steps s_pt, s_eta, s_phi, s_4 (eta, phi from each chunk's largest value)
    i64 phi_min, u32 phi_n   range of q_phi in the chunk (for the modulo)
    u8  n, i64 x n           pt-bin thresholds on q_pt (4th column contexts)
    u8  n, i64 x n           |eta|-bin thresholds on |q_eta|
    u8  n, i64 x n           pt-class thresholds on q_pt for the eta streams
    u8 mask, u32 x 5         version 2 only, the learned head block: bit i of mask, stream i of
                             (pt_first, pt_drop, eta, phi_rel, 4th) coded with the model; the count
                             of each one's escaped symbols (read first, with a table of their own)
    u16 n_tables, tables     jetzip.entropy.legacy.SymbolTable each
    u32 nbytes, u32 words    one constriction rANS stream of all high parts, in decode order
    u32 nbytes, raw bits     the low parts
    u32 n_exact, u32 nbytes, zlib(u32 index x n_exact, f64 x 4 n_exact)

with the streams of version 1 and 2 in this order: pt of first jets; pt drops of second, then
later jets (version 2 learned: all second jets, then all third, ...); eta per pt class; phi of
first jets; phi relative to the lead for second, then later jets; mass classes; the 4th column
per context (learned: all at once).

What a decoder refuses, in every version (a FormatError naming the chunk and the field): a
parameter no encoder of the file's configuration writes (steps, phi range, thresholds, the tag),
a table count other than the plan's, tables larger than their streams, learned streams the model
does not have, verbatim jets that are NaN or inf or out of order, a stream that ends anywhere
but where it should, and coded jets that decode to a value no encoder keeps (not finite, pt <= 0,
E <= 0, a mass of the wrong sign). Verbatim jets may hold pt <= 0 or |phi| > pi: the input had it.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ...container import inflate_exact
from ...errors import FormatError

LEARNED_STREAMS = ("pt_first", "pt_drop", "eta", "phi_rel", "fourth")
VERSION_TABLES, VERSION_LEARNED, VERSION = 1, 2, 3
HEAD = struct.Struct("<IBBBH")
TABLE = struct.Struct("<BBqI")
MAX_SHIFT = 40
MAX_PRECISION = 16
SMALL_TABLE = 1 << 8  # every table may have 2^8 slots; beyond, 32 per jet in all


def refuse_unless(ok: bool, where: str, what: str) -> None:
    """FormatError ``"<where>: <what> (a corrupted or crafted chunk)"`` unless `ok`."""
    if not ok:
        raise FormatError(f"{where}: {what} (a corrupted or crafted chunk)")


@dataclass
class Head:
    """The fixed fields of a version 3 chunk."""

    tag: int
    learned: int
    grid: int
    eta_classes: int
    n_tables: int

    def pack(self) -> bytes:
        return HEAD.pack(self.tag, self.learned, self.grid, self.eta_classes, self.n_tables)


@dataclass
class Tables:
    """A chunk's static tables as the compiled coder takes them (:mod:`jetzip.entropy.kernels`)."""

    shift: np.ndarray  # int64 (T,)
    prec: np.ndarray  # int64 (T,)
    offset: np.ndarray  # int64 (T,)
    alphabet: np.ndarray  # int64 (T,)
    freq: np.ndarray  # int32, the frequencies of the tables with P > 0, one after the other

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(shift, prec, offset, fbase, lbase, freq, cum, lookup) with the cumulative starts and
        slot lookups built."""
        from ...entropy.kernels import build_lookup

        coded = self.prec > 0
        sizes = np.where(coded, self.alphabet, 0)
        fbase = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        slots = np.where(coded, np.int64(1) << self.prec, 0)
        lbase = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)
        cum = np.zeros(len(self.freq), np.int32)
        lut = np.zeros(int(slots.sum()), np.uint16)
        build_lookup(self.prec, self.alphabet, fbase, self.freq, cum, lbase, lut)
        return self.shift, self.prec, self.offset, fbase, lbase, self.freq, cum, lut

    def pack(self) -> bytes:
        desc = b"".join(TABLE.pack(int(k), int(p), int(o), int(a))
                        for k, p, o, a in zip(self.shift, self.prec, self.offset, self.alphabet))
        block = zlib.compress(self.freq.astype("<u2").tobytes(), 9)
        return desc + struct.pack("<I", len(block)) + block


def parse(buf: memoryview, n: int, where: str) -> tuple[Head, Tables, np.ndarray, memoryview, int]:
    """(head, tables, rANS words, verbatim block, verbatim count) of a version 3 chunk of `n` jets,
    every size and table checked (the table count against the plan is the caller's).

    Raises:
        FormatError: cut short, inconsistent sizes, malformed or oversized tables.
    """
    try:
        head = Head(*HEAD.unpack_from(buf, 0))
        pos = HEAD.size
        if pos + TABLE.size * head.n_tables > len(buf):
            raise struct.error
        desc = np.frombuffer(buf, np.dtype([("k", "u1"), ("p", "u1"), ("o", "<i8"), ("a", "<u4")]),
                             head.n_tables, pos)
        pos += TABLE.size * head.n_tables
        (n_freq,) = struct.unpack_from("<I", buf, pos)
        block = buf[pos + 4:pos + 4 + n_freq]
        pos += 4 + n_freq
        (n_words,) = struct.unpack_from("<I", buf, pos)
        words = np.frombuffer(buf, "<u2", n_words, pos + 4).astype(np.uint16)
        pos += 4 + 2 * n_words
        n_exact, n_ex = struct.unpack_from("<II", buf, pos)
        ex = buf[pos + 8:pos + 8 + n_ex]
        pos += 8 + n_ex
    except (struct.error, ValueError):
        raise FormatError(f"{where}: bounded chunk is cut short") from None
    if len(block) != n_freq or len(ex) != n_ex or pos != len(buf) or n_exact > n:
        raise FormatError(f"{where}: bounded chunk sizes are inconsistent")
    shift, prec = desc["k"].astype(np.int64), desc["p"].astype(np.int64)
    offset, alphabet = desc["o"].astype(np.int64), desc["a"].astype(np.int64)
    refuse_unless(bool(np.all((shift <= MAX_SHIFT) & (prec <= MAX_PRECISION) & (alphabet >= 1))), where,
                  "a symbol table's shift, precision or alphabet is out of range")
    refuse_unless(bool(np.all(np.where(prec == 0, alphabet == 1, alphabet <= (np.int64(1) << prec)))), where,
                  "a symbol table has more values than its precision holds")
    # the largest decoded value stays within int64: |offset| + A < 2^(62 - shift)
    refuse_unless(bool(np.all(np.abs(offset.astype(np.float64)) + alphabet < np.ldexp(1.0, 62 - shift))), where,
                  "a symbol table's offset is out of range")
    slots = int(np.where(prec > 0, np.int64(1) << prec, 0).sum())
    refuse_unless(slots <= SMALL_TABLE * head.n_tables + 32 * n, where,
                  f"symbol tables of {slots} slots for {n} jets (more than any encoder writes)")
    n_freq_values = int(np.where(prec > 0, alphabet, 0).sum())
    raw = inflate_exact(block, 2 * n_freq_values, f"{where}: symbol tables are corrupted")
    freq = np.frombuffer(raw, "<u2").astype(np.int32)
    sizes = np.where(prec > 0, alphabet, 0)
    sums = np.add.reduceat(freq.astype(np.int64), np.concatenate([[0], np.cumsum(sizes)[:-1]])[sizes > 0]) \
        if n_freq_values else np.zeros(0, np.int64)
    refuse_unless(bool(np.array_equal(sums, np.int64(1) << prec[prec > 0])), where,
                  "a symbol table's frequencies do not add up to its precision")
    return head, Tables(shift, prec, offset, alphabet, freq), words, ex, n_exact
