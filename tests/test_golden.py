"""Golden files of every released .aez format version stay decodable, bit for bit in the latents."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import jetzip

GOLDEN = Path(__file__).parent / "golden"


def test_nano_float32_golden(tmp_path):
    ref = np.load(GOLDEN / "v1.0_nano_float32.npz")
    content = jetzip.read_aez(GOLDEN / "v1.0_nano_float32.aez")
    h = content["header"]
    assert h["format_version"] == "1.0" and h["latent"]["dtype"] == "float32"
    assert content["tail"]["n_chunks"] > 1
    np.testing.assert_array_equal(content["latents"], ref["latents"])
    np.testing.assert_array_equal(content["counts"], ref["counts"])
    assert (ref["counts"] == 0).any()
    np.testing.assert_array_equal(content["kept"]["event"], ref["event"])
    jetzip.decompress(GOLDEN / "v1.0_nano_float32.aez", tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5") as f:
        np.testing.assert_array_equal(f["Events/nJet"][...], ref["counts"])
        for name, key in (("Jet_pt", "pt"), ("Jet_eta", "eta"), ("Jet_phi", "phi")):
            np.testing.assert_allclose(f[f"Events/{name}"][...], ref[f"dec_{key}"], rtol=1e-5, atol=1e-5)
        # the golden model is tiny; its decoded jets are still close to the originals
        assert np.median(np.abs(f["Events/Jet_pt"][...] / ref["orig_pt"] - 1)) < 0.2


def test_flat_float16_golden(tmp_path):
    ref = np.load(GOLDEN / "v1.0_flat_float16.npz")
    content = jetzip.read_aez(GOLDEN / "v1.0_flat_float16.aez")
    assert content["latents"].dtype == np.float16
    assert content["counts"] is None
    np.testing.assert_array_equal(content["latents"], ref["latents"])
    jetzip.decompress(GOLDEN / "v1.0_flat_float16.aez", tmp_path / "g.csv")
    got = np.loadtxt(tmp_path / "g.csv", delimiter=",", skiprows=1)
    assert (tmp_path / "g.csv").read_text().splitlines()[0] == "E,pt,eta,phi"
    for i, k in enumerate(("E", "pt", "eta", "phi")):
        np.testing.assert_allclose(got[:, i], ref[f"dec_{k}"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["v1.0_nano_float32.aez", "v1.0_flat_float16.aez"])
def test_golden_inspect_verifies(name):
    info = jetzip.inspect(GOLDEN / name)
    assert info["verified"] and info["format_version"] == "1.0"
