"""jetzip.arrays (issue 19 "reading compressed files like uproot reads ROOT", issue 22): the
restored table of a .aez, read without writing it, decoding only what is asked.

The reference is what uproot (or h5py, or the csv module) reads from the file
``jetzip.decompress`` restores from the same .aez: every branch, its type and its values.
"""
from __future__ import annotations

import csv
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import shared_file
from jetfactory import energy, jets, write_csv, write_hdf5_columns, write_nanoaod

import jetzip
from jetzip import carry
from jetzip.aez import AezFile
from jetzip.codecs.bounded import BoundedCodec
from jetzip.errors import InputError, JetzipError

NANO_TT = "../cases/nano_tt_v12_lzma9_200.root"  # relative to ../shared/data
GOLDEN = Path(__file__).parent / "golden"


def same(a, b) -> bool:
    """Same type and values (NaN equal to NaN)."""
    return str(a.type) == str(b.type) and ak.array_equal(a, b, equal_nan=True, dtype_exact=True)


def assert_same_table(got, want) -> None:
    """`got` (jetzip.arrays) holds every branch of `want` (uproot), in order, with equal values."""
    assert got.fields == want.fields
    bad = [f for f in want.fields if not same(got[f], want[f])]
    assert not bad, f"{len(bad)} branches differ: {bad[:5]}"


_MADE: dict[tuple[str, str | None, int | None], tuple[Path, Path]] = {}


def made(name: str, bound: str | None, factory, chunk_jets: int | None = None) -> tuple[Path, Path]:
    """(.aez, the ROOT file decompress restores from it) of a NanoAOD with every collection,
    bounded at `bound` or with the default (latent) codec; made once per module."""
    key = (name, bound, chunk_jets)
    if key not in _MADE:
        d = factory.mktemp("nano")
        aez, out = d / "x.aez", d / "x.root"
        jetzip.compress(shared_file(name), aez, error_bound=bound, chunk_jets=chunk_jets)
        jetzip.decompress(aez, out)
        _MADE[key] = aez, out
    return _MADE[key]


@pytest.fixture(scope="module", params=[("nano_dy.root", "1e-3"), ("nano_dy.root", None),
                                        (NANO_TT, "1e-3"), (NANO_TT, None)],
                ids=["dy-bounded", "dy-latent", "tt_v12-bounded", "tt_v12-latent"])
def nano(request, tmp_path_factory):
    return made(*request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=["1e-3", None], ids=["bounded", "latent"])
def dy(request, tmp_path_factory):
    return made("nano_dy.root", request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def dy_bounded(tmp_path_factory):
    """nano_dy.root in chunks of about 64 jets (10 chunks)."""
    return made("nano_dy.root", "1e-3", tmp_path_factory, chunk_jets=64)


def test_arrays_is_the_restored_nanoaod_branch_for_branch(nano):
    aez, out = nano
    got = jetzip.arrays(aez)
    assert len(got.fields) > 500 and {"Jet_pt", "nJet", "run", "Muon_pt", "FatJet_msoftdrop"} <= set(got.fields)
    assert got.Jet_pt.type.content.content.primitive == "float32"  # the input's dtype
    with jetzip.open_aez(aez) as f:
        trees = [t.tree for t in f.tables]
    with uproot.open(out) as f:
        assert sorted(trees) == sorted(k.split(";")[0] for k in f.keys())
        assert_same_table(got, f["Events"].arrays())
        for tree in trees:  # NanoAOD's Runs too, where the file has it
            assert_same_table(jetzip.arrays(aez, table=tree), f[tree].arrays())


def test_only_the_asked_collections_and_carried_groups_are_decoded(dy, monkeypatch):
    aez, out = dy
    with uproot.open(out) as f:
        n_jet = int(f["Events"]["nJet"].array(library="np").sum())
        n_fat = int(f["Events"]["nFatJet"].array(library="np").sum())
    calls: list[int] = []
    groups: list[list[str] | None] = []
    decode, unpack = BoundedCodec.decode, carry.unpack_group
    from jetzip.codecs.latent import LatentCodec

    latent_decode = LatentCodec.decode

    def counted(original):
        def wrapper(self, payload, n, *args, **kwargs):
            calls.append(n)
            return original(self, payload, n, *args, **kwargs)
        return wrapper

    def unpack_counted(block, lengths, where, names=None):
        groups.append(None if names is None else list(names))
        return unpack(block, lengths, where, names)

    monkeypatch.setattr(BoundedCodec, "decode", counted(decode))
    monkeypatch.setattr(LatentCodec, "decode", counted(latent_decode))
    monkeypatch.setattr(carry, "unpack_group", unpack_counted)
    jets_ = jetzip.arrays(aez, ["Jet_pt", "Jet_eta"], workers=1)
    assert set(jets_.fields) == {"Jet_pt", "Jet_eta"} and sum(calls) == n_jet and not groups
    calls.clear()
    jetzip.arrays(aez, ["Jet_pt", "FatJet_phi"], workers=1)
    assert sum(calls) == n_jet + n_fat and not groups
    calls.clear()
    counts = jetzip.arrays(aez, ["nJet", "nFatJet", "MET_pt", "Jet_btagDeepFlavB"], workers=1)
    assert not calls  # counters come from the stored counts, the rest is carried
    assert groups and all(set(g) == {"MET_pt", "Jet_btagDeepFlavB"} for g in groups)
    assert ak.all(ak.num(counts.Jet_btagDeepFlavB) == counts.nJet)


def test_expressions_are_names_globs_or_regexes_and_unknown_ones_are_one_line(dy_bounded):
    aez, out = dy_bounded
    with uproot.open(out) as f:
        names = f["Events"].keys()
    got = jetzip.arrays(aez, "Jet_*", workers=1)
    assert got.fields == [n for n in names if n.startswith("Jet_")]
    got = jetzip.arrays(aez, ["/^n[A-Z]/", "run", "Jet_pt"], workers=1)
    assert got.fields == [n for n in names if n[0] == "n" and n[1:2].isupper() or n in ("run", "Jet_pt")]
    with pytest.raises(InputError, match=r"no branch 'Jet_ptt' \(close matches: Jet_pt") as e:
        jetzip.arrays(aez, ["Jet_pt", "Jet_ptt"])
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match=r"no branch 'Nothing_\*' \(it has \d+: run, "):
        jetzip.arrays(aez, "Nothing_*")
    with pytest.raises(InputError, match="has no table 'Lumi'.*'Events', 'Runs'"):
        jetzip.arrays(aez, table="Lumi")
    assert jetzip.arrays(aez, [], workers=1).fields == []


def test_windows_of_entries_read_only_their_chunks(dy_bounded, monkeypatch):
    aez, _ = dy_bounded
    some = ["Jet_*", "nJet", "FatJet_pt", "run", "event", "nMuon", "Muon_pt", "HLT_IsoMu24", "Electron_charge"]
    whole = jetzip.arrays(aez, some, workers=1)
    n = len(whole)
    for start, stop in [(0, n), (3, 17), (7, -9), (-5, None), (n - 1, n), (5, 5), (30, 2), (None, 1000)]:
        part = jetzip.arrays(aez, some, entry_start=start, entry_stop=stop, workers=1)
        rows = range(n)[slice(start, stop)]  # as Python (and uproot) read the window
        want = whole[rows.start:rows.stop] if len(rows) else whole[:0]
        assert ak.array_equal(part, want, equal_nan=True), (start, stop)
    read: list[int] = []
    original = AezFile.read_chunk

    def counted(self, index, offsets=None):
        read.append(index)
        return original(self, index, offsets)

    monkeypatch.setattr(AezFile, "read_chunk", counted)
    last = jetzip.arrays(aez, "Jet_pt", entry_start=-1)
    assert len(read) == 1 and ak.array_equal(last.Jet_pt, whole.Jet_pt[-1:])


def test_every_worker_count_gives_the_same_arrays(dy_bounded):
    aez, _ = dy_bounded
    one = jetzip.arrays(aez, ["Jet_*", "FatJet_*", "MET_pt"], workers=1)
    two = jetzip.arrays(aez, ["Jet_*", "FatJet_*", "MET_pt"], workers=2)
    assert ak.array_equal(one, two, equal_nan=True, dtype_exact=True)


def test_numpy_and_pandas_libraries(dy_bounded):
    aez, _ = dy_bounded
    ref = jetzip.arrays(aez, ["nJet", "Jet_pt", "run", "MET_pt"], workers=1)
    d = jetzip.arrays(aez, ["nJet", "Jet_pt", "run", "MET_pt"], library="np", workers=1)
    assert list(d) == ref.fields and set(d) == {"nJet", "Jet_pt", "run", "MET_pt"}
    assert d["run"].dtype == ref.run.type.content.primitive and np.array_equal(d["run"], ak.to_numpy(ref.run))
    assert d["Jet_pt"].dtype == object and len(d["Jet_pt"]) == len(ref)
    for i in range(len(ref)):  # one numpy array per event, like uproot's library="np"
        assert d["Jet_pt"][i].dtype == np.float32 and np.array_equal(d["Jet_pt"][i], ak.to_numpy(ref.Jet_pt[i]))
    df = jetzip.arrays(aez, ["nJet", "Jet_pt", "run", "MET_pt"], library="pd", workers=1)
    assert list(df.columns) == list(d) and len(df) == len(ref)
    assert df["MET_pt"].dtype == np.float32 and np.array_equal(df["MET_pt"].to_numpy(), d["MET_pt"])
    assert all(np.array_equal(a, b) for a, b in zip(df["Jet_pt"], d["Jet_pt"]))


def test_hdf5_input_reads_as_its_restored_file(tmp_path):
    import h5py

    c = write_nanoaod(tmp_path / "unused.root", n_events=300, seed=3)
    src = tmp_path / "jets.h5"
    write_hdf5_columns(src, {"Jet_pt": c["pt"].astype(np.float32), "Jet_eta": c["eta"].astype(np.float32),
                             "Jet_phi": c["phi"].astype(np.float32), "Jet_mass": c["m"].astype(np.float32)},
                       counts=c["counts"])
    for bound in ("1e-3", None):
        jetzip.compress(src, tmp_path / "x.aez", error_bound=bound, chunk_jets=200, force=True)
        jetzip.decompress(tmp_path / "x.aez", tmp_path / "back.h5", force=True)
        got = jetzip.arrays(tmp_path / "x.aez")
        with h5py.File(tmp_path / "back.h5") as f:
            want = {k: f[k][()] for k in f}
        assert sorted(got.fields) == sorted(want)
        assert np.array_equal(ak.to_numpy(got.nJet), want["nJet"]) and got.nJet.type.content.primitive == "uint32"
        for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"):
            assert np.array_equal(ak.to_numpy(ak.num(got[k])), want["nJet"])
            flat = ak.to_numpy(ak.flatten(got[k]))
            assert flat.dtype == want[k].dtype == np.float32 and np.array_equal(flat, want[k]), k


def test_csv_input_reads_as_its_restored_file(tmp_path):
    j = jets(500, 21)
    src = tmp_path / "flat.csv"
    write_csv(src, {"E": energy(j["pt"], j["eta"], j["m"]), "pt": j["pt"], "eta": j["eta"], "phi": j["phi"],
                    "label": np.arange(500) % 3})
    jetzip.compress(src, tmp_path / "x.aez", error_bound="1e-3", chunk_jets=128)
    jetzip.decompress(tmp_path / "x.aez", tmp_path / "back.csv")
    got = jetzip.arrays(tmp_path / "x.aez")
    with open(tmp_path / "back.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert got.fields == rows[0] and len(got) == len(rows) - 1
    for i, name in enumerate(rows[0]):
        mine = ak.to_numpy(got[name])
        text = [r[i] for r in rows[1:]]
        if name in ("E", "pt", "eta", "phi"):  # the CSV writer's 9 significant digits of the same values
            assert mine.dtype == np.float64 and [f"{x:#.9g}" for x in mine] == text, name
        else:
            assert np.array_equal(mine, np.array(text, dtype=mine.dtype)), name


def test_golden_files_of_every_format_read_as_decompress_restores_them(tmp_path):
    files = sorted(GOLDEN.glob("*.aez"))
    assert {p.name.split(".")[0] for p in files} >= {"v1", "v2", "v3"}
    for path in files:
        out = tmp_path / (path.stem + ".root")
        jetzip.decompress(path, out)
        with jetzip.open_aez(path) as f:
            trees = [t.tree or "jets" for t in f.tables]
        for i, tree in enumerate(trees):
            with uproot.open(out) as f:
                want = f[tree].arrays()
            got = jetzip.arrays(path, table=i, workers=2)
            assert set(got.fields) <= set(want.fields), (path.name, tree)
            # what the restored tree has beyond them: the counters ROOT's writer adds to lists
            assert all(n.startswith("n") for n in want.fields if n not in got.fields), (path.name, tree)
            assert all(same(got[k], want[k]) for k in got.fields), (path.name, tree)


def test_rntuple_record_fields_come_back_as_records(tmp_path):
    src = shared_file("../cases/uproot_writer_rntuple.root")
    jetzip.compress(src, tmp_path / "x.aez", error_bound="1e-3")
    jetzip.decompress(tmp_path / "x.aez", tmp_path / "back.root")
    with uproot.open(tmp_path / "back.root") as f:
        want = f["Events"].arrays()
    got = jetzip.arrays(tmp_path / "x.aez")
    assert got.fields == want.fields == ["Jet"] and same(got.Jet, want.Jet)
    assert jetzip.arrays(tmp_path / "x.aez", "Jet").fields == ["Jet"]


def test_bad_arguments_are_one_line(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        jetzip.arrays(tmp_path / "missing.aez")
    with pytest.raises(InputError, match="expected a file path"):
        jetzip.arrays(None)  # type: ignore[arg-type]
    aez = GOLDEN / "v2.0_bounded_nano.aez"
    with pytest.raises(JetzipError, match="unknown library 'arrow'"):
        jetzip.arrays(aez, library="arrow")
    with pytest.raises(JetzipError, match="workers must be a positive integer"):
        jetzip.arrays(aez, workers=0)
    with pytest.raises(InputError, match="entry_start must be an integer"):
        jetzip.arrays(aez, entry_start=1.5)  # type: ignore[arg-type]
