"""Real-world layouts, 4-vector conventions, units, kept and missing branches (issue: formats)."""
from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import jetzip
from jetzip.features import from_model_frame, infer_units, to_model_frame
from jetzip.tables import open_table

import jetfactory
from conftest import run_cli

DATA = Path(__file__).parent / "data"


def test_physlite_layout_is_detected_and_restored(tmp_path, small_model_path):
    src = DATA / "physlite_like.root"
    info = open_table(src).info
    assert (info.layout, info.collection, info.units, info.counter) == ("physlite", "AnalysisJets", "MeV", None)
    assert info.units_inferred is False
    jetzip.compress(src, tmp_path / "p.aez", model=small_model_path)
    jetzip.decompress(tmp_path / "p.aez", tmp_path / "p.root")
    orig = uproot.open(src)["CollectionTree"].arrays()
    back = uproot.open(tmp_path / "p.root")["CollectionTree"]
    for k in ("pt", "eta", "phi", "m"):
        assert f"AnalysisJetsAuxDyn.{k}" in back.keys()
    b = back.arrays()
    np.testing.assert_array_equal(ak.num(b["AnalysisJetsAuxDyn.pt"]), ak.num(orig["AnalysisJetsAuxDyn.pt"]))
    # values come back in MeV
    rel = ak.flatten(b["AnalysisJetsAuxDyn.pt"]).to_numpy() / ak.flatten(orig["AnalysisJetsAuxDyn.pt"]).to_numpy()
    assert 0.8 < np.median(rel) < 1.2


def test_opendata_layout_counter_and_unit_inference(tmp_path, small_model_path):
    src = DATA / "opendata_like.root"
    info = open_table(src).info
    assert (info.layout, info.collection, info.counter, info.representation) == \
        ("atlas-opendata", "jet", "jet_n", "EPtEtaPhi")
    assert info.units == "MeV" and info.units_inferred
    r = run_cli(_exe(), "compress", src, "-o", tmp_path / "o.aez", "-m", small_model_path)
    assert r.returncode == 0, r.stderr
    assert b"units: assuming MeV (median jet pt is" in r.stderr
    assert b"--units" in r.stderr
    h = jetzip.read_aez(tmp_path / "o.aez")["table"]
    assert h["units"] == "MeV" and h["units_inferred"] is True and "median jet pt" in h["units_reason"]
    jetzip.decompress(tmp_path / "o.aez", tmp_path / "o.root")
    back = uproot.open(tmp_path / "o.root")["mini"]
    assert {"jet_n", "jet_pt", "jet_eta", "jet_phi", "jet_E"} <= set(back.keys())
    orig = uproot.open(src)["mini"].arrays(["jet_n"])
    np.testing.assert_array_equal(back["jet_n"].array().to_numpy(), orig["jet_n"].to_numpy())


def _exe():
    import shutil
    import sys
    import os
    return shutil.which("jetzip", path=os.path.dirname(sys.executable)) or "jetzip"


def test_declared_units_win(tmp_path, small_model_path):
    src = tmp_path / "gev.root"
    jetfactory.write_flat_root(src, n=300, seed=2)
    info = open_table(src, units="MeV").info
    assert info.units == "MeV" and not info.units_inferred
    info = open_table(src).info
    assert info.units == "GeV" and info.units_inferred


@pytest.mark.parametrize("median,expected", [(35.0, "GeV"), (35000.0, "MeV"), (999.0, "GeV"), (1000.0, "MeV")])
def test_unit_inference_rule(median, expected):
    units, reason = infer_units({"pt": np.array([median * 0.5, median, median * 2])})
    assert units == expected
    assert f"{median:.4g}" in reason


def test_mev_flat_table_roundtrip_keeps_mev(tmp_path, small_model_path):
    src = tmp_path / "mev.root"
    cols = jetfactory.write_flat_root(src, n=400, seed=9, tree="mini", mev=True)
    jetzip.compress(src, tmp_path / "m.aez", model=small_model_path)
    jetzip.decompress(tmp_path / "m.aez", tmp_path / "m.root")
    back = uproot.open(tmp_path / "m.root")["mini"].arrays(library="np")
    assert np.median(back["pt"] / cols["pt"]) == pytest.approx(1.0, abs=0.05)


def test_thesis_table_m_pt_phi_eta(tmp_path, small_model_path):
    j = jetfactory.jets(300, seed=6)
    cols = {"m": j["m"] * 1000, "pt": j["pt"] * 1000, "phi": j["phi"], "eta": j["eta"]}
    jetfactory.write_csv(tmp_path / "thesis.csv", cols)
    info = open_table(tmp_path / "thesis.csv").info
    assert info.representation == "PtEtaPhiM" and info.units == "MeV"
    assert list(info.columns.values()) == ["m", "pt", "phi", "eta"]
    jetzip.compress(tmp_path / "thesis.csv", tmp_path / "t.aez", model=small_model_path)
    jetzip.decompress(tmp_path / "t.aez", tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "m,pt,phi,eta"


def test_conversions_round_trip_exactly():
    j = jetfactory.jets(2000, seed=3)
    frame = to_model_frame({"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "m": j["m"]}, "PtEtaPhiM")
    for rep in ("EPtEtaPhi", "PtEtaPhiM", "PxPyPzE"):
        cols = from_model_frame(frame, rep, "GeV", np.float64)
        back = to_model_frame(cols, rep, "GeV")
        np.testing.assert_allclose(back[:, :3], frame[:, :3], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(np.cos(back[:, 3] - frame[:, 3]), 1.0, atol=1e-12)
    mev = from_model_frame(frame, "PxPyPzE", "MeV", np.float64)
    np.testing.assert_allclose(to_model_frame(mev, "PxPyPzE", "MeV"), to_model_frame(
        from_model_frame(frame, "PxPyPzE", "GeV", np.float64), "PxPyPzE", "GeV"), rtol=1e-12)


def test_negative_and_zero_mass_convention():
    """ROOT's SetPtEtaPhiM: E = sqrt(p^2 + m|m|); the mass comes back with its sign."""
    cols = {"pt": np.array([50.0, 50.0, 50.0]), "eta": np.array([0.5, 0.5, 0.5]),
            "phi": np.zeros(3), "m": np.array([0.0, -0.0, -1.0])}
    frame = to_model_frame(cols, "PtEtaPhiM")
    p = 50 * np.cosh(0.5)
    np.testing.assert_allclose(frame[:, 0], [p, p, np.sqrt(p * p - 1)])
    back = from_model_frame(frame, "PtEtaPhiM", "GeV", np.float64)
    np.testing.assert_allclose(back["m"], [0.0, 0.0, -1.0], atol=1e-6)


def test_px_py_pz_e_table(tmp_path, small_model_path, small_model):
    j = jetfactory.jets(500, seed=12)
    frame = to_model_frame({"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "m": j["m"]}, "PtEtaPhiM")
    cols = {k: v.astype(np.float32) for k, v in from_model_frame(frame, "PxPyPzE", "GeV").items()}
    jetfactory.write_hdf5_columns(tmp_path / "p4.h5", cols)
    info = open_table(tmp_path / "p4.h5").info
    assert info.representation == "PxPyPzE"
    jetzip.compress(tmp_path / "p4.h5", tmp_path / "p4.aez", model=small_model_path)
    jetzip.decompress(tmp_path / "p4.aez", tmp_path / "p4_back.h5")
    import h5py
    with h5py.File(tmp_path / "p4_back.h5") as f:
        assert sorted(f.keys()) == ["E", "px", "py", "pz"]
        back_frame = to_model_frame({k: f[k][...] for k in cols}, "PxPyPzE")
    assert np.median(np.abs(back_frame[:, 1] / frame[:, 1] - 1)) < 0.05


def test_collection_choice_and_ambiguity(tmp_path, small_model_path):
    src = tmp_path / "two.root"
    j = jetfactory.jets(40, seed=1)
    c = np.full(10, 4)
    with uproot.recreate(src) as f:
        types = {f"{coll}_{k}": "var * float32" for coll in ("AK4", "AK8") for k in ("pt", "eta", "phi", "mass")}
        data = {f"{coll}_{k}": ak.unflatten(j[kk], c) for coll in ("AK4", "AK8")
                for k, kk in (("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "m"))}
        f.mktree("t", types, counter_name=lambda name: "n" + name.split("_")[0]).extend(data)
    both = open_table(src).info  # every jet collection by default: AK4 first (file order), AK8 too
    assert both.columns["pt"] == "AK4_pt" and [c.name for c in both.collections] == ["AK8"]
    assert both.collections[0].counter == "nAK8"
    assert open_table(src, collection="AK8").info.columns["pt"] == "AK8_pt"
    assert open_table(src, collection="AK8").info.collections == []
    rep = jetzip.compress(src, tmp_path / "two.aez", error_bound="1e-3")
    assert rep["tables"][0]["n_jets"] == [40, 40]
    jetzip.decompress(tmp_path / "two.aez", tmp_path / "back.root")
    back = uproot.open(tmp_path / "back.root")["t"]
    assert back.keys() == uproot.open(src)["t"].keys()
    with pytest.raises(jetzip.InputError, match="no jet collection 'FatJet'"):
        open_table(src, collection="FatJet")


def test_nanoaod_other_collections_by_name(tmp_path, small_model_path, nano_dy):
    info = open_table(nano_dy, collection="FatJet").info
    assert info.columns["pt"] == "FatJet_pt" and info.counter == "nFatJet"
    info = open_table(nano_dy, collection="GenJet").info
    assert info.counter == "nGenJet"


def test_several_trees_need_tree(tmp_path):
    src = tmp_path / "trees.root"
    with uproot.recreate(src) as f:
        for name in ("a", "b"):
            f.mktree(name, {"pt": np.float32, "eta": np.float32, "phi": np.float32, "E": np.float32}).extend(
                {k: np.ones(2, np.float32) for k in ("pt", "eta", "phi", "E")})
    assert open_table(src).info.tree == "a"  # the first tree with jets; compress codes both
    assert open_table(src, tree="b").info.tree == "b"
    rep = jetzip.compress(src, tmp_path / "t.aez", error_bound="1e-3")
    assert [t["n_jets"] for t in rep["tables"]] == [[2], [2]]
    rep = jetzip.compress(src, tmp_path / "b.aez", error_bound="1e-3", tree="b")  # only b's jets coded
    assert [t["n_jets"] for t in rep["tables"]] == [[], [2]]
    jetzip.decompress(tmp_path / "b.aez", tmp_path / "b.root")
    assert sorted(uproot.open(tmp_path / "b.root").keys()) == ["a;1", "b;1"]


def test_keep_branches_travel_losslessly(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    aez = tmp_path / "k.aez"
    jetzip.compress(path, aez, model=small_model_path, keep_branches=["run", "event", "MET_*"])
    jetzip.decompress(aez, tmp_path / "k.root")
    orig = uproot.open(path)["Events"].arrays(["run", "event", "MET_pt"], library="np")
    back = uproot.open(tmp_path / "k.root")["Events"]
    for k in ("run", "event", "MET_pt"):
        np.testing.assert_array_equal(back[k].array(library="np"), orig[k])
        assert back[k].array(library="np").dtype == orig[k].dtype
    assert jetzip.read_aez(aez)["table"]["other_branches"] == []


def test_missing_branches_are_reported(tmp_path, nano_file, small_model_path, jetzip_exe):
    """Every branch is carried by default; the ones the user drops are named on decompress."""
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "all.aez", model=small_model_path)
    assert jetzip.read_aez(tmp_path / "all.aez")["table"]["other_branches"] == []
    jetzip.compress(path, tmp_path / "m.aez", model=small_model_path, drop_branches=["run", "event", "MET_*"])
    r = run_cli(jetzip_exe, "decompress", tmp_path / "m.aez", "-o", tmp_path / "m.root")
    assert r.returncode == 0
    err = r.stderr.decode()
    assert "lacks 3 branch(es)" in err and "run" in err and "MET_pt" in err


def _write_tree(f, data: dict, name: str = "Events") -> None:
    """A TTree (not an RNTuple) with NanoAOD-style counters (nJet for every Jet_ branch)."""
    types = {k: (f"var * {np.asarray(ak.flatten(v)).dtype}" if isinstance(v, ak.Array) else v.dtype)
             for k, v in data.items()}
    tree = f.mktree(name, types, counter_name=lambda b: "nJet" if b.startswith("Jet_") else f"n{b}")
    tree.extend(data)


def test_other_collections_are_carried_and_keep_patterns_must_match(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    muons = tmp_path / "muons.root"
    counts = np.array([2, 0, 1])
    jet = {f"Jet_{k}": ak.unflatten(np.full(3, v, np.float32), counts)
           for k, v in (("pt", 50.0), ("eta", 0.5), ("phi", 1.0), ("mass", 5.0))}
    with uproot.recreate(muons) as f:
        _write_tree(f, {**jet, "Muon_pt": ak.Array([[10.0], [], [20.0, 30.0]])})
    jetzip.compress(muons, tmp_path / "mu.aez", model=small_model_path, keep_branches=["Muon_pt"])
    jetzip.decompress(tmp_path / "mu.aez", tmp_path / "mu.root")
    back = uproot.open(tmp_path / "mu.root")["Events"]["Muon_pt"].array()
    assert back.tolist() == [[10.0], [], [20.0, 30.0]]
    with pytest.raises(jetzip.InputError, match="matches no branch"):
        jetzip.compress(path, tmp_path / "x.aez", model=small_model_path, keep_branches=["nothing*"])
    assert not (tmp_path / "x.aez").exists()


def test_mismatched_jet_column_lengths(tmp_path, small_model_path):
    src = tmp_path / "bad.root"
    with uproot.recreate(src) as f:
        f.mktree("Events", {"Jet_pt": "var * float32", "Jet_eta": "var * float32", "Jet_phi": "var * float32",
                            "Jet_mass": "var * float32"}, counter_name=lambda name: "n" + name).extend({
            "Jet_pt": ak.Array([[10.0, 20.0], [30.0]]), "Jet_eta": ak.Array([[0.1], [0.2]]),
            "Jet_phi": ak.Array([[0.1, 0.2], [0.3]]), "Jet_mass": ak.Array([[1.0, 2.0], [3.0]])})
    with pytest.raises(jetzip.InputError, match="different lengths in event 0"):
        jetzip.compress(src, tmp_path / "x.aez", model=small_model_path)
    assert not (tmp_path / "x.aez").exists()


@pytest.mark.parametrize("kind", ["log-E-pt/linear-eta-phi", "log-E-over-p/log-pt/linear-eta-phi"])
def test_normalization_kinds_mean_what_they_say(kind):
    from jetzip.features import Normalization, log_cosh
    frame = jetfactory.model_frame(2000, seed=4)
    norm = Normalization.fit(frame, kind)
    t = norm.apply(frame).astype(np.float64) * np.asarray(norm.scale) + np.asarray(norm.shift)
    e, pt, eta, phi = frame.T
    t0 = np.log(e) if kind.startswith("log-E-pt") else np.log(e) - np.log(pt) - log_cosh(eta)
    np.testing.assert_allclose(t[:, 0], t0, atol=1e-5)
    np.testing.assert_allclose(t[:, 1], np.log(pt), atol=1e-5)
    np.testing.assert_allclose(t[:, 2], eta, atol=1e-5)
    np.testing.assert_allclose(norm.invert(norm.apply(frame)), frame, rtol=1e-5, atol=1e-5)


def test_own_hdf5_output_is_found_again_with_its_units(tmp_path, small_model_path, nano_file):
    """decompress -> .h5 puts the jets in /Events with a units attribute; compress finds both."""
    path, data = nano_file
    jetzip.compress(path, tmp_path / "a.aez", model=small_model_path)
    jetzip.decompress(tmp_path / "a.aez", tmp_path / "back.h5")
    warnings = []
    report = jetzip.compress(tmp_path / "back.h5", tmp_path / "b.aez", model=small_model_path,
                             warn=warnings.append)
    assert report["n_jets"] == int(data["counts"].sum())
    assert report["units"] == "GeV" and not report["units_inferred"]
    assert not any("units" in w for w in warnings)
    again = jetzip.read_aez(tmp_path / "b.aez")
    np.testing.assert_array_equal(again["counts"], data["counts"])
    assert again["table"]["tree"] == "Events"


def test_hdf5_jets_in_several_groups_ask_for_tree(tmp_path):
    import h5py

    cols = {"pt": np.full(10, 50.0), "eta": np.zeros(10), "phi": np.zeros(10), "mass": np.full(10, 5.0)}
    with h5py.File(tmp_path / "two.h5", "w") as f:
        for g in ("a", "b"):
            for k, v in cols.items():
                f.create_dataset(f"{g}/jet_{k}", data=v)
    with pytest.raises(jetzip.InputError, match="several tables.*--tree"):
        open_table(tmp_path / "two.h5")
    assert open_table(tmp_path / "two.h5", tree="b").info.tree == "b"


def test_keep_pattern_matching_the_counter_skips_it(tmp_path, small_model_path):
    """'n*' also matches nJet: the counter is restored anyway, and .h5 output must not clash."""
    src = tmp_path / "k.root"
    counts = np.array([2, 0, 3])
    jet = {f"Jet_{k}": ak.unflatten(np.full(5, v, np.float32), counts)
           for k, v in (("pt", 50.0), ("eta", 0.5), ("phi", 1.0), ("mass", 5.0))}
    with uproot.recreate(src) as f:
        _write_tree(f, {**jet, "nMuon": np.array([1, 0, 2], np.int32)})
    jetzip.compress(src, tmp_path / "k.aez", model=small_model_path, keep_branches=["n*", "Jet_pt"])
    assert jetzip.read_aez(tmp_path / "k.aez")["table"]["kept_branches"] == ["nMuon"]
    jetzip.decompress(tmp_path / "k.aez", tmp_path / "k.h5")
    back = open_table(tmp_path / "k.h5", keep_branches=["nMuon"])
    try:
        chunk = next(back.chunks())
        np.testing.assert_array_equal(chunk.counts, counts)
        np.testing.assert_array_equal(chunk.kept["nMuon"], [1, 0, 2])
    finally:
        back.close()


def test_root_tree_cycles_newest_is_read(tmp_path, small_model_path):
    """A tree written twice has cycles Events;1 and Events;2: read the newest, as ROOT does."""
    src = tmp_path / "cycles.root"
    def jets(counts):
        n = int(np.sum(counts))
        return {f"Jet_{k}": ak.unflatten(np.full(n, v, np.float32), np.asarray(counts))
                for k, v in (("pt", 50.0), ("eta", 0.5), ("phi", 1.0), ("mass", 5.0))}
    with uproot.recreate(src) as f:
        _write_tree(f, jets([1, 2]))
    with uproot.update(src) as f:
        _write_tree(f, jets([1, 2, 3, 4]))
    assert sorted(uproot.open(src).keys()) == ["Events;1", "Events;2"]
    assert open_table(src).n_entries == 4
    old = open_table(src, tree="Events;1")
    assert old.n_entries == 2 and old.info.tree == "Events"


def test_explicit_preset_must_fit_the_file(tmp_path, nano_file):
    path, _ = nano_file
    with pytest.raises(jetzip.InputError, match="preset physlite reads tree CollectionTree"):
        open_table(path, preset="physlite")
    with pytest.raises(jetzip.InputError, match="no jet collection 'AnalysisJets'"):
        open_table(path, preset="physlite", tree="Events")
    assert open_table(path, preset="nanoaod").info.units == "GeV"


def test_hdf5_counter_as_long_as_the_jets_and_compound_beside_columns(tmp_path):
    import h5py

    n = 6
    with h5py.File(tmp_path / "eq.h5", "w") as f:  # 6 jets in 6 events: counts [0, 2, 1, 0, 2, 1]
        for k in ("pt", "eta", "phi", "m"):
            f[k] = np.full(n, 5.0 if k == "m" else 50.0)
        f["njet"] = np.array([0, 2, 1, 0, 2, 1], np.int64)
    info = open_table(tmp_path / "eq.h5").info
    assert info.jagged and info.counter == "njet"
    table = np.zeros(n, [("pt", "f4"), ("eta", "f4"), ("phi", "f4"), ("m", "f4")])
    table["pt"] = 50
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["jets"] = table
        f["weight"] = np.ones(n)
    assert open_table(tmp_path / "c.h5").info.tree == "jets"


def test_parquet_lists_of_other_lengths_name_the_event_and_what_to_do(tmp_path):
    """A per-jet list with a value too many in one event, or a four-vector column with one too
    few: the error names the event and the column (and, for a per-jet column, the CLI option
    that leaves it out)."""
    four = {"Jet_pt": [[50.0, 40.0], [30.0]], "Jet_eta": [[0.1, 0.2], [0.3]], "Jet_phi": [[0.1, 0.2], [0.3]],
            "Jet_mass": [[5.0, 4.0], [3.0]]}
    ak.to_parquet(ak.Array({**four, "Jet_btag": [[0.1, 0.2], [0.3, 0.4]]}), tmp_path / "a.parquet")
    with pytest.raises(jetzip.InputError, match=r"event 1 has 2 values in Jet_btag but 1 in Jet_pt.*"
                                                r"--drop-branches Jet_btag"):
        jetzip.compress(tmp_path / "a.parquet", tmp_path / "a.aez", error_bound="1e-3", units="GeV")
    ak.to_parquet(ak.Array({**four, "Jet_eta": [[0.1], [0.3]]}), tmp_path / "b.parquet")
    with pytest.raises(jetzip.InputError, match=r"event 0 has 1 values in Jet_eta but 2 in Jet_pt; the four-vector"):
        jetzip.compress(tmp_path / "b.parquet", tmp_path / "b.aez", error_bound="1e-3", units="GeV")
