"""Readers start at an entry (issue 24 step 3): ``chunks(n, entry_start, entry_stop)`` of every
HDF5, Parquet and CSV layout gives exactly the entries ``[entry_start, entry_stop)`` of the whole
table, in chunks of whole events, with the right ``first_entry`` and (where the layout says it
without reading the jets before) ``first_jet``.

That the reading starts at the dataset slice or row group holding the entry (rather than
reading and dropping what comes before) is measured by ``examples/bench_entry_start.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from jetzip.tables import open_table
from jetzip.tables.base import JetChunk

RNG = np.random.default_rng(24)
N_EVENTS = 700
COUNTS = RNG.poisson(3, N_EVENTS).astype(np.uint32)
COUNTS[::17] = 0
N_JETS = int(COUNTS.sum())


def jets(n: int) -> dict[str, np.ndarray]:
    return {"pt": RNG.uniform(20, 300, n).astype(np.float32), "eta": RNG.normal(0, 1.5, n).astype(np.float32),
            "phi": RNG.uniform(-3, 3, n).astype(np.float32), "mass": RNG.uniform(1, 30, n).astype(np.float32)}


JETS = jets(N_JETS)
BTAG = RNG.uniform(0, 1, N_JETS).astype(np.float32)
EVENT = np.arange(N_EVENTS, dtype=np.int64) * 3 + 11


def concat(chunks: list[JetChunk]) -> JetChunk:
    first = chunks[0]
    cat = lambda attr: {k: np.concatenate([getattr(c, attr)[k] for c in chunks]) for k in getattr(first, attr)}
    counts = None if first.counts is None else np.concatenate([c.counts for c in chunks])
    return JetChunk(cat("columns"), counts, cat("kept"), first.first_jet, first.first_entry, cat("jet_kept"))


def check_windows(path, exact_first_jet: bool = True, **kw) -> None:
    src = open_table(path, **kw)
    try:
        whole = concat(list(src.chunks(1 << 16)))
        n = whole.n_entries
        if getattr(src, "n_entries", None) is not None:
            assert src.n_entries == n
        ends = whole._jet_ends()
        for a, b in [(0, n), (1, 2), (n // 3, n // 2), (n - 7, n), (n - 1, None), (n, None), (5, 5)]:
            stop = n if b is None else b
            pieces = list(src.chunks(50, a, b))
            if stop <= a:
                assert sum(p.n_entries for p in pieces) == 0
                continue
            got = concat(pieces)
            want = whole.entries(a, stop)
            assert got.first_entry == a and got.n_entries == stop - a
            assert all(p.n_jets <= 150 or p.n_entries == 1 for p in pieces)  # chunks of about 50 jets
            assert [p.first_entry for p in pieces] == list(np.cumsum([a] + [p.n_entries for p in pieces[:-1]]))
            if exact_first_jet:
                assert pieces[0].first_jet == int(ends[a])
            if want.counts is None:
                assert got.counts is None
            else:
                np.testing.assert_array_equal(got.counts, want.counts)
            for part in ("columns", "kept", "jet_kept"):
                assert set(getattr(got, part)) == set(getattr(want, part))
                for k, v in getattr(want, part).items():
                    np.testing.assert_array_equal(getattr(got, part)[k], v, err_msg=f"{part} {k} [{a}, {b})")
    finally:
        src.close()


# --- HDF5 ---------------------------------------------------------------------------------------

def write_counter_h5(path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        g = f.create_group("Events")
        g["nJet"] = COUNTS
        for k, v in JETS.items():
            g[f"Jet_{k}"] = v
        g["Jet_btag"] = BTAG
        g["event"] = EVENT


def test_hdf5_counter_columns(tmp_path, monkeypatch):
    from jetzip.tables import hdf5

    write_counter_h5(tmp_path / "c.h5")
    check_windows(tmp_path / "c.h5")
    # the jets before the start come from the counter sums kept per block at open
    monkeypatch.setattr(hdf5, "COUNTER_BLOCK", 64)
    check_windows(tmp_path / "c.h5")


def test_hdf5_flat_compound_and_pandas(tmp_path):
    import h5py

    with h5py.File(tmp_path / "flat.h5", "w") as f:
        for k, v in JETS.items():
            f[k] = v
        f["weight"] = np.arange(N_JETS, dtype=np.float64)
    check_windows(tmp_path / "flat.h5")
    table = np.zeros(N_JETS, dtype=[(k, "f4") for k in JETS] + [("run", "i8")])
    for k, v in JETS.items():
        table[k] = v
    table["run"] = np.arange(N_JETS)
    with h5py.File(tmp_path / "compound.h5", "w") as f:
        f["jets"] = table
    check_windows(tmp_path / "compound.h5")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    pd.DataFrame(JETS).to_hdf(tmp_path / "fixed.h5", key="jets", format="fixed")
    check_windows(tmp_path / "fixed.h5")
    pd.DataFrame(JETS).to_hdf(tmp_path / "table.h5", key="jets", format="table")
    check_windows(tmp_path / "table.h5")


def test_hdf5_vlen_with_and_without_counter(tmp_path):
    import h5py

    cuts = np.cumsum(COUNTS.astype(np.int64))[:-1]
    for name, counter in (("v.h5", True), ("w.h5", False)):
        with h5py.File(tmp_path / name, "w") as f:
            for k, v in {**JETS, "btag": BTAG}.items():
                d = f.create_dataset(f"jet_{k}", (N_EVENTS,), dtype=h5py.vlen_dtype(np.float32))
                d[:] = np.array(np.split(v, cuts), dtype=object)
            if counter:
                f["njet"] = COUNTS.astype(np.int32)
        # without a counter, the jets before the start are not counted (first_jet counts from it)
        check_windows(tmp_path / name, exact_first_jet=counter)


def test_hdf5_awkward_buffers(tmp_path):
    import json

    import awkward as ak
    import h5py

    arr = ak.zip({"Jet": ak.zip({k: ak.unflatten(v, COUNTS) for k, v in JETS.items()}), "event": EVENT},
                 depth_limit=1)
    form, length, container = ak.to_buffers(arr)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        g = f.create_group("events")
        for k, v in container.items():
            g[k] = v
        g.attrs["form"], g.attrs["length"] = form.to_json(), json.dumps(length)
    check_windows(tmp_path / "a.h5")


def test_hdf5_jets_per_row(tmp_path):
    import h5py

    n = 300
    with h5py.File(tmp_path / "w.h5", "w") as f:
        for j in (1, 2, 3):
            for var, v in (("px", RNG.normal(0, 50, n)), ("py", RNG.normal(0, 50, n)), ("pz", RNG.normal(0, 90, n)),
                           ("m", RNG.uniform(1, 20, n))):
                v = v.copy()
                if j == 3:
                    v[::4] = np.nan  # a third jet in three rows of four
                f[f"{var}j{j}"] = v
        f["mjj"] = RNG.uniform(100, 900, n)
    check_windows(tmp_path / "w.h5", exact_first_jet=False)


# --- Parquet ------------------------------------------------------------------------------------

def test_parquet_lists_across_row_groups(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    offsets = np.concatenate([[0], np.cumsum(COUNTS.astype(np.int64))]).astype(np.int32)
    lists = {f"Jet_{k}": pa.ListArray.from_arrays(pa.array(offsets), pa.array(v)) for k, v in
             {**JETS, "btag": BTAG}.items()}
    t = pa.table({"nJet": COUNTS, **lists, "event": EVENT})
    pq.write_table(t, tmp_path / "l.parquet", row_group_size=97)
    assert pq.ParquetFile(tmp_path / "l.parquet").metadata.num_row_groups > 5
    check_windows(tmp_path / "l.parquet")


def test_parquet_flat_and_jets_per_row(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({**JETS, "run": np.arange(N_JETS)}), tmp_path / "f.parquet", row_group_size=300)
    check_windows(tmp_path / "f.parquet")
    n = 400
    wide = {f"{var}j{j}": RNG.normal(0, 50, n) for j in (1, 2) for var in ("px", "py", "pz")}
    wide.update({f"mj{j}": RNG.uniform(1, 20, n) for j in (1, 2)})
    pq.write_table(pa.table(wide), tmp_path / "w.parquet", row_group_size=64)
    check_windows(tmp_path / "w.parquet", exact_first_jet=False)


# --- CSV ----------------------------------------------------------------------------------------

def test_csv_flat_jagged_and_jets_per_row(tmp_path):
    cols = {**JETS, "weight": np.arange(N_JETS) * 0.5}
    lines = [",".join(cols)] + [",".join(repr(float(cols[k][i])) for k in cols) for i in range(N_JETS)]
    lines[40:40] = [""]  # a blank line: skipped, not an entry
    (tmp_path / "f.csv").write_text("\n".join(lines) + "\n")
    check_windows(tmp_path / "f.csv")
    event = np.repeat(EVENT, COUNTS.astype(np.int64))
    lines = ["event,pt,eta,phi,mass,btag"] + [
        f"{event[i]}," + ",".join(repr(float(v[i])) for v in [*JETS.values(), BTAG])
        for i in range(N_JETS)]
    (tmp_path / "j.csv").write_text("\n".join(lines) + "\n")
    check_windows(tmp_path / "j.csv")
    n = 200
    w = {f"{var}j{j}": RNG.normal(0, 50, n) for j in (1, 2) for var in ("px", "py", "pz", "m")}
    (tmp_path / "w.csv").write_text("\n".join([",".join(w)] + [",".join(repr(float(w[k][i])) for k in w)
                                                               for i in range(n)]) + "\n")
    check_windows(tmp_path / "w.csv", exact_first_jet=False)


def test_csv_disorder_before_the_start_is_still_an_error(tmp_path, monkeypatch):
    from jetzip.errors import InputError
    from jetzip.tables import csv

    monkeypatch.setattr(csv, "SAMPLE_ROWS", 3)  # the first rows say the table is grouped by event
    lines = ["event,pt,eta,phi,mass"] + [f"{e},50,0,0,5" for e in (0, 0, 1, 3, 2, 4, 5)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    src = open_table(tmp_path / "d.csv", units="GeV")
    with pytest.raises(InputError, match="line 6: event 2 comes after event 3"):
        list(src.chunks(10, 4, None))
    src.close()
