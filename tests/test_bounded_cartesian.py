"""Cartesian tables, (px, py, pz, E) and (px, py, pz, m), under --error-bound (issue 21): every
restored four-vector meets |dpx|, |dpy| <= b pt, |dpz| <= b |p| and E or mass relative (pt and
|p| those of the original), in its own columns, for the four-vectors that break naive schemes;
and jet constituents coded as such."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from jetzip.codecs import get_codec
from jetzip.codecs.bounded import BoundedCodec, parse_error_bound
from jetzip.errors import FormatError, InputError

sys.path.insert(0, str(Path(__file__).parent))
import jetfactory  # noqa: E402
from conftest import shared_file  # noqa: E402


def four_vectors(n: int, seed: int, mass: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random jets as (px, py, pz, E or m) plus the hard cases: a component exactly 0 (px, py,
    pz), pz >> pt, E = |p| (m = 0), m = -0.0, a tiny negative mass, pt = 0 (stored verbatim),
    negative zero components."""
    j = jetfactory.jets(n, seed)
    pt, eta, phi, m = (j[k].astype(np.float64) for k in ("pt", "eta", "phi", "m"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    p = np.hypot(pt, pz)
    e = np.sqrt(p * p + m * m)
    hard_px = [0.0, 30.0, 12.0, 5.0, 3.0, -0.0, 7.0, 1e-3, 0.0, 40.0]
    hard_py = [25.0, 0.0, -9.0, 4.0, 4.0, 10.0, -0.0, 1e-3, 0.0, 0.0]
    hard_pz = [10.0, -3.0, 0.0, 4000.0, -5000.0, 0.0, 2.0, 1e-3, 30.0, -0.0]
    hard_p = np.sqrt(np.square(hard_px) + np.square(hard_py) + np.square(hard_pz))
    if mass:
        hard_4 = [5.0, 0.0, -0.0, 1.0, -1e-3, 0.0, -0.0, 0.0, 1.0, 2.0]
        cols = {"px": px, "py": py, "pz": pz, "m": m}
    else:
        hard_4 = list(hard_p)  # E = |p|: massless
        hard_4[0] = hard_p[0] + 1.0
        cols = {"px": px, "py": py, "pz": pz, "E": e}
    for k, extra in zip(cols, (hard_px, hard_py, hard_pz, hard_4)):
        cols[k] = np.concatenate([cols[k], np.array(extra)]).astype(np.float32)
    counts = np.array([5] * (n // 5) + [n % 5 + 10] if n % 5 else [5] * (n // 5) + [10], np.uint32)
    return cols, counts


def cartesian_errors(cols, dec, fourth):
    o = {k: np.asarray(v, np.float64) for k, v in cols.items()}
    d = {k: np.asarray(v, np.float32).astype(np.float64) for k, v in dec.items()}  # as a writer stores them
    pt = np.hypot(o["px"], o["py"])
    p = np.hypot(pt, o["pz"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"px": np.where(d["px"] == o["px"], 0, np.abs(d["px"] - o["px"]) / pt),
               "py": np.where(d["py"] == o["py"], 0, np.abs(d["py"] - o["py"]) / pt),
               "pz": np.where(d["pz"] == o["pz"], 0, np.abs(d["pz"] - o["pz"]) / p)}
        zero = o[fourth] == 0
        rel = np.abs(d[fourth] - o[fourth]) / np.abs(o[fourth])
        out[fourth] = np.where(zero, np.where((d[fourth] == 0) & (np.signbit(d[fourth]) == np.signbit(o[fourth])),
                                              0, np.inf), rel)
    return out


@pytest.mark.parametrize("rep", ["PxPyPzE", "PxPyPzM"])
@pytest.mark.parametrize("spec", ["1e-3", "5e-4", "0.1", "px=1e-3,py=2e-3,pz=5e-4,mass=1e-2"])
def test_every_four_vector_within_the_cartesian_bound(rep, spec):
    fourth = "m" if rep == "PxPyPzM" else "E"
    cols, counts = four_vectors(2000, 13, mass=fourth == "m")
    if "mass" in spec and fourth == "E":
        spec = spec.replace("mass", "E")
    bounds = parse_error_bound(spec, rep)
    codec = BoundedCodec(bounds, rep)
    n = len(cols["px"])
    for c in (counts, None):
        payload = codec.encode(cols, c)
        dec = get_codec(codec.get_config()).decode(payload, n, c)
        assert set(dec) == set(cols)  # restored in the input's own columns
        err = cartesian_errors(cols, dec, fourth)
        for role, b in bounds.items():
            assert err[role].max() <= b, (role, float(err[role].max()), b)
        # the bound computed by the codec's own hook agrees (what evaluate reports)
        hook = BoundedCodec.bound_errors(codec.get_config(), cols, {k: v.astype(np.float32) for k, v in dec.items()})
        assert all(hook[r].max() <= bounds[r] for r in bounds)
    # exact zeros and signs where the input has them (as float32 a writer stores)
    for k in cols:
        zero = cols[k] == 0
        restored = dec[k][zero]
        if k == fourth:
            np.testing.assert_array_equal(np.signbit(restored), np.signbit(cols[k][zero]))
            assert (restored == 0).all()
    # the bound is used: typical errors are a good fraction of it (coded in pt, eta, phi)
    assert np.median(cartesian_errors(cols, dec, fourth)["px"]) > 0.05 * bounds["px"]


def test_a_massless_jet_and_pt_zero_are_exact_or_verbatim():
    cols, counts = four_vectors(50, 3, mass=False)
    codec = BoundedCodec(parse_error_bound("1e-3", "PxPyPzE"), "PxPyPzE")
    n = len(cols["px"])
    dec = codec.decode(codec.encode(cols, counts), n, counts)
    pt0 = (cols["px"] == 0) & (cols["py"] == 0)
    assert pt0.any()
    for k in cols:  # pt = 0: no direction to code, the jet is stored as it was
        np.testing.assert_array_equal(dec[k][pt0], cols[k][pt0].astype(np.float64))


def test_jets_with_nan_are_named_for_cartesian_columns_too():
    cols, counts = four_vectors(20, 2, mass=True)
    cols["pz"][4] = np.nan
    bad, why = BoundedCodec(parse_error_bound("1e-3", "PxPyPzM"), "PxPyPzM").invalid(cols)
    assert bad.sum() == 1 and bad[4] and why == {"with NaN or inf": 1}


def test_bound_specs_of_cartesian_tables():
    assert parse_error_bound("pz=5e-4", "PxPyPzM") == {"px": 5e-4, "py": 5e-4, "pz": 5e-4, "m": 5e-4}
    # NanoAOD's precision (pt 2^-11, eta and phi 2^-12) as the errors it puts on px, py, pz, E
    nano = parse_error_bound("nanoaod", "PxPyPzE")
    assert nano["px"] == nano["py"] == pytest.approx(5 ** 0.5 * 2.0 ** -12, rel=1e-3)
    assert nano["pz"] == nano["E"] == pytest.approx(3 * 2.0 ** -12, rel=1e-3)
    assert parse_error_bound("NanoAOD", "PxPyPzM")["m"] == 2.0 ** -11
    for spec, words in (("pt=1e-3", "not pt"), ("eta=1e-3", "not eta"), ("E=1e-3", "stores mass")):
        with pytest.raises(InputError, match=words):
            parse_error_bound(spec, "PxPyPzM")


def test_the_nanoaod_preset_on_cartesian_tables_covers_what_nanoaod_rounding_does():
    """Four-vectors rounded to NanoAOD's precision (pt, mass 2^-11 relative; eta, phi 2^-12
    absolute, the preset's meaning) move px, py, pz and E by no more than the Cartesian preset."""
    rng = np.random.default_rng(5)
    n = 200_000
    pt, eta = np.exp(rng.uniform(0, 7, n)), rng.uniform(-4, 4, n)
    phi, m = rng.uniform(-np.pi, np.pi, n), np.exp(rng.uniform(-3, 4, n))
    # the worst case of each rounding: a full step's half in either direction
    signs = rng.choice([-1.0, 1.0], (4, n))
    pt2, m2 = pt * (1 + signs[0] * 2.0 ** -11), m * (1 + signs[1] * 2.0 ** -11)
    eta2, phi2 = eta + signs[2] * 2.0 ** -12, phi + signs[3] * 2.0 ** -12

    def cartesian(pt, eta, phi, m):
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        return px, py, pz, np.sqrt(px ** 2 + py ** 2 + pz ** 2 + m ** 2)

    (px, py, pz, e), (px2, py2, pz2, e2) = cartesian(pt, eta, phi, m), cartesian(pt2, eta2, phi2, m2)
    bound = parse_error_bound("nanoaod", "PxPyPzE")
    p = pt * np.cosh(eta)
    assert np.max(np.abs(px2 - px) / pt) <= bound["px"] and np.max(np.abs(py2 - py) / pt) <= bound["py"]
    assert np.max(np.abs(pz2 - pz) / p) <= bound["pz"] and np.max(np.abs(e2 - e) / e) <= bound["E"]
    # and it is not loose: the worst cases come within 5 % of it
    assert np.max(np.abs(px2 - px) / pt) > 0.95 * bound["px"] and np.max(np.abs(pz2 - pz) / p) > 0.95 * bound["pz"]
    assert np.max(np.abs(e2 - e) / e) > 0.95 * bound["E"]


def test_configurations_are_checked():
    codec = BoundedCodec(parse_error_bound("1e-3", "PxPyPzE"), "PxPyPzE", kind="constituents")
    config = codec.get_config()
    assert config["kind"] == "constituents" and config["bound_kinds"]["pz"] == "relative to |p|"
    assert get_codec(config).get_config() == config
    for bad in ({**config, "version": 2}, {**config, "kind": "muons"},
                {**config, "entropy_model": {"name": "context_v1", "sha256": "0" * 64}},
                {**config, "bounds": {"pt": 1e-3, "eta": 1e-3, "phi": 1e-3, "E": 1e-3}}):
        with pytest.raises(FormatError):
            get_codec(bad)
    with pytest.raises(InputError, match="trained on jets"):
        from jetzip.entropy.context import default_context_model

        BoundedCodec(parse_error_bound("1e-3", "PxPyPzE"), "PxPyPzE", context_model=default_context_model(),
                     kind="constituents")
    # a chunk of jets is not a chunk of constituents of the same bounds (the tag differs)
    cols, counts = four_vectors(200, 5, mass=False)
    jets = BoundedCodec(parse_error_bound("1e-3", "PxPyPzE"), "PxPyPzE").encode(cols, counts)
    with pytest.raises(FormatError, match="another configuration"):
        codec.decode(jets, len(cols["px"]), counts)


def jetclass_constituents():
    import awkward as ak
    import uproot

    with uproot.open(shared_file(Path(__file__).resolve().parents[2] / "shared" / "cases" / "jetclass_like.root")) \
            as f:
        a = f["tree"].arrays(["part_px", "part_py", "part_pz", "part_energy"])
    counts = ak.num(a["part_px"]).to_numpy().astype(np.uint32)
    cols = {r: ak.flatten(a[k]).to_numpy() for r, k in
            (("px", "part_px"), ("py", "part_py"), ("pz", "part_pz"), ("E", "part_energy"))}
    return cols, counts


def test_constituents_of_jetclass_like_jets():
    """Particles of a jet, pt-sorted, coded relative to the jet's first particle in contexts of
    their pt: within the Cartesian bound, and smaller than as jets (measured 3.78 against 4.10
    B per particle at 1e-3; byte-shuffled LZMA-9 takes 12.8)."""
    cols, counts = jetclass_constituents()
    n = len(cols["px"])
    bounds = parse_error_bound("1e-3", "PxPyPzE")
    as_jets = BoundedCodec(bounds, "PxPyPzE").encode(cols, counts)
    codec = BoundedCodec(bounds, "PxPyPzE", kind="constituents")
    payload = codec.encode(cols, counts)
    assert len(payload) / n < 4.0 and len(payload) < 0.97 * len(as_jets), (len(payload) / n, len(as_jets) / n)
    dec = get_codec(codec.get_config()).decode(payload, n, counts)
    err = cartesian_errors(cols, dec, "E")
    assert all(err[r].max() <= bounds[r] for r in bounds)
