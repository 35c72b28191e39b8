"""evaluate --baselines: classical codecs on the same jets, each bounded one within its bounds."""
from __future__ import annotations

import numpy as np
import pytest

from jetzip.baselines import max_errors, measure, round_mantissa

import jetfactory


def test_round_mantissa_keeps_the_stated_bits():
    x = np.array([1.0, 1.2345678, -3.3333333, 1e-30, 6500.123, 0.0, -0.0], np.float32)
    for bits in (10, 12):
        y = round_mantissa(x, bits)
        nz = x != 0
        assert (np.abs(y[nz] / x[nz] - 1) <= 2.0 ** -(bits + 1)).all()
        assert (np.abs(y[nz] / x[nz] - 1) > 0).any()
        np.testing.assert_array_equal(np.signbit(y), np.signbit(x))


@pytest.mark.parametrize("bounds", [None, {"pt": 1e-3, "eta": 1e-3, "phi": 1e-3, "m": 1e-3}])
def test_bounded_baselines_hold_their_bounds(bounds):
    counts = jetfactory.counts(1000, 4)
    n = int(counts.sum())
    cols = jetfactory.jets(n, 4)
    out = measure(cols, "PtEtaPhiM", bounds, counts)
    assert out["n_jets"] == n
    want = out["bounds"]
    for name in ("quantize+zstd", "jetzip-bounded", "sz3"):
        entry = out[name]
        if "skipped" in entry:
            assert name == "sz3"
            continue
        assert entry["bounded"], name
        for role, err in entry["max_error"].items():
            assert err <= want[role], (name, role, err)
    # NanoAOD's rounding is what the preset bounds describe, within |x| < 4
    nano = out["nanoaod-mantissa+lzma"]["max_error"]
    assert nano["pt"] <= 2.0 ** -11 and nano["m"] <= 2.0 ** -11
    # jetzip's own codec is the smallest bounded one
    sizes = {k: v["bytes_per_jet"] for k, v in out.items() if isinstance(v, dict) and v.get("bounded")}
    assert min(sizes, key=sizes.get) == "jetzip-bounded"


def test_max_errors_conventions():
    o = {"pt": np.array([10.0, 0.0]), "eta": np.array([1.0, -1.0])}
    d = {"pt": np.array([10.1, 0.0]), "eta": np.array([1.002, -1.0])}
    e = max_errors(o, d)
    assert e["pt"] == pytest.approx(0.01) and e["eta"] == pytest.approx(0.002)


def test_float16_baseline_casts_mev_columns_in_gev():
    """float16 overflows at 65,504: in MeV every pt above 65.5 GeV would be inf."""
    from jetzip.baselines import float16_zstd

    cols = jetfactory.jets(5000, 6)
    assert (cols["pt"] > 65.504).any()
    mev = {r: (v * 1000 if r in ("pt", "m") else v).astype(np.float32) for r, v in cols.items()}
    gev_out = measure(cols, "PtEtaPhiM", None, units="GeV")["float16+zstd"]
    mev_out = measure(mev, "PtEtaPhiM", None, units="MeV")["float16+zstd"]
    assert mev_out["overflow"] == 0 and np.isfinite(list(mev_out["max_error"].values())).all()
    assert mev_out["max_error"]["pt"] <= 2.0 ** -11 and mev_out["max_error"]["eta"] == gev_out["max_error"]["eta"]
    assert mev_out["bytes_per_jet"] == pytest.approx(gev_out["bytes_per_jet"], rel=0.02)
    # the decoded columns come back in the file's units
    _, back, _ = float16_zstd(mev, "MeV")
    assert np.abs(back["pt"] / mev["pt"] - 1).max() <= 2.0 ** -11


def test_an_input_already_at_nanoaod_precision_is_said():
    from jetzip.baselines import already_nanoaod, nanoaod_grid

    cols = jetfactory.jets(3000, 7)
    assert already_nanoaod(cols) == [] and max(nanoaod_grid(cols).values()) < 0.01
    out = measure(cols, "PtEtaPhiM", None)
    assert out["already_nanoaod"] == [] and "note" not in out["nanoaod-mantissa+lzma"]
    rounded = {r: round_mantissa(v, 10 if r in ("pt", "m") else 12) for r, v in cols.items()}
    assert already_nanoaod(rounded) == ["pt", "m", "eta", "phi"]
    out = measure(rounded, "PtEtaPhiM", None)
    assert out["already_nanoaod"] == ["pt", "m", "eta", "phi"]
    assert max(out["nanoaod-mantissa+lzma"]["max_error"].values()) == 0.0
    assert "already rounded" in out["nanoaod-mantissa+lzma"]["note"]
