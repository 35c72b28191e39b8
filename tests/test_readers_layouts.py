"""Layouts that went wrong (issue 19), each compressed with no options by both codecs (the
default and ``error_bound="1e-3"``), decompressed to its own format and compared column by
column: jets within the codec's bound, every other column bit-identical, names, order and
dtypes as the original's.

- the top-tagging landscape (``../shared/cases/toplandscape_like.h5``): zero-padded constituents
  ``E_0 ... PZ_199`` are read as rows of up to 200 constituents; all-zero slots are padding,
  restored as zeros (never NaN); the truth four-vector, ``ttv`` and ``is_signal_new`` are kept;
- NanoAOD written as Parquet (``../shared/data/public/nano_dy.parquet``): ``Jet`` is found, its
  other list columns are per-jet branches, and every other column is carried;
- a particle_transformer-style Parquet (one row per jet, ``part_*`` constituent lists): the jets
  are found, the constituent lists carried; ``collection="part"`` codes the constituents;
- ``drop_invalid`` on jets-per-row tables keeps every jet in its own columns, or is refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import jetzip
from jetzip.errors import InputError
from jetzip.features import to_model_frame
from jetzip.tables import open_table, open_writer

from conftest import SHARED, shared_file

CODECS = [pytest.param({}, id="default"), pytest.param({"error_bound": "1e-3"}, id="bounded")]


def through_aez(src, out: Path, **kw) -> dict:
    """compress with no options but the codec's, then decompress to `out` (its own format)."""
    aez = out.with_suffix(".aez")
    report = jetzip.compress(src, aez, **kw)
    jetzip.decompress(aez, out)
    return report


def assert_within(f0: np.ndarray, f1: np.ndarray, kw: dict) -> None:
    """Model frames (E, pt, eta, phi) of the original and restored jets: within the bound the
    codec states (bounded 1e-3: pt relative, eta and phi absolute; the default latent codec's
    jets are within its 5e-3 tolerance or stored exactly)."""
    bound = 1e-3 * (1 + 1e-6) if kw.get("error_bound") else 6e-3
    assert len(f0) == len(f1) and len(f0)
    assert np.max(np.abs(f1[:, 1] / f0[:, 1] - 1)) <= bound
    assert np.max(np.abs(f1[:, 2] - f0[:, 2])) <= bound
    dphi = (f1[:, 3] - f0[:, 3] + np.pi) % (2 * np.pi) - np.pi
    assert np.max(np.abs(dphi)) <= bound


# --- the top-tagging landscape --------------------------------------------------------------

def top_frames(path) -> tuple[object, np.ndarray]:
    """(the pandas frame, its non-padding constituents as an (n, 4) model frame)."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    df = pd.read_hdf(path, "table")
    cols = {r: df[[f"{r}_{i}" for i in range(200)]].to_numpy() for r in ("E", "PX", "PY", "PZ")}
    real = ~((cols["E"] == 0) & (cols["PX"] == 0) & (cols["PY"] == 0) & (cols["PZ"] == 0))
    frame = to_model_frame({"E": cols["E"][real], "px": cols["PX"][real], "py": cols["PY"][real],
                            "pz": cols["PZ"][real]}, "PxPyPzE", "GeV")
    return df, frame


def test_toplandscape_constituents_are_found_and_padding_is_a_count():
    src = open_table(shared_file(SHARED / "cases" / "toplandscape_like.h5"))
    info = src.info
    chunks = list(src.chunks(1 << 20))
    src.close()
    assert info.layout == "jets-per-row" and info.representation == "PxPyPzE"
    assert info.columns == {"px": "PX_*", "py": "PY_*", "pz": "PZ_*", "E": "E_*"}
    assert info.extra["wide"]["pad"] == "zero" and len(info.extra["wide"]["jets"]) == 200
    # the truth four-vector and the labels are one value per row: kept, bit for bit
    assert info.kept_branches == ["truthE", "truthPX", "truthPY", "truthPZ", "ttv", "is_signal_new", "index"]
    assert info.other_branches == [] and "not_carried" not in info.extra
    counts = np.concatenate([c.counts for c in chunks])
    _, frame = top_frames(SHARED / "cases" / "toplandscape_like.h5")
    assert int(counts.sum()) == len(frame) and len(counts) == 400
    jets = np.concatenate([c.columns["E"] for c in chunks])
    assert np.isfinite(jets).all() and (jets > 0).all()  # no padding slot read as a jet


@pytest.mark.parametrize("kw", CODECS)
def test_toplandscape_round_trip(tmp_path, kw):
    path = shared_file(SHARED / "cases" / "toplandscape_like.h5")
    out = tmp_path / "back.h5"
    report = through_aez(path, out, **kw)
    df0, f0 = top_frames(path)
    df1, f1 = top_frames(out)
    assert report["n_jets"] == len(f0) and report["n_events"] == 400
    assert list(df1.columns) == list(df0.columns) and list(df1.dtypes) == list(df0.dtypes)
    np.testing.assert_array_equal(df1.index, df0.index)
    a, b = df0.to_numpy(np.float64), df1.to_numpy(np.float64)
    assert not np.isnan(b).any()  # padding restored as zeros, never NaN
    slots = [[list(df0.columns).index(f"{v}_{i}") for v in ("E", "PX", "PY", "PZ")] for i in range(200)]
    pad0 = np.stack([(a[:, s] == 0).all(axis=1) for s in slots], axis=1)
    pad1 = np.stack([(b[:, s] == 0).all(axis=1) for s in slots], axis=1)
    np.testing.assert_array_equal(pad1, pad0)  # padding is padding, and a particle is never padding
    # (one component of a particle may come back as an exact 0 within a Cartesian bound of b*pt)
    for col in ("truthE", "truthPX", "truthPY", "truthPZ", "ttv", "is_signal_new"):
        np.testing.assert_array_equal(df1[col].to_numpy(), df0[col].to_numpy())
    assert_within(f0, f1, kw)


# --- NanoAOD as Parquet -----------------------------------------------------------------------

NANO_PARQUET = SHARED / "data" / "public" / "nano_dy.parquet"


def read_chunks(path, **kw):
    src = open_table(path, **kw)
    try:
        return src.info, list(src.chunks(1 << 16))
    finally:
        src.close()


def assert_same_columns(t0, t1, names=None) -> None:
    """Every named column (default: all) of two arrow tables of the same type and values, NaN
    equal to NaN (``Table.equals`` says NaN differs from itself)."""
    for name in names if names is not None else t0.schema.names:
        x, y = t0.column(name).combine_chunks(), t1.column(name).combine_chunks()
        assert x.type == y.type, name
        while hasattr(x, "flatten") and hasattr(x, "value_lengths"):
            np.testing.assert_array_equal(np.asarray(y.value_lengths()), np.asarray(x.value_lengths()), name)
            x, y = x.flatten(), y.flatten()
        np.testing.assert_array_equal(y.to_numpy(zero_copy_only=False), x.to_numpy(zero_copy_only=False), name)


def write_direct(info, chunks, out) -> None:
    """The reader's chunks straight into the writer, carried columns included (what decompress
    does once the container stores them)."""
    kept_dtypes = {k: info.dtypes.get(k, "float64") for k in info.kept_branches}
    w = open_writer(str(out), info.format, info, info.columns, kept_dtypes)
    for c in chunks:
        w.write(c.columns, c.counts, c.kept, c.jet_kept, carried=c.carried)  # type: ignore[call-arg]
    w.close()


def test_nanoaod_parquet_finds_jet_and_carries_everything_else(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = shared_file(NANO_PARQUET)
    info, chunks = read_chunks(path)
    assert info.collection == "Jet" and info.counter == "nJet" and info.units == "GeV"
    assert info.columns == {"pt": "Jet_pt", "eta": "Jet_eta", "phi": "Jet_phi", "m": "Jet_mass"}
    schema = pq.read_schema(path)
    jet_lists = [f.name for f in schema if f.name.startswith("Jet_") and f.name not in info.columns.values()]
    assert info.jet_branches == jet_lists  # every per-jet Jet_* list
    carried = info.extra["carried"]
    assert "Muon_pt" in carried and "GenPart_pdgId" in carried and "FatJet_pt" in carried
    # every column is a jet column, the counter, kept, per-jet or carried: nothing else
    accounted = [*info.columns.values(), "nJet", *info.kept_branches, *info.jet_branches, *carried]
    assert sorted(accounted) == sorted(schema.names)
    assert all(set(c.carried) == set(carried) for c in chunks)
    assert sum(len(c.carried["Muon_pt"]) for c in chunks) == 40  # one entry per event
    # written back with the carried columns: the same file, schema (order, types, metadata) and values
    write_direct(info, chunks, tmp_path / "back.parquet")
    assert pq.read_schema(tmp_path / "back.parquet").equals(schema, check_metadata=True)
    assert_same_columns(pq.read_table(path), pq.read_table(tmp_path / "back.parquet"))


@pytest.mark.parametrize("kw", CODECS)
def test_nanoaod_parquet_round_trip(tmp_path, kw):
    pq = pytest.importorskip("pyarrow.parquet")
    path = shared_file(NANO_PARQUET)
    out = tmp_path / "back.parquet"
    report = through_aez(path, out, **kw)
    assert report["n_events"] == 40 and report["n_jets"] == 188
    t0, t1 = pq.read_table(path), pq.read_table(out)
    info, _ = read_chunks(path)
    for name in [*info.kept_branches, *info.jet_branches, "nJet"]:
        assert t1.schema.field(name).equals(t0.schema.field(name)), name
    assert_same_columns(t0, t1, [*info.kept_branches, *info.jet_branches, "nJet"])
    order = [n for n in t0.schema.names if n in set(t1.schema.names)]
    assert t1.schema.names == order  # the file's own order
    flat = lambda t, n: np.asarray(t.column(n).combine_chunks().flatten())
    cols = {r: (flat(t0, n), flat(t1, n)) for r, n in info.columns.items()}
    assert all(v[1].dtype == v[0].dtype for v in cols.values())
    f0 = to_model_frame({r: v[0] for r, v in cols.items()}, info.representation, "GeV")
    f1 = to_model_frame({r: v[1] for r, v in cols.items()}, info.representation, "GeV")
    assert_within(f0, f1, kw)


def test_nanoaod_parquet_carried_columns_come_back_through_aez(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = shared_file(NANO_PARQUET)
    through_aez(path, tmp_path / "back.parquet", error_bound="1e-3")
    t0, t1 = pq.read_table(path), pq.read_table(tmp_path / "back.parquet")
    assert t1.schema.names == t0.schema.names
    assert_same_columns(t0, t1, read_chunks(path)[0].extra["carried"])


# --- particle_transformer-style Parquet -------------------------------------------------------

def jetclass_parquet(path, n=300, seed=7) -> dict[str, np.ndarray]:
    """One row per jet: jet_* scalars, label_* flags, part_* constituent lists (JetClass layout,
    jet-universe/particle_transformer)."""
    import awkward as ak

    rng = np.random.default_rng(seed)
    n_part = rng.integers(5, 60, n)
    m = int(n_part.sum())
    pt = rng.exponential(5, m) + 0.5
    eta, phi = rng.normal(0, 1, m), rng.uniform(-np.pi, np.pi, m)
    part = {"part_px": pt * np.cos(phi), "part_py": pt * np.sin(phi), "part_pz": pt * np.sinh(eta)}
    part["part_energy"] = np.sqrt(part["part_px"] ** 2 + part["part_py"] ** 2 + part["part_pz"] ** 2) * 1.001
    part["part_deta"] = rng.normal(0, 0.3, m)
    part["part_charge"] = rng.integers(-1, 2, m).astype(np.int8)
    jet = {"jet_pt": rng.uniform(500, 1000, n), "jet_eta": rng.normal(0, 1, n), "jet_phi": rng.uniform(-3, 3, n),
           "jet_energy": rng.uniform(1000, 2000, n), "jet_nparticles": n_part.astype(np.float32),
           "label_QCD": rng.integers(0, 2, n).astype(bool)}
    arr = ak.zip({**{k: ak.unflatten(v.astype(np.float32) if v.dtype == np.float64 else v, n_part)
                     for k, v in part.items()}, **jet}, depth_limit=1)
    ak.to_parquet(arr, path)
    return {**part, **jet, "n_part": n_part}


def test_jetclass_parquet_jets_found_constituents_carried(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    jetclass_parquet(tmp_path / "jc.parquet")
    info, chunks = read_chunks(tmp_path / "jc.parquet")
    assert info.collection == "jet" and not info.jagged
    assert info.columns == {"pt": "jet_pt", "eta": "jet_eta", "phi": "jet_phi", "E": "jet_energy"}
    parts = ["part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_charge"]
    assert info.extra["carried"] == parts  # not lost without a word
    assert info.kept_branches == ["jet_nparticles", "label_QCD"]
    write_direct(info, chunks, tmp_path / "back.parquet")
    assert_same_columns(pq.read_table(tmp_path / "jc.parquet"), pq.read_table(tmp_path / "back.parquet"))


@pytest.mark.parametrize("kw", CODECS)
def test_jetclass_parquet_round_trip_of_the_jets(tmp_path, kw):
    pq = pytest.importorskip("pyarrow.parquet")
    truth = jetclass_parquet(tmp_path / "jc.parquet")
    report = through_aez(tmp_path / "jc.parquet", tmp_path / "back.parquet", **kw)
    assert report["n_jets"] == 300
    t0, t1 = pq.read_table(tmp_path / "jc.parquet"), pq.read_table(tmp_path / "back.parquet")
    assert_same_columns(t0, t1, ["jet_nparticles", "label_QCD"])
    cols = {"pt": "jet_pt", "eta": "jet_eta", "phi": "jet_phi", "E": "jet_energy"}
    f0 = to_model_frame({r: truth[n] for r, n in cols.items()}, "EPtEtaPhi", "GeV")
    f1 = to_model_frame({r: t1.column(n).to_numpy() for r, n in cols.items()}, "EPtEtaPhi", "GeV")
    assert_within(f0, f1, kw)
    assert t1.schema.field("jet_pt").type == t0.schema.field("jet_pt").type  # float64 stays float64


@pytest.mark.parametrize("kw", CODECS)
def test_jetclass_parquet_constituents_by_collection(tmp_path, kw):
    pq = pytest.importorskip("pyarrow.parquet")
    truth = jetclass_parquet(tmp_path / "jc.parquet")
    info, chunks = read_chunks(tmp_path / "jc.parquet", collection="part")
    assert info.jagged and info.representation == "PxPyPzE"
    assert info.columns == {"px": "part_px", "py": "part_py", "pz": "part_pz", "E": "part_energy"}
    assert info.jet_branches == ["part_deta", "part_charge"]
    assert info.kept_branches == ["jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_nparticles", "label_QCD"]
    np.testing.assert_array_equal(np.concatenate([c.counts for c in chunks]), truth["n_part"])
    report = through_aez(tmp_path / "jc.parquet", tmp_path / "back.parquet", collection="part", **kw)
    assert report["n_jets"] == int(truth["n_part"].sum())
    t0, t1 = pq.read_table(tmp_path / "jc.parquet"), pq.read_table(tmp_path / "back.parquet")
    assert t1.schema.equals(t0.schema)
    assert_same_columns(t0, t1, ["part_deta", "part_charge", "jet_pt", "jet_energy", "label_QCD"])
    names = {"px": "part_px", "py": "part_py", "pz": "part_pz", "E": "part_energy"}
    flat = lambda t, n: np.asarray(t.column(n).combine_chunks().flatten())
    f0 = to_model_frame({r: flat(t0, n) for r, n in names.items()}, "PxPyPzE", "GeV")
    f1 = to_model_frame({r: flat(t1, n) for r, n in names.items()}, "PxPyPzE", "GeV")
    assert_within(f0, f1, kw)


# --- --drop-invalid on jets per row -----------------------------------------------------------

def lhco_table(path, n=200, seed=3) -> dict[str, np.ndarray]:
    """LHC Olympics-like features: (px, py, pz, m) of two jets per row, and mjj."""
    import h5py

    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for j in (1, 2):
        cols[f"pxj{j}"] = rng.normal(0, 400, n)
        cols[f"pyj{j}"] = rng.normal(0, 400, n)
        cols[f"pzj{j}"] = rng.normal(0, 900, n)
        cols[f"mj{j}"] = rng.uniform(20, 500, n)
    cols["mjj"] = rng.uniform(1000, 5000, n)
    cols["pxj2"][7] = np.inf  # jet 2 of row 7: the last jet of its row
    with h5py.File(path, "w") as f:
        for k, v in cols.items():
            f[k] = v
    return cols


def slot_frame(cols: dict, j: int, rows) -> np.ndarray:
    return to_model_frame({"px": cols[f"pxj{j}"][rows], "py": cols[f"pyj{j}"][rows], "pz": cols[f"pzj{j}"][rows],
                           "m": cols[f"mj{j}"][rows]}, "PxPyPzM", "GeV")


def test_drop_invalid_on_jets_per_row_keeps_each_jet_in_its_columns(tmp_path):
    import h5py

    cols = lhco_table(tmp_path / "w.h5")
    report = through_aez(tmp_path / "w.h5", tmp_path / "back.h5", drop_invalid=True)
    assert report["dropped_invalid"] == 1
    with h5py.File(tmp_path / "back.h5") as f:
        back = {k: f[k][()] for k in cols}
    row7 = [back[f"{v}j2"][7] for v in ("px", "py", "pz", "m")]
    assert np.isnan(row7).all()  # the dropped jet: an empty slot
    keep = np.arange(200) != 7
    assert not any(np.isnan(back[k][keep]).any() for k in cols)
    np.testing.assert_array_equal(back["mjj"], cols["mjj"])
    assert_within(slot_frame(cols, 2, keep), slot_frame(back, 2, keep), {})
    # every jet 1, row 7's included, is still jet 1
    assert_within(slot_frame(cols, 1, slice(None)), slot_frame(back, 1, slice(None)), {})


def test_drop_invalid_that_would_move_a_jet_into_other_columns_is_refused(tmp_path):
    import h5py

    lhco_table(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5", "a") as f:
        f["pxj1"][12] = np.inf  # jet 1 of row 12, before a valid jet 2
    with pytest.raises(InputError) as err:
        jetzip.compress(tmp_path / "w.h5", tmp_path / "w.aez", drop_invalid=True)
    assert "row 12: --drop-invalid would drop jet 1 and move jet 2 into its columns" in str(err.value)
    assert not (tmp_path / "w.aez").exists()
