"""The bounded codec's faster kernels against the algorithms they replace (issue 22): the same
tables, the same payload bytes, the same decoded values, bit for bit.

- The encoder's tables: :func:`streams.group_histograms` (per-group count, min, max, then the
  histograms at the first shift, in two compiled passes) against the algorithm it replaced, kept
  here: every group's values gathered by a stable sort, then ``fit_table`` (``np.bincount``).
  Whole payloads are compared with the encoder running on the reference.
- The version 3 payload fixtures (tests/golden/codecs/bounded/3) re-encoded from their
  originals: byte for byte what the encoder before these kernels wrote.
- The decoder's common case (:func:`kernels.decode_common`: static tables, jets, polar
  columns) against the generic :func:`kernels.decode_chunk` (which
  ``account`` selects), on the same payloads: identical float64 bits, and the same error for a
  damaged stream.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from jetzip import synthetic
from jetzip.codecs.bounded import BoundedCodec, kernels, parse_error_bound, spec, streams
from jetzip.entropy.context import default_context_model
from jetzip.errors import FormatError

sys.path.insert(0, str(Path(__file__).parent))
from test_bounded import adversarial  # noqa: E402


def sorted_events(n_events: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    counts = synthetic.counts(n_events, seed).astype(np.uint32)
    j = synthetic.jets(int(counts.sum()), seed)
    event = np.repeat(np.arange(len(counts)), counts.astype(np.int64))
    order = np.lexsort((-j["pt"], event))
    return {k: v[order] for k, v in j.items()}, counts


def columns(rep: str, j: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    pt, eta, phi, m = (j[k].astype(np.float64) for k in ("pt", "eta", "phi", "m"))
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.sqrt((pt * np.cosh(eta)) ** 2 + m * np.abs(m))
        cart = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta)}
    f32 = {k: v.astype(np.float32) for k, v in cart.items()}
    return {"PtEtaPhiM": dict(j), "EPtEtaPhi": {"E": e.astype(np.float32), "pt": j["pt"], "eta": j["eta"],
                                                "phi": j["phi"]},
            "PxPyPzE": {**f32, "E": e.astype(np.float32)}, "PxPyPzM": {**f32, "m": j["m"]},
            "PtEtaPhi": {"pt": j["pt"], "eta": j["eta"], "phi": j["phi"]}}[rep]


# (representation, kind, flat, learned model, bound, jets)
CASES = [
    ("PtEtaPhiM", "jets", False, False, "1e-3", "events"),
    ("PtEtaPhiM", "jets", True, False, "1e-3", "events"),
    ("PtEtaPhi", "jets", False, False, "1e-3", "events"),
    ("PtEtaPhiM", "jets", False, False, "5e-4", "adversarial"),
    ("PtEtaPhiM", "jets", True, False, "0.05", "adversarial"),
    ("EPtEtaPhi", "jets", False, False, "1e-5", "events"),
    ("EPtEtaPhi", "jets", True, False, "1e-3", "adversarial"),
    ("PxPyPzE", "jets", False, False, "1e-3", "events"),
    ("PxPyPzM", "jets", True, False, "1e-3", "adversarial"),
    ("PtEtaPhiM", "constituents", False, False, "1e-3", "events"),
    ("PxPyPzE", "constituents", False, False, "1e-4", "events"),
    ("PtEtaPhiM", "jets", False, True, "1e-3", "events"),
    ("EPtEtaPhi", "jets", False, True, "1e-3", "adversarial"),
    ("PtEtaPhiM", "jets", True, True, "1e-3", "events"),
]


def case(rep: str, kind: str, flat: bool, learned: bool, bound: str, jets: str
         ) -> tuple[BoundedCodec, dict[str, np.ndarray], np.ndarray | None]:
    if jets == "adversarial":
        j, counts = adversarial(4000, 11)
    else:
        j, counts = sorted_events(3000, 5)
    codec = BoundedCodec(parse_error_bound(bound, rep), rep, kind=kind,
                         context_model=default_context_model() if learned else None)
    return codec, columns(rep, j), None if flat else counts


def reference_group_histograms(counts, q, pli, classes, pt_thr, eta_thr, group_base):
    """The algorithm group_histograms replaced: every group's values in jet order by a stable
    sort, each group's table by ``fit_table`` (bincount); returned in group_histograms' shape,
    with the tables fit_table makes alongside."""
    n_groups = int(group_base[-1])
    group, found, _, _, _ = kernels.group_symbols(counts, q, pli, classes, pt_thr, eta_thr, group_base, n_groups)
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(n_groups + 1))
    values = found[order]
    size, shift, lo, hists, tables = [], [], [], [], []
    for g in range(n_groups):
        v = values[starts[g]:starts[g + 1]]
        size.append(len(v))
        tables.append(streams.fit_table(v))
        if len(v):
            k, b = streams.first_shift(int(v.min()), int(v.max()), len(v))
            hists.append(np.bincount((v >> k) - b).astype(np.int64))
        else:
            k, b = 0, 0
            hists.append(np.zeros(0, np.int64))
        shift.append(k)
        lo.append(b)
    hbase = np.concatenate([[0], np.cumsum([len(h) for h in hists])]).astype(np.int64)
    return (np.array(size, np.int64), shift, lo, hbase, np.concatenate(hists + [np.zeros(0, np.int64)])), tables


def numpy_fit_histogram(hist: np.ndarray, n: int, k: int, lo: int) -> streams.Table:
    """The numpy version :func:`kernels.fit_histograms` replaced (one group)."""
    def estimate(hist, shift):
        nz = hist[hist > 0].astype(np.float64)
        return float((nz * np.log2(n / nz)).sum()) + n * shift + 14.0 * len(nz) + 0.5 * (len(hist) - len(nz))

    table_bits = 8.0 * spec.TABLE.size
    if n == 0:
        return streams.Table(0, 0, 0, np.zeros(0, np.int64), table_bits)
    prec = streams.precision_for(n)
    cap = 1 << prec
    best = (estimate(hist, k), k, lo, hist)
    worse = 0
    while len(hist) > 1 and worse < 2:
        if lo & 1:
            hist = np.concatenate([[0], hist])
            lo -= 1
        if len(hist) & 1:
            hist = np.concatenate([hist, [0]])
        hist = hist.reshape(-1, 2).sum(axis=1)
        lo >>= 1
        k += 1
        cost = estimate(hist, k)
        if cost < best[0]:
            best, worse = (cost, k, lo, hist), 0
        else:
            worse += 1
    _, k, lo, hist = best
    if len(hist) == 1:
        return streams.Table(k, 0, lo, np.zeros(0, np.int64), n * k + table_bits)
    nz = hist > 0
    freq = np.where(nz, 1 + hist * (cap - int(nz.sum())) // n, 0)
    freq[int(np.argmax(hist))] += cap - int(freq.sum())
    coded = float((hist[nz] * (prec - np.log2(freq[nz]))).sum())
    return streams.Table(k, prec, lo, freq, coded + n * k + table_bits + 14.0 * int(nz.sum()) + 0.5 * int((~nz).sum()))


@pytest.mark.parametrize("spec_", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_compiled_fit_chooses_the_tables_numpy_chose(spec_, monkeypatch):
    """Every group's table from :func:`kernels.fit_histograms` (one compiled loop) against the
    numpy version it replaced: the same shift, precision, offset and frequencies; the estimated
    bits equal up to the order of a float sum."""
    codec, cols, counts = case(*spec_)
    real = streams.group_histograms
    checked = []

    def compare(*args):
        got = real(*args)
        size, shift, lo, hbase, hist = got
        fitted = streams.fit_histograms(hist, hbase, size, shift, lo)
        for g, t in enumerate(fitted):
            ref = numpy_fit_histogram(hist[hbase[g]:hbase[g + 1]], int(size[g]), shift[g], lo[g])
            assert (t.shift, t.prec, t.offset) == (ref.shift, ref.prec, ref.offset), g
            assert np.array_equal(t.freq, ref.freq), g
            assert t.bits == pytest.approx(ref.bits, rel=1e-12), g
            checked.append(g)
        return got

    monkeypatch.setattr(streams, "group_histograms", compare)
    codec.encode(cols, counts)
    assert checked


def same_table(a: streams.Table, b: streams.Table) -> bool:
    return (a.shift, a.prec, a.offset, a.bits) == (b.shift, b.prec, b.offset, b.bits) and np.array_equal(a.freq,
                                                                                                           b.freq)


@pytest.mark.parametrize("spec_", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_tables_and_payload_as_the_sort_and_bincount_made_them(spec_, monkeypatch):
    codec, cols, counts = case(*spec_)
    payload = codec.encode(cols, counts)
    seen = []
    real = streams.group_histograms

    def reference(*args):
        got = real(*args)
        ref, tables = reference_group_histograms(*args)
        size, shift, lo, hbase, hist = got
        assert np.array_equal(size, ref[0]) and list(shift) == ref[1] and list(lo) == ref[2]
        assert np.array_equal(hbase, ref[3]) and np.array_equal(hist, ref[4])
        for g, t in enumerate(tables):  # the histogram path fits the very table fit_table fits
            assert same_table(streams.fit_histogram(hist[hbase[g]:hbase[g + 1]], int(size[g]), shift[g], lo[g]), t)
        seen.append(len(tables))
        return ref

    monkeypatch.setattr(streams, "group_histograms", reference)
    assert codec.encode(cols, counts) == payload  # the whole payload from the reference tables
    assert seen and seen[0] > 0


@pytest.mark.parametrize("spec_", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_decoded_bits_as_the_generic_decoder_gives_them(spec_, monkeypatch):
    codec, cols, counts = case(*spec_)
    n = len(next(iter(cols.values())))
    payload = codec.encode(cols, counts)
    coder = codec.coder()
    calls: dict[str, int] = {}

    class Counted:
        def __getattr__(self, name):
            value = getattr(kernels, name)
            if callable(value) and name in ("decode_chunk", "decode_common"):
                def counted(*args):
                    calls[name] = calls.get(name, 0) + 1
                    return value(*args)
                return counted
            return value

    monkeypatch.setattr(streams, "K", Counted())
    fast = coder.decode(payload, n, counts, "chunk")
    assert calls.get("decode_chunk", 0) == 0 or calls.get("decode_common", 0) == 0  # no fallback on a good chunk
    head = spec.parse(memoryview(payload), n, "chunk")[0]  # the learned model codes a stream where it pays
    assert spec_[3] or head.learned == 0
    common = spec_[1] == "jets" and head.learned == 0 and spec_[0] in ("PtEtaPhiM", "EPtEtaPhi", "PtEtaPhi")
    assert (calls.get("decode_common", 0) == 1) == common
    generic = coder.decode(payload, n, counts, "chunk", account={})  # accounting: decode_chunk always
    assert calls.get("decode_chunk", 0) == (1 if common else 2)
    for a, b in zip(fast, generic):
        assert a.dtype == b.dtype == np.float64
        assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
    roles = codec.roles  # and within the bound as float32 (the input's type), as the encoder checked
    errs = BoundedCodec.bound_errors(codec.get_config(), cols, {r: v.astype(np.float32) for r, v in zip(roles, fast)})
    for role in roles:
        assert errs[role].max() <= codec.bounds[role], role


def test_a_damaged_stream_fails_as_the_generic_decoder_says():
    """Any fault in the common case's decoder leaves the chunk to decode_chunk, which names the
    first fault: the same one-line error with or without the fast path."""
    codec, cols, counts = case("PtEtaPhiM", "jets", False, False, "1e-3", "events")
    n = len(cols["pt"])
    payload = codec.encode(cols, counts)
    from test_bounded_v3 import layout

    at = layout(payload)["words"] + 4
    rng = np.random.default_rng(2)
    messages = set()
    for i in rng.integers(0, (len(payload) - at) // 2 - 8, 12):
        bad = bytearray(payload)
        bad[at + 2 * int(i)] ^= 0x5A
        errors = []
        for account in (None, {}):
            try:
                codec.coder().decode(bytes(bad), n, counts, "chunk 0", account=account)
                errors.append(None)
            except FormatError as e:
                errors.append(str(e))
        assert errors[0] == errors[1]
        messages.add(errors[0])
    assert any(m is not None for m in messages)


@pytest.mark.parametrize("kind", ["jets", "constituents"])
def test_bin_of_is_searchsorted_on_every_grid(kind):
    """bin_of (a branch-free count) is ``searchsorted(side="right")`` because every threshold
    array is sorted."""
    from jetzip.codecs.bounded import params

    codec = BoundedCodec(parse_error_bound("1e-3", "PtEtaPhiM"), "PtEtaPhiM", kind=kind)
    coder = codec.coder()
    rng = np.random.default_rng(0)
    for thr in [coder.eta_classes] + [t for g in coder.grids for t in g]:
        assert np.all(np.diff(thr) >= 0)
        v = np.concatenate([thr, thr - 1, thr + 1, rng.integers(-5000, 5000, 200)]) if len(thr) else np.arange(-3, 3)
        for x in v:
            assert kernels.bin_of(thr, int(x)) == int(np.searchsorted(thr, x, side="right"))
    assert len(params.grids(kind)) == len(coder.grids)
