"""Dataset folders attacked (issue 23): every attack ends in one line or a correct result.

The datasets here are made in this process (no cluster: the same tasks run one after the
other) with the bounded codec, from small NanoAOD-like files. An attacker who edits a
manifest also recomputes its SHA-256 (it is a checksum, not a signature): `edit_manifest`
does so, so each test reaches the check it is about. The Dask-side attacks (a full disk on
the workers, concurrent runs on a cluster) are in test_dask.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke
from jetfactory import write_nanoaod

import jetzip.dask as jd
from jetzip import dataset
from jetzip.dataset import MANIFEST, SIDECARS, canonical, read_manifest
from jetzip.errors import FormatError, InputError, JetzipError
from jetzip.tables import open_table

BOUND = 1e-3
try:
    import dask_awkward  # noqa: F401  (jd.read needs it; the rest of this file does not)
    HAVE_DASK_AWKWARD = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_DASK_AWKWARD = False


def events_of(path) -> tuple[np.ndarray, np.ndarray]:
    """(jets per event, pt of every jet) of a table, through jetzip's reader."""
    src = open_table(path, units="GeV")
    try:
        chunks = list(src.chunks(1 << 16))
    finally:
        src.close()
    return (np.concatenate([c.counts for c in chunks]), np.concatenate([c.columns["pt"] for c in chunks]))


def assert_same_events(restored, original) -> None:
    """Every event of `original` once, in order, its jets within the bound."""
    (c1, pt1), (c0, pt0) = events_of(restored), events_of(original)
    np.testing.assert_array_equal(c1, c0)
    assert np.all(np.abs(pt1 - pt0) <= BOUND * pt0 * 1.0001)


def edit_manifest(ds: Path, edit) -> None:
    """Change the manifest with `edit(m)` and give it a matching SHA-256, as an attacker can."""
    m = json.loads((ds / MANIFEST).read_text())
    edit(m)
    body = {k: v for k, v in m.items() if k != "sha256"}
    m["sha256"] = hashlib.sha256(canonical(body)).hexdigest()
    (ds / MANIFEST).write_text(json.dumps(m))


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and text
    return text


@contextlib.contextmanager
def deadline(seconds: int):
    """A hang becomes a failure (SIGALRM), not a stuck suite."""
    def fail(*_):
        raise AssertionError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """x.root (500 events) split into 2 parts of 300 and 200 entries, and a small y.root."""
    d = tmp_path_factory.mktemp("split")
    write_nanoaod(d / "x.root", n_events=500, seed=31)
    write_nanoaod(d / "y.root", n_events=120, seed=32)
    jd.compress([d / "x.root", d / "y.root"], d / "ds", entries_per_task=300, error_bound=BOUND)
    return d


@pytest.fixture
def ds(split, tmp_path) -> Path:
    """A fresh copy of the split dataset for a test to attack."""
    out = tmp_path / "ds"
    shutil.copytree(split / "ds", out, symlinks=True)
    return out


# -- names ------------------------------------------------------------------------------------
def test_inputs_whose_part_names_would_collide_restore_every_event_once(tmp_path):
    """x.root split into x.p0000.aez, x.p0001.aez and an input x.p0000.root (once x.p0000.aez
    too); X.root beside x.root where case is ignored."""
    write_nanoaod(tmp_path / "x.root", n_events=400, seed=1)
    write_nanoaod(tmp_path / "x.p0000.root", n_events=100, seed=2)
    inputs = [tmp_path / "x.root", tmp_path / "x.p0000.root"]
    r = jd.compress(inputs, tmp_path / "ds", entries_per_task=250, error_bound=BOUND)
    m = read_manifest(tmp_path / "ds")
    files = [p["file"] for p in m["parts"]]
    assert len(set(files)) == len(files) == r["n_parts"] == 3
    assert r["n_events"] == 500
    assert jd.inspect(tmp_path / "ds")["verified"]
    out = jd.decompress(tmp_path / "ds", tmp_path / "out")
    assert len(out["outputs"]) == 2 and out["n_events"] == 500
    for original, restored in zip(inputs, out["outputs"]):
        assert_same_events(restored, original)

    write_nanoaod(tmp_path / "X.root", n_events=50, seed=3)
    inputs = [tmp_path / "x.root", tmp_path / "X.root"]
    jd.compress(inputs, tmp_path / "ds2", error_bound=BOUND)
    names = [i["name"] for i in read_manifest(tmp_path / "ds2")["inputs"]]
    assert len({n.casefold() for n in names}) == 2
    out = jd.decompress(tmp_path / "ds2", tmp_path / "out2")
    for original, restored in zip(inputs, out["outputs"]):
        assert_same_events(restored, original)


def test_a_resumed_run_over_reordered_inputs_restores_each_input_from_its_own_parts(tmp_path):
    """Parts are recorded by the key of their work, not by where an earlier run listed them."""
    a, b = tmp_path / "a.root", tmp_path / "b.root"
    write_nanoaod(a, n_events=200, seed=4)
    write_nanoaod(b, n_events=90, seed=5)
    jd.compress([a, b], tmp_path / "ds", error_bound=BOUND)
    r = jd.compress([b, a], tmp_path / "ds", error_bound=BOUND)
    assert r["n_skipped"] == 2
    out = jd.decompress(tmp_path / "ds", tmp_path / "out")
    assert [Path(o).name for o in out["outputs"]] == ["b.root", "a.root"]
    assert_same_events(out["outputs"][0], b)
    assert_same_events(out["outputs"][1], a)


def test_hidden_and_odd_input_names_give_a_dataset_jetzip_reads(tmp_path):
    """.hidden.root, ...root (its stem is '..'), a newline and a backslash in a name."""
    inputs = []
    for k, name in enumerate([".hidden.root", "...root", "a\nb.root", "a\\b.root"]):
        write_nanoaod(tmp_path / name, n_events=60 + k, seed=10 + k)
        inputs.append(tmp_path / name)
    jd.compress(inputs, tmp_path / "ds", error_bound=BOUND)
    m = read_manifest(tmp_path / "ds")
    # a\nb and a\\b both give a_b: every name takes its index
    assert [i["name"] for i in m["inputs"]] == ["0000-hidden", "0001-input", "0002-a_b", "0003-a_b"]
    assert all(dataset.name_problem(p["file"]) is None for p in m["parts"])
    out = jd.decompress(tmp_path / "ds", str(tmp_path / "out" / "{name}" / "t.h5"))
    for original, restored in zip(inputs, out["outputs"]):
        assert Path(restored).resolve().parent.parent == (tmp_path / "out").resolve()
        assert_same_events(restored, original)
    assert jd.inspect(tmp_path / "ds")["verified"]


CLIMBS = {
    "input name ..": lambda m: m["inputs"][0].update(name=".."),
    "input name with a separator": lambda m: m["inputs"][0].update(name="../../evil"),
    "absolute input name": lambda m: m["inputs"][0].update(name="/tmp/evil"),
    "empty input name": lambda m: m["inputs"][0].update(name=""),
    "input name with NUL": lambda m: m["inputs"][0].update(name="x\x00y"),
    "hidden input name": lambda m: m["inputs"][0].update(name=".x"),
    "input name with a newline": lambda m: m["inputs"][0].update(name="x\ny"),
    "index as a path": lambda m: m["inputs"][1].update(index="../../evil"),
    "index of another input": lambda m: m["inputs"][1].update(index=0),
    "part file outside": lambda m: (m["parts"][2].update(file="../y.aez"),
                                    m["inputs"][1].update(parts=["../y.aez"])),
    "part file absolute": lambda m: (m["parts"][2].update(file="/etc/passwd"),
                                     m["inputs"][1].update(parts=["/etc/passwd"])),
    "part file in a subfolder": lambda m: (m["parts"][2].update(file=f"{SIDECARS}/y.aez"),
                                           m["inputs"][1].update(parts=[f"{SIDECARS}/y.aez"])),
    "part file .": lambda m: (m["parts"][2].update(file="."), m["inputs"][1].update(parts=["."])),
    "part file with NUL": lambda m: (m["parts"][2].update(file="y\x00.aez"),
                                     m["inputs"][1].update(parts=["y\x00.aez"])),
}


@pytest.mark.parametrize("edit", CLIMBS, ids=list(CLIMBS))
def test_a_manifest_edited_to_climb_out_of_its_folder_is_refused(ds, tmp_path, edit):
    edit_manifest(ds, CLIMBS[edit])
    before = sorted(p for p in tmp_path.rglob("*"))
    calls = [lambda: jd.inspect(ds), lambda: jd.decompress(ds, str(tmp_path / "out" / "{name}" / "{index}.h5"))]
    for call in calls + ([lambda: jd.read(ds)] if HAVE_DASK_AWKWARD else []):
        with pytest.raises(FormatError, match="malformed manifest") as e:
            call()
        one_line(e)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written, in or out


def test_the_cli_refuses_a_climbing_manifest_in_one_line(ds, tmp_path):
    edit_manifest(ds, CLIMBS["input name with a separator"])
    for args in (("inspect", ds), ("decompress", ds, "-o", f"{tmp_path}/out/")):
        r = invoke(*args)
        assert r.returncode == 1 and r.exception is None
        assert r.stderr.count(b"\n") == 1 and b"malformed manifest" in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- parts: regular files only, in order, each entry once ---------------------------------------
def test_a_symlinked_sidecar_folder_or_part_is_refused(split, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / SIDECARS).symlink_to(outside)
    with pytest.raises(JetzipError, match="symbolic link") as e:
        jd.compress(split / "y.root", ds, error_bound=BOUND)
    one_line(e)
    assert not any(outside.iterdir()) and not list(ds.glob("*.aez"))

    (ds / SIDECARS).unlink()
    target = outside / "target.aez"
    target.write_bytes(b"keep me")
    (ds / "y.aez").symlink_to(target)
    for force in (False, True):
        with pytest.raises(JetzipError, match="symbolic link"):
            jd.compress(split / "y.root", ds, error_bound=BOUND, force=force)
    assert target.read_bytes() == b"keep me"


def test_a_part_or_manifest_that_is_a_link_fifo_device_or_folder_is_refused_without_hanging(ds, tmp_path):
    part = ds / "y.aez"
    saved = part.read_bytes()
    for make, kind in ((lambda: part.symlink_to("/dev/zero"), "symbolic link"),
                       (lambda: os.mkfifo(part), "FIFO"),
                       (lambda: part.mkdir(), "folder")):
        part.unlink()
        make()
        with deadline(60):
            info = jd.inspect(ds, strict=False)
            assert not info["verified"] and kind in info["problems"][0] and "y.aez" in info["problems"][0]
            with pytest.raises(JetzipError, match=kind):
                jd.decompress(ds, tmp_path / "out", force=True)
            if HAVE_DASK_AWKWARD:
                with pytest.raises(JetzipError, match=kind):
                    jd.read(ds, inputs="y").compute(scheduler="sync")
        if part.is_dir() and not part.is_symlink():
            part.rmdir()
            part.touch()
        part.unlink()
        part.write_bytes(saved)
    assert jd.inspect(ds)["verified"]

    manifest = ds / MANIFEST
    manifest.unlink()
    os.mkfifo(manifest)
    with deadline(60), pytest.raises(FormatError, match="FIFO") as e:
        jd.inspect(ds)
    one_line(e)
    manifest.unlink()
    manifest.symlink_to("/dev/zero")
    with deadline(60), pytest.raises(FormatError, match="symbolic link"):
        jd.inspect(ds)


def test_a_manifest_or_sidecar_larger_than_its_limit_is_refused_unread(ds, split, monkeypatch):
    monkeypatch.setattr(dataset, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(FormatError, match="larger than 100 bytes") as e:
        jd.inspect(ds)
    one_line(e)
    monkeypatch.undo()
    # A sidecar that is a FIFO is not a finished part: the part is written again, nothing hangs.
    side = ds / SIDECARS / "y.aez.json"
    side.unlink()
    os.mkfifo(side)
    with deadline(60), pytest.raises(JetzipError, match="not written by this dataset"):
        jd.compress([split / "x.root", split / "y.root"], ds, entries_per_task=300, error_bound=BOUND)
    side.unlink()
    os.mkfifo(side)
    with deadline(120):
        r = jd.compress([split / "x.root", split / "y.root"], ds, entries_per_task=300, error_bound=BOUND,
                        force=True)
    assert r["n_skipped"] == 2 and side.is_file() and jd.inspect(ds)["verified"]


def _swap_first_two(m):
    m["parts"][0], m["parts"][1] = m["parts"][1], m["parts"][0]
    m["inputs"][0]["parts"].reverse()


def _swap_ranges(m):
    """Reordered parts whose listed ranges are moved with them: the ranges are out of order."""
    _swap_first_two(m)
    m["parts"][0]["entry_range"], m["parts"][1]["entry_range"] = [300, 500], [0, 300]


def _duplicate_first(m):
    m["parts"].insert(1, dict(m["parts"][0]))
    m["inputs"][0]["parts"].insert(1, m["parts"][0]["file"])
    m["totals"]["n_parts"] += 1


def _duplicate_range(m):
    """The second part claims the first's range: its entries would be restored twice."""
    m["parts"][1]["entry_range"] = [0, 200]


def _drop_second(m):
    p = m["parts"].pop(1)
    m["inputs"][0]["parts"].remove(p["file"])
    for k in ("n_jets", "n_events", "bytes"):
        m["totals"][k] -= p[k]
    m["totals"]["n_parts"] -= 1


def _shrink_input(m):
    m["inputs"][0]["n_entries"] = 300


def _inflate_totals(m):
    m["totals"]["n_events"] += 1


REORDERS = {"swapped parts": _swap_first_two, "swapped parts and ranges": _swap_ranges,
            "a part listed twice": _duplicate_first, "an entry range repeated": _duplicate_range,
            "a part left out": _drop_second, "entries cut": _shrink_input, "totals": _inflate_totals}


@pytest.mark.parametrize("edit", REORDERS, ids=list(REORDERS))
def test_duplicated_reordered_or_missing_parts_are_refused(ds, tmp_path, edit):
    edit_manifest(ds, REORDERS[edit])
    with pytest.raises(FormatError, match="malformed manifest") as e:
        jd.decompress(ds, tmp_path / "out")
    one_line(e)
    assert not (tmp_path / "out").exists()
    r = invoke("inspect", ds)
    assert r.returncode == 1 and b"malformed manifest" in r.stderr and r.stderr.count(b"\n") == 1


def test_counts_the_manifest_lists_are_checked_against_the_parts(ds, tmp_path):
    """Counts moved between a part and the totals (consistent in the manifest): the parts'
    trailers disagree."""
    def move(m):
        m["parts"][0]["n_jets"] += 5
        m["totals"]["n_jets"] += 5
    edit_manifest(ds, move)
    with pytest.raises(FormatError, match="the manifest says") as e:
        jd.inspect(ds)
    one_line(e)
    with pytest.raises(JetzipError, match="the manifest says"):
        jd.decompress(ds, tmp_path / "out")
    assert not (tmp_path / "out" / "x.root").exists()  # no file restored from those parts


# -- runs -------------------------------------------------------------------------------------
def _meanwhile(results: list, calls: list, part: str, done: int, total) -> None:
    """task_progress: while the first part is written, try the calls (once)."""
    if results:
        return
    for call in calls:
        try:
            call()
            results.append("ran")
        except JetzipError as exc:
            results.append(str(exc))


def test_one_run_at_a_time_per_folder(split, tmp_path):
    """While a compress run writes a folder, another run with other options, a decompress and an
    inspect of it are refused at once; the first run's dataset is whole."""
    ds = tmp_path / "ds"
    jd.compress(split / "y.root", ds, error_bound=BOUND)  # a dataset to read meanwhile
    inputs = [split / "x.root", split / "y.root"]
    results: list[str] = []
    calls = [lambda: jd.compress(inputs, ds, error_bound="1e-2", force=True),
             lambda: jd.decompress(ds, tmp_path / "out"), lambda: jd.inspect(ds)]
    r = jd.compress(inputs, ds, entries_per_task=300, error_bound=BOUND, force=True,
                    task_progress=partial(_meanwhile, results, calls))
    assert len(results) == 3 and all("by another jetzip run" in x for x in results), results
    m = read_manifest(ds)
    assert r["n_parts"] == 3 and m["options"]["error_bound"] == BOUND and jd.inspect(ds)["verified"]
    assert not (tmp_path / "out").exists()
    # the lock goes with the run
    assert jd.compress(inputs, ds, error_bound="1e-2", force=True)["n_parts"] == 2


def test_the_cli_says_the_folder_is_in_use_in_one_line(split, tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    with dataset.locked(ds, exclusive=False):  # a reader of a folder no run has written: no lock file left
        pass
    assert list(ds.iterdir()) == []
    (ds / dataset.LOCK).touch()  # as a compress run leaves it
    with dataset.locked(ds, exclusive=False):  # a reader holds it
        r = invoke("compress", split / "y.root", "-o", f"{ds}/", "--scheduler", "local:1", "--error-bound", "1e-3")
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1 and b"by another jetzip run" in r.stderr
    assert not (ds / MANIFEST).exists()


# -- models -----------------------------------------------------------------------------------
def test_a_dataset_coded_with_an_entropy_model_file_is_inspected_and_restored_with_it(split, tmp_path,
                                                                                     small_model_path):
    from test_context_model import model_file

    mine = model_file(tmp_path, "mine.jzc", lambda a: a.__setitem__("m/b2", a["m/b2"] + 1))
    ds = tmp_path / "ds"
    jd.compress([split / "x.root", split / "y.root"], ds, entries_per_task=300, error_bound=BOUND,
                context_model=str(mine))
    info = jd.inspect(ds, strict=False)
    assert not info["verified"] and "--model" in info["problems"][0]
    assert jd.inspect(ds, model=mine)["verified"]
    with pytest.raises(JetzipError, match="--model"):
        jd.decompress(ds, tmp_path / "none")
    out = jd.decompress(ds, tmp_path / "out", model=mine)
    assert_same_events(out["outputs"][0], split / "x.root")
    assert_same_events(out["outputs"][1], split / "y.root")
    events = jd.read(ds, inputs="y", model=str(mine)).compute(scheduler="sync")
    assert len(events) == 120
    # The model's bytes are the parts' identity: another model under the same path is other work.
    model_file(tmp_path, "mine.jzc", lambda a: a.__setitem__("m/b2", a["m/b2"] + 2))
    with pytest.raises(JetzipError, match="another input, entry range or options"):
        jd.compress([split / "x.root", split / "y.root"], ds, entries_per_task=300, error_bound=BOUND,
                    context_model=str(mine))
    with pytest.raises(InputError):
        jd.inspect(ds, model=tmp_path / "missing.jzc")
    with pytest.raises(JetzipError, match=r"take the entropy model file \(.jzc\)") as e:
        jd.decompress(ds, tmp_path / "other", model=small_model_path)  # the latent codec's kind
    one_line(e)
