"""Payload version 3 of the bounded codec: steps from the bounds only (a jet decodes to the same
value whatever chunk it is in), the compiled coder against its numpy reference, and every field
of a chunk checked against the file's configuration (a crafted field is a one-line FormatError
naming the chunk and the field)."""
from __future__ import annotations

import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from jetzip.codecs.bounded import BoundedCodec, parse_error_bound
from jetzip.codecs.bounded import params, spec

sys.path.insert(0, str(Path(__file__).parent))
import jetfactory  # noqa: E402
from test_bounded import adversarial, errors  # noqa: E402
from test_bounded_validation import refused  # noqa: E402  (one line naming the chunk)


def sorted_events(n_events: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    counts = jetfactory.counts(n_events, seed).astype(np.int64)
    j = jetfactory.jets(int(counts.sum()), seed)
    event = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-j["pt"], event))
    return {k: v[order] for k, v in j.items()}, counts.astype(np.uint32)


@pytest.mark.parametrize("spec_", ["1e-3", "nanoaod", "pt=1e-5,eta=1e-5,phi=1e-5,m=1e-5", "0.5"])
def test_steps_depend_on_the_bound_only(spec_):
    """The README's promise for split inputs: a jet restores to the same value in whichever
    chunk it is coded, whatever else the chunk holds."""
    cols, counts = sorted_events(3000, 11)
    n = len(cols["pt"])
    codec = BoundedCodec(parse_error_bound(spec_, "PtEtaPhiM"), "PtEtaPhiM")
    whole = codec.decode(codec.encode(cols, counts), n, counts)
    ends = np.cumsum(counts.astype(np.int64))
    for cut in (1, 700, 2999):  # events before the cut in one chunk, the others in another
        parts = []
        for ev in (slice(0, cut), slice(cut, None)):
            c = counts[ev]
            a = 0 if ev.start == 0 else int(ends[cut - 1])
            b = a + int(c.sum())
            part = {k: v[a:b] for k, v in cols.items()}
            parts.append(codec.decode(codec.encode(part, c), b - a, c))
        for k in whole:
            np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])
    # and the steps are the pure functions of the bounds
    assert codec.steps == params.steps(codec.bounds, "m")


def test_absolute_steps_leave_room_for_float32():
    for b in (1e-5, 2.0 ** -12, 1e-3, 0.1, 1.0):
        s = params.step("eta", b)
        u = params.float32_margin(b)
        assert u <= b / 64 and u > b / 128 and s / 2 + u <= b * (1 - params.SAFETY)
        # below 2^(log2 u + 25), float32 rounds by at most u
        x = np.float32(np.nextafter(np.float32(2.0 ** (math.log2(u) + 25)), np.float32(0)))
        assert float(np.spacing(x)) / 2 <= u
        r = params.step("pt", b if b <= 0.5 else 0.5)
        assert math.expm1(r / 2) < min(b, 0.5)


@pytest.mark.parametrize("representation", ["PtEtaPhiM", "EPtEtaPhi"])
def test_the_adversarial_jets_round_trip_in_flat_tables_and_events(representation):
    cols, counts = adversarial()
    if representation == "EPtEtaPhi":
        cols = {"E": jetfactory.energy(cols["pt"], cols["eta"], np.abs(cols["m"])), "pt": cols["pt"],
                "eta": cols["eta"], "phi": cols["phi"]}
    bounds = parse_error_bound("5e-4", representation)
    codec = BoundedCodec(bounds, representation)
    n = len(cols["pt"])
    for c in (counts, None):
        dec = codec.decode(codec.encode(cols, c), n, c)
        for role, bound in bounds.items():
            assert errors(cols, dec, role).max() <= bound, role


def test_float64_inputs_meet_the_bound_as_float64():
    """A float64 column is checked as float64 too (a writer keeps it): no jet beyond its bound
    in either precision."""
    cols, counts = sorted_events(500, 3)
    cols = {k: v.astype(np.float64) * (1 + 1e-9) for k, v in cols.items()}
    bounds = parse_error_bound("1e-3", "PtEtaPhiM")
    codec = BoundedCodec(bounds, "PtEtaPhiM")
    n = len(cols["pt"])
    dec = codec.decode(codec.encode(cols, counts), n, counts)
    for role, bound in bounds.items():
        o, d = cols[role], dec[role]
        err = np.abs(d - o) / np.where(o != 0, np.abs(o), 1) if role in ("pt", "m") else np.abs(d - o)
        assert err.max() <= bound, role


# -- a version 3 chunk, field by field ---------------------------------------------------------------

def chunk(n_events: int = 400, seed: int = 5, learned: bool = False):
    from jetzip.entropy.context import default_context_model

    cols, counts = sorted_events(n_events, seed)
    codec = BoundedCodec(parse_error_bound("1e-3", "PtEtaPhiM"), "PtEtaPhiM",
                         context_model=default_context_model() if learned else None)
    return codec, codec.encode(cols, counts), len(cols["pt"]), counts, cols


def layout(payload: bytes) -> dict[str, int]:
    """Offsets of a version 3 chunk's fields."""
    tag, learned, grid, eta_classes, n_tables = spec.HEAD.unpack_from(payload, 0)
    pos = spec.HEAD.size
    tables = pos
    pos += spec.TABLE.size * n_tables
    (nf,) = struct.unpack_from("<I", payload, pos)
    freq = pos
    pos += 4 + nf
    (nw,) = struct.unpack_from("<I", payload, pos)
    words = pos
    pos += 4 + 2 * nw
    return {"n_tables": n_tables, "tables": tables, "freq": freq, "words": words, "verbatim": pos,
            "learned": learned}


def poke(payload: bytes, offset: int, fmt: str, value) -> bytes:
    p = bytearray(payload)
    struct.pack_into(fmt, p, offset, value)
    return bytes(p)


def table(payload: bytes, i: int) -> tuple[int, int, int, int]:
    return spec.TABLE.unpack_from(payload, layout(payload)["tables"] + spec.TABLE.size * i)


def with_table(payload: bytes, i: int, shift: int, prec: int, offset: int, alphabet: int) -> bytes:
    at = layout(payload)["tables"] + spec.TABLE.size * i
    return payload[:at] + spec.TABLE.pack(shift, prec, offset, alphabet) + payload[at + spec.TABLE.size:]


def test_a_chunk_of_a_file_with_other_bounds_or_model_is_refused():
    codec, payload, n, counts, cols = chunk()
    other = BoundedCodec(parse_error_bound("0.1", "PtEtaPhiM"), "PtEtaPhiM")
    refused(codec, other.encode(cols, counts), n, counts, "another configuration")
    _, learned, _, _, _ = chunk(learned=True)
    refused(codec, learned, n, counts, "another configuration")


def test_head_fields():
    codec, payload, n, counts, _ = chunk()
    refused(codec, poke(payload, 5, "<B", 9), n, counts, "context grid")  # grid index
    refused(codec, poke(payload, 6, "<B", 2), n, counts, "context grid")  # eta classes
    refused(codec, poke(payload, 4, "<B", 1), n, counts, "learned streams")  # no model to code them
    n_tables = layout(payload)["n_tables"]
    for bad in (n_tables + 1, n_tables - 1, 8000):
        refused(codec, poke(payload, 7, "<H", bad), n, counts, "symbol tables|cut short")


def test_table_fields():
    codec, payload, n, counts, _ = chunk()
    shift, prec, offset, alphabet = table(payload, 0)
    assert prec > 0 and alphabet > 1
    refused(codec, with_table(payload, 0, 41, prec, offset, alphabet), n, counts, "shift, precision or alphabet")
    refused(codec, with_table(payload, 0, shift, 17, offset, alphabet), n, counts, "shift, precision or alphabet")
    refused(codec, with_table(payload, 0, shift, prec, offset, (1 << prec) + 1), n, counts,
            "more values than its precision")
    refused(codec, with_table(payload, 0, shift, 0, offset, 2), n, counts, "more values than its precision")
    refused(codec, with_table(payload, 0, 30, prec, 1 << 40, alphabet), n, counts, "offset is out of range")
    # every table at 2^16 slots for a couple of thousand jets: refused before any memory is taken
    big = payload
    for i in range(layout(payload)["n_tables"]):
        k, _, o, a = table(big, i)
        big = with_table(big, i, k, 16, o, max(a, 2))
    refused(codec, big, n, counts, "slots")


def test_frequency_block():
    codec, payload, n, counts, _ = chunk()
    at = layout(payload)["freq"]
    (nf,) = struct.unpack_from("<I", payload, at)
    raw = np.frombuffer(zlib.decompress(payload[at + 4:at + 4 + nf]), "<u2").copy()
    raw[0] += 1  # one table's frequencies no longer add up to 2^P
    block = zlib.compress(raw.tobytes())
    bad = payload[:at] + struct.pack("<I", len(block)) + block + payload[at + 4 + nf:]
    refused(codec, bad, n, counts, "do not add up")
    garbage = payload[:at + 4] + bytes(nf) + payload[at + 4 + nf:]
    refused(codec, garbage, n, counts, "corrupted")


def test_the_entropy_coded_stream_must_end_where_it_should():
    codec, payload, n, counts, _ = chunk()
    lay = layout(payload)
    (nw,) = struct.unpack_from("<I", payload, lay["words"])
    words = payload[lay["words"] + 4:lay["verbatim"]]
    short = payload[:lay["words"]] + struct.pack("<I", nw - 1) + words[:-2] + payload[lay["verbatim"]:]
    refused(codec, short, n, counts, "entropy-coded stream")
    longer = payload[:lay["words"]] + struct.pack("<I", nw + 1) + words + b"\0\0" + payload[lay["verbatim"]:]
    refused(codec, longer, n, counts, "entropy-coded stream")


def test_symbols_no_encoder_writes():
    """Tables shifted far from the values: the leading jets' pt decodes to inf, phi outside
    [-Q, Q]: each refused by the compiled decoder's checks."""
    codec, payload, n, counts, _ = chunk()
    shift, prec, offset, alphabet = table(payload, 0)  # pt of the first jets
    refused(codec, with_table(payload, 0, shift, prec, offset + (1 << 30), alphabet), n, counts,
            "coded pt is not finite")
    # phi of the first jets: the 4th stream of the plan, after pt_first (1), pt_drop (2), eta (1)
    shift, prec, offset, alphabet = table(payload, 4)
    refused(codec, with_table(payload, 4, shift, prec, offset + 100_000, alphabet), n, counts, "phi symbol")


def test_verbatim_jets_must_be_finite_and_in_order():
    cols, counts = sorted_events(300, 8)
    cols["pt"][[3, 9]] = -1.0  # stored verbatim
    codec = BoundedCodec(parse_error_bound("1e-3", "PtEtaPhiM"), "PtEtaPhiM")
    payload = codec.encode(cols, counts)
    n = len(cols["pt"])
    assert codec.decode(payload, n, counts)["pt"][9] == -1.0
    at = layout(payload)["verbatim"]

    def with_verbatim(index, values) -> bytes:
        block = zlib.compress(np.asarray(index, "<u4").tobytes() + np.asarray(values, "<f8").tobytes())
        return payload[:at] + struct.pack("<II", len(index), len(block)) + block

    good = [[30.0, 0.1, 0.2, 5.0], [40.0, -0.1, 1.2, 0.0]]
    assert codec.decode(with_verbatim([3, 9], good), n, counts)["pt"][9] == 40.0
    refused(codec, with_verbatim([3, 9], [good[0], [40.0, np.nan, 1.2, 0.0]]), n, counts, "NaN or inf")
    refused(codec, with_verbatim([9, 3], good), n, counts, "out of order")


def test_inspect_accounts_every_byte_to_a_column():
    for learned in (False, True):
        codec, payload, n, counts, _ = chunk(learned=learned)
        acc: dict[str, float] = {}
        codec.decode(payload, n, counts, account=acc)
        assert set(acc) == {"pt", "eta", "phi", "fourth"}
        assert 0.9 * len(payload) < sum(acc.values()) <= len(payload)
