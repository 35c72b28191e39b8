"""Golden files of format 2.0 (tests/golden/make_golden_v2.py) keep decoding to the same values.

The integer symbols of the bounded codec are exact; the decoded floats go through exp and
cosh, which may differ by an ulp between machines, so they are compared at 1e-12 relative
(far inside every bound) and checked against the bounds themselves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

import jetzip

GOLDEN = Path(__file__).parent / "golden"


def decoded(path):
    """(the codec's stored config, the decoded columns of every chunk joined) of a golden file."""
    with jetzip.open_aez(path) as f:
        codec = f.codec()
        parts = [codec.decode(c.payload, c.n_jets, c.counts) for c in f.chunks()]
        return f.header.codec, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, len(parts)


def rel_err(d, o):
    d, o = np.asarray(d, np.float32).astype(np.float64), np.asarray(o, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(o != 0, np.abs(d - o) / np.abs(o), np.where(d == 0, 0.0, np.inf))


def test_bounded_nano_golden(tmp_path):
    ref = np.load(GOLDEN / "v2.0_bounded_nano.npz")
    content = jetzip.read_aez(GOLDEN / "v2.0_bounded_nano.aez")
    h = content["header"]
    assert h["format_version"] == "2.0" and h["codec"]["id"] == "bounded"
    assert h["codec"]["bounds"] == {"pt": 5e-4, "eta": 2.5e-4, "phi": 2.5e-4, "m": 1e-3}
    assert content["tail"]["n_chunks"] > 1
    np.testing.assert_array_equal(content["counts"], ref["counts"])
    np.testing.assert_array_equal(content["jet_kept"]["Jet_btag"], ref["orig_btag"])
    _, got, _ = decoded(GOLDEN / "v2.0_bounded_nano.aez")
    for k in ("pt", "eta", "phi", "m"):
        np.testing.assert_allclose(got[k], ref[f"dec_{k}"], rtol=1e-12, atol=0)
    assert rel_err(ref["dec_pt"], ref["orig_pt"]).max() <= 5e-4
    assert rel_err(ref["dec_m"], ref["orig_m"]).max() <= 1e-3
    assert np.abs(ref["dec_eta"].astype(np.float32) - ref["orig_eta"]).max() <= 2.5e-4
    zero = ref["orig_m"] == 0
    assert zero.any() and np.signbit(ref["orig_m"][zero]).any()
    np.testing.assert_array_equal(np.signbit(ref["dec_m"][zero]), np.signbit(ref["orig_m"][zero]))
    # and through the command that users run
    jetzip.decompress(GOLDEN / "v2.0_bounded_nano.aez", tmp_path / "g.root")
    t = uproot.open(tmp_path / "g.root")["Events"]
    assert list(t.keys())[:7] == ["event", "nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btag"]
    arrays = t.arrays(library="np")
    np.testing.assert_array_equal(arrays["nJet"], ref["counts"])
    np.testing.assert_allclose(np.concatenate(arrays["Jet_pt"]), ref["dec_pt"].astype(np.float32))


def test_bounded_flat_e_golden():
    ref = np.load(GOLDEN / "v2.0_bounded_flat_e.npz")
    with jetzip.open_aez(GOLDEN / "v2.0_bounded_flat_e.aez") as f:
        assert f.header.codec["representation"] == "EPtEtaPhi" and not f.jagged
    _, got, _ = decoded(GOLDEN / "v2.0_bounded_flat_e.aez")
    for k in ("E", "pt", "eta", "phi"):
        np.testing.assert_allclose(got[k], ref[f"dec_{k}"], rtol=1e-12, atol=0)
    assert rel_err(ref["dec_E"], ref["orig_E"]).max() <= 3.46e-3


def test_latent_nano_golden():
    ref = np.load(GOLDEN / "v2.0_latent_nano.npz")
    content = jetzip.read_aez(GOLDEN / "v2.0_latent_nano.aez")
    assert content["header"]["codec"]["exact"] is True
    np.testing.assert_array_equal(content["latents"], ref["latents"])
    np.testing.assert_array_equal(content["counts"], ref["counts"])
    with jetzip.open_aez(GOLDEN / "v2.0_latent_nano.aez") as f:
        codec = f.codec(device="cpu")
        parts = [codec.decode(c.payload, c.n_jets, c.counts) for c in f.chunks()]
        stored = np.concatenate([np.isin(np.arange(c.n_jets), codec.split(c.payload, c.n_jets)[1])
                                 for c in f.chunks()])
    assert 0 < stored.sum() < len(stored)
    for k in ("pt", "eta", "phi", "m"):
        got = np.concatenate([p[k] for p in parts])
        # verbatim jets exactly; the network's within float32 tolerance of the golden decode
        np.testing.assert_array_equal(got[stored].astype(np.float32), ref[f"orig_{k}"][stored])
        np.testing.assert_allclose(got[~stored], ref[f"dec_{k}"][~stored], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["v2.0_bounded_nano.aez", "v2.0_bounded_flat_e.aez", "v2.0_latent_nano.aez"])
def test_golden_v2_inspect_verifies(name):
    info = jetzip.inspect(GOLDEN / name)
    assert info["verified"] and info["format_version"] == "2.0"


def test_a_reader_can_seek_to_any_chunk():
    with jetzip.open_aez(GOLDEN / "v2.0_bounded_nano.aez") as f:
        offsets = f.chunk_offsets()
        every = list(f.chunks())
        assert len(offsets) == len(every) > 1
        for i in reversed(range(len(every))):
            c = f.read_chunk(i, offsets)
            assert bytes(c.payload) == bytes(every[i].payload) and c.n_jets == every[i].n_jets
            np.testing.assert_array_equal(c.jet_kept["Jet_btag"], every[i].jet_kept["Jet_btag"])
        with pytest.raises(jetzip.InputError, match="no chunk"):
            f.read_chunk(len(every), offsets)


def test_bounded_learned_golden(tmp_path):
    """Bounded codec version 2 (the shipped learned entropy model context_v1): the same values,
    within the NanoAOD-precision bounds, through the codec and through decompress."""
    ref = np.load(GOLDEN / "v2.0_bounded_learned_nano.npz")
    path = GOLDEN / "v2.0_bounded_learned_nano.aez"
    config, got, n_chunks = decoded(path)
    assert config["version"] == 2 and config["entropy_model"]["name"] == "context_v1"
    assert n_chunks > 1
    for k in ("pt", "eta", "phi", "m"):
        np.testing.assert_allclose(got[k], ref[f"dec_{k}"], rtol=1e-12, atol=0)
    assert rel_err(ref["dec_pt"], ref["orig_pt"]).max() <= 2 ** -11
    assert rel_err(ref["dec_m"], ref["orig_m"]).max() <= 2 ** -11
    assert np.abs(ref["dec_phi"].astype(np.float32) - ref["orig_phi"]).max() <= 2 ** -12
    jetzip.decompress(path, tmp_path / "g.h5")
    import h5py

    with h5py.File(tmp_path / "g.h5") as f:
        np.testing.assert_allclose(f["Events/Jet_eta"][...], ref["dec_eta"].astype(np.float32))
