"""Whole datasets on Dask (issue 13): jetzip.dask on a LocalCluster of 2 worker processes.

One cluster serves the module (its start-up is most of the time). The dataset mixes every
input format: a NanoAOD-like ROOT file large enough to be split into entry ranges, a small one
(both with zero-jet events), a flat CSV, a jagged HDF5 and a flat Parquet table.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import in_ci, shared_file
from jetfactory import energy, jets, write_csv, write_hdf5_columns, write_nanoaod

try:
    import dask
    import dask_awkward  # noqa: F401
    import distributed
except ImportError as exc:  # pragma: no cover - depends on the environment
    if in_ci():
        raise ImportError(f"CI=true: the Dask tests must run; install the extra: pip install -e '.[dask]' ({exc})") \
            from exc
    pytest.skip(f"Dask is not installed ({exc.name}); pip install 'jetzip[dask]' to run these tests",
                allow_module_level=True)

import jetzip
import jetzip.dask as jd
from jetzip.dataset import MANIFEST, SIDECARS, read_manifest
from jetzip.errors import FormatError, JetzipError
from jetzip.tables import open_table

ENTRIES_PER_TASK = 1000


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    # Worker processes (as on a real cluster; the killed-worker test needs them), forked from a
    # server that imported torch once (also when the nanny restarts the killed one).
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        cluster = jd.local_cluster(2)
        assert isinstance(cluster, distributed.LocalCluster) and len(cluster.workers) == 2
        c = distributed.Client(cluster)
        # The workers import this module to run the test hooks below.
        c.run(lambda path: sys.path.insert(0, path), str(Path(__file__).parent))
        yield c
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    files = {"nano": d / "nano.root", "small": d / "small.root", "flat": d / "flat.csv",
             "jagged": d / "jagged.h5"}
    big = write_nanoaod(files["nano"], n_events=2400, seed=11)
    small = write_nanoaod(files["small"], n_events=300, seed=12)
    assert (big["counts"] == 0).sum() > 10 and (small["counts"] == 0).any()  # zero-jet events
    j = jets(400, 13)
    write_csv(files["flat"], {"E": energy(j["pt"], j["eta"], j["m"]), "pt": j["pt"], "eta": j["eta"],
                              "phi": j["phi"]})
    c = write_nanoaod(d / "unused.root", n_events=500, seed=14)
    write_hdf5_columns(files["jagged"], {"Jet_pt": c["pt"].astype(np.float32), "Jet_eta": c["eta"].astype(np.float32),
                                         "Jet_phi": c["phi"].astype(np.float32), "Jet_mass": c["m"].astype(np.float32)},
                       counts=c["counts"])
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pass
    else:
        j = jets(300, 15)
        files["parquet"] = d / "flatpq.parquet"
        pq.write_table(pa.table({"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "m": j["m"]}), files["parquet"])
    return files


def read_table(path) -> dict:
    """A whole table through jetzip's readers: columns, counts and carried branches."""
    src = open_table(path, units="GeV")
    try:
        chunks = list(src.chunks(1 << 16))
        info = src.info
    finally:
        src.close()
    out = {"info": (info.format, info.jagged, dict(info.columns), info.counter)}
    for role in info.columns:
        out[role] = np.concatenate([c.columns[role] for c in chunks]) if chunks else np.zeros(0)
    out["counts"] = np.concatenate([c.counts for c in chunks]) if info.jagged and chunks else None
    for k in info.kept_branches:
        out["kept:" + k] = np.concatenate([c.kept[k] for c in chunks])
    return out


def assert_same_table(a: dict, b: dict, exact: bool = True) -> None:
    assert a.keys() == b.keys() and a["info"] == b["info"]
    for k, v in a.items():
        if k == "info" or v is None:
            assert b[k] is None or k == "info"
            continue
        if exact:
            np.testing.assert_array_equal(v, b[k], err_msg=k)
        else:
            np.testing.assert_allclose(v, b[k], rtol=2e-6, atol=2e-6, err_msg=k)


def single_process(path: Path, work: Path, suffix: str | None = None, **options) -> Path:
    """`jetzip compress` then `decompress` of one whole file, in this process."""
    work.mkdir(parents=True, exist_ok=True)
    aez = work / (path.stem + ".aez")
    jetzip.compress(path, aez, force=True, **options)
    out = work / (path.stem + (suffix or path.suffix))
    jetzip.decompress(aez, out, force=True)
    return out


@pytest.fixture(scope="module")
def dataset(client, inputs, tmp_path_factory, small_model_path):
    """The latent dataset of every input, compressed on the cluster and restored."""
    root = tmp_path_factory.mktemp("latent")
    # float32 latents: split parts decode as the whole file does up to the network's last ulp
    # (quantized latents take their steps from each chunk, so a split moves them)
    report = jd.compress(list(inputs.values()), root / "ds", client=client, entries_per_task=ENTRIES_PER_TASK,
                         model=small_model_path, latent_dtype="float32")
    restored = jd.decompress(root / "ds", root / "restored", client=client)
    return root, report, restored


# -- tests ------------------------------------------------------------------------------------
def test_dataset_on_two_workers_restores_every_input_as_a_single_process_run(client, dataset, inputs,
                                                                            small_model_path):
    root, report, restored = dataset
    ds = root / "ds"
    m = read_manifest(ds)
    # The large file is split into entry ranges, every other file is one part.
    assert [p["entry_range"] for p in m["parts"] if p["input"] == 0] == [[0, 1000], [1000, 2000], [2000, 2400]]
    assert report["n_parts"] == len(inputs) + 2 and report["n_skipped"] == 0
    assert [i["name"] for i in m["inputs"]] == [p.stem for p in inputs.values()]
    assert sorted(x.name for x in ds.glob("*.aez")) == sorted(p["file"] for p in m["parts"])
    assert not [x for x in ds.iterdir() if "~jetzip-" in x.name]  # no temporaries left
    # Every restored table: same events (zero-jet ones too) and values as a one-process run.
    for (name, path), out in zip(inputs.items(), restored["outputs"]):
        assert Path(out).name == path.name
        one = single_process(path, root / "single", model=small_model_path, latent_dtype="float32")
        a, b = read_table(out), read_table(one)
        # Whole-file parts are the single run's bytes. The network's float32 results depend on
        # where its batches start, which an entry range moves: a few jets differ by an ulp or so.
        assert_same_table(a, b, exact=name != "nano")
        orig = read_table(path)
        if orig["counts"] is not None:
            np.testing.assert_array_equal(a["counts"], orig["counts"])
        else:
            assert len(a["pt"]) == len(orig["pt"])
    # The manifest sums up the parts and checks itself.
    assert m["totals"]["n_jets"] == sum(p["n_jets"] for p in m["parts"]) == report["n_jets"] == restored["n_jets"]
    info = jd.inspect(ds, client=client)
    assert info["verified"] and not info["problems"] and info["n_parts"] == report["n_parts"]
    assert info["inputs"][0]["n_parts"] == 3


def test_bounded_codec_dataset_matches_a_single_process_run(client, inputs, tmp_path):
    files = [inputs["nano"], inputs["flat"]]
    jd.compress(files, tmp_path / "ds", client=client, entries_per_task=ENTRIES_PER_TASK, error_bound=1e-3)
    m = read_manifest(tmp_path / "ds")
    assert m["codec"] == "bounded" and len(m["parts"]) == 4 and "model" not in m["options"]
    out = jd.decompress(tmp_path / "ds", str(tmp_path / "restored" / "{name}.h5"), client=client)
    for path, restored in zip(files, out["outputs"]):
        assert restored.endswith(path.stem + ".h5")
        one = single_process(path, tmp_path / "single", ".h5", error_bound=1e-3)
        assert_same_table(read_table(restored), read_table(one))


def _kill_first_time(marker: str, part: str, done: int, total) -> None:
    """task_progress hook: the first task to get here kills its own worker process."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{part} {os.getpid()}".encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)  # mid-task: the part's temporary file is half-written


def _fail_first_time(marker: str, part: str, done: int, total) -> None:
    """task_progress hook: the first task raises an ordinary error (retried)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    raise RuntimeError("transient failure")


def test_a_worker_killed_during_a_task_and_a_failed_task_leave_a_complete_dataset(client, dataset, inputs,
                                                                                  tmp_path, small_model_path):
    files = [inputs["nano"], inputs["small"]]
    marker = tmp_path / "killed"
    r = jd.compress(files, tmp_path / "ds", client=client, entries_per_task=ENTRIES_PER_TASK, model=small_model_path,
                    latent_dtype="float32", task_progress=partial(_kill_first_time, str(marker)))
    assert marker.exists()  # a worker did die mid-task
    m = read_manifest(tmp_path / "ds")
    # Complete, and the very bytes of the undisturbed run.
    assert r["n_parts"] == 4 and r["n_jets"] == sum(p["n_jets"] for p in m["parts"])
    shas = {p["file"]: p["sha256"] for p in read_manifest(dataset[0] / "ds")["parts"]}
    assert all(shas[p["file"]] == p["sha256"] for p in m["parts"])
    assert not [x for x in (tmp_path / "ds").iterdir() if "~jetzip-" in x.name]
    jd.inspect(tmp_path / "ds", client=client)
    restored = jd.decompress(tmp_path / "ds", tmp_path / "restored", client=client)
    for path, out in zip(files, restored["outputs"]):
        assert_same_table(read_table(out), read_table(dataset[0] / "restored" / path.name))

    marker2 = tmp_path / "failed"
    r = jd.compress(files, tmp_path / "ds2", client=client, entries_per_task=ENTRIES_PER_TASK, model=small_model_path,
                    latent_dtype="float32", task_progress=partial(_fail_first_time, str(marker2)), retries=1)
    assert marker2.exists() and r["n_parts"] == 4
    assert all(shas[p["file"]] == p["sha256"] for p in read_manifest(tmp_path / "ds2")["parts"])


def _fail_part(name: str, part: str, done: int, total) -> None:
    if part == name:
        raise RuntimeError(f"{part}: simulated crash")


def test_an_interrupted_run_resumes_skipping_the_finished_parts(client, inputs, tmp_path, small_model_path,
                                                                monkeypatch):
    files = [inputs["nano"], inputs["flat"]]
    ds = tmp_path / "ds"
    kw = {"client": client, "entries_per_task": ENTRIES_PER_TASK, "model": small_model_path}
    scattered, mapped = [], []
    scatter, map_ = client.scatter, client.map
    monkeypatch.setattr(client, "scatter", lambda obj, **k: scattered.append((obj, k)) or scatter(obj, **k))
    monkeypatch.setattr(client, "map", lambda fn, items, **k: mapped.append(k) or map_(fn, items, **k))
    with pytest.raises(JetzipError, match=r"1 of 4 parts failed.*run again to resume"):
        jd.compress(files, ds, task_progress=partial(_fail_part, "nano.p0001.aez"), retries=0, **kw)
    # The model went to every worker once; the tasks name it (a future), not a copy each.
    assert len(scattered) == 1 and scattered[0][1]["broadcast"] and type(scattered[0][0]).__name__ == "Model"
    assert isinstance(mapped[-1]["model"], distributed.Future)
    # One network thread per worker.
    assert set(client.run(lambda: __import__("torch").get_num_threads()).values()) == {1}
    monkeypatch.undo()
    assert not (ds / MANIFEST).exists()  # an unfinished dataset has no manifest
    done = {p.name: p.stat().st_mtime_ns for p in ds.glob("*.aez")}
    assert sorted(done) == ["flat.aez", "nano.p0000.aez", "nano.p0002.aez"]
    with pytest.raises(JetzipError, match="no manifest"):
        jd.inspect(ds)

    r = jd.compress(files, ds, **kw)
    assert r["n_parts"] == 4 and r["n_skipped"] == 3
    assert {n: (ds / n).stat().st_mtime_ns for n in done} == done  # not rewritten
    assert jd.inspect(ds)["verified"]

    # A damaged part is not trusted: a resumed run writes it again.
    part = ds / "nano.p0002.aez"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="nano.p0002.aez"):
        jd.inspect(ds)
    r = jd.compress(files, ds, **kw)
    assert r["n_skipped"] == 3 and jd.inspect(ds)["verified"]

    # Other options over the same folder: refused unless forced, then nothing is reused.
    with pytest.raises(JetzipError, match="force"):
        jd.compress(files, ds, client=client, entries_per_task=ENTRIES_PER_TASK, error_bound=1e-3)
    r = jd.compress(files, ds, client=client, entries_per_task=ENTRIES_PER_TASK, error_bound=1e-3, force=True)
    assert r["n_skipped"] == 0 and read_manifest(ds)["codec"] == "bounded"


def test_dask_awkward_reader_gives_the_jets_decompress_writes(client, dataset, inputs):
    import awkward as ak
    import uproot

    root = dataset[0]
    ds = root / "ds"
    events = jd.read(ds, inputs=["nano", "small"])
    assert events.npartitions == 4 and events.divisions == (0, 1000, 2000, 2400, 2700)
    assert {"Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "nJet", "MET_pt"} <= set(events.fields)
    got = events.compute(scheduler=client.get)
    want = ak.concatenate([uproot.open(root / "restored" / f"{n}.root")["Events"].arrays()
                           for n in ("nano", "small")])
    assert len(got) == len(want) == 2700
    for f in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "nJet", "MET_pt", "run", "event"):
        assert ak.all(got[f] == want[f]), f
    # Lazily: something computed from one column, on the cluster.
    import dask_awkward as dak

    assert ak.all(dak.num(events.Jet_pt, axis=1).compute(scheduler=client.get) == want["nJet"])
    # coffea-style records: events.Jet.pt
    rec = jd.read(ds, inputs="nano", layout="records")
    jets_ = rec.Jet.compute(scheduler=client.get)
    assert set(jets_.fields) == {"pt", "eta", "phi", "mass"}
    assert ak.all(jets_.pt == want["Jet_pt"][:2400]) and ak.all(ak.num(jets_) == want["nJet"][:2400])
    # Flat tables read as rows; mixed layouts are refused.
    flat = jd.read(ds, inputs=["flat"]).compute(scheduler=client.get)
    assert flat.fields == ["E", "pt", "eta", "phi"] and len(flat) == 400
    with pytest.raises(JetzipError, match="mixes"):
        jd.read(ds)


def test_manifest_and_parts_are_checked(dataset, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(dataset[0] / "ds", ds)
    info = jd.inspect(ds)  # in this process: no cluster needed
    assert info["verified"] and "unlisted" in info and not info["unlisted"]
    text = jd.format_inspect(info)
    assert "parts verified: 7 of 7" in text or "parts verified" in text
    m = json.loads((ds / MANIFEST).read_text())
    m["totals"]["n_jets"] += 1
    (ds / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(FormatError, match="does not match its SHA-256"):
        jd.inspect(ds)
    assert (ds / SIDECARS).is_dir()


def test_without_dask_a_one_line_error_names_the_extra(monkeypatch, tmp_path, inputs, dataset):
    for name in ("dask", "distributed", "dask_awkward"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    one_line = r"^datasets on a cluster need Dask.*: pip install 'jetzip\[dask\]' \(or pip install dask\)$"
    with pytest.raises(JetzipError, match=one_line):
        jd.compress(inputs["flat"], tmp_path / "ds", scheduler="local:2", error_bound=1e-3)
    with pytest.raises(JetzipError, match=r"pip install 'jetzip\[dask\]'"):
        jd.read(dataset[0] / "ds")
    # Without a scheduler the same tasks run in this process: no Dask needed.
    assert jd.inspect(dataset[0] / "ds")["verified"]
    r = jd.compress(inputs["flat"], tmp_path / "ds", error_bound=1e-3)
    assert r["n_parts"] == 1 and jd.decompress(tmp_path / "ds", tmp_path / "out")["n_jets"] == 400
    with pytest.raises(JetzipError, match="local:N"):
        jd.parse_scheduler("local:x")
    assert jd.parse_scheduler("local:3") == ("local", 3)
    assert jd.parse_scheduler("tcp://10.0.0.1:8786") == ("remote", None)


def test_cli_compress_inspect_decompress_a_dataset_on_a_running_scheduler(request, inputs, tmp_path,
                                                                         small_model_path):
    from conftest import invoke

    assert "--scheduler" in invoke("compress", "--help").stdout.decode()
    # tcp://127.0.0.1:...: the CLI connects to it as to any cluster
    address = request.getfixturevalue("client").scheduler.address
    ds, out = tmp_path / "ds", tmp_path / "out"
    r = invoke("compress", inputs["nano"], inputs["flat"], "-o", f"{ds}/", "--scheduler", address,
               "--entries-per-task", ENTRIES_PER_TASK, "-m", small_model_path, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert b"4 parts (0 already done)" in r.stderr
    r = invoke("compress", inputs["nano"], inputs["flat"], "-o", f"{ds}/", "--scheduler", address,
               "--entries-per-task", ENTRIES_PER_TASK, "-m", small_model_path, "--no-progress", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["n_skipped"] == 4
    r = invoke("inspect", ds)
    assert r.returncode == 0 and b"parts verified: 4 of 4" in r.stdout
    r = invoke("decompress", ds, "-o", f"{out}/", "--scheduler", address)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["flat.csv", "nano.root"]
    part = ds / "flat.aez"
    part.write_bytes(part.read_bytes()[:-10])
    r = invoke("inspect", ds)
    assert r.returncode == 1 and b"flat.aez" in r.stderr
    r = invoke("compress", inputs["flat"], "-o", "x.aez", "--entries-per-task", 10)
    assert r.returncode == 1 and b"needs --scheduler" in r.stderr


def _disk_full(log: str, name: str, part: str, done: int, total) -> None:
    """task_progress hook: the disk is full under `name` (each call is counted in `log`)."""
    if part == name:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        raise OSError(errno.ENOSPC, "No space left on device", f"/data/out/.{name}~jetzip-1-0a1b2c3d-x.part")


def test_a_full_disk_on_a_worker_is_one_line_and_not_retried(client, inputs, tmp_path):
    log = tmp_path / "calls"
    with pytest.raises(JetzipError) as e:
        jd.compress([inputs["nano"], inputs["flat"]], tmp_path / "ds", client=client, error_bound=1e-3,
                    entries_per_task=ENTRIES_PER_TASK, retries=2,
                    task_progress=partial(_disk_full, str(log), "nano.p0001.aez"))
    text = str(e.value)
    assert "\n" not in text and text.startswith("1 of 4 parts failed: ")
    # the user's output named, never the temporary file; retrying cannot make room
    assert "/data/out/nano.p0001.aez: No space left on device" in text and "~jetzip-" not in text
    assert len(log.read_text().split()) == 1
    assert not (tmp_path / "ds" / MANIFEST).exists() and len(list((tmp_path / "ds").glob("*.aez"))) == 3


def test_cli_on_a_full_disk_prints_one_line_not_worker_tracebacks(jetzip_exe, inputs, tmp_path):
    """A file size limit (RLIMIT_FSIZE: writes fail with EFBIG, as on a full disk) for the CLI
    and the local cluster it starts: one line on stderr, exit code 1."""
    import resource
    import subprocess

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))

    r = subprocess.run([jetzip_exe, "compress", str(inputs["nano"]), str(inputs["small"]), "-o", f"{tmp_path}/ds/",
                        "--scheduler", "local:1", "--error-bound", "1e-3", "--no-progress"],
                       capture_output=True, preexec_fn=limit, timeout=300)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err.count("\n") == 1 and "File too large" in err and "2 parts failed" in err, err
    assert "Traceback" not in err and "~jetzip-" not in err
    assert not (tmp_path / "ds" / MANIFEST).exists()


# -- reading one .aez or a dataset of a NanoAOD with every collection ---------------------------
@pytest.fixture(scope="module")
def dy_read(tmp_path_factory):
    """nano_dy.root (1499 branches, every collection) as one .aez in 10 chunks and as a
    dataset of 3 parts, each with the file decompress restores from it."""
    d = tmp_path_factory.mktemp("dyread")
    src = shared_file("nano_dy.root")
    jetzip.compress(src, d / "dy.aez", error_bound="1e-3", chunk_jets=64)
    jetzip.decompress(d / "dy.aez", d / "dy.root")
    jd.compress(src, d / "ds", error_bound="1e-3", entries_per_task=15)
    jd.decompress(d / "ds", d / "restored")
    return d


def _same(got, want) -> None:
    import awkward as ak

    assert got.fields == want.fields
    bad = [f for f in want.fields if str(got[f].type) != str(want[f].type)
           or not ak.array_equal(got[f], want[f], equal_nan=True, dtype_exact=True)]
    assert not bad, f"{len(bad)} branches differ: {bad[:5]}"


def test_read_one_aez_is_jetzip_arrays_and_the_restored_file_one_partition_per_chunk(dy_read):
    import awkward as ak
    import uproot

    from jetzip.reading import _Selective, chunk_heads

    with _Selective(dy_read / "dy.aez") as f:
        heads = [h for h in chunk_heads(f) if h.table == 0]
    events = jd.read(dy_read / "dy.aez")
    assert events.npartitions == len(heads) >= 5
    assert events.divisions == tuple([0] + [h.first_entry + h.n_entries for h in heads])
    got = events.compute(scheduler="sync")
    assert len(got.fields) == 1499  # every branch (jetzip 0.1's reader dropped 367)
    assert ak.array_equal(got, jetzip.arrays(dy_read / "dy.aez"), equal_nan=True, dtype_exact=True)
    with uproot.open(dy_read / "dy.root") as f:
        _same(got, f["Events"].arrays())
    some = jd.read(dy_read / "dy.aez", ["Jet_pt", "nJet", "MET_*"]).compute(scheduler="sync")
    assert some.fields == [n for n in got.fields if n in ("Jet_pt", "nJet") or n.startswith("MET_")]
    runs = jd.read(dy_read / "dy.aez", table="Runs")
    assert runs.npartitions == 1 and runs.compute(scheduler="sync").fields == jetzip.arrays(
        dy_read / "dy.aez", table="Runs").fields


def test_read_a_dataset_keeps_every_branch(dy_read):
    import uproot

    events = jd.read(dy_read / "ds")
    assert events.npartitions == 3 and events.divisions == (0, 15, 30, 40)
    got = events.compute(scheduler="sync")
    with uproot.open(dy_read / "restored" / "nano_dy.root") as f:
        _same(got, f["Events"].arrays())
    with pytest.raises(JetzipError, match="no branch 'Jet_ptt' \\(close matches: Jet_pt"):
        jd.read(dy_read / "ds", ["Jet_ptt"])


def test_partitions_read_only_their_chunk_and_the_fields_used(dy_read, monkeypatch):
    import awkward as ak
    import dask_awkward as dak

    from jetzip.aez import AezFile
    from jetzip.codecs.bounded import BoundedCodec

    events = jd.read(dy_read / "dy.aez")
    whole = jetzip.arrays(dy_read / "dy.aez")
    assert set(next(iter(dak.necessary_columns(events.Jet_pt).values()))) == {"Jet_pt"}
    decoded: list[int] = []
    read: list[int] = []
    hops: list[int] = []
    decode, read_chunk, offsets = BoundedCodec.decode, AezFile.read_chunk, AezFile.chunk_offsets

    def counted_decode(self, payload, n, *args, **kwargs):
        decoded.append(n)
        return decode(self, payload, n, *args, **kwargs)

    def counted_read(self, index, offsets=None):
        read.append(index)
        return read_chunk(self, index, offsets)

    def counted_offsets(self):
        hops.append(1)
        return offsets(self)

    monkeypatch.setattr(BoundedCodec, "decode", counted_decode)
    monkeypatch.setattr(AezFile, "read_chunk", counted_read)
    monkeypatch.setattr(AezFile, "chunk_offsets", counted_offsets)
    met = events.MET_pt.compute(scheduler="sync")
    assert ak.array_equal(met, whole.MET_pt) and not decoded  # no codec ran
    jet_pt = events.Jet_pt.compute(scheduler="sync")
    assert ak.array_equal(jet_pt, whole.Jet_pt) and sum(decoded) == int(ak.sum(whole.nJet))
    read.clear()
    for p in (0, events.npartitions - 1):  # the first and the last cost the same: one chunk, no scan
        part = events.partitions[p].compute(scheduler="sync")
        lo, hi = events.divisions[p], events.divisions[p + 1]
        assert ak.array_equal(part, whole[lo:hi], equal_nan=True) and len(read) == 1 and not hops
        read.clear()
