"""The latent codec's golden chunk fixtures (tests/golden/codecs/latent/<version>/, written once by
tests/golden/codecs/latent/make_fixtures.py) keep decoding.

The integer latents are exact on every machine, so the latents fed to the network must be the
same bits; the network's float32 arithmetic may differ in the last ulp between CPUs (GUIDE
section 11), so the decoded columns are compared at 1e-5 (far inside the tolerance; the mass
as its four-vector's invariant, ``tolerances.py``), and the jets stored verbatim exactly.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from jetzip.codecs import codec_class, get_codec

sys.path.insert(0, str(Path(__file__).parent))
from tolerances import assert_decoded_close  # noqa: E402

FIXTURES = Path(__file__).parent / "golden" / "codecs" / "latent"
ROLES = ("pt", "eta", "phi", "m")


def _chunks(version: str) -> list[int]:
    return sorted(int(p.name.split(".")[1]) for p in (FIXTURES / version).glob("encoded.*.bin"))


def test_every_version_folder_has_its_fixtures():
    versions = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
    assert versions == ["2"]
    assert _chunks("2") == [0, 1, 2]


@pytest.mark.parametrize("index", _chunks("2"))
def test_version_2_chunks_decode(index):
    folder = FIXTURES / "2"
    config = json.loads((folder / "config.json").read_text())
    assert config["version"] == 2 and config["latent"]["dtype"] == "quantized"
    assert config["model"]["embedded"] is False  # the shipped model, found by its SHA-256
    codec_class("latent").check_config(config, "fixture")
    codec = get_codec(config, device="cpu")
    payload = (folder / f"encoded.{index:02d}.bin").read_bytes()
    counts = np.load(folder / f"counts.{index:02d}.npy")
    ref = np.load(folder / f"decoded.{index:02d}.npz")
    n = int(counts.sum())
    lat, verbatim, _ = codec.split(payload, n)
    np.testing.assert_array_equal(lat, ref["latents"])  # bit for bit
    np.testing.assert_array_equal(verbatim, ref["verbatim"])
    got = codec.decode(payload, n, counts)
    stored = np.zeros(n, bool)
    stored[verbatim] = True
    for role in ROLES:
        assert got[role].shape == (n,)
        np.testing.assert_array_equal(np.float32(got[role][stored]), ref[f"orig_{role}"][stored])
        assert_decoded_close(role, got[role][~stored], ref[f"dec_{role}"][~stored], ref["dec_pt"][~stored],
                             ref["dec_eta"][~stored])
    if n:  # and the decoded jets are within the tolerance of the originals
        tol = config["tolerance"]
        assert (np.abs(got["pt"] / ref["orig_pt"] - 1) <= tol["pt"]).all()
        assert (np.abs(got["eta"] - ref["orig_eta"]) <= tol["eta"]).all()
