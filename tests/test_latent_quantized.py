"""Latent codec version 2 (``quantized``): refined, quantized, rANS-coded latents.

What it must do (issue 20): at most half the size of float32 latents, pt, eta and phi
residuals within 10 % of the float32 latents', E no worse, the verbatim guarantee kept,
byte-exact integer coding on every machine, damaged payloads refused with a FormatError,
and no embedded decoder for a model shipped with jetzip.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import jetzip
from jetzip.codecs import get_codec
from jetzip.codecs.latent import (MAX_SHIFT, QUANTIZED, LatentCodec, _TABLE, _V2, allocate_steps,
                                  decode_latents, dequantize, encode_latents, jacobian_grid,
                                  lookup_jacobian, parse_tolerance, quantize_latents)
from jetzip.errors import FormatError
from jetzip.features import to_model_frame, wrap_phi

import jetfactory
from conftest import LOOSE, SHIPPED_MODEL


@pytest.fixture(scope="module")
def shipped():
    from jetzip.model import load_model

    return load_model(SHIPPED_MODEL)


def _columns(n: int, seed: int) -> dict[str, np.ndarray]:
    j = jetfactory.jets(n, seed)
    return {"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "m": j["m"]}


def _residuals(dec: dict[str, np.ndarray], cols: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 4): pt relative, eta, phi absolute, E relative, of the values a file would hold."""
    o = to_model_frame(cols, "PtEtaPhiM")
    d = to_model_frame({k: np.asarray(v, np.float32) for k, v in dec.items()}, "PtEtaPhiM")
    return np.stack([d[:, 1] / o[:, 1] - 1, d[:, 2] - o[:, 2], wrap_phi(d[:, 3] - o[:, 3]),
                     d[:, 0] / o[:, 0] - 1], axis=1)


def _round_trip(codec: LatentCodec, cols: dict[str, np.ndarray]) -> tuple[bytes, dict[str, np.ndarray]]:
    payload = codec.encode(cols, None)
    return payload, codec.decode(payload, len(cols["pt"]), None)


@pytest.mark.parametrize("n", [3000, 50_000])  # forward differences; the Jacobian grid
def test_quantized_is_as_good_as_float32_at_less_than_half_the_size(shipped, n):
    cols = _columns(n, 7)
    f32 = LatentCodec(shipped, "PtEtaPhiM", "GeV", "float32", device="cpu")
    q = LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, device="cpu")
    assert (q._jacobian_grid(n) is not None) == (n == 50_000)
    p32, d32 = _round_trip(f32, cols)
    pq, dq = _round_trip(q, cols)
    assert len(pq) < 0.5 * len(p32)
    _, index, _ = q.split(pq, n)
    stored = np.zeros(n, bool)
    stored[index] = True
    r32, rq = _residuals(d32, cols), _residuals(dq, cols)
    std32, stdq = r32[~stored].std(axis=0), rq[~stored].std(axis=0)
    p99_32, p99_q = (np.percentile(np.abs(r[~stored]), 99, axis=0) for r in (r32, rq))
    assert (stdq[:3] <= 1.1 * std32[:3]).all(), (stdq, std32)
    assert (p99_q[:3] <= 1.1 * p99_32[:3]).all(), (p99_q, p99_32)
    assert stdq[3] <= 1.05 * std32[3]  # E: the mass floor, untouched
    # the verbatim guarantee: stored jets exactly, every other one within the tolerance
    tol = parse_tolerance(None)
    for role in ("pt", "eta", "phi", "m"):
        np.testing.assert_array_equal(np.float32(dq[role][stored]), cols[role][stored])
    assert (np.abs(rq[~stored, :3]) <= [tol["pt"], tol["eta"], tol["phi"]]).all()
    assert q.refined > 0.9 * n


def test_a_looser_residual_ratio_gives_smaller_payloads_and_larger_residuals(shipped):
    cols = _columns(5000, 3)
    sizes, widths = [], []
    for ratio in (0.5, 1.0, 2.0):
        codec = LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, device="cpu", residual_ratio=ratio)
        payload, dec = _round_trip(codec, cols)
        sizes.append(len(payload))
        widths.append(_residuals(dec, cols)[:, :3].std(axis=0))
    assert sizes[0] > sizes[1] > sizes[2]
    assert (widths[0] < widths[2]).all()


def test_the_payload_is_deterministic_and_the_latents_are_what_the_network_gets(shipped):
    cols = _columns(2000, 5)
    a = LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, device="cpu", threads=1).encode(cols, None)
    b = LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, device="cpu", threads=2).encode(cols, None)
    assert a == b
    codec = LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, device="cpu")
    lat, index, _ = codec.split(a, 2000)
    assert lat.dtype == np.float32 and lat.shape == (2000, 3)
    k, n_ex, n_lat = _V2.unpack_from(a, 0)
    steps = np.frombuffer(a, "<f8", 3, _V2.size)
    q = np.rint(lat.astype(np.float64) / steps)
    np.testing.assert_array_equal(dequantize(q.astype(np.int64), steps), lat)  # on the grid, exactly
    assert (lat[index] == 0).all() and len(index) == k
    assert _V2.size + n_lat + n_ex == len(a)


@pytest.mark.parametrize("case", ["normal", "constant", "wide", "one", "two-valued"])
def test_integer_latents_come_back_exactly(case):
    rng = np.random.default_rng(1)
    n = {"one": 1}.get(case, 5000)
    q = {"normal": lambda: np.rint(rng.normal(0, 3000, (n, 3))),
         "constant": lambda: np.full((n, 3), -17),
         "wide": lambda: rng.integers(-(1 << 30), 1 << 30, (n, 3)),
         "one": lambda: np.array([[5, -6, 7]]),
         "two-valued": lambda: rng.integers(0, 2, (n, 3)) * 1000}[case]().astype(np.int64)
    steps = np.array([2.0 ** -11.5, 2.0 ** -12, 1e-3])
    block = encode_latents(q, steps)
    assert block == encode_latents(q.copy(), steps.copy())
    np.testing.assert_array_equal(decode_latents(block, n, 3), dequantize(q, steps))
    if case == "constant":  # one symbol per latent carries no information: steps and tables only
        assert len(block) < 24 + 3 * (_TABLE.size + 16) + 8


def test_entropy_coding_is_close_to_the_empirical_entropy():
    rng = np.random.default_rng(2)
    q = np.rint(rng.normal(0, 400, (100_000, 3))).astype(np.int64)
    block = encode_latents(q, np.full(3, 1e-3))
    entropy = 0.0
    for d in range(3):
        _, c = np.unique(q[:, d], return_counts=True)
        p = c / c.sum()
        entropy += float(-(p * np.log2(p)).sum())
    assert len(block) * 8 / len(q) < entropy + 0.2  # tables and raw low bits: < 0.2 bit per jet of 32


def test_steps_are_the_best_allocation():
    """allocate_steps against a brute-force search of the same constrained problem."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        sens = rng.uniform(0.01, 5, (3, 3))
        budget = rng.uniform(0.5, 2, 3)
        v = allocate_steps(sens, budget)
        assert (sens @ v <= budget * (1 + 1e-9)).all()
        grid = np.exp(np.linspace(np.log(1e-3), np.log(50), 60))
        best = -np.inf
        for a in grid:
            for b in grid:
                rest = (budget - sens[:, 0] * a - sens[:, 1] * b) / sens[:, 2]
                if (rest > 0).all():
                    best = max(best, np.log(a) + np.log(b) + np.log(rest.min()))
        assert np.log(v).sum() >= best - 0.05


def test_the_jacobian_grid_matches_forward_differences(shipped):
    codec = LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, device="cpu")
    dec = codec._engine("decoder")
    frame = jetfactory.model_frame(4000, 9)
    z = codec._engine("encoder").encode(frame)
    grid = jacobian_grid(dec, 3)
    approx = lookup_jacobian(grid, z)
    from jetzip.codecs.latent import _jacobian_at

    exact = _jacobian_at(dec, z, dec.run(z).astype(np.float64))
    rel = np.sqrt(((approx - exact) ** 2).sum(axis=(1, 2)) / (exact ** 2).sum(axis=(1, 2)))
    assert np.median(rel) < 0.15
    # and the refinement with either lowers pt, eta, phi errors alike
    x = dec.norm.apply(frame)
    errs = []
    for g in (grid, None):
        q, steps, moved = quantize_latents(dec, x, z, parse_tolerance(None), grid=g)
        back = dec.run(dequantize(q, steps)) - x
        errs.append(np.sqrt((back[:, 1:3] ** 2).mean(axis=0)))
        assert moved > 3000
    np.testing.assert_allclose(errs[0], errs[1], rtol=0.1)


@pytest.mark.parametrize("damage", ["cut", "steps", "shift", "alphabet", "counts", "tail", "empty"])
def test_damaged_latent_blocks_are_refused(damage):
    rng = np.random.default_rng(4)
    q = np.rint(rng.normal(0, 500, (300, 3))).astype(np.int64)
    block = bytearray(encode_latents(q, np.full(3, 2.0 ** -12)))
    t0 = 24  # the first table
    if damage == "cut":
        block = block[:-5]
    elif damage == "steps":
        block[0:8] = np.float64(np.nan).tobytes()
    elif damage == "shift":
        block[t0] = MAX_SHIFT + 1
    elif damage == "alphabet":
        block[t0 + 9:t0 + 13] = (1 << 20).to_bytes(4, "little")
    elif damage == "counts":
        return _assert_refused(bytes(block), 301)  # the tables count 300 jets
    elif damage == "tail":
        block += b"\x01"
    elif damage == "empty":
        return _assert_refused(bytes(block), 0)
    _assert_refused(bytes(block), 300)


def _assert_refused(block: bytes, n: int) -> None:
    with pytest.raises(FormatError):
        decode_latents(block, n, 3)


def test_random_damage_is_a_format_error_or_finite_latents():
    """rANS has no check of its own (the container's CRCs catch damage): a damaged stream
    decodes to other integers or is refused, never to NaN, a crash or a wrong shape."""
    rng = np.random.default_rng(5)
    q = np.rint(rng.normal(0, 800, (500, 3))).astype(np.int64)
    good = encode_latents(q, np.full(3, 2.0 ** -12))
    for _ in range(300):
        block = bytearray(good)
        for i in rng.integers(0, len(block), rng.integers(1, 4)):
            block[i] = rng.integers(0, 256)
        try:
            lat = decode_latents(bytes(block), 500, 3)
        except FormatError:
            continue
        assert lat.shape == (500, 3) and np.isfinite(lat).all()


def test_float32_latents_keep_the_version_1_payload(shipped):
    cols = _columns(1000, 8)
    codec = LatentCodec(shipped, "PtEtaPhiM", "GeV", "float32", device="cpu")
    payload = codec.encode(cols, None)
    config = codec.get_config()
    assert "version" not in config and config["latent"]["dtype"] == "float32"
    n_exact, n_ex = np.frombuffer(payload[:8], "<u4")
    assert len(payload) == 8 + 1000 * 12 + n_ex
    z = codec._engine("encoder").encode(to_model_frame(cols, "PtEtaPhiM"))
    np.testing.assert_array_equal(np.frombuffer(payload, "<f4", 3000, 8).reshape(1000, 3), z)


def test_shipped_models_are_not_embedded_and_are_found_by_their_hash(shipped, small_model, small_model_path,
                                                                       monkeypatch):
    auto = LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, embed="auto", device="cpu")
    assert auto.side_records() == {} and auto.get_config()["model"]["embedded"] is False
    own = LatentCodec(small_model, "PtEtaPhiM", "GeV", QUANTIZED, embed="auto", device="cpu",
                      tolerance=parse_tolerance(LOOSE))
    assert set(own.side_records()) == {"DECW"} and own.get_config()["model"]["embedded"] is True
    # a model that is neither embedded nor shipped: the message says what to pass
    config = own.get_config()
    config["model"] = {**config["model"], "embedded": False}
    with pytest.raises(jetzip.ModelMismatchError, match="pass --model"):
        get_codec(config)
    # the shipped model is found by its SHA-256, not as "the default model"
    monkeypatch.setenv("JETZIP_MODEL", str(small_model_path))
    cols = _columns(500, 2)
    payload = auto.encode(cols, None)
    back = get_codec(json.loads(json.dumps(auto.get_config())), device="cpu")
    np.testing.assert_array_equal(back.decode(payload, 500, None)["pt"], auto.decode(payload, 500, None)["pt"])
    rows = dict(type(auto).describe(auto.get_config()))
    assert "shipped with jetzip" in rows["model"] and "quantized" in rows["latent"]


@pytest.mark.parametrize("change, words", [({"version": 3}, "newer"),
                                           ({"latent": {"dim": 3, "dtype": "float32"}}, "dtype"),
                                           ({"exact": False}, "tolerance")])
def test_malformed_version_2_configs(shipped, change, words):
    config = {**LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, device="cpu").get_config(), **change}
    with pytest.raises(FormatError, match=words):
        LatentCodec.check_config(config, "f.aez")


def test_a_quantized_file_through_the_container(tmp_path, monkeypatch):
    """compress (with the codec swapped in until the command line offers it), inspect, read_aez,
    decompress and evaluate on a NanoAOD-like file."""
    import jetzip.api as api

    real = api.make_codec

    def make_codec(info, **kw):
        kw.update(latent_dtype=QUANTIZED, embed_model=None)
        return real(info, **kw)

    monkeypatch.setattr(api, "make_codec", make_codec)
    src = tmp_path / "nano.root"
    jetfactory.write_nanoaod(src, n_events=800, seed=3)
    rep = jetzip.compress(src, tmp_path / "q.aez", chunk_jets=2000)
    assert rep["latent_dtype"] == QUANTIZED and rep["model_embedded"] is False
    assert rep["n_chunks"] > 1 and rep["latent_bytes_per_jet"] < 6
    info = jetzip.inspect(tmp_path / "q.aez")
    assert info["verified"] and info["side_bytes"] == 0 and info["latent_version"] == 2
    assert info["latent_bytes"] < 6 * info["n_jets"] and info["verbatim_jets"] == rep["exact_jets"]
    content = jetzip.read_aez(tmp_path / "q.aez")
    assert content["latents"].shape == (rep["n_jets"], 3) and content["latents"].dtype == np.float32
    ev = jetzip.evaluate(src, tmp_path / "q.aez")
    assert ev["n_jets"] == rep["n_jets"] and ev["residuals"]["pt"]["max_abs"] <= 5e-3
    jetzip.decompress(tmp_path / "q.aez", tmp_path / "back.h5")
    assert (tmp_path / "back.h5").stat().st_size > 0


@pytest.mark.parametrize("kind", ["identical", "one jet", "outside"])
def test_degenerate_chunks(shipped, kind):
    """A chunk of one jet repeated (no spread to measure), a single jet, jets far outside the
    training ranges: still decodable, verbatim where the network cannot follow."""
    n = {"one jet": 1}.get(kind, 600)
    cols = _columns(n, 12)
    if kind == "identical":
        cols = {k: np.full(n, v[0]) for k, v in cols.items()}
    elif kind == "outside":
        cols["pt"] = cols["pt"] * 500
    codec = LatentCodec(shipped, "PtEtaPhiM", "GeV", QUANTIZED, device="cpu")
    payload, dec = _round_trip(codec, cols)
    _, index, _ = codec.split(payload, n)
    steps = np.frombuffer(payload, "<f8", 3, _V2.size)
    assert np.isfinite(steps).all() and (steps > 0).all()
    r = _residuals(dec, cols)
    assert (np.abs(r[:, 0]) <= 5e-3).all() and (np.abs(r[:, 1:3]) <= 5e-3).all()
    if kind == "outside":
        assert len(index) > 0
