"""The error-bounded codec: every decoded value within its bound, exactly kept zeros and signs,
deterministic bytes, and damaged payloads refused."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import jetzip
from jetzip.codecs.bounded import BoundedCodec, parse_error_bound
from jetzip.errors import FormatError, InputError

sys.path.insert(0, str(Path(__file__).parent))
import jetfactory  # noqa: E402

BOUNDS = ["3.46e-3", "1e-3", "5e-4", "nanoaod"]


def adversarial(n_random: int = 3000, seed: int = 7) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random jets plus the hard cases: pt at 5 GeV and 6.5 TeV, |eta| 5, phi at +-pi,
    m = 0, m = -0.0, tiny negative and tiny positive masses, float32 extremes of eta."""
    j = jetfactory.jets(n_random, seed)
    pt = [5.0, 6500.0, 5.0, 6500.0, 30.0, 30.0, 30.0, 30.0, 30.0, 1e-3, 40.0, 40.0]
    eta = [5.0, -5.0, -5.0, 5.0, 0.0, 4.999, -4.999, 1.0, 2.0, 0.1, 0.0, 3.9]
    phi = [np.pi, -np.pi, np.float32(np.pi), -np.float32(np.pi), 3.14159, -3.14159, 0.0, 1.0, 2.0, 0.0, 0.5, -0.5]
    m = [0.0, -0.0, -1e-4, 1e-6, -0.0, 0.0, 2.5e-7, -3.0, 1e3, 0.0, -1e-30, 5.0]
    cols = {"pt": np.concatenate([j["pt"], np.array(pt, np.float32)]),
            "eta": np.concatenate([j["eta"], np.array(eta, np.float32)]),
            "phi": np.concatenate([j["phi"], np.array(phi, np.float32)]),
            "m": np.concatenate([j["m"], np.array(m, np.float32)])}
    n = len(cols["pt"])
    counts = jetfactory.counts(n, seed)
    # events covering exactly n jets
    c = []
    left = n
    for k in counts:
        k = int(min(k, left))
        c.append(k)
        left -= k
        if left == 0:
            break
    if left:
        c.append(left)
    return cols, np.array(c, np.uint32)


def errors(orig: dict[str, np.ndarray], dec: dict[str, np.ndarray], role: str) -> np.ndarray:
    o = np.asarray(orig[role], np.float64)
    d = np.asarray(dec[role], np.float32).astype(np.float64)  # as a restored file stores it
    if role in ("pt", "E", "m"):
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.where(o != 0, np.abs(d - o) / np.abs(o), 0.0)
        zero = o == 0
        err[zero & ((d != 0) | (np.signbit(d) != np.signbit(o)))] = np.inf
        return err
    return np.abs(d - o)


@pytest.mark.parametrize("spec", BOUNDS)
@pytest.mark.parametrize("representation", ["PtEtaPhiM", "EPtEtaPhi"])
def test_every_value_within_its_bound(spec, representation):
    cols, counts = adversarial()
    if representation == "EPtEtaPhi":
        cols = {"E": jetfactory.energy(cols["pt"], cols["eta"], np.abs(cols["m"])), "pt": cols["pt"],
                "eta": cols["eta"], "phi": cols["phi"]}
    bounds = parse_error_bound(spec, representation)
    codec = BoundedCodec(bounds, representation)
    payload = codec.encode(cols, counts)
    dec = BoundedCodec.from_config(codec.get_config()).decode(payload, len(cols["pt"]), counts)
    for role, bound in bounds.items():
        err = errors(cols, dec, role)
        assert err.max() <= bound, (role, float(err.max()), bound)
    # the bound is used, not wasted: typical errors are a good fraction of it
    assert np.median(errors(cols, dec, "eta")) > 0.1 * bounds["eta"]
    if representation == "PtEtaPhiM":
        zero = cols["m"] == 0
        assert (dec["m"][zero] == 0).all()
        np.testing.assert_array_equal(np.signbit(dec["m"][zero]), np.signbit(cols["m"][zero]))
        assert (np.sign(dec["m"]) == np.sign(cols["m"])).all()


def test_flat_tables_and_empty_events():
    cols, _ = adversarial(500)
    codec = BoundedCodec(parse_error_bound("1e-3", "PtEtaPhiM"), "PtEtaPhiM")
    n = len(cols["pt"])
    dec = codec.decode(codec.encode(cols, None), n, None)
    assert errors(cols, dec, "pt").max() <= 1e-3
    counts = np.zeros(n + 5, np.uint32)
    counts[3:3 + n] = 1  # empty events around single-jet ones
    dec = codec.decode(codec.encode(cols, counts), n, counts)
    assert errors(cols, dec, "phi").max() <= 1e-3
    empty = {k: v[:0] for k, v in cols.items()}
    zeros = np.zeros(4, np.uint32)
    assert all(len(v) == 0 for v in codec.decode(codec.encode(empty, zeros), 0, zeros).values())


def test_pt_ordered_events_code_smaller_than_shuffled():
    """The context streams (pt drop from the previous jet, phi from the leading jet) pay off on
    pt-ordered events, and cost nothing in correctness when the order is arbitrary."""
    counts = jetfactory.counts(20_000, 3)
    n = int(counts.sum())
    cols = jetfactory.jets(n, 3)
    ends = np.cumsum(counts.astype(np.int64))
    starts = ends - counts
    order = np.concatenate([s + np.argsort(-cols["pt"][s:e], kind="stable") for s, e in zip(starts, ends)])
    ordered = {k: v[order] for k, v in cols.items()}
    codec = BoundedCodec(parse_error_bound("1e-3", "PtEtaPhiM"), "PtEtaPhiM")
    a, b = codec.encode(ordered, counts), codec.encode(cols, counts)
    assert len(a) < len(b)
    for data, payload in ((ordered, a), (cols, b)):
        dec = codec.decode(payload, n, counts)
        assert errors(data, dec, "pt").max() <= 1e-3


@pytest.mark.parametrize("spec, expected", [
    ("1e-3", {"pt": 1e-3, "eta": 1e-3, "phi": 1e-3, "m": 1e-3}),
    ("pt=5e-4,eta=2.5e-4,phi=2.5e-4,mass=1e-3", {"pt": 5e-4, "eta": 2.5e-4, "phi": 2.5e-4, "m": 1e-3}),
    ("pt=5e-4", {"pt": 5e-4, "eta": 5e-4, "phi": 5e-4, "m": 5e-4}),
    ("nanoaod", {"pt": 2 ** -11, "eta": 2 ** -12, "phi": 2 ** -12, "m": 2 ** -11}),
    (2e-3, {"pt": 2e-3, "eta": 2e-3, "phi": 2e-3, "m": 2e-3}),
])
def test_bound_specs(spec, expected):
    assert parse_error_bound(spec, "PtEtaPhiM") == expected


@pytest.mark.parametrize("spec, words", [
    ("abc", "expected a number"), ("pt=x", "not a number"), ("rapidity=1e-3", "unknown column"),
    ("E=1e-3", "stores mass"), ("0", "outside the supported"), ("nan", "outside the supported"),
    ("pt=1e-3,eta", "not name=number"), ("2", "outside the supported"),
    ("pt=1e-3,pt=2e-3", "pt is given twice"), ("m=1e-3,mass=2e-3", "mass is given twice"),
    ("pt=1e-3,eta=0", "eta bound 0"),
])
def test_bad_bound_specs_are_one_line_errors(spec, words):
    with pytest.raises(InputError, match=words) as info:
        parse_error_bound(spec, "PtEtaPhiM")
    assert "\n" not in str(info.value)


def test_tables_the_codec_cannot_bound_are_refused_with_advice():
    """Cartesian tables are bounded since issue 21 (tests/test_bounded_cartesian.py); any other
    representation still gets the advice."""
    with pytest.raises(InputError, match="latent codec"):
        parse_error_bound("1e-3", "PtEtaPhiMass2")
    assert parse_error_bound("1e-3", "PxPyPzE") == {"px": 1e-3, "py": 1e-3, "pz": 1e-3, "E": 1e-3}


def test_damaged_payloads_are_format_errors():
    cols, counts = adversarial(2000)
    codec = BoundedCodec(parse_error_bound("1e-3", "PtEtaPhiM"), "PtEtaPhiM")
    payload = codec.encode(cols, counts)
    n = len(cols["pt"])
    rng = np.random.default_rng(0)
    for cut in (0, 10, len(payload) // 2, len(payload) - 1):
        with pytest.raises(FormatError):
            codec.decode(payload[:cut], n, counts)
    with pytest.raises(FormatError):
        codec.decode(payload + b"\0", n, counts)
    failures = 0
    for _ in range(200):  # flipped bytes: an error, or values that still decode (checked by CRC upstream)
        bad = bytearray(payload)
        bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        try:
            codec.decode(bytes(bad), n, counts)
        except FormatError:
            failures += 1
    assert failures > 0


def test_files_round_trip_and_evaluate_checks_bounds(tmp_path):
    src = tmp_path / "nano.root"
    jetfactory.write_nanoaod(src, n_events=400, seed=9)
    out = tmp_path / "b.aez"
    report = jetzip.compress(src, out, error_bound="5e-4")
    assert report["codec"] == "bounded" and report["payload_bytes_per_jet"] < 8
    info = jetzip.inspect(out)
    assert info["verified"] and info["codec"] == "bounded" and info["bounds"]["m"] == 5e-4
    ev = jetzip.evaluate(src, out)
    assert ev["all_within_bounds"], ev["bounds"]
    assert set(ev["bounds"]) == {"pt", "eta", "phi", "m"}
    for fmt in ("root", "h5", "csv"):
        jetzip.decompress(out, tmp_path / f"back.{fmt}")
        assert jetzip.evaluate(src, out)["all_within_bounds"]


@pytest.mark.parametrize("threaded", [True, False], ids=["threads", "processes"])
def test_same_bytes_for_any_thread_count(tmp_path, monkeypatch, threaded):
    """Chunks code side by side on threads (payload version 3's loops release the GIL) or, for
    a codec that says it cannot, in worker processes: the same bytes and values either way."""
    from jetzip.codecs.bounded import BoundedCodec

    monkeypatch.setattr(BoundedCodec, "threaded", lambda self: threaded)
    src = tmp_path / "nano.root"
    jetfactory.write_nanoaod(src, n_events=3000, seed=4)
    a, b = tmp_path / "a.aez", tmp_path / "b.aez"
    jetzip.compress(src, a, error_bound="1e-3", threads=1, chunk_jets=2000)
    jetzip.compress(src, b, error_bound="1e-3", threads=2, chunk_jets=2000)
    assert a.read_bytes() == b.read_bytes()
    jetzip.decompress(a, tmp_path / "a.h5", threads=1)
    jetzip.decompress(a, tmp_path / "b.h5", threads=2)
    import h5py

    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "b.h5") as fb:
        for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"):
            np.testing.assert_array_equal(fa[f"Events/{k}"][...], fb[f"Events/{k}"][...])


def test_latent_options_with_an_error_bound_are_named_as_ignored(tmp_path):
    src = tmp_path / "nano.root"
    jetfactory.write_nanoaod(src, n_events=50, seed=3)
    said: list[str] = []
    jetzip.compress(src, tmp_path / "a.aez", error_bound="1e-3", latent_tolerance="pt=1e-2",
                    latent_dtype="float16", warn=said.append)
    assert any("--tolerance, --latent-dtype only apply to the latent codec" in w for w in said)


def test_nan_jets_refused_or_dropped(tmp_path):
    cols = {k: v.copy() for k, v in jetfactory.jets(50, 1).items()}
    cols["pt"][7] = np.nan
    csv = tmp_path / "j.csv"
    jetfactory.write_csv(csv, {"pt": cols["pt"], "eta": cols["eta"], "phi": cols["phi"], "mass": cols["m"]})
    with pytest.raises(InputError, match="NaN"):
        jetzip.compress(csv, tmp_path / "x.aez", error_bound="1e-3")
    r = jetzip.compress(csv, tmp_path / "y.aez", error_bound="1e-3", drop_invalid=True)
    assert r["n_jets"] == 49 and r["dropped_invalid"] == 1
    ev = jetzip.evaluate(csv, tmp_path / "y.aez")  # says that it compared the 49 and left one out
    assert ev["n_jets"] == 49 and ev["invalid_jets_left_out"] == 1 and ev["all_within_bounds"]


def test_steps_stay_inside_the_bound():
    from jetzip.codecs.bounded import steps_for

    for b in (1e-5, 5e-4, 2 ** -12, 3.46e-3, 0.1):
        s = steps_for({"pt": b, "eta": b}, {"eta": 5.0})
        assert math.expm1(s["pt"] / 2) < b and s["eta"] / 2 < b
