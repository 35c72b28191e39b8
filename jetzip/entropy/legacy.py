"""Decoding of bounded payload versions 1 and 2: stored histograms, `constriction` rANS, raw bits.

Files written before payload version 3 keep decoding with exactly the models their encoder
used (no encoder writes these versions any more; :mod:`jetzip.entropy.kernels` is version 3's
coder). A stream's high parts ``v >> k`` were coded with a categorical model built from the
stream's own histogram (:class:`SymbolTable`, stored beside the data) by `constriction`'s rANS
coder, the low ``k`` bits raw.

Byte layout of one :class:`SymbolTable` (all little-endian)::

    u8  shift k        low bits sent raw (0..MAX_SHIFT)
    i64 offset         smallest high part (v >> k) of the stream
    u32 n              alphabet size of the high parts (1..MAX_ALPHABET)
    u32 nbytes         length of the zlib block that follows
    zlib(u16 x n)      the counts as 16-bit "minifloats": e = c >> 11, m = c & 2047
                       stands for count m << e (5 bits of exponent, 11 of mantissa)

Raw low parts (:class:`BitReader`): each stream starts on a byte; widths up to 16 bits go
8 values to `width` bytes, wider ones bit by bit, little-endian bit order.

Why this decodes the same on every machine: the model is rebuilt from the stored integer
counts through the same float64 division and the same `constriction` quantization (IEEE
arithmetic, no transcendental functions).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..container import inflate_exact
from ..errors import FormatError

MAX_SHIFT = 40
MAX_ALPHABET = 1 << 16
_HEAD = struct.Struct("<BqII")
_MANT_BITS = 11


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
        raw = inflate_exact(buf[pos:pos + nbytes], 2 * n, f"{where}: symbol table is corrupted")
        codes = np.frombuffer(raw, "<u2").astype(np.uint16)
        if not (_counts_of(codes) > 0).any():
            raise FormatError(f"{where}: symbol table has no symbols")
        return cls(shift, offset, codes), pos + nbytes


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
        from ..atomic import native_call

        try:
            with native_call():  # Ctrl-C inside constriction's Rust code: raised when it returns
                out = self.coder.decode(*args)
        except Exception:
            raise FormatError(f"{self.where}: entropy-coded stream is corrupted") from None
        return np.asarray(out, dtype=np.int32)

    def take(self, n: int, table: SymbolTable) -> np.ndarray:
        if n == 0 or table.alphabet == 1:
            return np.zeros(n, np.int32)
        return self._decode(table.model(), n)

    def take_learned(self, n: int, freqs, batch: int) -> np.ndarray:
        """`n` symbols, each with its own distribution: `freqs(a, b)` gives rows a..b-1 of
        integer frequencies, evaluated `batch` rows at a time (version 2 learned streams)."""
        out = np.zeros(n, np.int32)
        for a in range(0, n, batch):
            b = min(a + batch, n)
            out[a:b] = self._decode(self.model.Categorical(perfect=False),
                                    np.ascontiguousarray(freqs(a, b), np.float64))
        return out

    def take_uniform(self, sizes: np.ndarray) -> np.ndarray:
        """Symbols uniform on [0, size) each (zeros where size < 2: nothing was coded)."""
        out = np.zeros(len(sizes), np.int32)
        keep = sizes >= 2
        if keep.any():
            out[keep] = self._decode(self.model.Uniform(), np.ascontiguousarray(sizes[keep], np.int32))
        return out

    def check_done(self) -> None:
        if not self.coder.is_empty():
            raise FormatError(f"{self.where}: entropy-coded stream has data left over")


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
