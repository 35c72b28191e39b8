"""Restoring a multi-tree ROOT file to HDF5 carries every tree and every branch (issue 19).

Each tree becomes a group named as the tree (``/Events``, ``/Runs``); its branches become
datasets under their own names, a list per entry as its flat values with a counter dataset of
lengths per entry (the group attribute ``counters`` says which, the jets' counter is the
file's own), records as their fields and lists of lists as flattened lists with their lengths
(:func:`jetzip.tables.hdf5_writer.carried_columns`). The comparison below rebuilds every branch
of the input from the HDF5 file: non-jet values must be bit-identical, the coded jet columns
within the bounded codec's bound. Parquet and CSV hold one table and name each other tree in one
line.
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import jetzip
from conftest import REPO, SHARED, shared_file

_spec = importlib.util.spec_from_file_location("whole_file", REPO / "examples" / "whole_file.py")
assert _spec is not None and _spec.loader is not None
whole_file = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(whole_file)

BOUND = 1e-3  # relative for pt and mass, absolute for eta and phi (jetzip.compress error_bound)


def h5_branch(group: Any, name: str, entries: int) -> Any:
    """One restored column as an awkward array of `entries` entries: a list per entry when a
    counter counts it (named in the group's ``counters`` attribute, or the jets' ``n<prefix>``)."""
    import awkward as ak
    import h5py

    values = group[name][:]
    if h5py.check_string_dtype(group[name].dtype) is not None:
        values = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
        values = ak.Array(list(values))
    counters = json.loads(group.attrs.get("counters", "{}"))
    counter = next((c for c, members in counters.items() if name in members), None)
    prefix = f"n{name.split('_', 1)[0]}"
    if counter is None and len(values) != entries and prefix in group:
        counter = prefix
    if counter is None:
        return ak.Array(values)
    return ak.unflatten(values, np.asarray(group[counter][:], np.int64))


def compare_h5(original: Path, restored: Path, coded: set[str]) -> dict[str, Any]:
    """Every tree of `original` as a group of `restored` with every readable branch (in the
    forms :func:`carried_columns` documents); counts and the problems found."""
    import awkward as ak
    import h5py
    import uproot

    from jetzip.tables.hdf5_writer import carried_columns

    out: dict[str, Any] = {"trees": [], "branches": 0, "identical": 0, "coded": 0, "problems": []}
    with uproot.open(original) as fo, h5py.File(restored, "r") as fr:
        for tree_name in [k.rpartition(";")[0] for k, c in fo.classnames().items()
                          if c in ("TTree", "ROOT::RNTuple")]:
            tree = fo[tree_name]
            if tree_name not in fr:
                out["problems"].append(f"tree {tree_name}: no group")
                continue
            out["trees"].append(tree_name)
            group = fr[tree_name]
            _, arrays, _ = whole_file.root_branches(tree)
            for b, arr in arrays.items():
                out["branches"] += 1
                if b in coded:  # the codec's bound: relative for pt and mass, absolute for eta, phi
                    got = ak.flatten(h5_branch(group, b, tree.num_entries), axis=None).to_numpy().astype(np.float64)
                    want = ak.flatten(arr, axis=None).to_numpy().astype(np.float64)
                    if len(got) != len(want):
                        out["problems"].append(f"{tree_name}/{b}: {len(got)} values, the input {len(want)}")
                        continue
                    err = np.abs(got - want)
                    if {"pt", "mass", "m", "e"} & set(re.split(r"[._/]", b.lower())):  # relative (pT_h1_j1 too)
                        err = np.divide(err, np.abs(want), out=err.copy(), where=want != 0)
                    if np.max(err, initial=0.0) <= BOUND * (1 + 1e-3):
                        out["coded"] += 1
                    else:
                        out["problems"].append(f"{tree_name}/{b}: outside the bound ({np.max(err)})")
                    continue
                pieces = carried_columns(b, arr)
                absent = [p for p, *_ in pieces if p not in group]
                if absent:
                    out["problems"].append(f"{tree_name}/{b}: no dataset {absent[0]}")
                elif all(whole_file.same_values(v, h5_branch(group, p, tree.num_entries)) for p, v, *_ in pieces):
                    out["identical"] += 1
                else:
                    out["problems"].append(f"{tree_name}/{b}: values differ")
    return out


@pytest.fixture(scope="module")
def three_trees(tmp_path_factory) -> Path:
    """A NanoAOD-like file written by uproot: Events (jets, muons with their own counter, a
    per-event float), Runs (a list per run) and LuminosityBlocks."""
    import awkward as ak
    import uproot

    rng = np.random.default_rng(7)
    n = 50
    n_jets, n_mu = rng.integers(0, 5, n), rng.integers(0, 3, n)
    jets = ak.unflatten(ak.zip({
        "pt": rng.uniform(20, 300, n_jets.sum()).astype(np.float32),
        "eta": rng.uniform(-2.4, 2.4, n_jets.sum()).astype(np.float32),
        "phi": rng.uniform(-3.1, 3.1, n_jets.sum()).astype(np.float32),
        "mass": rng.uniform(2, 30, n_jets.sum()).astype(np.float32)}), n_jets)
    muons = ak.unflatten(ak.zip({"pt": rng.uniform(5, 80, n_mu.sum()).astype(np.float32),
                                 "charge": rng.choice([-1, 1], n_mu.sum()).astype(np.int32)}), n_mu)
    path = tmp_path_factory.mktemp("three") / "three_trees.root"
    with uproot.recreate(path) as f:
        def tree(name: str, data: dict[str, Any]) -> None:  # a TTree (f[name] = data makes an RNTuple)
            f.mktree(name, {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()})
            f[name].extend(data)

        tree("Events", {"run": np.ones(n, np.uint32), "event": np.arange(n, dtype=np.uint64),
                       "Jet": jets, "Muon": muons, "MET_pt": rng.uniform(0, 100, n).astype(np.float32),
                       "HLT_IsoMu24": rng.random(n) < 0.3})
        tree("Runs", {"run": np.array([1, 2], np.uint32), "genEventSumw": np.array([12.5, 3.25]),
                     "LHEScaleSumw": ak.Array([[1.0, 0.5, 2.0], [0.25]])})
        tree("LuminosityBlocks", {"run": np.array([1, 1, 2], np.uint32),
                                 "luminosityBlock": np.array([1, 2, 7], np.uint32)})
    return path


def _restore(src: Path, tmp: Path, suffix: str) -> tuple[Path, Path, list[str]]:
    aez, out = tmp / "x.aez", tmp / f"y{suffix}"
    warnings: list[str] = []
    jetzip.compress(src, aez, error_bound=str(BOUND), force=True, warn=warnings.append)
    jetzip.decompress(aez, out, force=True, warn=warnings.append)
    return aez, out, warnings


@pytest.mark.parametrize("name", ["three_trees", "cases/nano_runs_perjet_counters.root"])
def test_every_tree_comes_back_as_a_group_with_every_branch(name, three_trees, tmp_path):
    import h5py
    import uproot

    src = three_trees if name == "three_trees" else shared_file(SHARED / name)
    aez, out, warnings = _restore(src, tmp_path, ".h5")
    assert not [w for w in warnings if "holds one table" in w or "not restored" in w], warnings
    with uproot.open(src) as f:
        trees = [k.rpartition(";")[0] for k, c in f.classnames().items() if c == "TTree"]
        entries = {t: f[t].num_entries for t in trees}
    with h5py.File(out, "r") as h:
        assert list(h) == trees  # one group per tree, in the file's order
        for t in trees:
            first = next(iter(h[t].values()))
            assert first.shape[0] == entries[t]  # run / the first branch: one value per entry
    cmp = compare_h5(src, out, whole_file.coded_columns(aez))
    assert cmp["problems"] == [], cmp["problems"]
    assert cmp["trees"] == trees
    assert cmp["coded"] >= 4 and cmp["identical"] + cmp["coded"] == cmp["branches"]


def test_the_comparison_sees_a_lost_or_changed_branch(three_trees, tmp_path):
    """compare_h5 is what the test above relies on: it must see a changed value and a lost dataset."""
    import h5py

    aez, out, _ = _restore(three_trees, tmp_path, ".h5")
    coded = whole_file.coded_columns(aez)
    with h5py.File(out, "r+") as h:
        h["Runs/genEventSumw"][0] = np.nextafter(12.5, 13.0)
        del h["LuminosityBlocks/luminosityBlock"]
    problems = compare_h5(three_trees, out, coded)["problems"]
    assert problems == ["Runs/genEventSumw: values differ",
                        "LuminosityBlocks/luminosityBlock: no dataset luminosityBlock"], problems


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_one_table_formats_name_each_other_tree_in_one_line(suffix, three_trees, tmp_path):
    _, out, warnings = _restore(three_trees, tmp_path, suffix)
    assert out.exists()
    lost = [w for w in warnings if w.startswith("not restored: table")]
    assert len(lost) == 2, warnings
    assert any("table Runs" in w for w in lost) and any("table LuminosityBlocks" in w for w in lost)
    assert all(".h5" in w for w in lost)  # the way to keep them is said


def test_a_grouped_restore_reads_back_with_its_other_groups(three_trees, tmp_path):
    """``jetzip compress y.h5``: the jets' group is the table, the other groups travel as the
    file's other objects and come back in place, values and member order kept."""
    import h5py

    _, first, _ = _restore(three_trees, tmp_path, ".h5")
    again = tmp_path / "again"
    again.mkdir()
    _, second, warnings = _restore(first, again, ".h5")
    assert not [w for w in warnings if "not restored" in w or "cannot hold" in w], warnings
    with h5py.File(first, "r") as a, h5py.File(second, "r") as b:
        assert list(b) == list(a)
        for g in ("Runs", "LuminosityBlocks"):
            assert list(b[g]) == list(a[g])
            for k in a[g]:
                assert whole_file.same_values(a[g][k][:], b[g][k][:]), f"{g}/{k}"
        # the muon lists are not per-event columns to the HDF5 reader: they come back as other
        # datasets of the group, after its columns
        assert sorted(b["Events"]) == sorted(a["Events"])
        for k in ("nMuon", "Muon_pt", "Muon_charge", "MET_pt", "HLT_IsoMu24"):
            assert whole_file.same_values(a["Events"][k][:], b["Events"][k][:]), k


def test_a_restore_that_fails_half_way_leaves_no_file(three_trees, tmp_path, monkeypatch):
    from jetzip.tables import hdf5_writer

    aez = tmp_path / "x.aez"
    jetzip.compress(three_trees, aez, error_bound=str(BOUND))
    real = hdf5_writer.Hdf5Writer.write

    def write(self, *args, **kw):
        if self.tree == "Runs":  # the second table: the Events group is written by now
            raise OSError(28, "No space left on device")
        return real(self, *args, **kw)

    monkeypatch.setattr(hdf5_writer.Hdf5Writer, "write", write)
    with pytest.raises(OSError):
        jetzip.decompress(aez, tmp_path / "y.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.aez"]  # no output, no temporary


def test_text_lists_of_another_encoding_restore_into_hdf5(tmp_path):
    """A map<string, ...> branch (the trigger names of an ATLAS ntuple, UTF-8 strings written as
    fixed-length HDF5 text) and every other tree of that file come back value for value."""
    src = shared_file(SHARED / "data" / "public" / "uproot-issue243-new.root")
    aez, out, warnings = _restore(src, tmp_path, ".h5")
    cmp = compare_h5(src, out, whole_file.coded_columns(aez))
    assert cmp["problems"] == [], cmp["problems"][:5]
    assert "triggerList" in cmp["trees"] and cmp["identical"] + cmp["coded"] == cmp["branches"]


def test_lists_of_lists_of_lists_keep_every_level_in_root_and_hdf5(tmp_path):
    """A list of lists of lists per event (PHYSLITE's METAssoc overlapIndices is one) restores as
    the values with the lengths of each level (b_counts, b_counts3), from which the input is
    rebuilt exactly, in ROOT and in HDF5 (one level's lengths used to overwrite the other's)."""
    import awkward as ak
    import h5py
    import uproot

    rng = np.random.default_rng(3)
    n = 50
    counts = rng.integers(0, 5, n)
    jets = {k: ak.unflatten(rng.uniform(1, 2, counts.sum()).astype(np.float32), counts)
            for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass")}
    deep = [[[list(range(rng.integers(0, 3))) for _ in range(rng.integers(0, 3))] for _ in range(rng.integers(0, 3))]
            for _ in range(n)]
    want = ak.values_astype(ak.Array(deep), np.uint64)
    src = tmp_path / "deep.parquet"
    ak.to_parquet(ak.zip({**jets, "overlap": want}, depth_limit=1), src)
    aez = tmp_path / "x.aez"
    jetzip.compress(src, aez, error_bound="1e-3")
    jetzip.decompress(aez, tmp_path / "y.root")
    jetzip.decompress(aez, tmp_path / "y.h5")

    def rebuild(values, counts, counts3):
        inner = ak.unflatten(ak.flatten(values), ak.flatten(counts3))
        return ak.unflatten(ak.unflatten(inner, ak.flatten(counts)), ak.num(counts))

    with uproot.open(tmp_path / "y.root") as f:
        t = f[next(k for k, c in f.classnames().items() if c == "TTree")]
        got = rebuild(*(t[f"overlap{s}"].array() for s in ("", "_counts", "_counts3")))
    assert ak.to_list(got) == ak.to_list(want)
    with h5py.File(tmp_path / "y.h5", "r") as h:
        parts = [h5_branch(h, f"overlap{s}", n) for s in ("", "_counts", "_counts3")]
    assert ak.to_list(rebuild(*parts)) == ak.to_list(want)
