"""ROOT layouts of issue 12: every common layout read and written back, and the whole file back.

The files are the shared cases and public test files beside the repository (``../shared``);
they are read there, never copied. Most tests pass a table through reader and writer directly
(lossless: values must come back bit for bit); the end-to-end ones go through compress and
decompress and check that only the jet 4-vector changed.
"""
from __future__ import annotations

import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import jetzip
from jetzip.errors import InputError
from jetzip.tables import open_table
from jetzip.tables.root import RootSource

SHARED = Path(__file__).resolve().parents[2] / "shared"
CASES = SHARED / "cases"
PUBLIC = SHARED / "data" / "public"


def shared(path: Path) -> Path:
    """A shared test file; skipped outside this project's checkout, required under CI=true."""
    if not path.exists():
        why = f"{path} is missing (the shared test data sits beside the repository as ../shared)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


def passthrough(src_path: Path, out: Path, chunk: int = 1 << 18, **kw):
    """Reader -> writer with the values as read (what compress + decompress do, minus the
    codec and the container): every tree of the file, then its other objects. Returns the
    jet tree's TableInfo and how many of its chunks were written."""
    from jetzip.tables import open_file, open_file_writer

    names = {"keep": "keep_branches", "drop": "drop_branches"}
    source = open_file(str(src_path), **{names.get(k, k): v for k, v in kw.items()})
    infos = [t.info for t in source.tables]
    writer = open_file_writer(str(out), "root", infos, "zstd", source.main)
    chunks = 0
    try:
        for i, table in enumerate(source.tables):
            for c in table.chunks(chunk):
                writer.write(i, c)
                chunks += i == source.main
        blob = source.extras()
        if blob:
            writer.write_extras(blob, "root")
    finally:
        writer.close()
        source.close()
    return infos[source.main], chunks


def arrays(path: Path, tree: str, names=None):
    return uproot.open(path)[tree].arrays(names, library="ak", how=dict)


def same(a, b) -> bool:
    """Equal values and layout, NaN-safe, as awkward lists or numpy arrays."""
    return ak.to_list(a) == ak.to_list(b)


# ------------------------------------------------------------------ the whole file (part 1)

def test_nano_runs_perjet_counters_whole_file(tmp_path):
    src = shared(CASES / "nano_runs_perjet_counters.root")
    info, _ = passthrough(src, tmp_path / "out.root")
    assert info.counter == "nJet"  # not nJet_pt, which uproot wrote beside it
    assert info.jet_branches == ["Jet_btagDeepFlavB", "Jet_jetId"]
    assert info.kept_branches == ["run", "luminosityBlock", "event", "MET_pt"]
    assert info.extra["not_carried"] == []
    orig, back = uproot.open(src), uproot.open(tmp_path / "out.root")
    assert set(back.keys()) == set(orig.keys())  # Events and Runs
    for tree in ("Events", "Runs"):
        assert back[tree].keys() == orig[tree].keys()  # every branch, in order
        assert back[tree].num_entries == orig[tree].num_entries
        o, b = orig[tree].arrays(library="np"), back[tree].arrays(library="np")
        for name in orig[tree].keys(recursive=True):
            assert back[tree][name].typename == orig[tree][name].typename, name
            if o[name].dtype == object:
                assert same(ak.Array(list(o[name])), ak.Array(list(b[name]))), name
            else:
                assert o[name].tobytes() == b[name].tobytes(), name  # bit-identical
    assert back["Events"]["Jet_pt"].count_branch.name == "nJet_pt"
    assert uproot.open(tmp_path / "out.root")["Runs"]["genEventSumw"].array(library="np").tobytes() == \
        orig["Runs"]["genEventSumw"].array(library="np").tobytes()


def test_nano_runs_perjet_counters_end_to_end(tmp_path, small_model_path):
    src = shared(CASES / "nano_runs_perjet_counters.root")
    jetzip.compress(src, tmp_path / "n.aez", model=small_model_path)
    jetzip.decompress(tmp_path / "n.aez", tmp_path / "n.root")
    orig, back = uproot.open(src), uproot.open(tmp_path / "n.root")
    assert {k.split(";")[0] for k in back.keys(cycle=True)} == {"Events", "Runs"}
    assert back["Events"].keys() == orig["Events"].keys()
    o, b = orig["Events"].arrays(), back["Events"].arrays()
    lossy = {"Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"}
    for name in orig["Events"].keys(recursive=True):
        if name not in lossy:
            assert same(o[name], b[name]), name  # non-jet values bit-identical
    np.testing.assert_allclose(ak.flatten(b["Jet_pt"]).to_numpy(), ak.flatten(o["Jet_pt"]).to_numpy(),
                               rtol=0.2)
    assert same(arrays(tmp_path / "n.root", "Runs")["genEventSumw"],
                arrays(src, "Runs")["genEventSumw"])


def test_arrays_bools_and_a_per_jet_branch_of_another_length(tmp_path):
    counts = np.array([2, 0, 3, 1])
    flt = ak.types.ListType(ak.types.NumpyType("float32"))
    boo = ak.types.ListType(ak.types.NumpyType("bool"))
    jets = {f"Jet_{v}": ak.unflatten(np.linspace(20, 60, 6).astype(np.float32), counts)
            for v in ("pt", "eta", "phi", "mass")}
    data = {**jets, "Jet_tight": ak.unflatten(np.array([1, 0, 1, 1, 0, 1], bool), counts),
            "cov": np.arange(12, dtype=np.float64).reshape(4, 3)}
    types = {**{k: flt for k in jets}, "Jet_tight": boo, "cov": np.dtype(("f8", (3,)))}
    with uproot.recreate(tmp_path / "a.root") as f:
        f.mktree("Events", types, counter_name=lambda b: "nJet").extend(data)
    info, _ = passthrough(tmp_path / "a.root", tmp_path / "b.root")
    assert info.jet_branches == ["Jet_tight"] and info.kept_branches == ["cov[0]", "cov[1]", "cov[2]"]
    back = uproot.open(tmp_path / "b.root")["Events"]
    assert back["Jet_tight"].array().tolist() == data["Jet_tight"].tolist()
    assert back["cov"].array(library="np").tobytes() == data["cov"].tobytes()
    # a Jet_ list that is not one value per jet: one line that says how to leave it out
    bad = {**data, "Jet_tight": ak.Array([[True], [], [False], [True]])}
    with uproot.recreate(tmp_path / "c.root") as f:
        f.mktree("Events", types, counter_name=lambda b: "nJet" if b != "Jet_tight" else "nJet_tight").extend(bad)
    with pytest.raises(InputError, match=r"per-jet branch Jet_tight has 1 values in event 0, the jets 2; "
                                         r"leave it out with --drop-branches Jet_tight"):
        list(RootSource(str(tmp_path / "c.root")).chunks())


def test_other_trees_are_tables_of_their_own(tmp_path):
    """Runs (genEventSumw) is a table of the .aez like Events: carried bit for bit, no codec."""
    src = shared(CASES / "nano_runs_perjet_counters.root")
    rep = jetzip.compress(src, tmp_path / "o.aez", error_bound="1e-3")
    assert [t["n_jets"] for t in rep["tables"]] == [[rep["n_jets"]], []]  # Events coded, Runs carried
    jetzip.decompress(tmp_path / "o.aez", tmp_path / "o.root")
    assert uproot.open(tmp_path / "o.root")["Runs"]["genEventSumw"].array(library="np").tobytes() == \
        uproot.open(src)["Runs"]["genEventSumw"].array(library="np").tobytes()


def test_drop_patterns_leave_branches_out(tmp_path):
    src = shared(CASES / "nano_runs_perjet_counters.root")
    info, _ = passthrough(src, tmp_path / "d.root", drop=("Jet_btag*", "MET_*"))
    assert info.jet_branches == ["Jet_jetId"] and "MET_pt" not in info.kept_branches
    assert {"Jet_btagDeepFlavB", "MET_pt"} <= set(info.other_branches)
    keys = uproot.open(tmp_path / "d.root")["Events"].keys()
    assert "Jet_btagDeepFlavB" not in keys and "MET_pt" not in keys and "Jet_jetId" in keys
    with pytest.raises(InputError, match="--drop-branches 'nothing\\*' matches no branch"):
        RootSource(str(src), drop=("nothing*",))


def test_keep_patterns_still_choose(tmp_path):
    src = shared(CASES / "nano_runs_perjet_counters.root")
    info = open_table(src, keep_branches=["run", "Jet_jetId"]).info
    assert info.kept_branches == ["run"] and info.jet_branches == ["Jet_jetId"]


def test_directories_text_and_other_objects_come_back(tmp_path):
    counts = np.array([2, 0, 3])
    flt = ak.types.ListType(ak.types.NumpyType("float32"))
    with uproot.recreate(tmp_path / "d.root") as f:
        t = f.mktree("sub/Events", {"nJet": np.int32, **{f"Jet_{v}": flt for v in ("pt", "eta", "phi", "mass")},
                                    "label": "string"}, counter_name=lambda b: "nJet")
        data = {f"Jet_{v}": ak.unflatten(np.arange(5, dtype=np.float32) + 20, counts)
                for v in ("pt", "eta", "phi", "mass")}
        t.extend({**data, "label": ak.Array(["x", "yy", "zzz"])})
        f["hists/h1"] = (np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0]))
        f["note"] = "hello"
        f.mktree("Meta", {"s": "string"}).extend({"s": ak.Array(["cfg"])})
    info, _ = passthrough(tmp_path / "d.root", tmp_path / "back.root")
    assert info.tree == "sub/Events" and info.extra["not_carried"] == []
    back = uproot.open(tmp_path / "back.root")
    assert set(back.keys()) == set(uproot.open(tmp_path / "d.root").keys())
    assert back["sub/Events"].keys() == ["nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "label"]
    assert back["sub/Events"]["label"].array().tolist() == ["x", "yy", "zzz"]
    assert str(back["note"]) == "hello" and back["Meta"]["s"].array().tolist() == ["cfg"]
    np.testing.assert_array_equal(back["hists/h1"].values(), [1.0, 2.0, 3.0])


def test_cms_tutorial_ntuple_root_counter(tmp_path):
    """uproot-HZZ.root: NJet (a ROOT counter with another spelling), Jet_Px/Py/Pz/E big-endian."""
    src = shared(PUBLIC / "uproot-HZZ.root")
    info, _ = passthrough(src, tmp_path / "h.root")
    assert (info.counter, info.representation) == ("NJet", "PxPyPzE")
    assert {"Jet_btag", "Jet_ID"} <= set(info.jet_branches) and "Muon_Px" in info.carried_branches
    orig, back = uproot.open(src)["events"], uproot.open(tmp_path / "h.root")["events"]
    assert back.keys() == orig.keys()
    for name in orig.keys(recursive=True):
        assert same(orig[name].array(), back[name].array()), name


# ------------------------------------------------------------------ Delphes

def test_delphes_jet_by_default_restored_in_the_same_layout(tmp_path):
    src = shared(CASES / "delphes_like.root")
    info, _ = passthrough(src, tmp_path / "d.root")
    assert (info.layout, info.collection, info.counter, info.units, info.units_inferred) == \
        ("delphes", "Jet", "Jet_size", "GeV", False)
    assert info.columns == {"pt": "Jet.PT", "eta": "Jet.Eta", "phi": "Jet.Phi", "m": "Jet.Mass"}
    assert "Jet.BTag" in info.jet_branches  # and every other jet collection is coded too
    assert [(c.name, c.counter, c.columns["pt"]) for c in info.collections] == \
        [("GenJet", "GenJet_size", "GenJet.PT"), ("FatJet", "FatJet_size", "FatJet.PT")]
    assert any("Jet/Jet.PT -> Jet.PT" in n for n in info.extra["restored_as"])
    orig = uproot.open(src)["Delphes"]
    back = uproot.open(tmp_path / "d.root")["Delphes"]
    assert back.num_entries == orig.num_entries == 300
    # every leaf comes back under its own name (TClonesArray parents Jet, GenJet... become the
    # counters Jet_size, ...; uproot writes plain float[] branches, not a TClonesArray)
    leaves = {k.rpartition("/")[2] for k in orig.keys(recursive=True) if not orig[k].branches}
    assert leaves <= set(back.keys())
    for key in orig.keys(recursive=True):
        if orig[key].branches:
            continue
        name = key.rpartition("/")[2]
        assert same(orig[key].array(), back[name].array()), name
    assert back["Jet.PT"].count_branch.name == "Jet_size"
    assert 0 in back["Jet_size"].array(library="np")  # events without jets stay


def test_delphes_end_to_end(tmp_path, small_model_path):
    src = shared(CASES / "delphes_like.root")
    jetzip.compress(src, tmp_path / "d.aez", model=small_model_path)
    jetzip.decompress(tmp_path / "d.aez", tmp_path / "d.root")
    orig = uproot.open(src)["Delphes"]
    back = uproot.open(tmp_path / "d.root")["Delphes"]
    # every jet collection is coded by default (Jet, GenJet, FatJet)
    lossy = {f"{c}.{v}" for c in ("Jet", "GenJet", "FatJet") for v in ("PT", "Eta", "Phi", "Mass")}
    for key in orig.keys(recursive=True):
        if orig[key].branches:
            continue
        name = key.rpartition("/")[2]
        if name in lossy:
            assert same(ak.num(orig[key].array()), ak.num(back[name].array())), name
        else:
            assert same(orig[key].array(), back[name].array()), name


@pytest.mark.parametrize("collection", ["GenJet", "FatJet"])
def test_delphes_other_collections(tmp_path, collection):
    src = shared(CASES / "delphes_like.root")
    info, _ = passthrough(src, tmp_path / "c.root", collection=collection)
    assert info.counter == f"{collection}_size" and info.units == "GeV"
    back = uproot.open(tmp_path / "c.root")["Delphes"]
    orig = uproot.open(src)["Delphes"]
    assert same(back[f"{collection}.PT"].array(), orig[f"{collection}/{collection}.PT"].array())
    assert same(back["Jet.PT"].array(), orig["Jet/Jet.PT"].array())  # the rest comes along


def test_delphes_style_cms_ntuple(tmp_path):
    src = shared(PUBLIC / "uproot-mc10events.root")
    every = RootSource(str(src)).info  # every jet collection (named by algorithm), in file order
    assert [every.collection, *[c.name for c in every.collections]] == \
        ["AK4CHS", "AK8CHS", "CA15CHS", "AK4Puppi", "CA8Puppi", "CA15Puppi"]
    info = RootSource(str(src), collection="AK4CHS").info
    assert info.columns == {"pt": "AK4CHS.pt", "eta": "AK4CHS.eta", "phi": "AK4CHS.phi", "m": "AK4CHS.mass"}
    assert "AK4CHS.csv" in info.jet_branches
    assert any("hltMatchBits" in m for m in info.extra["not_carried"])  # std::bitset: named
    n = sum(c.n_jets for c in RootSource(str(src), collection="AK4CHS").chunks())
    assert n == int(ak.sum(ak.num(uproot.open(src)["Events"]["AK4CHS/AK4CHS.pt"].array())))


# ------------------------------------------------------------------ RNTuple

def test_rntuple_read_and_written_back(tmp_path):
    src = shared(CASES / "uproot_writer_rntuple.root")
    info, _ = passthrough(src, tmp_path / "r.root")
    assert info.extra.get("rntuple") and info.columns["pt"] == "Jet.pt"
    assert info.extra["restored_as"] == []  # no counter is added to an RNTuple: nothing to say
    orig = uproot.open(src)["Events"].arrays()
    f = uproot.open(tmp_path / "r.root")
    assert f.classnames()["Events;1"] == "ROOT::RNTuple"
    back = f["Events"].arrays()
    assert back.fields == orig.fields and same(back, orig)


def test_rntuple_nanoaod_like_whole_table(tmp_path):
    """uproot 5.7's file[name] = {...}: per-event numbers, a counter, per-jet lists and another
    collection as a list of records; all of it comes back as it was."""
    rng = np.random.default_rng(3)
    n = 500
    c = rng.integers(0, 5, n)
    jets = int(c.sum())
    data = {"run": np.arange(n, dtype=np.uint32), "nJet": c.astype(np.int32),
            "Jet_pt": ak.unflatten((rng.exponential(30, jets) + 20).astype(np.float32), c),
            "Jet_eta": ak.unflatten(rng.normal(0, 1, jets).astype(np.float32), c),
            "Jet_phi": ak.unflatten(rng.uniform(-3, 3, jets).astype(np.float32), c),
            "Jet_mass": ak.unflatten(rng.uniform(1, 10, jets).astype(np.float32), c),
            "Jet_btag": ak.unflatten(rng.uniform(0, 1, jets).astype(np.float32), c),
            "Muon": ak.zip({"pt": ak.unflatten(rng.uniform(3, 50, jets).astype(np.float32), c)}),
            "MET_pt": rng.uniform(0, 100, n)}
    with uproot.recreate(tmp_path / "rn.root") as f:
        f["Events"] = data
    info, _ = passthrough(tmp_path / "rn.root", tmp_path / "back.root", chunk=300)
    assert (info.counter, info.jet_branches, info.extra["not_carried"]) == ("nJet", ["Jet_btag"], [])
    orig = uproot.open(tmp_path / "rn.root")["Events"].arrays()
    back = uproot.open(tmp_path / "back.root")["Events"].arrays()
    assert back.fields == orig.fields and same(back, orig)
    assert str(back.type) == str(orig.type)


def test_lhco_style_jets_per_row(tmp_path):
    """(px, py, pz, m) per jet as pxj1, pyj1, pzj1, mj1, ... with per-jet tau21j1, tau21j2."""
    rng = np.random.default_rng(4)
    cols = {}
    for j in (1, 2):
        for v in ("px", "py", "pz"):
            cols[f"{v}j{j}"] = rng.normal(0, 300, 300)
        cols[f"mj{j}"] = rng.uniform(10, 500, 300)
        cols[f"tau21j{j}"] = rng.uniform(0, 1, 300)
    cols["mjj"] = rng.uniform(0, 4000, 300)
    with uproot.recreate(tmp_path / "lhco.root") as f:
        f.mktree("output", {k: np.float64 for k in cols}).extend(cols)
    info, _ = passthrough(tmp_path / "lhco.root", tmp_path / "back.root")
    assert (info.layout, info.collection, info.representation) == ("jets-per-row", "j*", "PxPyPzM")
    assert info.jet_branches == ["tau21j*"] and info.kept_branches == ["mjj"]
    back = uproot.open(tmp_path / "back.root")["output"]
    assert back.keys() == list(cols)
    b = back.arrays(library="np")
    for k, v in cols.items():
        np.testing.assert_allclose(b[k], v, rtol=1e-6)  # jet columns come back float32
    assert b["tau21j2"].tobytes() == cols["tau21j2"].tobytes()


def test_indexed_jets_per_row_with_absent_jets(tmp_path):
    """jet1_pt, jet2_pt, ... (index inside the name); a NaN third jet is an absent jet."""
    rng = np.random.default_rng(5)
    n = 200
    cols = {"met": rng.uniform(0, 50, n)}
    for j in (1, 2, 3):
        for v, val in (("pt", rng.uniform(30, 300, n)), ("eta", rng.normal(0, 1, n)),
                       ("phi", rng.uniform(-3, 3, n)), ("m", rng.uniform(1, 20, n))):
            cols[f"jet{j}_{v}"] = val.astype(np.float32)
    for v in ("pt", "eta", "phi", "m"):
        cols[f"jet3_{v}"][::4] = np.nan  # every 4th event has two jets
    with uproot.recreate(tmp_path / "w.root") as f:
        f.mktree("t", {k: v.dtype for k, v in cols.items()}).extend(cols)
    src = RootSource(str(tmp_path / "w.root"))
    assert src.info.layout == "jets-per-row" and src.info.kept_branches == ["met"]
    counts = np.concatenate([c.counts for c in src.chunks()])
    assert counts[0] == 2 and counts[1] == 3 and counts.sum() == 3 * n - n // 4
    passthrough(tmp_path / "w.root", tmp_path / "back.root")
    back = uproot.open(tmp_path / "back.root")["t"]
    assert back.keys() == list(cols)
    b = back.arrays(library="np")
    for k, v in cols.items():
        np.testing.assert_array_equal(b[k], v)  # absent jets come back as NaN


# ------------------------------------------------------------------ TLorentzVector

def test_vector_of_tlorentzvector_jets(tmp_path):
    src = shared(PUBLIC / "uproot-HZZ-objects.root")
    info, _ = passthrough(src, tmp_path / "t.root")
    assert (info.collection, info.representation) == ("jetp4", "PxPyPzE")
    assert info.columns == {"px": "jetp4_px", "py": "jetp4_py", "pz": "jetp4_pz", "E": "jetp4_E"}
    assert info.jet_branches == ["jetbtag", "jetid"]
    # other object branches travel as their numeric members, named as ROOT draws them
    assert info.extra["not_carried"] == []
    assert {"muonp4.fP.fX", "muonp4.fE"} <= set(info.carried_branches)
    assert {"MET.fX", "MET.fY"} <= set(info.kept_branches)
    # and what comes back in another form says so, one line each
    assert any("uproot cannot write TLorentzVector" in n for n in info.extra["restored_as"])
    p4 = uproot.open(src)["events"]["jetp4"].array()
    back = uproot.open(tmp_path / "t.root")["events"]
    for role, member in (("px", p4.fP.fX), ("py", p4.fP.fY), ("pz", p4.fP.fZ), ("E", p4.fE)):
        np.testing.assert_allclose(ak.flatten(back[f"jetp4_{role}"].array()).to_numpy(),
                                   ak.flatten(member).to_numpy(), rtol=1e-6)  # written float32
    orig = uproot.open(src)["events"]
    assert same(back["jetbtag"].array(), orig["jetbtag"].array())
    assert same(back["muonp4.fE"].array(), orig["muonp4"].array().fE)
    assert same(back["MET.fY"].array(), orig["MET"].array().fY)


# ------------------------------------------------------------------ several jets per row

def test_several_jets_per_row(tmp_path):
    src = shared(PUBLIC / "uproot-issue243-new.root")
    first = RootSource(str(src)).info  # several trees hold jets per row: the first, and compress codes all
    assert first.layout == "jets-per-row"
    info, _ = passthrough(src, tmp_path / "h.root", tree="sig")
    assert info.layout == "jets-per-row" and info.collection == "h*_j*"
    assert info.extra["slots"]["slots"] == ["h1_j1", "h1_j2", "h2_j1", "h2_j2"]
    assert info.representation == "EPtEtaPhi"
    # the pattern names a header records open the same layout again (evaluate does this)
    assert RootSource(str(src), tree="sig", columns=info.columns).info.extra["slots"] == info.extra["slots"]
    chunks = list(RootSource(str(src), tree="sig").chunks())
    orig = uproot.open(src)["sig"].arrays(library="np")
    assert all(np.all(c.counts == 4) for c in chunks)
    pt = np.concatenate([c.columns["pt"] for c in chunks])
    np.testing.assert_array_equal(pt[1::4], orig["pT_h1_j2"])
    back_file = uproot.open(tmp_path / "h.root")
    back = back_file["sig"]
    assert back.keys() == uproot.open(src)["sig"].keys()  # same branches, same order
    b = back.arrays(library="np")
    for name in orig:
        if name.split("_")[0] in ("E", "pT", "eta", "phi") and name.count("_") == 2:
            np.testing.assert_allclose(b[name], orig[name], rtol=1e-6)  # jet columns: float32
        else:
            assert b[name].tobytes() == orig[name].tobytes(), name
    assert {"sideband;1", "TwoTagCutflow;1", "triggerList;1"} <= set(back_file.keys())
    assert not any("isMC" in m for m in info.extra.get("not_carried", []))  # carried raw (root_extras)
    assert back_file["isMC"].member("fVal") == uproot.open(src)["isMC"].member("fVal")


# ------------------------------------------------------------------ units by layout

def test_nanoaod_units_from_the_layout_for_every_collection():
    src = shared(CASES / "nano_boosted_fatjet.root")
    info = open_table(src, collection="FatJet").info
    assert (info.units, info.units_inferred, info.layout) == ("GeV", False, "nanoaod")
    ttbar = shared(PUBLIC / "nanoAOD_2015_CMS_Open_Data_ttbar.root")
    for coll in ("Jet", "FatJet", "GenJet", "GenJetAK8"):
        info = open_table(ttbar, collection=coll).info
        assert (info.units, info.units_inferred, info.counter) == ("GeV", False, f"n{coll}")
        assert info.dtypes[f"n{coll}"] == "uint32"


def test_open_data_nanoaod_947_branches_whole_file(tmp_path):
    """A real NanoAOD file: every branch back, in order, with its type (uint32 counters stay
    uint32), every value bit-identical (here the jets too: no codec in between)."""
    src = shared(PUBLIC / "nanoAOD_2015_CMS_Open_Data_ttbar.root")
    info, _ = passthrough(src, tmp_path / "t.root", chunk=100)
    assert len(info.branch_order) == 947 and info.other_branches == [] and info.extra["not_carried"] == []
    assert "Jet_btagDeepFlavB" in info.jet_branches and "Muon_pt" in info.carried_branches
    orig, back = uproot.open(src)["Events"], uproot.open(tmp_path / "t.root")["Events"]
    assert back.keys() == orig.keys() and back.num_entries == orig.num_entries
    o, b = orig.arrays(library="ak"), back.arrays(library="ak")
    for name in orig.keys(recursive=True):
        assert back[name].typename == orig[name].typename, name
        x, y = o[name], b[name]
        if x.ndim > 1:
            assert np.array_equal(ak.num(x).to_numpy(), ak.num(y).to_numpy()), name
            x, y = ak.flatten(x), ak.flatten(y)
        assert x.to_numpy().tobytes() == y.to_numpy().tobytes(), name


def test_uproot_writer_fixes_are_exact(tmp_path):
    """The linear-time tree creation gives uproot's own bytes and offsets; counters keep their type."""
    from uproot.writing import _cascadetree

    from jetzip.tables import root_fastwrite

    if not root_fastwrite.install():
        pytest.skip(f"uproot writer fixes not in use: {root_fastwrite._STATE['why']}")
    fast = _cascadetree.Tree._build_out
    slow = _uproot_build_out()
    assert fast is not slow
    flt = ak.types.ListType(ak.types.NumpyType("float32"))
    types: dict = {}
    for i in range(300):
        types[f"b{i}"] = [np.float32, np.int64, np.dtype(("f8", (2,))), np.bool_, np.uint16][i % 5]
        if i % 4 == 0:
            types[f"v{i}"] = flt
    with uproot.recreate(tmp_path / "w.root") as f:
        tree = f.mktree("T", types, counter_name=lambda b: "nV" if int(b[1:]) % 8 else f"n{b}")
        tree.extend({k: ak.Array([[1.0], [], [2.0, 3.0]]) if k.startswith("v") else
                     np.zeros((3, *np.dtype(v).shape), np.dtype(v).base) for k, v in types.items()})
        cascading = tree._cascading

        def offsets():
            return [(d.get("metadata_start"), d.get("basket_metadata_start"), d.get("tleaf_reference_number"))
                    for d in cascading._branch_data]

        a, oa = b"".join(fast(cascading)), offsets()
        b, ob = b"".join(slow(cascading)), offsets()
        assert a == b and oa == ob
    assert root_fastwrite._counter_check()


def _uproot_build_out():
    """uproot's own (quadratic) _build_out, compiled from its source file."""
    import textwrap

    from uproot.writing import _cascadetree

    with open(_cascadetree.__file__) as f:
        text = f.read()
    start = text.index("    def _build_out(self):")
    end = text.index("\n    def ", start + 10)
    namespace = dict(vars(_cascadetree))
    exec(compile(textwrap.dedent(text[start:end]), "uproot_build_out", "exec"), namespace)  # noqa: S102
    return namespace["_build_out"]


# ------------------------------------------------------------------ hostile files

def test_skewed_file_chunks_are_bounded_by_jets():
    src = shared(CASES / "hostile" / "skewed_1e7.root")
    s = RootSource(str(src))
    total, biggest, events = 0, 0, 0
    for c in s.chunks(1 << 18):
        biggest = max(biggest, c.n_jets)
        total += c.n_jets
        events += len(c.counts)
        assert c.n_jets <= (1 << 18) or len(c.counts) == 1
    assert (total, events) == (10_000_000, 2100)
    assert biggest <= 1 << 18


def test_string_jet_column_is_one_clear_line():
    src = shared(CASES / "hostile" / "string_branch_flat.root")
    with pytest.raises(InputError) as exc:
        open_table(src)
    msg = str(exc.value)
    assert "\n" not in msg and "pt (char*)" in msg and "not numbers" in msg


# ------------------------------------------------------------------ threads

def test_thread_pool_gives_the_same_chunks():
    src = shared(PUBLIC / "nanoAOD_2015_CMS_Open_Data_ttbar.root")
    one = [c for c in RootSource(str(src), threads=1).chunks(200)]
    two = [c for c in RootSource(str(src), threads=2).chunks(200)]
    assert len(one) == len(two)
    for a, b in zip(one, two):
        for k in a.columns:
            assert a.columns[k].tobytes() == b.columns[k].tobytes()
        for k in a.jet_kept:
            assert a.jet_kept[k].tobytes() == b.jet_kept[k].tobytes()


def test_record_fields_with_deeper_lists_get_their_own_counters(tmp_path):
    """Fields written from carried records: a list of records A whose member b is a list of
    lists (A.b: var * var * var) restores as A.b, A.b_counts (one per A, A's counter) and
    A.b_counts3 (one per list of A.b_counts: a counter of its own); one record per event R whose
    lists differ in length (R.p, R.q) gives each its own counter. Both used to share nA / nR,
    which uproot refused (an internal error at decompress). Every field is rebuilt exactly."""
    rng = np.random.default_rng(5)
    n = 40
    counts = rng.integers(1, 5, n)
    jets = {k: ak.unflatten(rng.uniform(1, 2, counts.sum()).astype(np.float32), counts)
            for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass")}
    a = ak.Array([[{"x": float(rng.uniform()),
                    "b": [rng.uniform(size=rng.integers(0, 3)).tolist() for _ in range(rng.integers(0, 3))]}
                   for _ in range(rng.integers(0, 4))] for _ in range(n)])
    r = ak.Array([{"p": rng.uniform(size=rng.integers(0, 4)).tolist(),
                   "q": rng.uniform(size=rng.integers(0, 4)).tolist()} for _ in range(n)])
    src = tmp_path / "records.parquet"
    ak.to_parquet(ak.zip({**jets, "A": a, "R": r}, depth_limit=1), src)
    aez = tmp_path / "x.aez"
    jetzip.compress(src, aez, error_bound="1e-3")
    jetzip.decompress(aez, tmp_path / "y.root")
    with uproot.open(tmp_path / "y.root") as f:
        t = f[next(k for k, c in f.classnames().items() if c == "TTree")]
        values, c2, c3 = (t[f"A.b{s}"].array() for s in ("", "_counts", "_counts3"))
        assert ak.to_list(ak.num(c2)) == ak.to_list(ak.num(a))
        inner = ak.unflatten(ak.flatten(values), ak.flatten(c3))
        assert ak.array_equal(ak.unflatten(ak.unflatten(inner, ak.flatten(c2)), ak.num(c2)), a.b)
        assert ak.array_equal(t["A.x"].array(), a.x)
        assert ak.array_equal(t["R.p"].array(), r.p) and ak.array_equal(t["R.q"].array(), r.q)
    back = jetzip.arrays(aez, ["A", "R"])
    assert ak.array_equal(back.A, a) and ak.array_equal(back.R, r)


def test_missing_entries_and_a_field_named_like_a_counter_restore_to_root(tmp_path):
    """Parquet columns a TTree cannot hold as they are: a record that may be missing (R: ?{p,
    q}), a list that may be missing (L: option[var * float32]), and an input field nA beside a
    list of records A, whose counter uproot would name nA too. Restored: missing lists as empty
    ones (said), every entry kept (dropping them made the branches' lengths disagree: an
    internal error), and nA with its own values, A's counter another name (nA held A's lengths,
    silently)."""
    rng = np.random.default_rng(8)
    n = 50
    counts = rng.integers(1, 5, n)
    jets = {k: ak.unflatten(rng.uniform(1, 2, counts.sum()).astype(np.float32), counts)
            for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass")}
    r = ak.Array([None if i % 7 == 3 else {"p": rng.uniform(size=rng.integers(0, 4)).tolist(),
                                            "q": rng.uniform(size=rng.integers(0, 4)).tolist()} for i in range(n)])
    lists = ak.Array([None if i % 5 == 2 else rng.uniform(size=rng.integers(0, 4)).tolist() for i in range(n)])
    a = ak.Array([[{"x": float(rng.uniform())} for _ in range(rng.integers(0, 4))] for _ in range(n)])
    na = rng.integers(100, 200, n)
    src = tmp_path / "odd.parquet"
    ak.to_parquet(ak.zip({**jets, "R": r, "L": lists, "A": a, "nA": na}, depth_limit=1), src)
    aez = tmp_path / "x.aez"
    jetzip.compress(src, aez, error_bound="1e-3")
    warnings: list[str] = []
    jetzip.decompress(aez, tmp_path / "y.root", warn=warnings.append)
    assert any("missing entries (None)" in w for w in warnings), warnings
    with uproot.open(tmp_path / "y.root") as f:
        t = f[next(k for k, c in f.classnames().items() if c == "TTree")]
        assert t.num_entries == n
        assert t["nA"].array().tolist() == na.tolist()
        assert ak.array_equal(t["A.x"].array(), a.x)
        assert t["A.x"].count_leaf.member("fName") != "nA"
        assert ak.array_equal(t["L"].array(), ak.fill_none(lists, [], axis=0))
        for field in ("p", "q"):
            assert ak.array_equal(t[f"R.{field}"].array(), ak.fill_none(r[field], [], axis=0))


@pytest.mark.parametrize("write_jets", [None, 8])
def test_lists_of_equal_lengths_share_a_counter_when_the_tree_comes_whole(tmp_path, monkeypatch, write_jets):
    """Lists without a counter in the input (Parquet lists here, ``std::vector`` branches in
    ROOT) each get one from uproot's TTree writer. A tree that comes to the writer in one chunk
    shares one counter among the lists whose lengths agree in every entry (a and b; c differs in
    the last entry and keeps its own); one that comes in several chunks keeps one each (a later
    chunk could disagree). Every list comes back with its values either way."""
    rng = np.random.default_rng(11)
    n = 60
    counts = rng.integers(1, 5, n)
    jets = {k: ak.unflatten(rng.uniform(1, 2, counts.sum()).astype(np.float32), counts)
            for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass")}
    la = rng.integers(0, 4, n)
    lc = la.copy()
    lc[-1] += 1
    lists = {"a": ak.unflatten(rng.uniform(size=la.sum()), la),
             "b": ak.unflatten(rng.integers(0, 9, la.sum()), la),
             "c": ak.unflatten(rng.uniform(size=lc.sum()), lc)}
    src = tmp_path / "lists.parquet"
    ak.to_parquet(ak.zip({**jets, **lists}, depth_limit=1), src)
    aez = tmp_path / "x.aez"
    jetzip.compress(src, aez, error_bound="1e-3", chunk_jets=40)
    if write_jets is not None:  # every chunk of the .aez reaches the writer on its own
        monkeypatch.setattr(jetzip.api, "MIN_WRITE_JETS", write_jets)
    said: list[str] = []
    jetzip.decompress(aez, tmp_path / "y.root", warn=said.append)
    shared = [w for w in said if "share one counter" in w]
    with uproot.open(tmp_path / "y.root") as f:
        t = f[next(k for k, c in f.classnames().items() if c == "TTree")]
        counter = {k: t[k].count_leaf.member("fName") for k in lists}
        if write_jets is None:
            assert counter["a"] == counter["b"] != counter["c"], counter
            assert len(shared) == 1 and "1 branch(es) (b)" in shared[0], said
        else:
            assert len(set(counter.values())) == 3 and not shared, (counter, said)
        for k, values in lists.items():
            assert ak.array_equal(t[k].array(), values), k


def test_arrow_lists_whose_items_may_be_missing_restore_to_root(tmp_path):
    """pyarrow (and pandas) write list items as nullable: ``var * ?float64``, ``var * ?string``,
    lists of nullable lists and records. uproot writes no option type (decompress to .root was a
    TypeError traceback); a missing item comes back as 0, an empty string or list, said as
    ``restored as`` (missing entries), and every other value as it was."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    n = 30
    tags = [None if i == 7 else [None if k == 1 and i % 4 == 0 else f"t{k}" for k in range(i % 3)] for i in range(n)]
    fl = [[None if k == 1 and i % 5 == 0 else float(k) for k in range(i % 3)] for i in range(n)]
    full = [[float(k) for k in range(i % 4)] for i in range(n)]  # nullable type, nothing missing
    lol = [None if i == 3 else [None if (i == 5 and j == 0) else [None if k == 0 and i == 9 else k for k in range(j)]
                                for j in range(i % 3)] for i in range(n)]
    recs = [[None if (i == 4 and k == 0) else {"a": k, "b": None if i == 6 else "x" * k} for k in range(i % 3)]
            for i in range(n)]
    pq.write_table(pa.table({"pt": np.linspace(20, 70, n), "eta": np.zeros(n), "phi": np.zeros(n),
                             "mass": np.ones(n), "tags": tags, "fl": fl, "full": full, "lol": lol, "recs": recs}),
                   tmp_path / "a.parquet")
    jetzip.compress(tmp_path / "a.parquet", tmp_path / "a.aez", error_bound="1e-3", units="GeV")
    said: list[str] = []
    jetzip.decompress(tmp_path / "a.aez", tmp_path / "b.root", warn=said.append)
    missing = [w for w in said if "missing entries" in w]
    assert len(missing) == 1 and "full" not in missing[0] and "(fl, tags, lol, recs)" in missing[0], said
    with uproot.open(tmp_path / "b.root") as f:
        t = f[next(k for k, c in f.classnames().items() if c == "TTree")]
        got = {k: t[k].array().tolist() for k in t.keys()}
    assert got["tags_counts"] == [[len(s or "") for s in (row or [])] for row in tags]
    assert got["fl"] == [[0.0 if v is None else v for v in row] for row in fl]
    assert got["full"] == full
    assert got["lol_counts"] == [[len(x or []) for x in (row or [])] for row in lol]
    assert got["lol"] == [[0 if v is None else v for x in (row or []) for v in (x or [])] for row in lol]
    assert got["recs.a"] == [[0 if r is None else r["a"] for r in row] for row in recs]
    assert got["recs.b_counts"] == [[0 if r is None or r["b"] is None else len(r["b"]) for r in row] for row in recs]


def test_a_tree_written_at_once_is_created_before_the_next_table_and_the_other_objects(tmp_path):
    """A tree that comes in one chunk is held until it is complete, to share counters; tables
    come one after the other, so it is complete when the next table's chunk comes: created
    then (one table's chunk held at a time, not every table's until the end), and before the
    file's other objects: the restored keys in the input's order (trees, then the histogram),
    not the histogram first."""
    from jetzip.tables.root_writer import RootFileWriter

    rng = np.random.default_rng(4)
    n = 40
    counts = rng.integers(0, 4, n)
    jets = {f"Jet_{k}": ak.unflatten(rng.uniform(20, 90, counts.sum()).astype(np.float32), counts)
            for k in ("pt", "eta", "phi", "mass")}
    with uproot.recreate(tmp_path / "a.root") as f:  # TTrees (file[name] = {...} writes RNTuples)
        f.mktree("Events", {k: "var * float32" for k in jets}, counter_name=lambda b: "nJet")
        f["Events"].extend(jets)
        f.mktree("Aux", {"x": np.float64})
        f["Aux"].extend({"x": np.arange(7.0)})
        f["h"] = np.histogram(rng.uniform(size=10), bins=3)
    jetzip.compress(tmp_path / "a.root", tmp_path / "a.aez", error_bound="1e-3")
    seen: list[tuple[int, list[bool]]] = []
    write = RootFileWriter.write

    def spy(self, table, chunk):
        write(self, table, chunk)
        seen.append((table, [w.held is not None for w in self.writers.values()]))

    try:
        RootFileWriter.write = spy
        jetzip.decompress(tmp_path / "a.aez", tmp_path / "b.root")
    finally:
        RootFileWriter.write = write
    # after its chunk each tree is held; Events no more once Aux's chunk has come
    assert seen == [(0, [True]), (1, [False, True])], seen
    with uproot.open(tmp_path / "b.root") as f:
        assert f.keys(cycle=False) == ["Events", "Aux", "h"]
        assert f["Aux"]["x"].array(library="np").tolist() == list(range(7))
        assert f.classnames(cycle=False) == {"Events": "TTree", "Aux": "TTree", "h": "TH1D"}
        assert ak.array_equal(f["Events"]["nJet"].array(), counts, dtype_exact=False)


def test_a_chunk_carries_its_own_entries_not_the_whole_read(tmp_path):
    """A chunk of entries is a slice of what the reader read at once; ak.to_buffers keeps a
    slice's whole content, so every chunk stored the values of all its neighbours too (a
    ROOT file with std::vector branches compressed with 1,024 jets per chunk: 138% of the
    input instead of 42%). Each chunk's carried group holds its own entries only."""
    from jetzip import carry

    lists = ak.Array([[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]] * 1000)
    texts = ak.Array([["ab", "c"], [], ["def"]] * 1000)
    part = {"x": lists[100:110], "s": texts[300:302]}
    block = carry.pack_group(part, carry.METHOD_ZSTD)
    assert block == carry.pack_group({k: ak.to_packed(v) for k, v in part.items()}, carry.METHOD_ZSTD)
    back = carry.unpack_group(block, {"x": 10, "s": 2}, "test")
    assert back["x"].tolist() == lists[100:110].tolist() and back["s"].tolist() == texts[300:302].tolist()

    rng = np.random.default_rng(2)
    n = 3000
    counts = rng.integers(1, 4, n)
    jets = {f"Jet_{k}": ak.unflatten(rng.uniform(20, 90, counts.sum()).astype(np.float32), counts)
            for k in ("pt", "eta", "phi", "mass")}
    other = rng.integers(0, 6, n)
    extra = {"v": ak.unflatten(rng.uniform(size=other.sum()), other)}
    with uproot.recreate(tmp_path / "a.root") as f:
        f.mktree("Events", {**{k: "var * float32" for k in jets}, "v": "var * float64"},
                 counter_name=lambda b: "nJet" if b.startswith("Jet_") else f"n{b}")
        f["Events"].extend({**jets, **extra})
    sizes = {}
    for chunk_jets in (100, 1 << 20):
        jetzip.compress(tmp_path / "a.root", tmp_path / f"{chunk_jets}.aez", error_bound="1e-3", chunk_jets=chunk_jets)
        sizes[chunk_jets] = os.path.getsize(tmp_path / f"{chunk_jets}.aez")
    assert sizes[100] < 2 * sizes[1 << 20], sizes  # ~60 chunks against 1: 1.26x (20.5x before)
    jetzip.decompress(tmp_path / "100.aez", tmp_path / "b.root")
    with uproot.open(tmp_path / "b.root") as f:
        assert ak.array_equal(f["Events"]["v"].array(), extra["v"])
