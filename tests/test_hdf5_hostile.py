"""Hostile tables for the HDF5 and CSV readers (issue 12, part 5): memory bounded by the data,
time proportional to it, a full disk a one-line error. Peak memory and time are measured by a
script (see the issue 12 report), not here; these tests check the behaviour."""
from __future__ import annotations

import errno

import numpy as np
import pytest

from jetzip.errors import InputError
from jetzip.tables import hdf5 as hdf5_table
from jetzip.tables import open_table, open_writer

from conftest import SHARED, shared_file

HOSTILE = SHARED / "cases" / "hostile"


def test_counter_declaring_1e9_events_is_refused_without_reading_it():
    path = shared_file(HOSTILE / "h5_counter_1e9.h5")
    with pytest.raises(InputError, match=r"counter counts declares 1000000000 events for 10 jets.*--preset flat"):
        open_table(path)
    # read as one jet per row instead: the counter is not a column of the table but still
    # travels (sparse, as stored) with the file's other objects
    src = open_table(path, preset="flat")
    assert not src.info.jagged and src.info.other_branches == [] and "not_carried" not in src.info.extra
    assert sum(c.n_jets for c in src.chunks()) == 10
    blob = src.extras()
    assert blob is not None and len(blob) < 2_000_000
    src.close()


def write_sparse(path, counts: np.ndarray) -> None:
    import h5py

    n = int(counts.sum())
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        pt = rng.uniform(20, 200, n).astype(np.float32)
        eta = rng.normal(0, 1, n).astype(np.float32)
        f["pt"], f["eta"] = pt, eta
        f["phi"] = rng.uniform(-3, 3, n).astype(np.float32)
        f["E"] = (pt * np.cosh(eta) * 1.01).astype(np.float32)
        f["nJet"] = counts


def test_huge_sparse_events_are_chunked_by_jets(tmp_path, monkeypatch):
    counts = np.zeros(200_000, np.uint32)
    counts[[10, 100_000, 199_990]] = 3000
    counts[50_000:50_100] = 2
    write_sparse(tmp_path / "s.h5", counts)
    src = open_table(tmp_path / "s.h5")
    chunks = list(src.chunks(1000))
    src.close()
    assert sum(c.n_jets for c in chunks) == int(counts.sum())
    np.testing.assert_array_equal(np.concatenate([c.counts for c in chunks]), counts)
    # a chunk holds at most the target or one event larger than it, never several big events
    assert max(c.n_jets for c in chunks) == 3000
    assert all(c.n_jets <= 1000 or len(np.flatnonzero(c.counts)) == 1 for c in chunks)
    # an event beyond MAX_EVENT_JETS is refused, not read
    monkeypatch.setattr(hdf5_table, "MAX_EVENT_JETS", 2000)
    src = open_table(tmp_path / "s.h5", units="GeV")
    with pytest.raises(InputError, match="event 10 has 3000 jets"):
        list(src.chunks(1000))
    src.close()


def writer_for(tmp_path, name="out.h5"):
    import h5py

    with h5py.File(tmp_path / "src.h5", "w") as f:
        for k, v in {"E": [300.0, 200.0], "pt": [100.0, 50.0], "eta": [0.1, 0.2], "phi": [1.0, 2.0]}.items():
            f[k] = np.array(v, np.float32)
    src = open_table(tmp_path / "src.h5")
    info = src.info
    chunk = next(iter(src.chunks()))
    src.close()
    return open_writer(str(tmp_path / name), "hdf5", info, info.columns, {}), chunk


def test_full_disk_is_a_one_line_error_before_hdf5_fails(tmp_path, monkeypatch):
    import collections
    import os

    w, chunk = writer_for(tmp_path)
    Stat = collections.namedtuple("Stat", "f_bavail f_frsize")
    monkeypatch.setattr(os, "statvfs", lambda p: Stat(10, 4096))
    with pytest.raises(InputError, match=r"^cannot write HDF5 output: the disk is full"):
        w.write(chunk.columns, None, chunk.kept)
    w.close()  # nothing more to flush, no crash
    with pytest.raises(InputError, match="an earlier write failed"):
        w.write(chunk.columns, None, chunk.kept)
    # and a disk that is full already is said when the writer opens, before any decoding
    with pytest.raises(InputError, match=r"^cannot write HDF5 output: the disk is full"):
        writer_for(tmp_path, "other.h5")
    assert not (tmp_path / "other.h5").exists()


def test_failed_hdf5_write_is_a_one_line_error_and_closes_quietly(tmp_path, monkeypatch):
    from jetzip.tables import hdf5_writer

    def fail(*a, **k):
        raise OSError(errno.ENOSPC, "Driver write request failed (No space left on device)")

    # writes go to the file at once (no table held back to be made at its final size)
    monkeypatch.setattr(hdf5_writer, "BUFFER_BYTES", 0)
    w, chunk = writer_for(tmp_path)
    monkeypatch.setattr(w, "_write", fail)
    with pytest.raises(InputError) as err:
        w.write(chunk.columns, None, chunk.kept)
    assert str(err.value) == "cannot write HDF5 output: the disk is full"
    w.close()
    # a table held back fails where it is written: at close
    monkeypatch.setattr(hdf5_writer, "BUFFER_BYTES", 32 << 20)
    w, chunk = writer_for(tmp_path, "held.h5")
    monkeypatch.setattr(w, "_write", fail)
    w.write(chunk.columns, None, chunk.kept)
    with pytest.raises(InputError) as err:
        w.close()
    assert str(err.value) == "cannot write HDF5 output: the disk is full"
    w.close()


def test_csv_header_of_70000_names_is_read():
    path = shared_file(HOSTILE / "csv_cols_70000.csv")
    src = open_table(path)
    assert src.info.columns == {"E": "E", "pt": "pt", "eta": "eta", "phi": "phi"}
    assert len(src.info.kept_branches) == 69_996
    assert sum(c.n_jets for c in src.chunks()) == 3
    src.close()


def test_jet_columns_declaring_rows_never_written_are_refused(tmp_path):
    import h5py

    with h5py.File(tmp_path / "j.h5", "w") as f:
        for k in ("E", "pt", "eta", "phi"):
            d = f.create_dataset(k, shape=(10 ** 9,), dtype="f4", chunks=(1 << 16,))
            d[:10] = np.arange(1, 11)
    with pytest.raises(InputError, match=r"E declares 1000000000 rows but only 1 of its 15259 chunks"):
        open_table(tmp_path / "j.h5")
