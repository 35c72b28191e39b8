"""HDF5, CSV and Parquet layouts people have (issue 12): read, and written back the same way.

Each layout is read with ``open_table``, its chunks go through the model frame and back
(``to_model_frame`` / ``from_model_frame``, i.e. everything but the network) and are written
with ``open_writer``; the restored file must have the same names, events, counts and values.
The files of ``../shared/cases`` are read there, never copied into the project.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jetzip.errors import InputError
from jetzip.features import from_model_frame, to_model_frame
from jetzip.tables import open_table, open_writer

from conftest import SHARED, shared_file

CASES = SHARED / "cases"


def case(name: str) -> Path:
    return shared_file(CASES / name)


def roundtrip(src_path, out_path, fmt: str | None = None, chunk_jets: int = 1000, **kw):
    """Read -> model frame -> back -> write, the way decompress writes; returns (info, chunks)."""
    src = open_table(src_path, **kw)
    info = src.info
    kept_dtypes = {k: info.dtypes.get(k, "float64") for k in info.kept_branches}
    writer = open_writer(str(out_path), fmt or info.format, info, info.columns, kept_dtypes)
    chunks = []
    try:
        for ch in src.chunks(chunk_jets):
            frame = to_model_frame(ch.columns, info.representation, info.units)
            writer.write(from_model_frame(frame, info.representation, info.units), ch.counts, ch.kept, ch.jet_kept,
                         carried=ch.carried)
            chunks.append(ch)
        blob = src.extras()
        if blob:
            writer.write_extras(blob)
    finally:
        writer.close()
        src.close()
    return info, chunks


def read_all(path, **kw):
    """Every chunk of a table concatenated: (info, jets by role, counts or None, kept, jet_kept)."""
    src = open_table(path, **kw)
    chunks = list(src.chunks(1 << 16))
    src.close()
    cat = lambda key, attr: np.concatenate([getattr(c, attr)[key] for c in chunks])
    cols = {r: cat(r, "columns") for r in src.info.columns}
    counts = np.concatenate([c.counts for c in chunks]) if chunks[0].counts is not None else None
    kept = {k: cat(k, "kept") for k in src.info.kept_branches}
    jet_kept = {k: cat(k, "jet_kept") for k in src.info.jet_branches}
    return src.info, cols, counts, kept, jet_kept


def close(a, b, rtol=2e-6, atol=2e-6):
    np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a, np.float64), rtol=rtol, atol=atol)


def assert_same_table(orig, back, rtol=2e-6, **kw):
    i0, c0, n0, k0, j0 = read_all(orig, **kw)
    i1, c1, n1, k1, j1 = read_all(back, **kw)
    assert i1.columns == i0.columns and i1.representation == i0.representation
    assert i1.kept_branches == i0.kept_branches and i1.jet_branches == i0.jet_branches
    assert i1.branch_order == i0.branch_order
    if n0 is None:
        assert n1 is None
    else:
        np.testing.assert_array_equal(n1, n0)
    for r in c0:
        close(c0[r], c1[r], rtol=rtol)
    for k in k0:
        np.testing.assert_array_equal(k1[k], k0[k])  # carried exactly
        assert k1[k].dtype == k0[k].dtype
    for k in j0:
        np.testing.assert_array_equal(j1[k], j0[k])
    return i0, i1


# --- pandas to_hdf ----------------------------------------------------------------------------

@pytest.mark.parametrize("name,layout", [("pandas_fixed.h5", "pandas-fixed"), ("pandas_table.h5", "pandas-table")])
def test_pandas_hdf5_read_and_written_back_as_pandas(tmp_path, name, layout):
    info, _ = roundtrip(case(name), tmp_path / "back.h5")
    assert info.extra["hdf5_layout"] == layout and info.tree == "jets"
    assert info.columns == {"pt": "pt", "eta": "eta", "phi": "phi", "m": "mass"}
    assert info.kept_branches == ["index"] and info.other_branches == []
    assert_same_table(case(name), tmp_path / "back.h5")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    a = pd.read_hdf(case(name), "jets")
    b = pd.read_hdf(tmp_path / "back.h5", "jets")
    assert list(b.columns) == list(a.columns) and list(b.dtypes) == list(a.dtypes)
    assert (b.index == a.index).all()
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-6)


def test_pandas_hdf5_is_read_without_pandas_or_pytables():
    code = ("import sys; sys.modules['pandas'] = None; sys.modules['tables'] = None\n"
            "from jetzip.tables import open_table\n"
            f"for f in [{str(case('pandas_fixed.h5'))!r}, {str(case('pandas_table.h5'))!r}]:\n"
            "    s = open_table(f); n = sum(c.n_jets for c in s.chunks()); print(s.info.columns['pt'], n)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["pt", "2000", "pt", "2000"]


def test_pandas_frame_with_several_blocks_and_a_string_column(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    rng = np.random.default_rng(3)
    n = 500
    df = pd.DataFrame({"pt": rng.uniform(20, 200, n), "eta": rng.normal(0, 1, n).astype(np.float32),
                       "phi": rng.uniform(-3, 3, n), "E": rng.uniform(300, 900, n),
                       "nconst": rng.integers(1, 50, n), "label": ["a"] * n}, index=np.arange(n) * 3 + 7)
    df.to_hdf(tmp_path / "f.h5", key="jets", format="fixed")
    info, _ = roundtrip(tmp_path / "f.h5", tmp_path / "b.h5")
    assert info.extra["hdf5_layout"] == "pandas-fixed"
    assert set(info.kept_branches) == {"nconst", "index"} and info.other_branches == []
    back = pd.read_hdf(tmp_path / "b.h5", "jets")
    # the string column is a pickled object block: not carried, and said so (not_carried via other_branches
    # would need the pickle; it is simply absent from the restored frame)
    assert list(back.columns) == [c for c in df.columns if c != "label"]
    np.testing.assert_array_equal(back.index, df.index)
    np.testing.assert_array_equal(back["nconst"], df["nconst"])
    np.testing.assert_allclose(back["pt"], df["pt"], rtol=1e-6)
    assert back["eta"].dtype == np.float32


def test_pandas_table_format_with_data_columns(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    rng = np.random.default_rng(4)
    n = 300
    df = pd.DataFrame({"pt": rng.uniform(20, 200, n), "eta": rng.normal(0, 1, n), "phi": rng.uniform(-3, 3, n),
                       "mass": rng.uniform(1, 20, n), "run": rng.integers(1, 5, n)})
    df.to_hdf(tmp_path / "t.h5", key="jets", format="table", data_columns=["pt", "run"])
    info, _ = roundtrip(tmp_path / "t.h5", tmp_path / "b.h5")
    assert info.extra["hdf5_layout"] == "pandas-table" and "run" in info.kept_branches
    back = pd.read_hdf(tmp_path / "b.h5", "jets")
    assert list(back.columns) == list(df.columns)
    np.testing.assert_array_equal(back["run"], df["run"])
    np.testing.assert_allclose(back[["pt", "eta", "phi", "mass"]], df[["pt", "eta", "phi", "mass"]], rtol=1e-5,
                               atol=1e-5)
    # pandas can select on a data column of the restored table
    assert len(pd.read_hdf(tmp_path / "b.h5", "jets", where="run == 2")) == int((df["run"] == 2).sum())


# --- jagged HDF5 ------------------------------------------------------------------------------

def test_h5py_vlen_jagged_read_as_events_and_restored_as_vlen(tmp_path):
    import h5py

    info, chunks = roundtrip(case("h5py_vlen_jagged.h5"), tmp_path / "back.h5", chunk_jets=100)
    assert info.jagged and info.extra["hdf5_layout"] == "vlen" and info.counter == "njet"
    assert info.collection == "jet" and info.representation == "PtEtaPhiM"
    assert max(c.n_jets for c in chunks) < 200  # chunks cut by jets
    with h5py.File(case("h5py_vlen_jagged.h5")) as f, h5py.File(tmp_path / "back.h5") as g:
        assert set(g) == set(f)
        np.testing.assert_array_equal(g["njet"][()], f["njet"][()])
        assert g["njet"].dtype == f["njet"].dtype
        assert h5py.check_vlen_dtype(g["jet_pt"].dtype) is not None
        for name in ("jet_pt", "jet_eta", "jet_phi"):
            for a, b in zip(f[name][()], g[name][()]):
                assert len(a) == len(b)
                close(a, b, rtol=1e-5, atol=1e-5)
    assert_same_table(case("h5py_vlen_jagged.h5"), tmp_path / "back.h5", rtol=1e-5)


def jet_values(rng, n: int, prefix: str = "Jet_") -> dict[str, np.ndarray]:
    return {f"{prefix}pt": rng.uniform(20, 200, n).astype(np.float32),
            f"{prefix}eta": rng.normal(0, 1.5, n).astype(np.float32),
            f"{prefix}phi": rng.uniform(-3, 3, n).astype(np.float32),
            f"{prefix}mass": rng.uniform(1, 20, n).astype(np.float32)}


def test_vlen_per_jet_branch_and_mismatched_lengths(tmp_path):
    import h5py

    rng = np.random.default_rng(1)
    counts = np.array([2, 0, 3, 1])
    vl = h5py.vlen_dtype(np.float32)
    values = {**jet_values(rng, int(counts.sum())), "Jet_btag": rng.uniform(0, 1, int(counts.sum()))}
    cuts = np.cumsum(counts)[:-1]
    with h5py.File(tmp_path / "v.h5", "w") as f:
        for name, v in values.items():
            d = f.create_dataset(name, (len(counts),), dtype=vl)
            for i, part in enumerate(np.split(v.astype(np.float32), cuts)):
                d[i] = part
        f["weight"] = np.array([0.5, 1.0, 1.5, 2.0])
    info, _ = roundtrip(tmp_path / "v.h5", tmp_path / "b.h5")
    assert info.jet_branches == ["Jet_btag"] and info.kept_branches == ["weight"] and info.counter is None
    assert_same_table(tmp_path / "v.h5", tmp_path / "b.h5", rtol=1e-5)
    with h5py.File(tmp_path / "v.h5", "a") as f:
        f["Jet_btag"][2] = np.zeros(1, np.float32)
    with pytest.raises(InputError, match="event 2: Jet_btag has 1 values"):
        src = open_table(tmp_path / "v.h5", units="GeV")
        list(src.chunks())


def write_awkward_buffers(path, arr, group="events", length_as_text=True):
    """The pattern awkward's documentation gives for HDF5: ak.to_buffers into one group."""
    import json

    import awkward as ak
    import h5py

    form, length, container = ak.to_buffers(arr)
    with h5py.File(path, "w") as f:
        g = f.create_group(group)
        for k, v in container.items():
            g.create_dataset(k, data=v)
        g.attrs["form"] = form.to_json()
        g.attrs["length"] = json.dumps(length) if length_as_text else length


def read_awkward_buffers(path, group="events"):
    import json

    import awkward as ak
    import h5py

    with h5py.File(path) as f:
        g = f[group]
        length = g.attrs["length"]
        return ak.from_buffers(ak.forms.from_json(g.attrs["form"]),
                               json.loads(length) if isinstance(length, str) else int(length),
                               {k: np.asarray(v) for k, v in g.items()})


@pytest.mark.parametrize("kind", ["records", "lists"])
def test_awkward_to_buffers_layout_read_and_restored(tmp_path, kind):
    ak, un, counts, jets, event = awkward_events(seed=13)
    if kind == "records":
        arr = ak.zip({"run": event["run"], "Jet": ak.zip({k: un(v) for k, v in jets.items()}),
                      "MET_pt": event["MET_pt"]}, depth_limit=1)
    else:
        arr = ak.zip({"nJet": counts.astype(np.int32), **{f"Jet_{k}": un(v) for k, v in jets.items()},
                      "event": event["event"]}, depth_limit=1)
    write_awkward_buffers(tmp_path / "a.h5", arr, length_as_text=kind == "records")
    info, chunks = roundtrip(tmp_path / "a.h5", tmp_path / "b.h5", chunk_jets=100)
    assert info.extra["hdf5_layout"] == "awkward" and info.jagged and info.collection == "Jet"
    assert max(c.n_jets for c in chunks) <= 100 + max(counts)
    if kind == "records":
        assert info.columns["pt"] == "Jet.pt" and info.jet_branches == ["Jet.btag", "Jet.jetId"]
    else:
        assert info.counter == "nJet" and info.jet_branches == ["Jet_btag", "Jet_jetId"]
    assert_same_table(tmp_path / "a.h5", tmp_path / "b.h5", rtol=1e-6)
    back = read_awkward_buffers(tmp_path / "b.h5")
    assert str(back.type) == str(arr.type)
    for f in arr.fields:
        if arr[f].ndim == 1 and not isinstance(arr[f].type.content, ak.types.RecordType):
            np.testing.assert_array_equal(back[f], arr[f])


def test_counter_layout_carries_per_jet_and_per_event_columns_and_other_objects(tmp_path):
    import h5py

    rng = np.random.default_rng(2)
    counts = np.array([3, 0, 2, 4, 1], np.uint32)
    n = int(counts.sum())
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.attrs["producer"] = "test"
        g = f.create_group("Events")
        g["nJet"] = counts
        for name, v in jet_values(rng, n).items():
            g[name] = v
        g["Jet_jetId"] = rng.integers(0, 7, n).astype(np.int32)
        g["run"] = np.arange(5, dtype=np.int64)
        g["matrix"] = np.ones((5, 3))  # a 2-D dataset: not a column, carried in the extras
        g["calib"] = np.arange(3.0)  # neither per event nor per jet: carried in the extras
        f.create_group("Runs")["genEventSumw"] = np.array([123.5])
        f["Runs"].attrs["note"] = np.bytes_(b"sumw")
    info, _ = roundtrip(tmp_path / "c.h5", tmp_path / "b.h5", chunk_jets=4)
    assert info.counter == "nJet" and info.jet_branches == ["Jet_jetId"] and info.kept_branches == ["run"]
    assert info.other_branches == [] and "not_carried" not in info.extra
    assert_same_table(tmp_path / "c.h5", tmp_path / "b.h5")
    with h5py.File(tmp_path / "b.h5") as g:
        np.testing.assert_array_equal(g["Events/calib"][()], np.arange(3.0))
        assert g.attrs["producer"] == "test"
        np.testing.assert_array_equal(g["Runs/genEventSumw"][()], [123.5])
        assert g["Runs"].attrs["note"] == b"sumw"
        np.testing.assert_array_equal(g["Events/matrix"][()], np.ones((5, 3)))
        assert g["Events/Jet_jetId"].dtype == np.int32
    # drop_branches leaves columns out; keep_branches carries only what it names (as for ROOT)
    src = open_table(tmp_path / "c.h5", drop_branches=["Jet_jet*", "run"])
    assert src.info.jet_branches == [] and src.info.kept_branches == []
    assert set(src.info.other_branches) == {"Jet_jetId", "run"}
    src.close()
    roundtrip(tmp_path / "c.h5", tmp_path / "d.h5", drop_branches=["Jet_jet*", "run"])
    with h5py.File(tmp_path / "d.h5") as g:  # dropped means dropped: not back through the extras
        assert "Jet_jetId" not in g["Events"] and "run" not in g["Events"] and "calib" in g["Events"]
    src = open_table(tmp_path / "c.h5", keep_branches=["Jet_jetId"])
    assert src.info.jet_branches == ["Jet_jetId"] and src.info.kept_branches == []
    assert src.info.other_branches == ["calib", "run"]
    src.close()
    with pytest.raises(InputError, match="--drop-branches 'MET' matches no column"):
        open_table(tmp_path / "c.h5", drop_branches=["MET"])


def test_flat_h5py_columns_carry_uint64_exactly(tmp_path):
    """A flat file h5py users write: one dataset per column, per-row extras carried exactly."""
    import h5py

    rng = np.random.default_rng(8)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["E"] = rng.uniform(300, 400, 100)
        f["pt"] = rng.uniform(20, 200, 100)
        f["eta"] = rng.normal(0, 1, 100)
        f["phi"] = rng.uniform(-3, 3, 100)
        f["evt"] = np.arange(100, dtype=np.uint64) + np.uint64(2 ** 63)
    roundtrip(tmp_path / "f.h5", tmp_path / "b.h5")
    assert_same_table(tmp_path / "f.h5", tmp_path / "b.h5")


# --- CSV separators, (px, py, pz, m), index column ------------------------------------------

def test_semicolon_csv_is_sniffed_and_written_back_with_semicolons(tmp_path):
    info, _ = roundtrip(case("semicolon.csv"), tmp_path / "back.csv")
    assert info.extra["csv_separator"] == ";" and "csv_separator_note" not in info.extra
    assert info.columns == {"pt": "pt", "eta": "eta", "phi": "phi", "m": "mass"}
    assert (tmp_path / "back.csv").read_text().splitlines()[0] == "pt;eta;phi;mass"
    assert_same_table(case("semicolon.csv"), tmp_path / "back.csv", rtol=1e-6)


def test_tab_and_ambiguous_separators(tmp_path):
    (tmp_path / "t.tsv").write_text("pt\teta\tphi\tmass\n30.5\t0.1\t1.0\t4.0\n40.5\t-0.2\t2.0\t5.0\n")
    info = open_table(tmp_path / "t.tsv").info
    assert info.extra["csv_separator"] == "\t" and info.columns["m"] == "mass"
    # ',' inside cells of a ';' file: both split every row alike, the one giving more columns wins
    (tmp_path / "a.csv").write_text("pt;eta;phi;mass;a,b\n30;0.1;1.0;4;1,0\n40;0.2;2.0;5;2,0\n")
    info = open_table(tmp_path / "a.csv").info
    assert info.extra["csv_separator"] == ";" and info.other_branches == ["a,b"]
    assert "';'" in info.extra["csv_separator_note"] and "','" in info.extra["csv_separator_note"]
    # decimal commas are not numbers: the error names the line and the column
    (tmp_path / "d.csv").write_text("pt;eta;phi;mass\n30,5;0,1;1,0;4,0\n")
    with pytest.raises(InputError, match="non-numeric cell '30,5' in column pt"):
        list(open_table(tmp_path / "d.csv", units="GeV").chunks())


def test_px_py_pz_m_csv_restored_in_px_py_pz_m(tmp_path):
    info, _ = roundtrip(case("px_py_pz_m.csv"), tmp_path / "back.csv", units="GeV")
    assert info.representation == "PxPyPzM" and info.columns == {"px": "px", "py": "py", "pz": "pz", "m": "m"}
    assert (tmp_path / "back.csv").read_text().splitlines()[0] == "px,py,pz,m"
    _, c0, *_ = read_all(case("px_py_pz_m.csv"), units="GeV")
    _, c1, *_ = read_all(tmp_path / "back.csv", units="GeV")
    for r in ("px", "py", "pz"):
        close(c0[r], c1[r], rtol=1e-6, atol=1e-3)
    close(c0["m"], c1["m"], rtol=1e-3, atol=0.5)  # m from E^2 - p^2 in float64, p up to 10 TeV
    # --columns names them too (refused before PxPyPzM existed)
    src = open_table(case("px_py_pz_m.csv"), columns="px=px,py=py,pz=pz,m=m", units="GeV")
    assert src.info.representation == "PxPyPzM"
    src.close()


def test_jagged_csv_index_column_named_apart_from_an_event_column(tmp_path):
    import h5py

    counts = np.array([2, 1, 3], np.uint32)
    n = int(counts.sum())
    rng = np.random.default_rng(5)
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f["nJet"] = counts
        for name, v in jet_values(rng, n).items():
            f[name] = v
        f["event"] = np.array([1001, 1005, 1010], np.uint64)  # the experiment's event number
    roundtrip(tmp_path / "e.h5", tmp_path / "e.csv", fmt="csv")
    lines = (tmp_path / "e.csv").read_text().splitlines()
    assert lines[0].split(",")[0] == "jetzip_event" and "event" in lines[0].split(",")
    info, cols, back_counts, kept, jet_kept = read_all(tmp_path / "e.csv")
    assert info.jagged and info.extra["csv_event_column"] == "jetzip_event"
    np.testing.assert_array_equal(back_counts, counts)
    # the event number is now one value per jet row (a per-jet column of the CSV)
    np.testing.assert_array_equal(jet_kept["event"], np.repeat([1001, 1005, 1010], counts))
    # without an `event` column of its own the index keeps the plain name
    with h5py.File(tmp_path / "e.h5", "a") as f:
        del f["event"]
    roundtrip(tmp_path / "e.h5", tmp_path / "f.csv", fmt="csv")
    assert (tmp_path / "f.csv").read_text().splitlines()[0].split(",")[0] == "event"


# --- several jets per row ---------------------------------------------------------------------

def lhco_columns(n: int = 400, seed: int = 5) -> dict[str, np.ndarray]:
    """LHC Olympics 2020 features: pxj1, pyj1, pzj1, mj1, tau1j1, ..., then j2, then label."""
    rng = np.random.default_rng(seed)
    d: dict[str, np.ndarray] = {}
    for j in (1, 2):
        pt = rng.uniform(1200, 2000, n) if j == 1 else rng.uniform(400, 1500, n)
        eta, phi = rng.normal(0, 1, n), rng.uniform(-np.pi, np.pi, n)
        d[f"pxj{j}"], d[f"pyj{j}"], d[f"pzj{j}"] = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        d[f"mj{j}"] = rng.uniform(20, 600, n)
        d[f"tau1j{j}"], d[f"tau2j{j}"] = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    d["label"] = rng.integers(0, 2, n).astype(np.float64)
    return d


def write_csv(path, cols: dict[str, np.ndarray]) -> None:
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for row in zip(*cols.values()):
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")


@pytest.mark.parametrize("fmt", ["csv", "hdf5", "pandas", "parquet"])
def test_several_jets_per_row_are_events_of_jets_restored_in_the_same_columns(tmp_path, fmt):
    d = lhco_columns()
    # row 5 has one jet; row 6 a second jet without a 4-vector but with tau values: a NaN jet
    d["pxj2"][5] = d["pyj2"][5] = d["pzj2"][5] = d["mj2"][5] = d["tau1j2"][5] = d["tau2j2"][5] = np.nan
    d["pxj2"][6] = d["pyj2"][6] = d["pzj2"][6] = d["mj2"][6] = np.nan
    if fmt == "csv":
        path = tmp_path / "l.csv"
        write_csv(path, d)
    elif fmt == "hdf5":
        import h5py

        path = tmp_path / "l.h5"
        with h5py.File(path, "w", track_order=True) as f:
            for k, v in d.items():
                f[k] = v
    elif fmt == "pandas":
        pd = pytest.importorskip("pandas")
        pytest.importorskip("tables")
        path = tmp_path / "l.h5"
        pd.DataFrame(d).to_hdf(path, key="df", format="fixed")
    else:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        path = tmp_path / "l.parquet"
        pq.write_table(pa.table(d), path)
    back = tmp_path / f"back{path.suffix}"
    info, chunks = roundtrip(path, back, units="GeV", chunk_jets=100)
    assert info.layout == "jets-per-row" and info.jagged and info.representation == "PxPyPzM"
    # described as the ROOT reader describes such columns (pattern names), every column spelled out
    assert info.collection == "j*" and info.columns == {"px": "pxj*", "py": "pyj*", "pz": "pzj*", "m": "mj*"}
    assert info.extra["slots"]["slots"] == ["j1", "j2"] and info.extra["slots"]["template"] == "{var}{slot}"
    assert [list(s.values()) for s in info.extra["wide"]["jets"]] == [["pxj1", "pyj1", "pzj1", "mj1"],
                                                                      ["pxj2", "pyj2", "pzj2", "mj2"]]
    # per-slot variables (tau1j1, tau1j2) are per-jet branches, as the ROOT reader makes them
    assert info.jet_branches == ["tau1j*", "tau2j*"] and "label" in info.kept_branches
    assert info.extra["wide"]["extras"]["tau1j*"] == ["tau1j1", "tau1j2"]
    counts = np.concatenate([c.counts for c in chunks])
    assert len(counts) == 400 and counts[5] == 1 and (np.delete(counts, 5) == 2).all()
    _, c0, n0, k0, j0 = read_all(path, units="GeV")
    i1, c1, n1, k1, j1 = read_all(back, units="GeV")
    np.testing.assert_array_equal(n1, n0)
    assert i1.branch_order == info.branch_order  # the same columns in the same order
    for r in ("px", "py", "pz"):
        close(c0[r], c1[r], rtol=1e-6, atol=1e-3)
    for k in k0:
        np.testing.assert_array_equal(k1[k], k0[k])
    for k in j0:  # tau values exactly, NaN where the file has NaN
        np.testing.assert_array_equal(j1[k], j0[k])
    np.testing.assert_array_equal(chunks[0].jet_kept["tau1j*"][:2], [d["tau1j1"][0], d["tau1j2"][0]])


def test_wide_names_are_recognised():
    from jetzip.tables.wide import find_wide, parse_wide_name

    assert parse_wide_name("pxj1") == ("", "px", 1)
    assert parse_wide_name("pT_h1_j2") == ("h1", "pt", 2)
    assert parse_wide_name("jet2_eta") == ("", "eta", 2)
    assert parse_wide_name("tau1j1") is None and parse_wide_name("mjj") is None
    names = [f"{v}_h{h}_j{j}" for h in (1, 2) for j in (1, 2) for v in ("pT", "eta", "phi", "m")]
    # as the ROOT reader groups them: four slots h1_j1 ... h2_j2, 'tag' a per-jet variable
    (w,) = find_wide(names).values()
    assert w.pattern == "h*_j*" and len(w.jets) == 4 and w.extras == {}
    w = find_wide([*names, *(f"tag_h{h}_j{j}" for h in (1, 2) for j in (1, 2))])["h*_j*"]
    assert w.extras == {"tag_h*_j*": ["tag_h1_j1", "tag_h1_j2", "tag_h2_j1", "tag_h2_j2"]}
    assert w.columns == {"pt": "pT_h*_j*", "eta": "eta_h*_j*", "phi": "phi_h*_j*", "m": "m_h*_j*"}
    # names with the index before the variable have no template: jet 1's columns name the roles
    w = find_wide([f"jet{j}_{v}" for j in (1, 2, 3) for v in ("pt", "eta", "phi", "E")])["jet*"]
    assert len(w.jets) == 3 and w.slots is None and w.columns["pt"] == "jet1_pt"


def test_jets_per_row_with_a_per_jet_variable_and_two_sets(tmp_path):
    rng = np.random.default_rng(6)
    n = 50
    cols = {}
    for h in (1, 2):
        for j in (1, 2):
            pt = rng.uniform(30, 300, n)
            cols.update({f"pT_h{h}_j{j}": pt, f"eta_h{h}_j{j}": rng.normal(0, 1, n),
                         f"phi_h{h}_j{j}": rng.uniform(-3, 3, n), f"m_h{h}_j{j}": rng.uniform(1, 20, n)})
            cols[f"tag_h{h}_j{j}"] = rng.integers(0, 2, n)
    cols["weight"] = rng.uniform(0, 1, n)
    with open(tmp_path / "h.csv", "w") as f:
        f.write(",".join(cols) + "\n")
        for row in zip(*cols.values()):
            f.write(",".join(str(v) for v in row) + "\n")
    info, chunks = roundtrip(tmp_path / "h.csv", tmp_path / "b.csv", units="GeV")
    assert info.collection == "h*_j*" and info.jet_branches == ["tag_h*_j*"] and info.kept_branches == ["weight"]
    assert info.dtypes["tag_h*_j*"] == "int64"
    np.testing.assert_array_equal(chunks[0].jet_kept["tag_h*_j*"][:4],
                                  [cols[f"tag_h{h}_j{j}"][0] for h in (1, 2) for j in (1, 2)])
    header = (tmp_path / "b.csv").read_text().splitlines()[0].split(",")
    assert header == list(cols)
    _, c0, n0, k0, j0 = read_all(tmp_path / "h.csv", units="GeV")
    _, c1, n1, k1, j1 = read_all(tmp_path / "b.csv", units="GeV")
    np.testing.assert_array_equal(n1, n0)
    np.testing.assert_array_equal(j1["tag_h*_j*"], j0["tag_h*_j*"])
    close(c0["pt"], c1["pt"], rtol=1e-6)
    # the same table to HDF5 and Parquet: the same columns
    import h5py

    roundtrip(tmp_path / "h.csv", tmp_path / "b.h5", fmt="hdf5", units="GeV")
    with h5py.File(tmp_path / "b.h5") as f:
        assert list(f) == list(cols) and f["tag_h2_j1"].dtype == np.int64
    if __import__("importlib").util.find_spec("pyarrow"):
        import pyarrow.parquet as pq

        roundtrip(tmp_path / "h.csv", tmp_path / "b.parquet", fmt="parquet", units="GeV")
        assert pq.read_schema(tmp_path / "b.parquet").names == list(cols)


# --- Parquet ------------------------------------------------------------------------------------

def awkward_events(n: int = 300, seed: int = 7):
    ak = pytest.importorskip("awkward")
    rng = np.random.default_rng(seed)
    counts = rng.poisson(3, n)
    counts[::25] = 0
    m = int(counts.sum())
    un = lambda a: ak.unflatten(a, counts)
    jets = {"pt": rng.uniform(20, 300, m).astype(np.float32), "eta": rng.normal(0, 1.5, m).astype(np.float32),
            "phi": rng.uniform(-np.pi, np.pi, m).astype(np.float32),
            "mass": rng.uniform(2, 30, m).astype(np.float32), "btag": rng.uniform(0, 1, m).astype(np.float32),
            "jetId": rng.integers(0, 7, m).astype(np.int32)}
    event = {"run": np.ones(n, np.int64), "event": np.arange(n, dtype=np.uint64) * 7 + 3,
             "MET_pt": rng.uniform(0, 100, n).astype(np.float32)}
    return ak, un, counts, jets, event


def test_parquet_jagged_records_as_awkward_writes_them(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    ak, un, counts, jets, event = awkward_events()
    arr = ak.zip({"run": event["run"], "event": event["event"],
                  "Jet": ak.zip({k: un(v) for k, v in jets.items()}), "MET_pt": event["MET_pt"]}, depth_limit=1)
    ak.to_parquet(arr, tmp_path / "r.parquet")
    info, _ = roundtrip(tmp_path / "r.parquet", tmp_path / "b.parquet", chunk_jets=200)
    assert info.collection == "Jet" and info.columns["pt"] == "Jet.pt" and info.jagged
    assert info.jet_branches == ["Jet.btag", "Jet.jetId"] and info.kept_branches == ["run", "event", "MET_pt"]
    assert pq.read_schema(tmp_path / "b.parquet").equals(pq.read_schema(tmp_path / "r.parquet"), check_metadata=True)
    back = ak.from_parquet(tmp_path / "b.parquet")
    assert back.fields == arr.fields and str(back.type) == str(arr.type)
    np.testing.assert_array_equal(ak.num(back["Jet"]), counts)
    np.testing.assert_array_equal(ak.flatten(back["Jet"]["jetId"]), jets["jetId"])
    np.testing.assert_array_equal(back["event"], event["event"])
    close(jets["pt"], ak.flatten(back["Jet"]["pt"]), rtol=1e-6)
    assert_same_table(tmp_path / "r.parquet", tmp_path / "b.parquet", rtol=1e-6)


def test_parquet_jagged_lists_with_a_counter_and_flat_tables(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    ak, un, counts, jets, event = awkward_events(seed=9)
    arr = ak.zip({"nJet": counts.astype(np.int32), **{f"Jet_{k}": un(v) for k, v in jets.items()},
                  "event": event["event"]}, depth_limit=1)
    ak.to_parquet(arr, tmp_path / "l.parquet")
    info, _ = roundtrip(tmp_path / "l.parquet", tmp_path / "b.parquet", chunk_jets=100)
    assert info.counter == "nJet" and info.jet_branches == ["Jet_btag", "Jet_jetId"]
    assert_same_table(tmp_path / "l.parquet", tmp_path / "b.parquet", rtol=1e-6)
    back = ak.from_parquet(tmp_path / "b.parquet")
    np.testing.assert_array_equal(back["nJet"], counts)
    # a flat table, with a text column: carried as it is
    n = 50
    t = pa.table({"pt": np.linspace(20, 70, n), "eta": np.zeros(n), "phi": np.zeros(n), "mass": np.ones(n),
                  "name": ["j"] * n})
    pq.write_table(t, tmp_path / "f.parquet")
    info, _ = roundtrip(tmp_path / "f.parquet", tmp_path / "g.parquet")
    assert not info.jagged and info.other_branches == [] and info.carried_branches == ["name"]
    assert pq.read_schema(tmp_path / "g.parquet").names == ["pt", "eta", "phi", "mass", "name"]
    assert pq.read_table(tmp_path / "g.parquet")["name"].to_pylist() == ["j"] * n
    # a counter that disagrees with the lists is an error, not a silent choice
    bad = ak.zip({"nJet": (counts + 1).astype(np.int32), **{f"Jet_{k}": un(v) for k, v in jets.items()}},
                 depth_limit=1)
    ak.to_parquet(bad, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="nJet says"):
        list(open_table(tmp_path / "bad.parquet", units="GeV").chunks())


def test_parquet_without_pyarrow_is_a_one_line_error(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1" + b"\0" * 16 + b"PAR1")
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from jetzip.tables import open_table\n"
            "from jetzip.errors import InputError\n"
            f"try:\n    open_table({str(tmp_path / 'x.parquet')!r})\n"
            "except InputError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Parquet needs pyarrow: pip install 'jetzip[parquet]' (or pip install pyarrow)"


def test_parquet_found_by_magic_and_extension(tmp_path):
    from jetzip.tables import format_of

    assert format_of("x.parquet") == "parquet" and format_of("x.pq") == "parquet"
    (tmp_path / "noext").write_bytes(b"PAR1" + b"\0" * 8)
    assert format_of(tmp_path / "noext") == "parquet"


# --- end to end: jetzip.compress -> .aez -> jetzip.decompress, same format ---------------------

def assert_jets_close(orig, back, units=None, pt_rel=6e-3, angle=6e-3, **kw):
    """Names, events, counts and carried columns as the original's; every jet within the codec's
    stated tolerance in pt, eta and phi (the mass/E is not what three floats carry)."""
    i0, c0, n0, k0, j0 = read_all(orig, units=units, **kw)
    i1, c1, n1, k1, j1 = read_all(back, units=units or i0.units, **kw)
    assert i1.columns == i0.columns and i1.representation == i0.representation
    assert i1.kept_branches == i0.kept_branches and i1.jet_branches == i0.jet_branches
    assert i1.branch_order == i0.branch_order
    if n0 is None:
        assert n1 is None
    else:
        np.testing.assert_array_equal(n1, n0)
    for k in k0:
        np.testing.assert_array_equal(k1[k], k0[k])
        assert k1[k].dtype == k0[k].dtype
    for k in j0:
        np.testing.assert_array_equal(j1[k], j0[k])
    f0 = to_model_frame(c0, i0.representation, i0.units)
    f1 = to_model_frame(c1, i1.representation, i1.units)
    assert np.max(np.abs(f1[:, 1] / f0[:, 1] - 1)) < pt_rel
    assert np.max(np.abs(f1[:, 2] - f0[:, 2])) < angle
    dphi = (f1[:, 3] - f0[:, 3] + np.pi) % (2 * np.pi) - np.pi
    assert np.max(np.abs(dphi)) < angle


def e2e(src, out, model, **kw):
    import jetzip

    aez = Path(out).with_suffix(".aez")
    report = jetzip.compress(src, aez, model=model, **kw)
    jetzip.decompress(aez, out)
    return report


@pytest.mark.parametrize("name,suffix,units", [
    ("pandas_fixed.h5", ".h5", None), ("pandas_table.h5", ".h5", None), ("h5py_vlen_jagged.h5", ".h5", None),
    ("semicolon.csv", ".csv", None), ("px_py_pz_m.csv", ".csv", "GeV")])
def test_shared_cases_compress_and_decompress_to_their_format(tmp_path, small_model_path, name, suffix, units):
    out = tmp_path / f"back{suffix}"
    report = e2e(case(name), out, small_model_path, units=units)
    assert report["n_jets"] > 0
    assert_jets_close(case(name), out, units=units)
    if name.startswith("pandas"):
        pd = pytest.importorskip("pandas")
        pytest.importorskip("tables")
        a, b = pd.read_hdf(case(name), "jets"), pd.read_hdf(out, "jets")
        assert list(b.columns) == list(a.columns) and (b.index == a.index).all()
    if name == "semicolon.csv":
        assert out.read_text().splitlines()[0] == "pt;eta;phi;mass"


def test_whole_hdf5_file_comes_back_through_aez(tmp_path, small_model_path):
    import h5py

    rng = np.random.default_rng(12)
    counts = rng.poisson(3, 200).astype(np.uint32)
    counts[::10] = 0
    n = int(counts.sum())
    with h5py.File(tmp_path / "n.h5", "w") as f:
        g = f.create_group("Events")
        g["nJet"] = counts
        for name, v in jet_values(rng, n).items():
            g[name] = v
        g["Jet_btagDeepFlavB"] = rng.uniform(0, 1, n).astype(np.float32)
        g["Jet_jetId"] = rng.integers(0, 7, n).astype(np.int32)
        g["event"] = np.arange(200, dtype=np.uint64) + np.uint64(2 ** 40)
        g["MET_pt"] = rng.uniform(0, 100, 200).astype(np.float32)
        f.create_group("Runs")["genEventSumw"] = np.array([1234.5, 99.0])
    e2e(tmp_path / "n.h5", tmp_path / "b.h5", small_model_path)
    assert_jets_close(tmp_path / "n.h5", tmp_path / "b.h5")
    with h5py.File(tmp_path / "b.h5") as f:
        np.testing.assert_array_equal(f["Runs/genEventSumw"][()], [1234.5, 99.0])
        assert list(f["Events"]) == ["Jet_btagDeepFlavB", "Jet_eta", "Jet_jetId", "Jet_mass", "Jet_phi",
                                     "Jet_pt", "MET_pt", "event", "nJet"]
    # and to CSV: the index column does not take the name of the file's own `event`
    import jetzip

    jetzip.decompress(tmp_path / "b.aez", tmp_path / "b.csv")
    header = (tmp_path / "b.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "jetzip_event" and "event" in header


@pytest.mark.parametrize("fmt", ["csv", "hdf5", "parquet"])
def test_several_jets_per_row_through_aez(tmp_path, small_model_path, fmt):
    d = lhco_columns(200)
    if fmt == "csv":
        path = tmp_path / "l.csv"
        write_csv(path, d)
    elif fmt == "hdf5":
        pd = pytest.importorskip("pandas")
        pytest.importorskip("tables")
        path = tmp_path / "l.h5"
        pd.DataFrame(d).to_hdf(path, key="df", format="fixed")
    else:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        path = tmp_path / "l.parquet"
        pq.write_table(pa.table(d), path)
    out = tmp_path / f"back{path.suffix}"
    report = e2e(path, out, small_model_path, units="GeV")
    assert report["n_jets"] == 400 and report["n_events"] == 200
    assert_jets_close(path, out, units="GeV")
    # the header's pattern names find the same jets again (evaluate reads the original so)
    import jetzip

    info = jetzip.read_aez(out.with_suffix(".aez"))["table"]
    cols = {role: name for role, name in info["columns"]}
    assert cols == {"px": "pxj*", "py": "pyj*", "pz": "pzj*", "m": "mj*"}
    src = open_table(path, columns=cols, units="GeV", tree=info["tree"])
    assert len(src.info.extra["wide"]["jets"]) == 2
    src.close()


def test_awkward_buffers_through_aez(tmp_path, small_model_path):
    ak, un, counts, jets, event = awkward_events(seed=14)
    arr = ak.zip({"run": event["run"], "Jet": ak.zip({k: un(v) for k, v in jets.items()}),
                  "MET_pt": event["MET_pt"]}, depth_limit=1)
    write_awkward_buffers(tmp_path / "a.h5", arr)
    e2e(tmp_path / "a.h5", tmp_path / "b.h5", small_model_path)
    assert_jets_close(tmp_path / "a.h5", tmp_path / "b.h5")
    assert str(read_awkward_buffers(tmp_path / "b.h5").type) == str(arr.type)


@pytest.mark.parametrize("kind", ["records", "lists"])
def test_parquet_through_aez(tmp_path, small_model_path, kind):
    pytest.importorskip("pyarrow")
    ak, un, counts, jets, event = awkward_events(seed=11)
    if kind == "records":
        arr = ak.zip({"run": event["run"], "event": event["event"],
                      "Jet": ak.zip({k: un(v) for k, v in jets.items()}), "MET_pt": event["MET_pt"]}, depth_limit=1)
    else:
        arr = ak.zip({"nJet": counts.astype(np.int32), **{f"Jet_{k}": un(v) for k, v in jets.items()},
                      "event": event["event"]}, depth_limit=1)
    ak.to_parquet(arr, tmp_path / "a.parquet")
    report = e2e(tmp_path / "a.parquet", tmp_path / "b.parquet", small_model_path)
    assert report["n_events"] == len(counts)
    assert_jets_close(tmp_path / "a.parquet", tmp_path / "b.parquet")
    back = ak.from_parquet(tmp_path / "b.parquet")
    assert str(back.type) == str(arr.type)


def test_extras_of_another_format_are_not_forced_into_a_writer(tmp_path):
    """A ROOT file's other trees cannot go into HDF5, CSV or Parquet: the HDF5 writer leaves a
    foreign blob alone, and CSV/Parquet writers have no write_extras (decompress warns then)."""
    import h5py

    from jetzip.tables.csv import CsvWriter
    from jetzip.tables.parquet import ParquetWriter

    src = open_table(case("semicolon.csv"))
    w = open_writer(str(tmp_path / "b.h5"), "hdf5", src.info, src.info.columns, {})
    chunk = next(iter(src.chunks()))
    w.write(chunk.columns, chunk.counts, chunk.kept)
    w.write_extras(b"root\x00\x00\x00\x00 not an HDF5 image")
    w.close()
    src.close()
    with h5py.File(tmp_path / "b.h5") as f:
        assert set(f) == {"pt", "eta", "phi", "mass"}
    assert not hasattr(CsvWriter, "write_extras") and not hasattr(ParquetWriter, "write_extras")


def test_parquet_text_columns_through_aez(tmp_path):
    """Arrow's strings and lists have int32 offsets; the carried branches keep that type in the
    .aez, and decompress must rebuild the offsets in it (an .aez of any Parquet file with a text
    column was written, then refused as 'carried branches are corrupted')."""
    pa = pytest.importorskip("pyarrow")
    import awkward as ak
    import pyarrow.parquet as pq
    import uproot

    import jetzip

    n = 50
    names = [f"j{i}" * (i % 4) for i in range(n)]
    tags = [[f"t{k}" for k in range(i % 3)] for i in range(n)]
    t = pa.table({"pt": np.linspace(20, 70, n), "eta": np.zeros(n), "phi": np.zeros(n), "mass": np.ones(n),
                  "name": names, "tags": tags})
    pq.write_table(t, tmp_path / "f.parquet")
    jetzip.compress(tmp_path / "f.parquet", tmp_path / "f.aez", error_bound="1e-3", units="GeV", chunk_jets=20)
    jetzip.decompress(tmp_path / "f.aez", tmp_path / "g.parquet")
    g = pq.read_table(tmp_path / "g.parquet")
    assert g["name"].to_pylist() == names and g["tags"].to_pylist() == tags
    jetzip.decompress(tmp_path / "f.aez", tmp_path / "g.root")
    with uproot.open(tmp_path / "g.root") as f:
        tree = f[next(k for k, c in f.classnames().items() if c == "TTree")]
        assert tree["name"].array(library="np").tolist() == names
        assert tree["tags_counts"].array().tolist() == [[len(s) for s in row] for row in tags]
        assert ak.num(tree["tags"].array()).tolist() == [sum(len(s) for s in row) for row in tags]
