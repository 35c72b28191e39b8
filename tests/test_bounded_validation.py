"""A bounded chunk is checked against its file's configuration before its values are used:
each crafted field is a one-line FormatError naming the chunk and the field (payload versions 1
and 2, from the golden files; nothing here depends on which encoder wrote them)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import jetzip
from jetzip.codecs.bounded import BoundedCodec
from jetzip.errors import FormatError

GOLDEN = Path(__file__).parent / "golden"
STEPS = 1  # version 1/2 head: u8 kind, f64 x 4 steps, i64 phi_min, u32 phi_n, u8 n + i64 thresholds ...


def first_chunk(name: str) -> tuple[BoundedCodec, bytes, int, np.ndarray | None]:
    with jetzip.open_aez(GOLDEN / name) as f:
        codec = f.codec()
        c = next(iter(f.chunks()))
        return codec, bytes(c.payload), c.n_jets, c.counts


def refused(codec, payload, n, counts, match: str) -> None:
    with pytest.raises(FormatError, match=match) as info:
        codec.decode(payload, n, counts, "chunk 7")
    assert str(info.value).startswith("chunk 7: ") and "\n" not in str(info.value)


def edit(payload: bytes, offset: int, fmt: str, fn) -> bytes:
    p = bytearray(payload)
    (value,) = struct.unpack_from(fmt, p, offset)
    struct.pack_into(fmt, p, offset, fn(value))
    return bytes(p)


def verbatim_tail(payload: bytes) -> int:
    """Where ``u32 n_exact, u32 nbytes, zlib block`` starts (the payload's last field)."""
    for p in range(len(payload) - 8, -1, -1):
        k, nbytes = struct.unpack_from("<II", payload, p)
        if p + 8 + nbytes == len(payload) and (k == 0) == (nbytes == 0):
            return p
    raise AssertionError("no verbatim block")


def tables_start(payload: bytes) -> int:
    """Where the first symbol table starts (after the three threshold lists and the u16 count)."""
    pos = 45
    for _ in range(3):
        (k,) = struct.unpack_from("<B", payload, pos)
        pos += 1 + 8 * k
    return pos + 2


def with_first_table(payload: bytes, make) -> bytes:
    """The chunk with its first symbol table (the leading jets' pt) replaced by ``make(table)``."""
    from jetzip.entropy.legacy import SymbolTable

    pos = tables_start(payload)
    first, end = SymbolTable.from_bytes(payload, pos, "t")
    return payload[:pos] + make(first).to_bytes() + payload[end:]


@pytest.mark.parametrize("name", ["v2.0_bounded_nano.aez", "v2.0_bounded_learned_nano.aez"])
def test_the_golden_chunks_pass_every_check(name):
    codec, payload, n, counts = first_chunk(name)
    dec = codec.decode(payload, n, counts)
    assert np.isfinite(dec["pt"]).all()


@pytest.mark.parametrize("name", ["v2.0_bounded_nano.aez", "v2.0_bounded_learned_nano.aez"])
@pytest.mark.parametrize("role, index", [("pt", 0), ("eta", 1), ("phi", 2), ("m", 3)])
@pytest.mark.parametrize("factor", [50.0, 1.0001, 0.5])
def test_steps_other_than_the_bounds_allow(name, role, index, factor):
    codec, payload, n, counts = first_chunk(name)
    bad = edit(payload, STEPS + 8 * index, "<d", lambda s: s * factor)
    refused(codec, bad, n, counts, f"the {role} quantization step")


def test_a_phi_range_beyond_pi():
    codec, payload, n, counts = first_chunk("v2.0_bounded_nano.aez")
    refused(codec, edit(payload, 41, "<I", lambda k: k + 5000), n, counts, "phi range")
    refused(codec, edit(payload, 33, "<q", lambda k: k - 5000), n, counts, "phi range")


def insert_thresholds(payload: bytes, which: int, values: list[int]) -> bytes:
    """The chunk with `values` as its `which`-th threshold list (0 pt bins, 1 |eta| bins, 2 eta pt
    classes), replacing the stored ones."""
    pos = 45
    for _ in range(which):
        (k,) = struct.unpack_from("<B", payload, pos)
        pos += 1 + 8 * k
    (k,) = struct.unpack_from("<B", payload, pos)
    return payload[:pos] + struct.pack("<B", len(values)) + np.asarray(values, "<i8").tobytes() + \
        payload[pos + 1 + 8 * k:]


def test_thresholds_and_table_counts():
    codec, payload, n, counts = first_chunk("v2.0_bounded_nano.aez")
    assert n < 2000  # so: no context bins, no eta pt classes
    refused(codec, insert_thresholds(payload, 0, [1, 2, 3]), n, counts, "context grid")
    refused(codec, insert_thresholds(payload, 1, [7]), n, counts, "context grid")
    refused(codec, insert_thresholds(payload, 2, [1700, 2300]), n, counts, "eta pt classes")
    pos = tables_start(payload) - 2
    for delta in (1, -1, 8000):  # 8,000 tables of a hostile file: refused before any is read
        refused(codec, edit(payload, pos, "<H", lambda t, d=delta: (t + d) % 65536), n, counts,
                "symbol tables where")


def test_a_table_with_more_values_than_its_stream():
    """A 60,000-entry table for a stream of a few symbols is a memory attack, not a table."""
    from jetzip.entropy.legacy import SymbolTable

    codec, payload, n, counts = first_chunk("v2.0_bounded_nano.aez")
    bad = with_first_table(payload, lambda t: SymbolTable(t.shift, t.offset, np.ones(60000, np.uint16)))
    refused(codec, bad, n, counts, "more values than its stream")


def test_verbatim_jets_must_be_finite_and_in_order():
    codec, payload, n, counts = first_chunk("v2.0_bounded_nano.aez")
    tail = verbatim_tail(payload)

    def with_verbatim(index, values) -> bytes:
        block = zlib.compress(np.asarray(index, "<u4").tobytes() + np.asarray(values, "<f8").tobytes())
        return payload[:tail] + struct.pack("<II", len(index), len(block)) + block

    good = [[30.0, 0.1, 0.2, 5.0], [40.0, -0.1, 1.2, 0.0]]
    assert codec.decode(with_verbatim([1, 4], good), n, counts)["pt"][4] == 40.0
    for values in ([[np.nan, 0.1, 0.2, 5.0], good[1]], [good[0], [40.0, np.inf, 1.2, 0.0]]):
        refused(codec, with_verbatim([1, 4], values), n, counts, "NaN or inf")
    refused(codec, with_verbatim([4, 1], good), n, counts, "out of order")
    refused(codec, with_verbatim([4, 4], good), n, counts, "out of order")


def test_counts_that_do_not_add_up():
    codec, payload, n, counts = first_chunk("v2.0_bounded_nano.aez")
    assert counts is not None
    more = counts.copy()
    more[-1] += 3
    refused(codec, payload, n, more, "do not add up")


def test_symbols_that_decode_beyond_any_honest_value():
    """A crafted table offset puts the decoded pt at inf: refused after decoding, before use."""
    from jetzip.entropy.legacy import SymbolTable

    codec, payload, n, counts = first_chunk("v2.0_bounded_nano.aez")
    bad = with_first_table(payload, lambda t: SymbolTable(t.shift, t.offset + (1 << 40), t.codes))
    refused(codec, bad, n, counts, "coded pt is not finite and positive")
