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
