"""Symbol tables (stored histograms), the rANS coder around `constriction`, raw bit packing.

Byte layout of one :class:`SymbolTable` (all little-endian)::

    u8  shift k        low bits sent raw (0..MAX_SHIFT)
    i64 offset         smallest high part (v >> k) of the stream
    u32 n              alphabet size of the high parts (1..MAX_ALPHABET)
    u32 nbytes         length of the zlib block that follows
    zlib(u16 x n)      the counts as 16-bit "minifloats": e = c >> 11, m = c & 2047
                       stands for count m << e (5 bits of exponent, 11 of mantissa)

Raw low parts (:class:`BitWriter`): each stream starts on a byte; widths up to 16 bits go
8 values to `width` bytes, wider ones bit by bit, little-endian bit order.

Counts are rounded to 11 significant bits before they are stored (a relative precision of
1e-3, which costs well under 1e-4 bit per symbol) and the *rounded* counts build the model on
both sides, so encoder and decoder agree exactly.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError

MAX_SHIFT = 40
MAX_ALPHABET = 1 << 16
_HEAD = struct.Struct("<BqII")
_MANT_BITS = 11


def _round_counts(counts: np.ndarray) -> np.ndarray:
    """Counts (int64 >= 0, < 2^52) -> 16-bit minifloat codes (see module doc)."""
    c = counts.astype(np.int64)
    bits = np.frexp(c.astype(np.float64))[1].astype(np.int64)  # bit length; exact below 2^53
    e = np.maximum(bits - _MANT_BITS, 0)
    m = c >> e
    return ((e << _MANT_BITS) | m).astype(np.uint16)


def _counts_of(codes: np.ndarray) -> np.ndarray:
    codes = codes.astype(np.int64)
    return (codes & ((1 << _MANT_BITS) - 1)) << (codes >> _MANT_BITS)


@dataclass(eq=False)
class SymbolTable:
    """Histogram of the high parts ``(v >> shift) - offset`` of one stream of integers."""

    shift: int
    offset: int
    codes: np.ndarray  # uint16 minifloat counts, one per high-part symbol
    _model: object = field(default=None, repr=False)

    @property
    def alphabet(self) -> int:
        return len(self.codes)

    def model(self):
        """The constriction categorical model (cached); identical on every machine."""
        if self._model is None:
            import constriction

            counts = _counts_of(self.codes).astype(np.float64)
            self._model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
        return self._model

    def release(self) -> None:
        """Drop the cached model (a decoder builds one table's model at a time)."""
        self._model = None

    def split(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(high-part symbols as int32 in [0, alphabet), low parts as uint64)."""
        v = values.astype(np.int64)
        hi = (v >> self.shift) - self.offset
        if len(hi) and (hi.min() < 0 or hi.max() >= self.alphabet):
            raise ValueError("value outside the table's range")
        lo = (v & ((np.int64(1) << self.shift) - 1)).astype(np.uint64)
        return hi.astype(np.int32), lo

    def join(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        return ((hi.astype(np.int64) + self.offset) << self.shift) | lo.astype(np.int64)

    def to_bytes(self) -> bytes:
        block = zlib.compress(self.codes.astype("<u2").tobytes(), 9)
        return _HEAD.pack(self.shift, self.offset, self.alphabet, len(block)) + block

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, pos: int, where: str) -> tuple["SymbolTable", int]:
        """Parse a table at `pos`; returns (table, position after it). Raises FormatError."""
        if pos + _HEAD.size > len(buf):
            raise FormatError(f"{where}: symbol table cut short")
        shift, offset, n, nbytes = _HEAD.unpack_from(buf, pos)
        pos += _HEAD.size
        if shift > MAX_SHIFT or not 1 <= n <= MAX_ALPHABET or pos + nbytes > len(buf):
            raise FormatError(f"{where}: malformed symbol table")
        d = zlib.decompressobj()
        try:
            raw = d.decompress(bytes(buf[pos:pos + nbytes]), 2 * n + 1)
        except zlib.error:
            raise FormatError(f"{where}: symbol table is corrupted") from None
        if len(raw) != 2 * n or not d.eof:
            raise FormatError(f"{where}: symbol table is corrupted")
        codes = np.frombuffer(raw, "<u2").astype(np.uint16)
        if not (_counts_of(codes) > 0).any():
            raise FormatError(f"{where}: symbol table has no symbols")
        return cls(shift, offset, codes), pos + nbytes


def _estimate_bits(hist: np.ndarray, n: int, shift: int) -> float:
    nz = hist[hist > 0].astype(np.float64)
    entropy = float((nz * np.log2(n / nz)).sum())
    table = 14.0 * len(nz) + 0.5 * (len(hist) - len(nz)) + 8 * _HEAD.size
    return entropy + n * shift + table


def fit_table(values: np.ndarray) -> SymbolTable:
    """See :func:`fit_table_cost`; the table only."""
    return fit_table_cost(values)[0]


def fit_table_cost(values: np.ndarray) -> tuple[SymbolTable, float]:
    """The table that codes `values` (integers) in the fewest estimated bits, and those bits.

    Tries every shift k from the smallest that keeps the alphabet within MAX_ALPHABET upwards,
    coarsening one histogram by pairs of bins instead of recounting.
    """
    v = np.asarray(values, dtype=np.int64)
    if len(v) == 0:
        return SymbolTable(0, 0, np.array([1], np.uint16)), 0.0
    vmin, vmax = int(v.min()), int(v.max())
    k = 0
    while ((vmax >> k) - (vmin >> k)) >= MAX_ALPHABET:
        k += 1
    lo = vmin >> k
    hist = np.bincount((v >> k) - lo).astype(np.int64)
    best: tuple[float, int, int, np.ndarray] | None = None
    worse = 0
    while True:
        cost = _estimate_bits(hist, len(v), k)
        if best is None or cost < best[0]:
            best = (cost, k, lo, hist)
            worse = 0
        else:
            worse += 1
        # the cost is close to convex in k: two coarsenings without a gain end the search
        if len(hist) == 1 or k >= MAX_SHIFT or worse >= 2:
            break
        # coarsen: bins (2j, 2j+1) in absolute terms; pad so that lo is even
        if lo & 1:
            hist = np.concatenate([[0], hist])
            lo -= 1
        if len(hist) & 1:
            hist = np.concatenate([hist, [0]])
        hist = hist.reshape(-1, 2).sum(axis=1)
        lo >>= 1
        k += 1
    cost, k, lo, hist = best
    return SymbolTable(k, lo, _round_counts(hist)), cost


class RansEncoder:
    """Collect groups of symbols with their models and code them into one rANS stream.

    A group is one of: symbols with a :class:`SymbolTable` (:meth:`add`); symbols with one
    distribution each, given as integer frequencies by a function of the index range
    (:meth:`add_learned`, evaluated in batches of `batch` so memory stays bounded); symbols
    uniform on ``[0, size)`` with one size each (:meth:`add_uniform`). The decoder must ask
    for the same groups, in the same order, with the same models.
    """

    def __init__(self) -> None:
        self.groups: list[tuple[str, np.ndarray, object, int]] = []

    def add(self, hi: np.ndarray, table: SymbolTable) -> None:
        if len(hi) and table.alphabet > 1:  # a one-symbol alphabet carries no information
            self.groups.append(("table", np.ascontiguousarray(hi, np.int32), table, 0))

    def add_learned(self, symbols: np.ndarray, freqs, batch: int) -> None:
        """`freqs(a, b)` -> (b - a, alphabet) float32 integer frequencies of symbols a..b-1."""
        if len(symbols):
            self.groups.append(("learned", np.ascontiguousarray(symbols, np.int32), freqs, batch))

    def add_uniform(self, symbols: np.ndarray, sizes: np.ndarray) -> None:
        """Symbols in [0, size); sizes below 2 carry no information and are left out."""
        keep = sizes >= 2
        if keep.any():
            self.groups.append(("uniform", np.ascontiguousarray(symbols[keep], np.int32),
                                np.ascontiguousarray(sizes[keep], np.int32), 0))

    def finish(self) -> bytes:
        import constriction

        model = constriction.stream.model
        coder = constriction.stream.stack.AnsCoder()
        for kind, sym, m, batch in reversed(self.groups):  # a stack: the last group goes in first
            if kind == "table":
                coder.encode_reverse(sym, m.model())  # type: ignore[attr-defined]
            elif kind == "uniform":
                coder.encode_reverse(sym, model.Uniform(), m)
            else:
                starts = list(range(0, len(sym), batch))
                for a in reversed(starts):
                    b = min(a + batch, len(sym))
                    coder.encode_reverse(sym[a:b], model.Categorical(perfect=False),
                                        np.ascontiguousarray(m(a, b), np.float64))  # type: ignore
        return coder.get_compressed().astype("<u4").tobytes()


class RansDecoder:
    def __init__(self, data: bytes | memoryview, where: str) -> None:
        import constriction

        if len(data) % 4:
            raise FormatError(f"{where}: entropy-coded stream has a partial word")
        words = np.frombuffer(data, "<u4").astype(np.uint32)
        self.where = where
        self.model = constriction.stream.model
        try:
            self.coder = constriction.stream.stack.AnsCoder(words)
        except Exception:  # constriction rejects a stream that cannot be a valid ANS state
            raise FormatError(f"{where}: entropy-coded stream is corrupted") from None

    def _decode(self, *args) -> np.ndarray:
        try:
            out = self.coder.decode(*args)
        except Exception:
            raise FormatError(f"{self.where}: entropy-coded stream is corrupted") from None
        return np.asarray(out, dtype=np.int32)

    def take(self, n: int, table: SymbolTable) -> np.ndarray:
        if n == 0 or table.alphabet == 1:
            return np.zeros(n, np.int32)
        return self._decode(table.model(), n)

    def take_learned(self, n: int, freqs, batch: int) -> np.ndarray:
        """The counterpart of :meth:`RansEncoder.add_learned`."""
        out = np.zeros(n, np.int32)
        for a in range(0, n, batch):
            b = min(a + batch, n)
            out[a:b] = self._decode(self.model.Categorical(perfect=False),
                                    np.ascontiguousarray(freqs(a, b), np.float64))
        return out

    def take_uniform(self, sizes: np.ndarray) -> np.ndarray:
        """The counterpart of :meth:`RansEncoder.add_uniform` (zeros where size < 2)."""
        out = np.zeros(len(sizes), np.int32)
        keep = sizes >= 2
        if keep.any():
            out[keep] = self._decode(self.model.Uniform(), np.ascontiguousarray(sizes[keep], np.int32))
        return out

    def check_done(self) -> None:
        if not self.coder.is_empty():
            raise FormatError(f"{self.where}: entropy-coded stream has data left over")


def _pack8(v: np.ndarray, w: int) -> bytes:
    """Groups of 8 values of `w` <= 16 bits -> `w` bytes each (little-endian bit order)."""
    pad = (-len(v)) % 8
    vv = np.concatenate([v.astype(np.uint64), np.zeros(pad, np.uint64)]).reshape(-1, 8)
    acc = np.zeros((len(vv), 2), np.uint64)  # bits 0-63 and 64-127 of each group
    for i in range(8):
        s = i * w
        if s < 64:
            acc[:, 0] |= vv[:, i] << np.uint64(s)
            if s + w > 64:
                acc[:, 1] |= vv[:, i] >> np.uint64(64 - s)
        else:
            acc[:, 1] |= vv[:, i] << np.uint64(s - 64)
    return acc.astype("<u8").view(np.uint8).reshape(-1, 16)[:, :w].tobytes()


def _unpack8(data: memoryview | bytes, n: int, w: int) -> np.ndarray:
    groups = (n + 7) // 8
    raw = np.zeros((groups, 16), np.uint8)
    raw[:, :w] = np.frombuffer(data, np.uint8, groups * w).reshape(groups, w)
    acc = raw.view("<u8").reshape(groups, 2)
    out = np.empty((groups, 8), np.uint64)
    mask = np.uint64((1 << w) - 1)
    for i in range(8):
        s = i * w
        if s < 64:
            x = acc[:, 0] >> np.uint64(s)
            if s + w > 64:
                x = x | (acc[:, 1] << np.uint64(64 - s))
        else:
            x = acc[:, 1] >> np.uint64(s - 64)
        out[:, i] = x & mask
    return out.ravel()[:n]


def raw_nbytes(n: int, width: int) -> int:
    """Bytes that `n` raw fields of `width` bits take (each stream starts on a byte)."""
    if width == 0 or n == 0:
        return 0
    return ((n + 7) // 8) * width if width <= 16 else (n * width + 7) // 8


class BitWriter:
    """Fixed-width raw fields (up to 64 bits each); each stream starts on a byte boundary.

    Widths up to 16 bits are packed 8 values to `width` bytes; wider ones bit by bit
    (little-endian bit order in both cases).
    """

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def add(self, lo: np.ndarray, width: int) -> None:
        if not width or not len(lo):
            return
        if width <= 16:
            self.parts.append(_pack8(lo, width))
        else:
            as_bytes = np.ascontiguousarray(lo, dtype="<u8").view(np.uint8).reshape(len(lo), 8)
            bits = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :width]
            self.parts.append(np.packbits(bits.ravel(), bitorder="little").tobytes())

    def finish(self) -> bytes:
        return b"".join(self.parts)


class BitReader:
    def __init__(self, data: bytes | memoryview, where: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.where = where

    def take(self, n: int, width: int) -> np.ndarray:
        if width == 0 or n == 0:
            return np.zeros(n, np.uint64)
        need = raw_nbytes(n, width)
        if self.pos + need > len(self.data):
            raise FormatError(f"{self.where}: raw bit stream cut short")
        part = self.data[self.pos:self.pos + need]
        self.pos += need
        if width <= 16:
            return _unpack8(part, n, width)
        bits = np.unpackbits(np.frombuffer(part, np.uint8), bitorder="little")[:n * width].reshape(n, width)
        full = np.zeros((n, 8 * ((width + 7) // 8)), np.uint8)
        full[:, :width] = bits
        packed = np.zeros((n, 8), np.uint8)
        packed[:, :full.shape[1] // 8] = np.packbits(full, axis=1, bitorder="little")
        return packed.view("<u8").ravel().astype(np.uint64)

    def check_done(self) -> None:
        if self.pos != len(self.data):
            raise FormatError(f"{self.where}: raw bit stream has data left over")
