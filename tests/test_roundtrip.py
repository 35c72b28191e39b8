"""compress -> decompress round trips through every table format, via the library API."""
from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

import jetzip
from jetzip.features import from_model_frame, to_model_frame
from jetzip.training import reconstruct

import jetfactory


# The small test model decodes jets to a few percent, so the default round-trip tolerance would
# store most of them verbatim; these tests check the network path, so they let every jet through
# it (tests/test_latent_exact.py checks the verbatim storage).
LOOSE = "pt=1,eta=1,phi=1"
# the network path with literal float32 latents: decoded values are the model's own output
LOOSE32 = {"latent_tolerance": LOOSE, "latent_dtype": "float32"}


def expected_decoded(model, cols: dict, representation: str, units: str = "GeV") -> dict:
    """What decompress must produce: the in-memory encode/decode of the same jets."""
    frame = to_model_frame(cols, representation, units)
    return from_model_frame(reconstruct(model, frame), representation, units)


def close(a, b, rtol=2e-5, atol=2e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol)


def test_nanoaod_jagged_root_roundtrip(tmp_path, nano_file, small_model_path, small_model):
    path, data = nano_file
    aez = tmp_path / "nano.aez"
    out = tmp_path / "restored.root"
    rep = jetzip.compress(path, aez, model=small_model_path, **LOOSE32)
    assert rep["n_events"] == 300 and rep["n_jets"] == int(data["counts"].sum())
    jetzip.decompress(aez, out)
    t = uproot.open(out)["Events"]
    assert {"nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"} <= set(t.keys())
    assert t["Jet_pt"].typename == "float[]"
    arrays = t.arrays(["nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"])
    np.testing.assert_array_equal(arrays["nJet"].to_numpy(), data["counts"])
    assert (data["counts"] == 0).any(), "fixture should contain zero-jet events"
    np.testing.assert_array_equal(ak.num(arrays["Jet_pt"]).to_numpy(), data["counts"])
    want = expected_decoded(small_model, {"pt": data["pt"], "eta": data["eta"], "phi": data["phi"],
                                          "m": data["m"]}, "PtEtaPhiM")
    close(ak.flatten(arrays["Jet_pt"]).to_numpy(), want["pt"])
    close(ak.flatten(arrays["Jet_eta"]).to_numpy(), want["eta"])
    close(ak.flatten(arrays["Jet_phi"]).to_numpy(), want["phi"], atol=5e-5)
    # and the decoded jets are near the originals (a small, briefly trained model: percent level)
    rel = ak.flatten(arrays["Jet_pt"]).to_numpy() / data["pt"] - 1
    assert np.median(np.abs(rel)) < 0.05


def test_flat_root_roundtrip_keeps_columns_and_order(tmp_path, small_model_path, small_model):
    src = tmp_path / "flat.root"
    cols = jetfactory.write_flat_root(src, n=700, seed=3, tree="thesis")
    jetzip.compress(src, tmp_path / "f.aez", model=small_model_path, **LOOSE32)
    jetzip.decompress(tmp_path / "f.aez", tmp_path / "back.root")
    t = uproot.open(tmp_path / "back.root")["thesis"]
    assert list(t.keys()) == ["E", "pt", "eta", "phi"]
    assert all(t[k].typename == "float" for k in t.keys())
    got = t.arrays(library="np")
    want = expected_decoded(small_model, cols, "EPtEtaPhi")
    for k in cols:
        close(got[k], want[k], atol=5e-5)


@pytest.mark.parametrize("layout", ["columns", "compound", "jagged"])
def test_hdf5_roundtrip(tmp_path, small_model_path, small_model, layout):
    j = jetfactory.jets(900, seed=8)
    cols = {"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "mass": j["m"]}
    src = tmp_path / "jets.h5"
    counts = None
    if layout == "compound":
        jetfactory.write_hdf5_compound(src, cols)
    elif layout == "jagged":
        counts = jetfactory.counts(200, seed=2)
        n = int(counts.sum())
        j = jetfactory.jets(n, seed=8)
        cols = {"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "mass": j["m"]}
        jetfactory.write_hdf5_columns(src, cols, counts)
    else:
        jetfactory.write_hdf5_columns(src, cols)
    rep = jetzip.compress(src, tmp_path / "j.aez", model=small_model_path, **LOOSE32)
    assert rep["n_jets"] == len(cols["pt"])
    jetzip.decompress(tmp_path / "j.aez", tmp_path / "back.h5")
    with h5py.File(tmp_path / "back.h5") as f:
        if layout == "compound":
            table = f["jets"][...]
            got = {k: table[k] for k in cols}
        else:
            got = {k: f[k][...] for k in cols}
            if counts is not None:
                np.testing.assert_array_equal(f["nJet"][...], counts)
    want = expected_decoded(small_model, {"pt": cols["pt"], "eta": cols["eta"], "phi": cols["phi"],
                                          "m": cols["mass"]}, "PtEtaPhiM")
    for k, role in (("pt", "pt"), ("eta", "eta"), ("phi", "phi")):
        assert got[k].dtype == np.float32
        close(got[k], want[role], atol=5e-5)


def test_csv_roundtrip(tmp_path, small_model_path, small_model):
    j = jetfactory.jets(400, seed=4)
    cols = {"E": jetfactory.energy(j["pt"], j["eta"], j["m"]), "pt": j["pt"], "eta": j["eta"], "phi": j["phi"]}
    jetfactory.write_csv(tmp_path / "j.csv", cols)
    jetzip.compress(tmp_path / "j.csv", tmp_path / "j.aez", model=small_model_path, **LOOSE32)
    jetzip.decompress(tmp_path / "j.aez", tmp_path / "back.csv")
    lines = (tmp_path / "back.csv").read_text().splitlines()
    assert lines[0] == "E,pt,eta,phi"
    got = np.loadtxt(tmp_path / "back.csv", delimiter=",", skiprows=1)
    assert got.shape == (400, 4)
    want = expected_decoded(small_model, cols, "EPtEtaPhi")
    for i, k in enumerate(cols):
        close(got[:, i], want[k], rtol=1e-6 * 50, atol=5e-5)


def test_chunking_does_not_change_the_result(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "one.aez", model=small_model_path, **LOOSE32)
    jetzip.compress(path, tmp_path / "many.aez", model=small_model_path, **LOOSE32, chunk_jets=1024,
                    batch_size=100)
    one, many = jetzip.read_aez(tmp_path / "one.aez"), jetzip.read_aez(tmp_path / "many.aez")
    assert many["tail"]["n_chunks"] > 1
    np.testing.assert_array_equal(one["counts"], many["counts"])
    np.testing.assert_allclose(one["latents"], many["latents"], rtol=1e-5, atol=1e-6)


def test_same_input_gives_identical_bytes(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "a.aez", model=small_model_path, **LOOSE32)
    jetzip.compress(path, tmp_path / "b.aez", model=small_model_path, **LOOSE32)
    assert (tmp_path / "a.aez").read_bytes() == (tmp_path / "b.aez").read_bytes()


def test_thread_count_does_not_change_the_file(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "t1.aez", model=small_model_path, **LOOSE32, threads=1, batch_size=64)
    jetzip.compress(path, tmp_path / "t3.aez", model=small_model_path, **LOOSE32, threads=3, batch_size=64)
    assert (tmp_path / "t1.aez").read_bytes() == (tmp_path / "t3.aez").read_bytes()
    jetzip.decompress(tmp_path / "t1.aez", tmp_path / "t1.h5", threads=1)
    jetzip.decompress(tmp_path / "t1.aez", tmp_path / "t3.h5", threads=3)
    a, b = jetzip.open_table(str(tmp_path / "t1.h5")), jetzip.open_table(str(tmp_path / "t3.h5"))
    try:
        for ca, cb in zip(a.chunks(), b.chunks(), strict=True):
            for role in ca.columns:
                np.testing.assert_array_equal(ca.columns[role], cb.columns[role])
    finally:
        a.close()
        b.close()


def test_read_aez_gives_latents_and_counts(tmp_path, nano_file, small_model_path):
    path, data = nano_file
    jetzip.compress(path, tmp_path / "a.aez", model=small_model_path, **LOOSE32)
    content = jetzip.read_aez(tmp_path / "a.aez")
    assert content["latents"].shape == (int(data["counts"].sum()), 3)
    assert content["latents"].dtype == np.float32
    np.testing.assert_array_equal(content["counts"], data["counts"])
    h = content["table"]
    assert h["tree"] == "Events" and h["counter"] == "nJet"
    codec = content["codec"]
    assert content["header"]["format_version"] == "3.0" and codec["id"] == "latent"
    assert len(codec["model"]["weights_sha256"]) == 64
    assert codec["normalization"]["kind"]


def test_float16_latents_are_smaller_and_close(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    r32 = jetzip.compress(path, tmp_path / "a.aez", model=small_model_path, **LOOSE32, embed_model=False)
    r16 = jetzip.compress(path, tmp_path / "b.aez", model=small_model_path, latent_tolerance=LOOSE, embed_model=False,
                          latent_dtype="float16")
    n = r32["n_jets"]
    assert r32["bytes"] - r16["bytes"] == pytest.approx(n * 6, abs=64)
    a, b = jetzip.read_aez(tmp_path / "a.aez"), jetzip.read_aez(tmp_path / "b.aez")
    assert b["latents"].dtype == np.float16
    np.testing.assert_allclose(b["latents"].astype(np.float32), a["latents"], rtol=1e-3, atol=1e-3)


def test_no_embed_model_needs_the_matching_model(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "a.aez", model=small_model_path, **LOOSE32, embed_model=False)
    with pytest.raises(jetzip.ModelMismatchError, match="--model"):
        jetzip.decompress(tmp_path / "a.aez", tmp_path / "x.root")
    assert not (tmp_path / "x.root").exists()
    jetzip.decompress(tmp_path / "a.aez", tmp_path / "x.root", model=small_model_path)
    assert (tmp_path / "x.root").exists()


def test_embedded_decoder_matches_external_model(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "a.aez", model=small_model_path, **LOOSE32)
    jetzip.decompress(tmp_path / "a.aez", tmp_path / "x.h5")
    jetzip.decompress(tmp_path / "a.aez", tmp_path / "y.h5", model=small_model_path)
    with h5py.File(tmp_path / "x.h5") as fx, h5py.File(tmp_path / "y.h5") as fy:
        np.testing.assert_array_equal(fx["Events/Jet_pt"][...], fy["Events/Jet_pt"][...])
        assert len(fx["Events/Jet_pt"]) > 0


def test_real_nanoaod_file_needs_no_options(tmp_path, small_model_path, nano_dy):
    rep = jetzip.compress(nano_dy, tmp_path / "dy.aez", model=small_model_path, **LOOSE32)
    assert rep["n_events"] == 40 and rep["n_jets"] == 188
    jetzip.decompress(tmp_path / "dy.aez", tmp_path / "dy.root")
    orig = uproot.open(nano_dy)["Events"].arrays(["nJet", "Jet_pt"])
    back = uproot.open(tmp_path / "dy.root")["Events"].arrays(["nJet", "Jet_pt"])
    np.testing.assert_array_equal(back["nJet"].to_numpy(), orig["nJet"].to_numpy())
    np.testing.assert_array_equal(ak.num(back["Jet_pt"]).to_numpy(), ak.num(orig["Jet_pt"]).to_numpy())


def test_empty_table_roundtrip(tmp_path, small_model_path):
    src = tmp_path / "empty.root"
    with uproot.recreate(src) as f:
        f.mktree("Events", {"Jet_pt": "var * float32", "Jet_eta": "var * float32",
                            "Jet_phi": "var * float32", "Jet_mass": "var * float32"},
                 counter_name=lambda _: "nJet").extend(
            {k: ak.Array([[], [], []]) for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass")})
    rep = jetzip.compress(src, tmp_path / "e.aez", model=small_model_path, **LOOSE32, units="GeV")
    assert rep["n_jets"] == 0 and rep["n_events"] == 3
    jetzip.decompress(tmp_path / "e.aez", tmp_path / "e_back.root")
    back = uproot.open(tmp_path / "e_back.root")["Events"].arrays(["nJet"])
    np.testing.assert_array_equal(back["nJet"].to_numpy(), [0, 0, 0])


def test_no_embed_file_finds_the_default_model_by_its_hash(tmp_path, nano_file, small_model_path, monkeypatch):
    """Without --model, a file made with the default model decodes; another model's file does not."""
    from conftest import SHIPPED_MODEL

    path, data = nano_file
    monkeypatch.delenv("JETZIP_MODEL", raising=False)
    jetzip.compress(path, tmp_path / "shipped.aez", model=SHIPPED_MODEL, embed_model=False)
    r = jetzip.decompress(tmp_path / "shipped.aez", tmp_path / "back.h5")
    assert r["n_jets"] == int(data["counts"].sum())
    jetzip.compress(path, tmp_path / "small.aez", model=small_model_path, **LOOSE32, embed_model=False)
    with pytest.raises(jetzip.ModelMismatchError, match="pass --model"):
        jetzip.decompress(tmp_path / "small.aez", tmp_path / "x.h5")


def test_identical_bytes_across_processes_of_other_hash_seeds(tmp_path):
    """Two processes with different PYTHONHASHSEED (so sets of names iterate in other orders)
    write the same bytes, on a NanoAOD whose collections have counters jetzip regenerates."""
    import os
    import subprocess
    import sys

    from conftest import SHARED, shared_file

    src = shared_file(SHARED / "cases" / "nano_tt_v12_lzma9_200.root")
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}.aez"
        subprocess.run([sys.executable, "-m", "jetzip.cli", "compress", str(src), "-o", str(out),
                        "--error-bound", "1e-3", "--collection", "all"],
                       check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": seed})
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
