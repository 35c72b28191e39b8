"""Every four-vector table under a guaranteed bound (issue 21): every collection of an event
file, Cartesian tables (CMS HZZ tutorial, EDM4hep), constituents (JetClass-like), each checked
value by value by ``evaluate`` with the codec's own errors (Cartesian bounds relative to pt and
|p| of the original four-vector)."""
from __future__ import annotations

import numpy as np
import pytest
import uproot

import jetzip

from conftest import SHARED, shared_file


EVERY_KIND = "Jet,FatJet,GenJet,Electron,Muon,Tau,GenPart"


def test_every_collection_of_a_nanoaod_within_its_bound(tmp_path):
    """Named collections are coded whatever they cost (``all`` codes only those that pay:
    :func:`test_collection_all_codes_what_is_smaller_coded`)."""
    src = shared_file(SHARED / "data" / "nano_dy.root")
    out = tmp_path / "all.aez"
    rep = jetzip.compress(src, out, error_bound="nanoaod", collection=EVERY_KIND)
    ev = jetzip.evaluate(src, out)
    names = {c["collection"] for c in ev["collections"]}
    assert set(EVERY_KIND.split(",")) == names, names
    assert ev["all_within_bounds"] and all(c["all_within_bounds"] for c in ev["collections"])
    table = jetzip.inspect(out)["tables"][0]
    by_name = {c["name"]: c for c in table["collections"]}
    assert by_name["Muon"]["jets"] == int(uproot.open(src)["Events"]["nMuon"].array(library="np").sum())
    assert sum(c["bytes"] for c in table["collections"]) <= rep["bytes"]
    # and they come back in place, the rest bit for bit
    jetzip.decompress(out, tmp_path / "back.root")
    back = uproot.open(tmp_path / "back.root")["Events"]
    orig = uproot.open(src)["Events"]
    assert back.keys() == orig.keys()
    np.testing.assert_array_equal(back["nMuon"].array(library="np"), orig["nMuon"].array(library="np"))


@pytest.mark.parametrize("bound", ["1e-3", "nanoaod"])
@pytest.mark.parametrize("name", ["uproot-HZZ.root", "p8_ee_WW_ecm240_edm4hep.root"])
def test_cartesian_tables_within_the_cartesian_bound(tmp_path, name, bound):
    """(px, py, pz, E): |dpx|, |dpy| <= b pt, |dpz| <= b |p|, E relative, every jet; at 1e-3
    and at NanoAOD's precision (what it puts on px, py, pz and E: params.NANOAOD_CARTESIAN)."""
    from jetzip.codecs.bounded.params import NANOAOD_CARTESIAN

    src = shared_file(SHARED / "data" / "public" / name)
    out = tmp_path / "c.aez"
    jetzip.compress(src, out, error_bound=bound)
    ev = jetzip.evaluate(src, out)
    assert ev["all_within_bounds"], ev["bounds"]
    assert set(ev["bounds"]) == {"px", "py", "pz", "E"}
    for role, b in ev["bounds"].items():
        assert b["bound"] == (1e-3 if bound == "1e-3" else NANOAOD_CARTESIAN[role])
        assert 0 < b["max_error"] <= b["bound"]
    assert ev["bounds"]["px"]["kind"] == "relative to pt" and ev["bounds"]["pz"]["kind"] == "relative to |p|"
    jetzip.decompress(out, tmp_path / "back.root")  # restored in the input's own columns
    t0 = uproot.open(src)
    tree = next(k.rpartition(";")[0] for k, c in t0.classnames().items() if c == "TTree")
    assert uproot.open(tmp_path / "back.root")[tree].keys() == t0[tree].keys() or name.startswith("p8")


def test_jetclass_constituents_at_most_4_bytes_per_particle(tmp_path):
    """JetClass-like part_px/py/pz/energy at 1e-3 (byte-shuffled LZMA-9: 12.8 B per particle)."""
    src = shared_file(SHARED / "cases" / "jetclass_like.root")
    out = tmp_path / "p.aez"
    jetzip.compress(src, out, error_bound="1e-3", collection="part")
    info = jetzip.inspect(out)
    coll = info["tables"][0]["collections"][0]
    assert coll["name"] == "part" and info["codec_config"].get("kind") == "constituents"
    assert coll["bytes"] / coll["jets"] <= 4.0, coll["bytes"] / coll["jets"]
    assert jetzip.evaluate(src, out)["all_within_bounds"]


@pytest.mark.parametrize("name", ["toplandscape_like.h5", "semicolon.csv"])
def test_collection_all_on_a_one_collection_format_codes_that_collection(tmp_path, name):
    """HDF5, Parquet and CSV tables hold one four-vector collection: --collection all is it (the
    same file as with no --collection), never 'no jet collection all'."""
    src = shared_file(SHARED / "cases" / name)
    a = jetzip.compress(src, tmp_path / "all.aez", error_bound=1e-3, collection="all")
    b = jetzip.compress(src, tmp_path / "default.aez", error_bound=1e-3)
    assert a["n_jets"] == b["n_jets"] > 0
    assert (tmp_path / "all.aez").read_bytes() == (tmp_path / "default.aez").read_bytes()


@pytest.mark.parametrize("bound", ["1e-3", "nanoaod"])
@pytest.mark.parametrize("name", ["cases/nano_tt_v12_lzma9_200.root", "data/nano_dy.root"])
def test_collection_all_codes_what_is_smaller_coded(tmp_path, name, bound):
    """``--collection all`` on a NanoAOD: a smaller file than the jet collections alone (the
    default), every coded collection within its bound, the others carried bit for bit and named
    in the header's notes and by ``inspect``."""
    src = shared_file(SHARED / name)
    every = jetzip.compress(src, tmp_path / "all.aez", error_bound=bound, collection="all")
    jets = jetzip.compress(src, tmp_path / "jets.aez", error_bound=bound)
    assert every["bytes"] < jets["bytes"], (every["bytes"], jets["bytes"])
    carried = [line.partition(":")[0] for line in every["carried_not_coded"]]
    info = jetzip.inspect(tmp_path / "all.aez")
    coded = [c["name"] for c in info["tables"][0]["collections"]]
    assert coded[0] == "Jet" and not set(carried) & set(coded)
    assert info["header"]["notes"]["coded_or_carried"] == every["carried_not_coded"]
    ev = jetzip.evaluate(src, tmp_path / "all.aez")
    assert ev["all_within_bounds"] and {c["collection"] for c in ev["collections"]} == set(coded)
    jetzip.decompress(tmp_path / "all.aez", tmp_path / "back.root")
    orig, back = uproot.open(src)["Events"], uproot.open(tmp_path / "back.root")["Events"]
    for coll in carried:  # carried: every value as it was
        for branch in [k for k in orig.keys() if k.startswith(coll + "_")][:6]:
            import awkward as ak

            assert ak.array_equal(back[branch].array(), orig[branch].array()), branch


def test_collection_all_but_some(tmp_path):
    """``all,-GenPart,-Muon``: every collection but those, which are carried losslessly; leaving
    none out to code is refused in one line."""
    src = shared_file(SHARED / "cases" / "nano_tt_v12_lzma9_200.root")
    jetzip.compress(src, tmp_path / "x.aez", error_bound="1e-3", collection="all,-GenPart,-Muon")
    coded = {c["name"] for c in jetzip.inspect(tmp_path / "x.aez")["tables"][0]["collections"]}
    assert "Jet" in coded and not {"GenPart", "Muon"} & coded
    every = "all," + ",".join(f"-{c}" for c in ["Jet", "SubGenJetAK8", "FatJet", "Electron", "GenJet",
                                                 "GenJetAK8", "Muon", "GenPart"])
    with pytest.raises(jetzip.InputError, match="leaves no collection to code"):
        jetzip.compress(src, tmp_path / "y.aez", error_bound="1e-3", collection=every)
    assert not (tmp_path / "y.aez").exists()


def test_collections_of_pt_eta_phi_only_are_coded_beside_the_jets(tmp_path):
    """NanoAOD ``TrigObj``, ``IsoTrack`` (pt, eta, phi, no mass): coded under the bound when
    named after a four-vector collection (or chosen by ``all``), restored in their own three
    columns (no mass column appears), read by ``jetzip.arrays``; refused alone and by the latent
    codec in one line."""
    import awkward as ak

    src = shared_file(SHARED / "data" / "nano_dy.root")
    out = tmp_path / "t.aez"
    jetzip.compress(src, out, error_bound="1e-3", collection="Jet,TrigObj,IsoTrack")
    coded = {c["name"]: c for c in jetzip.inspect(out)["tables"][0]["collections"]}
    orig = uproot.open(src)["Events"]
    assert coded["TrigObj"]["jets"] == int(orig["nTrigObj"].array(library="np").sum()) > 0
    ev = jetzip.evaluate(src, out)
    by = {c["collection"]: c for c in ev["collections"]}
    assert ev["all_within_bounds"] and set(by["TrigObj"]["bounds"]) == {"pt", "eta", "phi"}
    jetzip.decompress(out, tmp_path / "back.root")
    back = uproot.open(tmp_path / "back.root")["Events"]
    assert back.keys() == orig.keys()  # no TrigObj_mass, every branch in its place
    pt0, pt1 = (ak.flatten(t["TrigObj_pt"].array()).to_numpy().astype(np.float64) for t in (orig, back))
    assert np.all(np.abs(pt1 - pt0) <= 1e-3 * pt0) and not np.array_equal(pt0, pt1)  # coded, within bound
    np.testing.assert_array_equal(back["TrigObj_id"].array(library="np")[0], orig["TrigObj_id"].array(library="np")[0])
    arr = jetzip.arrays(out, ["TrigObj_phi", "TrigObj_pt"])
    assert ak.all(ak.num(arr["TrigObj_pt"]) == orig["nTrigObj"].array())
    with pytest.raises(jetzip.InputError, match="pt, eta and phi only"):
        jetzip.compress(src, tmp_path / "a.aez", error_bound="1e-3", collection="TrigObj")
    with pytest.raises(jetzip.InputError, match="latent codec codes four-vectors"):
        jetzip.compress(src, tmp_path / "b.aez", collection="Jet,TrigObj")
    assert not (tmp_path / "a.aez").exists() and not (tmp_path / "b.aez").exists()


def test_collection_all_with_the_latent_codec_codes_jets_only(tmp_path):
    """The latent codec's network is trained on jets: with ``all`` it codes the jet collections
    and carries muons, particles and pt-eta-phi collections losslessly, saying so."""
    src = shared_file(SHARED / "data" / "nano_dy.root")
    rep = jetzip.compress(src, tmp_path / "l.aez", collection="all")
    coded = {c["name"] for c in jetzip.inspect(tmp_path / "l.aez")["tables"][0]["collections"]}
    assert "Jet" in coded and not {"GenPart", "Muon", "TrigObj"} & coded
    assert {line.partition(":")[0] for line in rep["carried_not_coded"]} >= {"GenPart", "Muon", "TrigObj"}


@pytest.mark.parametrize("bound", ["1e-3", "nanoaod"])
def test_collection_all_on_a_nanoaod_as_parquet(tmp_path, bound):
    """NanoAOD written as Parquet (``Muon_pt`` lists beside ``nMuon``): ``all`` codes every
    collection that pays, as for ROOT; the restored Parquet file has the input's schema, every
    column not coded equal to the input's and every coded one within its bound."""
    import awkward as ak
    import pyarrow.parquet as pq

    src = shared_file(SHARED / "data" / "public" / "nano_dy.parquet")
    every = jetzip.compress(src, tmp_path / "all.aez", error_bound=bound, collection="all")
    jets = jetzip.compress(src, tmp_path / "jets.aez", error_bound=bound)
    assert every["bytes"] < jets["bytes"], (every["bytes"], jets["bytes"])
    coded = [c["name"] for c in jetzip.inspect(tmp_path / "all.aez")["tables"][0]["collections"]]
    assert coded[0] == "Jet" and len(coded) > 1, coded
    assert jetzip.evaluate(src, tmp_path / "all.aez")["all_within_bounds"]
    jetzip.decompress(tmp_path / "all.aez", tmp_path / "back.parquet")
    a, b = pq.read_table(src), pq.read_table(tmp_path / "back.parquet")
    assert a.schema.equals(b.schema, check_metadata=True)
    changed = {n for n in a.column_names
               if not ak.array_equal(ak.from_arrow(a[n]), ak.from_arrow(b[n]), equal_nan=True)}
    assert changed and all(n.split("_")[0] in coded for n in changed), changed


def test_named_collections_of_a_nanoaod_as_parquet(tmp_path):
    """``--collection Jet,Muon,TrigObj`` on Parquet: each coded (TrigObj: pt, eta, phi only),
    the counters (``nMuon``) written back from the lists."""
    import pyarrow.parquet as pq

    src = shared_file(SHARED / "data" / "public" / "nano_dy.parquet")
    out = tmp_path / "x.aez"
    jetzip.compress(src, out, error_bound="1e-3", collection="Jet,Muon,TrigObj")
    assert [c["name"] for c in jetzip.inspect(out)["tables"][0]["collections"]] == ["Jet", "Muon", "TrigObj"]
    assert jetzip.evaluate(src, out)["all_within_bounds"]
    jetzip.decompress(out, tmp_path / "back.parquet")
    a, b = pq.read_table(src), pq.read_table(tmp_path / "back.parquet")
    assert a.schema.equals(b.schema) and a["nMuon"].equals(b["nMuon"]) and a["Muon_charge"].equals(b["Muon_charge"])


def _event_file(path, **lists):
    """A small NanoAOD-like ROOT file: ``Events`` with jagged float32 lists given as
    (name -> list of per-event lists) and their counters ``nX``."""
    import awkward as ak

    branches = {k: ak.values_astype(ak.Array([[float(x) for x in ev] for ev in v]), np.float32)
                for k, v in lists.items()}
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", {k: "var * float32" for k in branches},
                        counter_name=lambda name: "n" + name.split("_")[0] + ("X" if name.endswith("_x") else ""))
        tree.extend(branches)


def test_collection_all_carries_what_it_cannot_code(tmp_path):
    """``all`` carries, losslessly, a further collection with NaN in its first entries and a
    per-member list whose lengths disagree with its collection's (Delphes' ``Track.fBits``);
    ``--keep-branches`` decides which collections ``all`` codes; typos and odd lists are refused
    in one line; a list whose first name holds pt, eta, phi only starts with its four-vectors."""
    import awkward as ak

    rng = np.random.default_rng(5)
    n = 300
    jets = [rng.integers(1, 6) for _ in range(n)]
    trig = [rng.integers(1, 4) for _ in range(n)]

    def lists(counts, lo, hi):
        return [list(rng.uniform(lo, hi, k)) for k in counts]

    pt = lists(trig, 20, 200)
    pt[0][0] = float("nan")
    src = tmp_path / "ev.root"
    _event_file(src, Jet_pt=lists(jets, 20, 300), Jet_eta=lists(jets, -2, 2), Jet_phi=lists(jets, -3, 3),
                Jet_mass=lists(jets, 5, 20), TrigObj_pt=pt, TrigObj_eta=lists(trig, -2, 2),
                TrigObj_phi=lists(trig, -3, 3), Muon_pt=lists(trig, 10, 100), Muon_eta=lists(trig, -2, 2),
                Muon_phi=lists(trig, -3, 3), Muon_mass=[[0.105] * k for k in trig],
                Muon_x=lists([k + 1 for k in trig], 0, 1))  # a Muon_ list of other lengths (nMuonX)
    rep = jetzip.compress(src, tmp_path / "a.aez", error_bound="1e-3", collection="all")
    assert any(line.startswith("TrigObj:") and "NaN" in line for line in rep["carried_not_coded"])
    jetzip.decompress(tmp_path / "a.aez", tmp_path / "back.root")
    orig, back = uproot.open(src)["Events"], uproot.open(tmp_path / "back.root")["Events"]
    assert ak.array_equal(orig["TrigObj_pt"].array(), back["TrigObj_pt"].array(), equal_nan=True)
    assert ak.array_equal(orig["Muon_x"].array(), back["Muon_x"].array()) and back.keys() == orig.keys()
    assert jetzip.evaluate(src, tmp_path / "a.aez")["all_within_bounds"]
    # --keep-branches: only the collections the patterns leave in
    jetzip.compress(src, tmp_path / "k.aez", error_bound="1e-3", collection="all", keep_branches=["Jet_*"])
    assert [c["name"] for c in jetzip.inspect(tmp_path / "k.aez")["tables"][0]["collections"]] == ["Jet"]
    for bad, message in [("all,-Nope", "no collection Nope to leave out"), (",", "give 'all'"),
                         ("all,Jet", "give 'all'"), ("-Muon", "write all,-Muon")]:
        with pytest.raises(jetzip.InputError, match=message):
            jetzip.compress(src, tmp_path / "x.aez", error_bound="1e-3", collection=bad)
    with pytest.raises(jetzip.InputError, match="--drop-branches Muon_x"):  # named: coded, its lists checked
        jetzip.compress(src, tmp_path / "t.aez", error_bound="1e-3", collection="Muon,Jet")
    jetzip.compress(src, tmp_path / "t.aez", error_bound="1e-3", collection="Muon,Jet", drop_branches=["Muon_x"])
    assert [c["name"] for c in jetzip.inspect(tmp_path / "t.aez")["tables"][0]["collections"]] == ["Muon", "Jet"]
    with pytest.raises(jetzip.InputError, match="not both"):
        jetzip.compress(src, tmp_path / "x.aez", error_bound="1e-3", collection="all",
                        columns="pt=Muon_pt,eta=Muon_eta,phi=Muon_phi,m=Muon_mass")
    assert not (tmp_path / "x.aez").exists()
