"""CSV in and out: quoting, BOM, exact integers, line numbers, jagged tables (issue: csv)."""
from __future__ import annotations

import csv
import time

import awkward as ak
import numpy as np
import pytest
import uproot

import jetzip
from jetzip.errors import InputError
from jetzip.tables import TableInfo, open_table
from jetzip.tables import csv as csv_table
from jetzip.tables.csv import CsvWriter

import jetfactory
from conftest import run_cli

SAMPLE_ROWS = getattr(csv_table, "SAMPLE_ROWS", 5000)  # rows that decide a CSV's layout


def read_rows(path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def jet_cols(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    j = jetfactory.jets(n, seed=seed)
    return {"E": jetfactory.energy(j["pt"], j["eta"], j["m"]), "pt": j["pt"], "eta": j["eta"], "phi": j["phi"]}


def write_jagged_csv(path, counts: np.ndarray, seed: int = 0, extra: dict | None = None,
                     event_values: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """An `event` column plus jets; `extra` columns hold per-event values, repeated per jet."""
    cols = jet_cols(int(counts.sum()), seed)
    ev = np.arange(len(counts)) if event_values is None else event_values
    with open(path, "w") as f:
        f.write(",".join(["event", *cols, *(extra or {})]) + "\n")
        jet = 0
        for e, c in enumerate(counts):
            for _ in range(int(c)):
                cells = [str(int(ev[e]))] + [repr(float(cols[k][jet])) for k in cols]
                cells += [str(v[e]) for v in (extra or {}).values()]
                f.write(",".join(cells) + "\n")
                jet += 1
    return cols


# --- 1. jagged output keeps the event-level branches -----------------------------------------

def test_jagged_csv_output_repeats_kept_branches_per_jet(tmp_path, nano_file, small_model_path):
    path, data = nano_file
    jetzip.compress(path, tmp_path / "n.aez", model=small_model_path, keep_branches=["run", "MET_pt"])
    jetzip.decompress(tmp_path / "n.aez", tmp_path / "n.csv")
    header, rows = read_rows(tmp_path / "n.csv")
    # the original has an `event` branch of its own (not kept here): the index is named apart;
    # the other columns in the original's branch order (run, event, MET_pt, nJet, Jet_*)
    assert header == ["jetzip_event", "run", "MET_pt", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
    counts = data["counts"].astype(np.int64)
    assert len(rows) == counts.sum()
    orig = uproot.open(path)["Events"].arrays(["run", "MET_pt"], library="np")
    event = np.array([int(r[0]) for r in rows])
    np.testing.assert_array_equal(event, np.repeat(np.arange(len(counts)), counts))
    np.testing.assert_array_equal([int(r[1]) for r in rows], np.repeat(orig["run"], counts))
    met = np.array([float(r[2]) for r in rows]).astype(np.float32)
    np.testing.assert_array_equal(met, np.repeat(orig["MET_pt"], counts))


# --- 2. exact integers and floats in CSV output ----------------------------------------------

def test_flat_csv_output_writes_kept_values_exactly(tmp_path, small_model_path):
    n = 300
    cols = {k: v.astype(np.float32) for k, v in jet_cols(n, seed=3).items()}
    big = (np.uint64(2 ** 62) + np.arange(1, n + 1, dtype=np.uint64)) * np.uint64(3)
    ratio = np.random.default_rng(1).uniform(0, 1, n)  # float64
    jetfactory.write_hdf5_columns(tmp_path / "f.h5", {**cols, "evt": big, "neg": -np.arange(n, dtype=np.int64),
                                                      "ratio": ratio})
    jetzip.compress(tmp_path / "f.h5", tmp_path / "f.aez", model=small_model_path,
                    keep_branches=["evt", "neg", "ratio"])
    jetzip.decompress(tmp_path / "f.aez", tmp_path / "f.csv")
    header, rows = read_rows(tmp_path / "f.csv")
    # the columns come back in the input's order (h5py lists a group's datasets by name)
    assert header == ["E", "eta", "evt", "neg", "phi", "pt", "ratio"]
    at = {name: i for i, name in enumerate(header)}
    assert [int(r[at["evt"]]) for r in rows] == big.tolist()
    assert [int(r[at["neg"]]) for r in rows] == (-np.arange(n)).tolist()
    assert [float(r[at["ratio"]]) for r in rows] == ratio.tolist()
    # and reading the CSV back keeps them exactly, as 64-bit integers
    src = open_table(tmp_path / "f.csv", keep_branches=["evt", "neg", "ratio"])
    assert src.info.dtypes["evt"] == "uint64" and src.info.dtypes["neg"] == "int64"
    (chunk,) = list(src.chunks())
    src.close()
    np.testing.assert_array_equal(chunk.kept["evt"], big)
    np.testing.assert_array_equal(chunk.kept["ratio"], ratio)


def test_csv_writer_rounds_float32_exactly_and_is_fast(tmp_path):
    n = 1_000_000
    rng = np.random.default_rng(0)
    cols = {k: rng.uniform(-5, 500, n).astype(np.float32) for k in ("E", "pt", "eta", "phi")}
    info = TableInfo(file="x", format="csv", tree=None, layout="flat", collection="", jagged=False,
                     counter=None, columns={k: k for k in cols}, representation="EPtEtaPhi", units="GeV")
    event = np.uint64(2 ** 63) + np.arange(n, dtype=np.uint64)
    t0 = time.perf_counter()
    w = CsvWriter(str(tmp_path / "big.csv"), info, info.columns, {"event": "uint64"})
    for s in range(0, n, 1 << 18):
        w.write({k: v[s:s + (1 << 18)] for k, v in cols.items()}, None, {"event": event[s:s + (1 << 18)]})
    w.close()
    seconds = time.perf_counter() - t0
    assert seconds < 20, seconds  # ~2 s on the project's CPU machine
    back = np.loadtxt(tmp_path / "big.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2, 3), max_rows=20000)
    for i, k in enumerate(cols):
        np.testing.assert_array_equal(back[:, i].astype(np.float32), cols[k][:20000])
    with open(tmp_path / "big.csv") as f:
        f.readline()
        assert [int(next(f).rsplit(",", 1)[1]) for _ in range(3)] == event[:3].tolist()


# --- 3./4. byte-order mark and quoted cells ---------------------------------------------------

def test_byte_order_mark_is_not_part_of_the_first_name(tmp_path, small_model_path):
    cols = jet_cols(50, seed=1)
    text = "E,pt,eta,phi\n" + "".join(",".join(repr(float(cols[k][i])) for k in cols) + "\n" for i in range(50))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    info = open_table(tmp_path / "bom.csv").info
    assert list(info.columns.values()) == ["E", "pt", "eta", "phi"]
    rep = jetzip.compress(tmp_path / "bom.csv", tmp_path / "b.aez", model=small_model_path, units="GeV")
    assert rep["n_jets"] == 50


def test_quoted_numeric_cells_are_numbers(tmp_path, small_model_path):
    (tmp_path / "q.csv").write_text('"pt","eta","phi","m","run"\n'
                                    '"100",0.5,"0.25",10,"7"\n'
                                    '50,"-1.5",1,"5.5",8\n')
    src = open_table(tmp_path / "q.csv", keep_branches=["run"], units="GeV")
    (chunk,) = list(src.chunks())
    src.close()
    np.testing.assert_array_equal(chunk.columns["pt"], [100, 50])
    np.testing.assert_array_equal(chunk.columns["eta"], [0.5, -1.5])
    np.testing.assert_array_equal(chunk.columns["m"], [10, 5.5])
    np.testing.assert_array_equal(chunk.kept["run"], [7, 8])
    rep = jetzip.compress(tmp_path / "q.csv", tmp_path / "q.aez", model=small_model_path, units="GeV")
    assert rep["n_jets"] == 2


# --- 5. line numbers: 1-based file lines, header = line 1 -------------------------------------

def test_errors_name_one_based_file_lines(tmp_path, jetzip_exe, small_model_path):
    # blank lines count: the bad cell is on line 5
    (tmp_path / "a.csv").write_text("pt,eta,phi,m\n30,0.1,0.2,5\n\n40,0.2,0.3,6\n40,abc,0.3,6\n")
    with pytest.raises(InputError, match=r"line 5: non-numeric cell 'abc'"):
        list(open_table(tmp_path / "a.csv", units="GeV").chunks())
    (tmp_path / "b.csv").write_text("pt,eta,phi,m\n\n\n30,0.1,0.2,5\n40,0.3,6\n")
    with pytest.raises(InputError, match=r"line 5 has 3 cells, the header has 4"):
        list(open_table(tmp_path / "b.csv", units="GeV").chunks())
    (tmp_path / "c.csv").write_bytes(b"pt,eta,phi,m\n30,0.1,0.2,5\n" + b"40,\xff\xfe,0.3,6\n")
    r = run_cli(jetzip_exe, "compress", tmp_path / "c.csv", "-o", tmp_path / "x.aez", "-m", small_model_path,
                "--units", "GeV")
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    assert b"not a text CSV file (bytes that are not UTF-8 on line 3)" in r.stderr, r.stderr


def test_chunks_carry_the_file_line_of_each_jet(tmp_path):
    cols = jet_cols(10, seed=2)
    lines = ["E,pt,eta,phi"] + [",".join(repr(float(cols[k][i])) for k in cols) for i in range(10)]
    lines.insert(4, "")  # a blank line 5
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    chunks = list(open_table(tmp_path / "l.csv", units="GeV").chunks(4))
    assert [c.n_jets for c in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([c.lines for c in chunks]), [2, 3, 4, 6, 7, 8, 9, 10, 11, 12])


def test_invalid_jet_error_names_its_csv_line(tmp_path, jetzip_exe, small_model_path):
    cols = jet_cols(20, seed=1)
    cols["pt"][5] = np.nan  # 0-based row 5 is line 7 of the file
    jetfactory.write_csv(tmp_path / "n.csv", cols)
    r = run_cli(jetzip_exe, "compress", tmp_path / "n.csv", "-o", tmp_path / "x.aez", "-m", small_model_path,
                "--units", "GeV")
    assert r.returncode == 1 and b"line 7" in r.stderr, r.stderr


# --- 6. jagged CSV input ----------------------------------------------------------------------

def test_event_column_makes_a_jagged_table(tmp_path):
    counts = np.array([2, 1, 3, 1])
    write_jagged_csv(tmp_path / "j.csv", counts, extra={"run": [5, 5, 6, 6], "weight": [0.5, 1.5, 2.5, 3.5]},
                     event_values=np.array([0, 4, 5, 9]))
    src = open_table(tmp_path / "j.csv", keep_branches=["run"], units="GeV")
    info = src.info
    assert info.jagged and info.counter is None and info.layout == "jagged"
    # --keep-branches names what is carried (as for ROOT): weight is not
    assert "event" not in info.other_branches and info.other_branches == ["weight"] and info.jet_branches == []
    (chunk,) = list(src.chunks())
    src.close()
    # without it every other numeric column is carried: per jet in a jagged CSV
    src = open_table(tmp_path / "j.csv", units="GeV")
    assert src.info.jet_branches == ["run", "weight"] and src.info.other_branches == []
    np.testing.assert_array_equal(next(iter(src.chunks())).jet_kept["weight"], np.repeat([0.5, 1.5, 2.5, 3.5], counts))
    src.close()
    with pytest.raises(InputError, match="--drop-branches 'nothing' matches no column"):
        open_table(tmp_path / "j.csv", units="GeV", drop_branches=["nothing"])
    np.testing.assert_array_equal(chunk.counts, counts)
    assert chunk.counts.dtype == np.uint32
    np.testing.assert_array_equal(chunk.kept["run"], [5, 5, 6, 6])
    # a float or decreasing `event` column, or --preset flat, keeps one jet per row
    assert not open_table(tmp_path / "j.csv", units="GeV", preset="flat").info.jagged
    write_jagged_csv(tmp_path / "d.csv", counts, event_values=np.array([3, 2, 1, 0]))
    assert not open_table(tmp_path / "d.csv", units="GeV").info.jagged


def test_jagged_csv_chunks_hold_whole_events(tmp_path, small_model_path):
    counts = jetfactory.counts(2000, seed=4)
    counts = counts[counts > 0]
    counts[100] = 3000  # one event longer than a chunk
    write_jagged_csv(tmp_path / "j.csv", counts, seed=4)
    src = open_table(tmp_path / "j.csv", units="GeV")
    for size in (1, 7, 1024):
        chunks = list(src.chunks(size))
        np.testing.assert_array_equal(np.concatenate([c.counts for c in chunks]), counts)
        assert all(c.n_jets == int(c.counts.sum()) for c in chunks)
        firsts = np.cumsum([0] + [len(c.counts) for c in chunks])[:-1]
        assert [c.first_entry for c in chunks] == firsts.tolist()
        if size == 1024:
            assert len(chunks) > 5 and max(c.n_jets for c in chunks if 3000 not in c.counts) <= 1024
    src.close()
    one = jetzip.compress(tmp_path / "j.csv", tmp_path / "one.aez", model=small_model_path, units="GeV")
    many = jetzip.compress(tmp_path / "j.csv", tmp_path / "many.aez", model=small_model_path, units="GeV",
                           chunk_jets=1024)
    assert one["n_events"] == many["n_events"] == len(counts) and many["n_chunks"] > 5
    np.testing.assert_array_equal(jetzip.read_aez(tmp_path / "many.aez")["counts"], counts)


def test_jagged_csv_order_and_kept_values_are_checked(tmp_path):
    n = SAMPLE_ROWS + 500  # the decrease comes after the rows that decided the layout
    ev = np.arange(n) // 2
    ev[SAMPLE_ROWS + 100] = 3
    write_jagged_csv(tmp_path / "d.csv", np.ones(n, np.int64), event_values=ev)
    src = open_table(tmp_path / "d.csv", units="GeV")
    assert src.info.jagged
    with pytest.raises(InputError, match=rf"line {SAMPLE_ROWS + 102}: event 3 comes after event "
                                         rf"{ev[SAMPLE_ROWS + 99]} \(line {SAMPLE_ROWS + 101}\).*--preset flat"):
        list(src.chunks(1024))
    src.close()
    write_jagged_csv(tmp_path / "k.csv", np.array([1, 3, 2]), extra={"run": [1, 2, 3]})
    with open(tmp_path / "k.csv") as f:
        text = f.read().splitlines()
    text[3] = text[3].rsplit(",", 1)[0] + ",9"  # line 4: second jet of event 1 says run 9
    (tmp_path / "k.csv").write_text("\n".join(text) + "\n")
    src = open_table(tmp_path / "k.csv", units="GeV", keep_branches=["run"])
    with pytest.raises(InputError, match=r"line 4: --keep-branches column run is 9 here but 2 on line 3"):
        list(src.chunks())
    src.close()


# --- end to end: NanoAOD -> .aez -> CSV -> .aez -> ROOT ---------------------------------------

def test_nanoaod_through_csv_keeps_events_counts_and_kept_branches(tmp_path, nano_file, small_model_path):
    path, data = nano_file
    keep = ["run", "event", "MET_pt"]
    jetzip.compress(path, tmp_path / "a.aez", model=small_model_path, keep_branches=keep)
    warnings: list[str] = []
    jetzip.decompress(tmp_path / "a.aez", tmp_path / "x.csv", warn=warnings.append)
    assert any("events without jets" in w for w in warnings)
    header, _ = read_rows(tmp_path / "x.csv")
    # the kept branch `event` keeps its name; the event index gets another one
    assert header == ["jetzip_event", "run", "event", "MET_pt", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]

    rep = jetzip.compress(tmp_path / "x.csv", tmp_path / "b.aez", model=small_model_path, keep_branches=keep,
                          chunk_jets=256)
    with_jets = data["counts"] > 0
    assert rep["n_events"] == int(with_jets.sum()) and rep["n_jets"] == int(data["counts"].sum())
    src = jetzip.read_aez(tmp_path / "b.aez")["table"]
    assert src["jagged"] and src["collection"] == "Jet" and src["other_branches"] == []
    back = jetzip.decompress(tmp_path / "b.aez", tmp_path / "y.root")
    assert back["missing_branches"] == []

    t = uproot.open(tmp_path / "y.root")["jets"]
    assert {"nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "run", "event", "MET_pt"} <= set(t.keys())
    got = t.arrays(library="ak")
    orig = uproot.open(path)["Events"].arrays(["run", "event", "MET_pt"], library="np")
    np.testing.assert_array_equal(got["nJet"].to_numpy(), data["counts"][with_jets])
    np.testing.assert_array_equal(ak.num(got["Jet_pt"]).to_numpy(), data["counts"][with_jets])
    np.testing.assert_array_equal(got["run"].to_numpy(), orig["run"][with_jets])
    np.testing.assert_array_equal(got["event"].to_numpy(), orig["event"][with_jets])
    np.testing.assert_array_equal(got["MET_pt"].to_numpy().astype(np.float32), orig["MET_pt"][with_jets])
    rel = ak.flatten(got["Jet_pt"]).to_numpy() / data["pt"] - 1  # encoded twice by a small model
    assert np.median(np.abs(rel)) < 0.1


def test_unclosed_quote_is_an_error_not_lost_rows(tmp_path):
    notes = ['"abc' if i == 100 else ('y"' if i == 102 else "x") for i in range(300)]
    rows = ["pt,eta,phi,mass,note"] + [f"{100 + i},0.1,0.2,5,{notes[i]}" for i in range(300)]
    (tmp_path / "q.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match="line 102: a quoted cell runs past the end of its line"):
        sum(c.n_jets for c in open_table(tmp_path / "q.csv").chunks())


def test_float_kept_column_stays_float_through_csv(tmp_path, small_model_path):
    """A float32 weight that is 1.0 for the first rows is written '1.00000000', not '1'."""
    import h5py

    n = SAMPLE_ROWS + 1000
    cols = jet_cols(n, seed=2)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        for k in ("E", "pt", "eta", "phi"):
            f[k] = cols[k]
        f["weight"] = np.where(np.arange(n) < SAMPLE_ROWS + 500, 1.0, 0.5).astype(np.float32)
    jetzip.compress(tmp_path / "w.h5", tmp_path / "w.aez", model=small_model_path, keep_branches=["weight"],
                    units="GeV")
    jetzip.decompress(tmp_path / "w.aez", tmp_path / "w.csv")
    jetzip.compress(tmp_path / "w.csv", tmp_path / "w2.aez", model=small_model_path, keep_branches=["weight"])
    back = jetzip.read_aez(tmp_path / "w2.aez")["table"]
    assert back["dtypes"]["weight"].startswith("float")


def test_one_giant_event_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_table, "MAX_EVENT_JETS", 3000)
    write_jagged_csv(tmp_path / "g.csv", np.array([5000, 2]))
    with pytest.raises(InputError, match="share the event value 0.*--preset flat"):
        list(open_table(tmp_path / "g.csv").chunks(1024))
    assert sum(c.n_jets for c in open_table(tmp_path / "g.csv", preset="flat").chunks(1024)) == 5002


def test_a_text_column_is_named_before_writing_and_strict_refuses(tmp_path):
    """A CSV column of text is not carried: compress names it (one line, before the .aez is
    written), --strict refuses the file, and the numeric columns are carried as before."""
    src = tmp_path / "extra.csv"
    src.write_text("pt,eta,phi,E,w,tag\n50,0.1,0.2,60,2.5,a\n40,0.2,0.3,45,1.5,b\n30,0.5,0.1,35,0.5,c\n")
    said: list[str] = []
    jetzip.compress(src, tmp_path / "x.aez", error_bound="1e-3", warn=said.append)
    named = [w for w in said if "column tag" in w]
    assert len(named) == 1 and "not carried" in named[0], said
    assert jetzip.arrays(tmp_path / "x.aez", "w").tolist() == [{"w": 2.5}, {"w": 1.5}, {"w": 0.5}]
    with pytest.raises(InputError, match="--strict.*column tag"):
        jetzip.compress(src, tmp_path / "y.aez", error_bound="1e-3", strict=True)
    assert not (tmp_path / "y.aez").exists()
