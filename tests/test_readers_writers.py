"""The HDF5, Parquet and CSV writers: restores no bigger than they need be (issue 20) and
values beyond float32 kept (issue 23).

- HDF5: every dataset deflate-compressed, in chunks sized to the data; a table that fits in
  the writer's buffer is made at its final size, a larger one grows in chunks sized by the
  first write (sizes against the inputs: ``examples/sizes.py``);
- Parquet: zstd;
- a float64 input keeps float64 jet columns, so pt = 1e39, eta = 9999.1235 and a mass of
  1e-320 come back within the bound (as float32 they would be inf, 9999.123 and 0).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import jetzip
from jetzip.tables import open_table, open_writer


def extreme_table(path, n=2000):
    import h5py

    rng = np.random.default_rng(23)
    cols = {"pt": rng.uniform(20, 200, n), "eta": rng.normal(0, 1, n), "phi": rng.uniform(-3, 3, n),
            "mass": rng.uniform(1, 20, n)}
    cols["pt"][3] = 1e39  # beyond float32's range
    cols["eta"][5], cols["eta"][9] = 9999.1235, -9999.5  # beyond float32's precision for a 1e-4 bound
    cols["mass"][7] = 1e-320  # a float64 subnormal: 0 in float32
    with h5py.File(path, "w") as f:
        for k, v in cols.items():
            f[k] = v
    return cols


def read_columns(path) -> dict[str, np.ndarray]:
    src = open_table(path, units="GeV")
    chunks = list(src.chunks(1 << 20))
    src.close()
    return {src.info.columns[r]: np.concatenate([c.columns[r] for c in chunks]) for r in src.info.columns}


@pytest.mark.parametrize("suffix", [".h5", ".parquet", ".csv"])
def test_float64_values_beyond_float32_come_back_within_the_bound(tmp_path, suffix):
    pytest.importorskip("pyarrow")
    cols = extreme_table(tmp_path / "x.h5")
    jetzip.compress(tmp_path / "x.h5", tmp_path / "x.aez", error_bound="pt=1e-4,eta=1e-4,phi=1e-4,mass=1e-4")
    jetzip.decompress(tmp_path / "x.aez", tmp_path / f"back{suffix}")
    back = read_columns(tmp_path / f"back{suffix}")
    if suffix != ".csv":  # CSV holds text: its values are checked, not a dtype
        assert all(v.dtype == np.float64 for v in back.values())
    b = 1e-4 * (1 + 1e-6)
    assert np.all(np.abs(back["pt"] / cols["pt"] - 1) <= b) and back["pt"][3] == pytest.approx(1e39, rel=b)
    assert np.all(np.abs(back["eta"] - cols["eta"]) <= b)
    dphi = (back["phi"] - cols["phi"] + np.pi) % (2 * np.pi) - np.pi
    assert np.all(np.abs(dphi) <= b)
    assert np.all(np.abs(back["mass"] / cols["mass"] - 1) <= b) and back["mass"][7] > 0


def write_jagged(tmp_path, n_events: int, name="j.h5"):
    import h5py

    rng = np.random.default_rng(4)
    counts = rng.poisson(3, n_events).astype(np.uint32)
    n = int(counts.sum())
    with h5py.File(tmp_path / name, "w") as f:
        g = f.create_group("Events")
        g["nJet"] = counts
        for k, v in {"pt": rng.uniform(20, 200, n), "eta": rng.normal(0, 1, n), "phi": rng.uniform(-3, 3, n),
                     "mass": rng.uniform(1, 20, n)}.items():
            g[f"Jet_{k}"] = v.astype(np.float32)
        g["event"] = np.arange(n_events, dtype=np.int64)
    return counts


def copy_table(src_path, out_path, jets_per_chunk=1 << 16) -> None:
    src = open_table(src_path)
    info = src.info
    w = open_writer(str(out_path), "hdf5", info, info.columns, {k: info.dtypes[k] for k in info.kept_branches})
    for c in src.chunks(jets_per_chunk):
        w.write(c.columns, c.counts, c.kept, c.jet_kept)
    w.close()
    src.close()


def test_hdf5_restores_are_compressed_in_chunks_sized_to_the_data(tmp_path, monkeypatch):
    import h5py

    from jetzip.tables import hdf5_writer

    counts = write_jagged(tmp_path, 200)
    copy_table(tmp_path / "j.h5", tmp_path / "small.h5", jets_per_chunk=100)
    with h5py.File(tmp_path / "small.h5") as f:
        g = f["Events"]
        assert set(g) == {"nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "event"}
        for name, d in g.items():
            assert d.compression == "gzip", name
            assert d.maxshape == d.shape  # made at its final size: 200 events, not 65,536-row chunks
            assert d.chunks[0] <= d.shape[0]
        np.testing.assert_array_equal(g["nJet"][()], counts)
        assert g["Jet_pt"].dtype == np.float32
    # a table larger than the writer holds back grows in chunks sized by its first write
    monkeypatch.setattr(hdf5_writer, "BUFFER_BYTES", 4096)
    counts = write_jagged(tmp_path, 3000, "big.h5")
    copy_table(tmp_path / "big.h5", tmp_path / "grown.h5", jets_per_chunk=2000)
    with h5py.File(tmp_path / "grown.h5") as f:
        g = f["Events"]
        assert g["Jet_pt"].maxshape == (None,) and g["Jet_pt"].compression == "gzip"
        assert g["Jet_pt"].chunks[0] == 2048  # the first write's 2,000 jets, to a power of two
        np.testing.assert_array_equal(g["nJet"][()], counts)
        assert len(g["Jet_pt"]) == int(counts.sum())
    src = open_table(tmp_path / "grown.h5")
    assert sum(c.n_jets for c in src.chunks()) == int(counts.sum())
    src.close()


def test_empty_hdf5_table_is_written(tmp_path):
    import h5py

    write_jagged(tmp_path, 0)
    copy_table(tmp_path / "j.h5", tmp_path / "e.h5")
    with h5py.File(tmp_path / "e.h5") as f:
        assert f["Events/Jet_pt"].shape == (0,) and f["Events/nJet"].shape == (0,)


def test_parquet_restores_are_zstd_compressed(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    pq.write_table(pa.table({"pt": rng.uniform(20, 200, 500), "eta": rng.normal(0, 1, 500),
                             "phi": rng.uniform(-3, 3, 500), "mass": rng.uniform(1, 9, 500)}),
                   tmp_path / "f.parquet", compression="snappy")
    jetzip.compress(tmp_path / "f.parquet", tmp_path / "f.aez", error_bound="1e-3")
    jetzip.decompress(tmp_path / "f.aez", tmp_path / "back.parquet")
    meta = pq.ParquetFile(tmp_path / "back.parquet").metadata
    assert {meta.row_group(0).column(j).compression for j in range(meta.num_columns)} == {"ZSTD"}


def test_carried_branches_into_hdf5_and_csv(tmp_path):
    """NanoAOD as Parquet read with its other collections carried (awkward arrays), written
    straight into HDF5: lists of numbers as flat datasets with a counter per event; CSV
    cannot hold them and names each once."""
    import awkward as ak
    import h5py
    import pyarrow.parquet as pq

    from conftest import SHARED, shared_file

    path = shared_file(SHARED / "data" / "public" / "nano_dy.parquet")
    src = open_table(path)
    info, chunks = src.info, list(src.chunks(20))
    src.close()
    assert len(chunks) > 1
    kept_dtypes = {k: info.dtypes[k] for k in info.kept_branches}
    w = open_writer(str(tmp_path / "b.h5"), "hdf5", info, info.columns, kept_dtypes)
    for c in chunks:
        w.write(c.columns, c.counts, c.kept, c.jet_kept, carried=c.carried)  # type: ignore[call-arg]
    w.close()
    assert w.missing == []  # type: ignore[attr-defined]
    original = ak.from_parquet(path)
    with h5py.File(tmp_path / "b.h5") as f:
        counter_of = {m: c for c, ms in json.loads(f.attrs["counters"]).items() for m in ms}
        for name in ("Muon_pt", "GenPart_pdgId", "FatJet_msoftdrop"):  # flat values, a counter per event
            back = ak.unflatten(f[name][()], f[counter_of[name]][()].astype(np.int64))
            assert len(back) == 40 and ak.to_list(back) == ak.to_list(original[name])
        assert f["Muon_pt"].dtype == np.float32
    assert pq.read_schema(path).field("Muon_pt").type.value_type == "float"
    w = open_writer(str(tmp_path / "b.csv"), "csv", info, info.columns, kept_dtypes)
    for c in chunks:
        w.write(c.columns, c.counts, c.kept, c.jet_kept, carried=c.carried)  # type: ignore[call-arg]
    w.close()
    missing = w.missing  # type: ignore[attr-defined]
    assert len(missing) == len(info.extra["carried"]) and missing[0].startswith(f"{info.extra['carried'][0]} (CSV")


def test_variable_length_rows_of_equal_length_are_written(tmp_path):
    """Every event with 2 jets: h5py would take the rows for a 2-D array (a crash before)."""
    import h5py

    vl = h5py.vlen_dtype(np.float32)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        for k, v in {"jet_pt": 50.0, "jet_eta": 0.5, "jet_phi": 1.0, "jet_mass": 5.0}.items():
            d = f.create_dataset(k, (30,), dtype=vl)
            for i in range(30):
                d[i] = np.full(2, v + i, np.float32)
    src = open_table(tmp_path / "v.h5")
    info = src.info
    w = open_writer(str(tmp_path / "b.h5"), "hdf5", info, info.columns, {})
    for c in src.chunks():
        w.write(c.columns, c.counts, c.kept, c.jet_kept)
    w.close()
    src.close()
    with h5py.File(tmp_path / "b.h5") as f:
        assert h5py.check_vlen_dtype(f["jet_pt"].dtype) is not None
        np.testing.assert_array_equal(np.stack(f["jet_pt"][()]), 50.0 + np.arange(30)[:, None] + np.zeros(2))
