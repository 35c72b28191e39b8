"""Whole datasets on a Dask cluster: compress, restore, inspect, and read jets lazily.

::

    import jetzip.dask as jd
    jd.compress("data/*.root", "out/", scheduler="local:4", entries_per_task=1_000_000)
    jd.inspect("out/")                        # every part against the manifest
    jd.decompress("out/", "restored/", scheduler="tcp://host:8786")
    events = jd.read("out/")                  # dask-awkward: one partition per part
    events.Jet_pt.compute()                   # only the Jet collection is decoded
    jd.read("file.aez")                       # one .aez: one partition per chunk

Every input file, or every range of `entries_per_task` entries of a large one, is a task that
writes its own ``.aez`` part into OUTDIR; ``OUTDIR/manifest.json`` lists the parts (see
:mod:`jetzip.dataset` for the layout). Where the work runs:

- ``client=``: an existing ``distributed.Client``;
- ``scheduler="tcp://host:8786"``: connect to a running scheduler (its workers need jetzip and
  must see the input files and OUTDIR at the same paths: a shared file system);
- ``scheduler="local:N"``: a ``LocalCluster`` of N single-threaded worker processes, closed
  at the end;
- neither: the same tasks one after the other in this process (no Dask needed).

At scale: the model is scattered to every worker once (``client.scatter(broadcast=True)``) and
tasks refer to it; each task runs the network on one thread (``threads=1``) unless told
otherwise; a task that raises an unexpected exception or whose worker dies is retried
(`retries`, and the scheduler reschedules the tasks of a lost worker); a part already written
for the same input, entry range and options and intact (its sidecar's SHA-256) is skipped,
so running the same command again resumes an interrupted run. A problem with an input
(a :class:`~jetzip.errors.JetzipError`), or an OS error a retry cannot fix (a full disk, no
permission), is not retried: the run finishes the other parts and then raises one line,
naming the failed ones. The local clusters started here keep their workers' logs off stderr.

One run at a time per folder: ``compress`` holds ``OUTDIR/.jetzip-lock`` exclusively,
``decompress`` and ``inspect`` shared; a second run fails at once with one line. Whoever
edited a dataset folder, nothing read from it names a place outside it (see
:mod:`jetzip.dataset` for the checks).

:func:`read` gives what :func:`jetzip.arrays` reads (every branch, the input's names), on the
same code (:func:`jetzip.reading.read_table`).

Dask (``dask[distributed]``, ``dask-awkward``) is imported only here, and only when a cluster
or :func:`read` is used; without it a one-line error says ``pip install 'jetzip[dask]'``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import (
    COMPRESS_OPTIONS,
    DECOMPRESS_OPTIONS,
    MANIFEST,
    build_manifest,
    check_outputs,
    check_part,
    compress_part,
    count_entries,
    existing_conflict,
    expand_inputs,
    in_the_way,
    locked,
    open_regular,
    options_json,
    os_error_text,
    parts_by_input,
    plan_parts,
    positive_or_none,
    read_manifest,
    restore_input,
    restored_path,
    sidecar_dir,
    split_options,
    write_manifest,
)
from . import extras
from .defaults import available_cores
from .errors import FormatError, JetzipError, positive_int

DEFAULT_RETRIES = 2

__all__ = ["bench", "compress", "connect", "decompress", "inspect", "read"]


def _require(*modules: str) -> None:
    """Import the optional modules (:func:`jetzip.extras.require`: one line naming the extra)."""
    for name in modules:
        extras.require(name)


def parse_scheduler(address: str) -> tuple[str, int | None]:
    """``("local", N)`` for ``local`` or ``local:N``, ``("remote", None)`` for an address.

    Raises:
        JetzipError: ``local:`` with something other than a positive integer.
    """
    address = str(address).strip()
    if address == "local" or address.startswith("local:"):
        n = address[6:]
        if not n:
            return "local", available_cores()
        try:
            return "local", positive_int("local:N", int(n))
        except ValueError:
            raise JetzipError(f"scheduler {address!r}: use local:N with N workers, or an address "
                              "like tcp://host:8786") from None
    if not address:
        raise JetzipError("empty scheduler address")
    return "remote", None


@contextlib.contextmanager
def connect(client: Any = None, scheduler: str | None = None) -> Iterator[Any]:
    """The client to run on: `client` itself, one for `scheduler` (closed on exit, with the
    local cluster it started), or None (run in this process)."""
    if client is not None:
        if scheduler is not None:
            raise JetzipError("give either client= or scheduler=, not both")
        yield client
        return
    if scheduler is None:
        yield None
        return
    kind, n = parse_scheduler(scheduler)
    _require("dask", "distributed")
    from distributed import Client

    if kind == "local":
        cluster = local_cluster(n or 1)
        try:
            with Client(cluster) as c:
                yield c
        finally:
            cluster.close()
        return
    try:
        c = Client(scheduler, timeout="30s")
    except OSError as exc:
        raise JetzipError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        yield c
    finally:
        c.close()


# What a task imports: preloaded once by the fork server the local workers are forked from.
PRELOAD = ("torch", "uproot", "awkward", "h5py", "jetzip.api", "jetzip.dataset", "jetzip.engine",
           "jetzip.codecs.latent", "jetzip.codecs.bounded", "jetzip.tables.root", "jetzip.tables.hdf5",
           "jetzip.tables.csv")


def local_cluster(n_workers: int, **kwargs: Any):
    """A ``distributed.LocalCluster`` of `n_workers` single-threaded worker processes.

    One thread per process: the network runs on one thread per task, and Python threads in one
    process would share the GIL for reading and writing. Where the platform has it, the workers
    are forked from a fork server that has imported torch, uproot and jetzip once (without
    running anything), so that starting a worker takes a fork instead of seconds of imports.
    The workers log nothing below CRITICAL (a task that fails is reported by the call that ran
    it, in one line), and no dashboard is served. `kwargs` go to ``LocalCluster``.
    """
    import multiprocessing

    import dask
    from distributed import LocalCluster

    options: dict[str, Any] = {"n_workers": n_workers, "threads_per_worker": 1, "processes": True,
                               # no dashboard; its HTTP server on a free local port (the default,
                               # 8787, warns in three lines when another cluster holds it)
                               "dashboard_address": "127.0.0.1:0", "scheduler_kwargs": {"dashboard": False},
                               "env": {"OMP_NUM_THREADS": "1"},
                               # every failure comes back to the caller as one line (see _run):
                               # the workers' own "Compute Failed" tracebacks stay off stderr
                               "silence_logs": logging.CRITICAL}
    options.update(kwargs)
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return LocalCluster(**options)
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        preload_forkserver()
        return LocalCluster(**options)


def preload_forkserver() -> None:
    """Add :data:`PRELOAD` to the modules the fork server imports (before it starts)."""
    from multiprocessing import forkserver

    import distributed.utils

    ctx = distributed.utils.get_mp_context()  # sets distributed's own preload list first
    if ctx.get_start_method() != "forkserver":
        return
    current = list(getattr(forkserver._forkserver, "_preload_modules", None) or [])
    ctx.set_forkserver_preload(current + [m for m in PRELOAD if m not in current])


def _run(client: Any, fn: Callable, items: Sequence[Any], *, retries: int, progress: Callable | None,
         **kwargs: Any) -> tuple[list[Any], list[tuple[int, BaseException]]]:
    """``[fn(item, **kwargs) for item in items]`` on the cluster (or here): (results in order,
    [(index, exception)] of the items that failed after their retries)."""
    results: list[Any] = [None] * len(items)
    failed: list[tuple[int, BaseException]] = []
    if client is None:
        for i, item in enumerate(items):
            results[i] = fn(item, **kwargs)
            if progress is not None:
                progress(i + 1, len(items))
        return results, failed
    from distributed import as_completed

    if not items:
        return results, failed
    futures = client.map(fn, list(items), retries=retries, pure=False, **kwargs)
    where = {f.key: i for i, f in enumerate(futures)}
    done = 0
    try:
        for fut in as_completed(futures):
            i = where[fut.key]
            try:
                results[i] = fut.result()
            except Exception as exc:  # noqa: BLE001 - after its retries (a lost worker too often, a bug): reported, the rest goes on
                failed.append((i, exc))
            done += 1
            if progress is not None:
                progress(done, len(items))
    finally:
        client.cancel([f for f in futures if not f.done()])
    return results, failed


def _share(client: Any, obj: Any) -> Any:
    """`obj` on every worker once (a future the tasks refer to), or itself without a cluster."""
    if client is None or obj is None:
        return obj
    return client.scatter(obj, broadcast=True, hash=False)


def _failure_text(what: str, failures: list[str], total: int) -> str:
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return " ".join(f"{len(failures)} of {total} {what} failed: {failures[0]}{more}".split())


def _exception_text(exc: BaseException) -> str:
    """One line for an exception a task raised after its retries."""
    if isinstance(exc, OSError) and exc.strerror:
        return os_error_text(exc)
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


# -- compress ---------------------------------------------------------------------------------
def compress(files_or_glob: str | os.PathLike | Iterable[str | os.PathLike], outdir: str | os.PathLike, *,
             client: Any = None, scheduler: str | None = None, entries_per_task: int | None = None,
             error_bound: Any = None, model: Any = None, resume: bool = True, force: bool = False,
             retries: int = DEFAULT_RETRIES, progress: Callable[[int, int], None] | None = None,
             warn: Callable[[str], None] | None = None,
             task_progress: Callable[[str, int, int | None], None] | None = None,
             **compress_options: Any) -> dict[str, Any]:
    """Compress many jet tables into a dataset folder of ``.aez`` parts plus ``manifest.json``.

    Args:
        files_or_glob: a file, a glob pattern (``"data/*.root"``), or a list of either.
        outdir: the dataset folder (created). Parts are named after the inputs' file names
            (made plain file names: ``.hidden.root`` gives ``hidden.aez``); where two would
            meet, every name takes its input's index (``0000-x.aez``).
        client, scheduler: where the tasks run (see the module doc).
        entries_per_task: split inputs with more events (rows of flat tables) than this into
            ranges, one part each. Counting entries is a cheap task per file for ROOT, HDF5 and
            Parquet, and one pass over the file for CSV. None: one part per input.
        error_bound, model: the codec, as in :func:`jetzip.api.compress` (the model is loaded
            here and sent to each worker once).
        resume: skip parts already written for the same work and intact.
        force: replace part files in OUTDIR that come from other inputs or options.
        retries: how often a task is retried after an unexpected error or a lost worker.
        progress: ``progress(parts_done, n_parts)`` here, as parts finish.
        warn: called here with each warning of the parts (prefixed with the part name).
        task_progress: called on the worker as ``task_progress(part_file, done, total)`` per
            chunk (must be picklable).
        **compress_options: the other options of :func:`jetzip.api.compress` (``tree``,
            ``columns``, ``preset``, ``collection``, ``units``, ``keep_branches``,
            ``drop_branches``, ``latent_dtype``, ``latent_tolerance``, ``embed_model``,
            ``chunk_jets``, ``drop_invalid``, ``context_model``, ``device``, ``batch_size``,
            ``threads``; threads defaults to 1 per task). A ``context_model`` file goes to the
            workers as an absolute path, and its SHA-256 is part of every part's identity (a
            model changed in place is other work); restoring or inspecting the dataset then
            needs it again (``model=``).

    Returns:
        ``outdir``, ``manifest``, ``codec``, ``n_inputs``, ``n_parts``, ``n_skipped`` (parts
        reused from an earlier run), ``n_jets``, ``n_events``, ``bytes``, ``seconds``,
        ``jets_per_second``.

    Raises:
        JetzipError: bad options, missing inputs, conflicting files in OUTDIR (with `force`
            too: a symbolic link, or ``.jetzip-parts`` that is not a real folder), another run
            using OUTDIR, or parts that failed (the finished ones stay, so running again
            resumes).
    """
    t0 = time.perf_counter()
    options = split_options(compress_options, COMPRESS_OPTIONS, "jetzip.dask.compress")
    options["error_bound"] = error_bound
    positive_or_none("entries_per_task", entries_per_task)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise JetzipError(f"retries must be an integer >= 0, not {retries!r}")
    paths = expand_inputs(files_or_glob)
    resolved = None
    if error_bound is None:
        from .model import resolve_model

        resolved = resolve_model(model)
    context = options.get("context_model")
    if isinstance(context, (str, os.PathLike)) and str(context).lower() not in ("auto", "none"):
        options["context_model"] = os.path.abspath(context)  # what every worker opens
    options_id = options_json(options, resolved)
    outdir = os.fspath(outdir)
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise JetzipError(f"{outdir} exists and is not a folder")
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise JetzipError(f"cannot make the dataset folder {os_error_text(exc)}") from None
    warn = warn or (lambda message: None)
    with locked(outdir, exclusive=True), connect(client, scheduler) as c:
        sidecar_dir(outdir, create=True)
        if entries_per_task:
            counts, failed = _run(c, count_entries, paths, retries=retries, progress=None,
                                  table_options=options)
            if failed:
                raise JetzipError(_failure_text("inputs", [f"{paths[i]}: {_exception_text(e)}" for i, e in failed],
                                                len(paths)))
        else:
            counts = [None] * len(paths)
        inputs, specs = plan_parts(paths, counts, entries_per_task, options_id)
        blocked = [why for s in specs if (why := in_the_way(outdir, s))]
        if blocked:
            raise JetzipError(_failure_text("part files are in the way", blocked, len(specs)).replace(" failed", ""))
        if not force:
            conflicts = [why for s in specs if (why := existing_conflict(outdir, s))]
            if conflicts:
                raise JetzipError(_failure_text("part files are in the way", conflicts, len(specs))
                                  .replace(" failed", "") + "; use force=True (-f) to replace them")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(outdir, MANIFEST))  # written again, complete, at the end
        records, failed = _run(c, compress_part, specs, retries=retries, progress=progress, outdir=outdir,
                               options=options, model=_share(c, resolved), resume=resume,
                               task_progress=task_progress)
        problems = [f"{specs[i]['file']} ({specs[i]['source']}): {_exception_text(e)}" for i, e in failed]
        problems += [r["error"] for r in records if r is not None and "error" in r]
        said: dict[str, list[str]] = {}  # the same warning from many parts is shown once
        for r in records:
            if r is not None and "error" not in r and not r.get("skipped"):
                for w in r.get("warnings", []):
                    said.setdefault(w, []).append(r["file"])
        for w, files in said.items():
            where = files[0] if len(files) == 1 else f"{len(files)} parts ({files[0]}, ...)"
            warn(f"{where}: {w}")
        if problems:
            raise JetzipError(_failure_text("parts", problems, len(specs)) +
                              f"; the {len(specs) - len(problems)} finished parts are kept: run again to resume")
        codec = "bounded" if error_bound is not None else "latent"
        manifest = build_manifest(inputs, specs, records, codec, options_id)
        try:
            path = write_manifest(outdir, manifest)
        except OSError as exc:
            raise JetzipError(f"cannot write the dataset manifest: {os_error_text(exc)}; the parts are kept: "
                              "run again to resume") from None
    listed = {p["file"] for p in manifest["parts"]}
    unlisted = sorted(p.name for p in Path(outdir).glob("*.aez") if p.name not in listed)
    if unlisted:
        warn(f"{outdir} also holds {len(unlisted)} .aez file(s) the manifest does not list "
             f"({', '.join(unlisted[:3])}{', ...' if len(unlisted) > 3 else ''})")
    seconds = time.perf_counter() - t0
    totals = manifest["totals"]
    return {"outdir": outdir, "manifest": str(path), "codec": codec, "n_inputs": totals["n_inputs"],
            "n_parts": totals["n_parts"], "n_skipped": sum(bool(r.get("skipped")) for r in records),
            "n_jets": totals["n_jets"], "n_events": totals["n_events"], "bytes": totals["bytes"],
            "seconds": seconds, "jets_per_second": totals["n_jets"] / seconds if seconds > 0 else None}


# -- decompress -------------------------------------------------------------------------------
def decompress(outdir: str | os.PathLike, output: str | os.PathLike, *, client: Any = None,
               scheduler: str | None = None, model: Any = None, force: bool = False,
               retries: int = DEFAULT_RETRIES, progress: Callable[[int, int], None] | None = None,
               **options: Any) -> dict[str, Any]:
    """Restore one table per input of a dataset, its parts concatenated in order.

    Args:
        outdir: the dataset folder.
        output: a folder (each input restored as ``<name>`` plus its own format's extension,
            or that of `format`), or a pattern with ``{name}`` / ``{index}``, e.g.
            ``"restored/{name}.h5"``.
        client, scheduler: where the tasks run; one task per input.
        model: for latent parts made with ``embed_model=False``, the model file (or
            :class:`~jetzip.model.Model`); for bounded parts coded with an entropy model that
            is not shipped (``context_model=FILE``), that ``.jzc`` file (or ``ContextModel``).
        force: overwrite existing outputs.
        **options: ``format``, ``device``, ``batch_size``, ``threads`` (default 1),
            ``root_compression``, as in :func:`jetzip.api.decompress`.

    Returns:
        ``outdir``, ``outputs`` (one per input), ``n_jets``, ``n_events``, ``seconds``,
        ``jets_per_second``.

    Raises:
        InputError: not a dataset. FormatError: a damaged manifest or part.
        OutputExistsError: an output exists and `force` is false.
        JetzipError: a compress run is writing the folder (``.jetzip-lock``), or an input
            failed (a full disk, ...: one line).
    """
    t0 = time.perf_counter()
    opts = split_options(options, DECOMPRESS_OPTIONS, "jetzip.dask.decompress")
    outdir = os.fspath(outdir)
    output = os.fspath(output)
    with locked(outdir, exclusive=False):
        manifest = read_manifest(outdir)
        items = [{"index": inp["index"], "name": inp["name"], "path": inp["path"], "parts": mine}
                 for inp, mine in zip(manifest["inputs"], parts_by_input(manifest))]
        outs = [restored_path(output, inp, opts.get("format")) for inp in manifest["inputs"]]
        check_outputs(outs, force)
        try:
            if "{" not in output:
                os.makedirs(output, exist_ok=True)
            for folder in dict.fromkeys(os.path.dirname(o) or "." for o in outs):
                os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise JetzipError(f"cannot make the output folder {os_error_text(exc)}") from None
        pairs = list(zip(items, outs))
        with connect(client, scheduler) as c:
            shared = _share(c, load_any_model(model, manifest["codec"]))
            reports, failed = _run(c, _restore_pair, pairs, retries=retries, progress=progress, outdir=outdir,
                                   options=opts, model=shared)
    problems = [f"{outs[i]}: {_exception_text(e)}" for i, e in failed]
    problems += [r["error"] for r in reports if r is not None and "error" in r]
    if problems:
        raise JetzipError(_failure_text("inputs", problems, len(pairs)))
    n_jets = sum(r["n_jets"] for r in reports)
    seconds = time.perf_counter() - t0
    return {"outdir": outdir, "outputs": [r["output"] for r in reports], "reports": reports, "n_jets": n_jets,
            "n_events": sum(r["n_events"] for r in reports), "seconds": seconds,
            "jets_per_second": n_jets / seconds if seconds > 0 else None}


def _restore_pair(pair: tuple[dict, str], outdir: str, options: Mapping[str, Any], model: Any = None) -> dict:
    item, out = pair
    # The outputs were checked before the run; a retried task may meet its own earlier output.
    return restore_input(item, outdir, out, options, model=model, force=True)


def load_any_model(model: Any, codec: str | None = None) -> Any:
    """`model` loaded once, to be sent to every task: a latent model (:class:`~jetzip.model.Model`)
    or the bounded codec's entropy model (``ContextModel``, a ``.jzc`` file), told apart by
    the file's first bytes; objects and None as they are. `codec`: the dataset's codec id,
    whose kind of model it must be.

    Raises:
        InputError: unreadable. FormatError: neither kind of model file, or damaged.
        JetzipError: the other codec's kind of model.
    """
    if model is None:
        return None
    from .entropy.context import ContextModel
    from .model import Model, load_model

    if isinstance(model, (str, os.PathLike)):
        from .api import file_kind

        model = ContextModel.load(os.fspath(model)) if file_kind(model) == "context_model" else load_model(model)
    want = {"latent": (Model, "an autoencoder model file (.jzm)"),
            "bounded": (ContextModel, "the entropy model file (.jzc) it was coded with")}.get(codec or "")
    if want is not None and not isinstance(model, want[0]):
        raise JetzipError(f"this dataset's {codec} parts take {want[1]} as their model, not "
                          f"{type(model).__name__} {getattr(model, 'name', '')!r}")
    return model


# -- inspect ----------------------------------------------------------------------------------
def inspect(outdir: str | os.PathLike, *, client: Any = None, scheduler: str | None = None,
            verify: bool = True, strict: bool = True, model: Any = None) -> dict[str, Any]:
    """Summarise a dataset and check every part against the manifest.

    The manifest is checked whole (:func:`jetzip.dataset.read_manifest`: names inside the
    folder, every input's entries covered once, totals). Each part must be a regular file of
    the size and SHA-256 the manifest lists, and with `verify` every record checksum and the
    totals inside it (:func:`jetzip.api.inspect`) must hold, its jets and events too.

    Args:
        model: the entropy model (``.jzc`` file or ``ContextModel``) a bounded dataset was
            coded with (``context_model=FILE``) when it is not shipped: needed to verify its
            parts (CLI ``inspect --model``).

    Returns:
        ``path``, ``codec``, ``options``, ``jetzip_version``, ``n_inputs``, ``n_parts``,
        ``n_jets``, ``n_events``, ``bytes``, ``bytes_per_jet``, ``inputs`` (path, name,
        format, entries, parts, jets, events), ``parts`` (file, ok, problem), ``unlisted``
        (``.aez`` files in the folder that the manifest does not list), ``problems``,
        ``verified``.

    Raises:
        InputError: not a dataset. FormatError: a damaged manifest, or (with `strict`) any
            part that fails its checks. JetzipError: a compress run is writing the folder.
    """
    outdir = os.fspath(outdir)
    with locked(outdir, exclusive=False):
        m = read_manifest(outdir)
        parts = m["parts"]
        shared_model = load_any_model(model, m["codec"])
        with connect(client, scheduler) as c:
            checks, failed = _run(c, check_part, parts, retries=DEFAULT_RETRIES, progress=None, outdir=outdir,
                                  verify=verify, model=_share(c, shared_model))
    for i, exc in failed:
        checks[i] = {"file": parts[i]["file"], "ok": False, "problem": _exception_text(exc)}
    listed = {p["file"] for p in parts}
    unlisted = sorted(p.name for p in Path(outdir).glob("*.aez") if p.name not in listed)
    problems = [c["problem"] if os.path.join(outdir, c["file"]) in c["problem"] else f"{c['file']}: {c['problem']}"
                for c in checks if not c["ok"]]
    totals = m["totals"]
    inputs = []
    for inp, mine in zip(m["inputs"], parts_by_input(m)):
        inputs.append({"path": inp["path"], "name": inp["name"], "format": inp.get("format"),
                       "n_entries": inp.get("n_entries"), "n_parts": len(mine),
                       "n_jets": sum(p["n_jets"] for p in mine), "n_events": sum(p["n_events"] for p in mine)})
    n = totals["n_jets"]
    out = {"kind": "dataset", "path": outdir, "codec": m["codec"], "options": m["options"],
           "jetzip_version": m["jetzip_version"], "n_inputs": totals["n_inputs"], "n_parts": totals["n_parts"],
           "n_jets": n, "n_events": totals["n_events"], "bytes": totals["bytes"],
           "bytes_per_jet": totals["bytes"] / n if n else None, "inputs": inputs, "parts": checks,
           "unlisted": unlisted, "problems": problems, "verified": verify and not problems}
    if strict and problems:
        text = _failure_text("parts", problems, len(parts)).replace(" failed", " fail their checks")
        raise FormatError(f"dataset {outdir}: {text}")
    return out


def _shown(text: Any) -> str:
    """`text` for a terminal: control and unprintable characters escaped, as ``repr`` does."""
    text = str(text)
    return text if text.isprintable() else repr(text)[1:-1]


def format_inspect(info: Mapping[str, Any]) -> str:
    """A short text summary of :func:`inspect`'s result (for the CLI); the paths a manifest
    holds are shown with control characters escaped."""
    lines = [f"dataset {_shown(info['path'])}: {info['n_inputs']} input(s), {info['n_parts']} part(s), "
             f"codec {_shown(info['codec'])}",
             f"  {info['n_jets']} jets in {info['n_events']} events, {info['bytes']} bytes"
             + (f" ({info['bytes_per_jet']:.2f} B/jet)" if info["bytes_per_jet"] else "")]
    for inp in info["inputs"]:
        lines.append(f"  {_shown(inp['path'])}: {inp['n_parts']} part(s), {inp['n_jets']} jets in "
                     f"{inp['n_events']} events")
    bad = [p for p in info["parts"] if not p["ok"]]
    lines.append(f"  parts verified: {len(info['parts']) - len(bad)} of {len(info['parts'])}"
                 + ("" if info["verified"] or bad else " (sizes and SHA-256 only)"))
    lines += [f"  problem: {_shown(p)}" for p in info["problems"]]
    if info["unlisted"]:
        lines.append(f"  not in the manifest: {_shown(', '.join(info['unlisted']))}")
    return "\n".join(lines)


# -- read: dask-awkward -----------------------------------------------------------------------
class ArraysReader:
    """The partition function of :func:`read`: one part of a dataset, or one chunk of a single
    ``.aez``, read by :func:`jetzip.reading.read_table` (the code of :func:`jetzip.arrays`)
    into the fields of :attr:`form`.

    It implements dask-awkward's column projection (the protocol of its
    ``ColumnProjectionMixin``, to which it delegates): once a graph is optimised, each
    partition reads only the fields the computation touches, so ``events.Jet_pt`` decodes the
    Jet collection alone and ``events.MET_pt`` decodes nothing.
    """

    behavior = None
    attrs = None
    use_optimization = True

    def __init__(self, root: str, table: int, fields: Mapping[str, Sequence[str]], form: Any, records: bool,
                 dataset: bool, codec_options: Mapping[str, Any]) -> None:
        self.root, self.table, self.records, self.dataset = root, table, records, dataset
        self.fields = {k: list(v) for k, v in fields.items()}  # field of the result -> its branches
        self.form = form
        self.codec_options = dict(codec_options)

    def __call__(self, item: Any):
        from .reading import _Selective, convert_groups, read_table

        if self.dataset:
            from .dataset import check_sha

            path = os.path.join(self.root, item["file"])
            check_sha(path, item["sha256"], item["bytes"])
            chunks = None
        else:
            path, chunks = self.root, [item]
        names = [n for branches in self.fields.values() for n in branches]
        aez = _Selective(path)
        with aez:
            layout, values, n = read_table(aez, names, table=self.table, chunks=chunks, workers=1,
                                           codec_options=self.codec_options)
        return convert_groups(layout, values, n, self.records)

    def __dask_tokenize__(self) -> tuple:
        return ("jetzip.dask.ArraysReader", self.root, self.table, sorted(self.fields.items()), self.records,
                self.dataset, sorted((k, repr(v)) for k, v in self.codec_options.items()))

    # dask-awkward's projection protocol, as its ColumnProjectionMixin implements it
    def mock(self):
        from dask_awkward.lib.io.columnar import ColumnProjectionMixin

        return ColumnProjectionMixin.mock(self)  # type: ignore[arg-type]

    def mock_empty(self, backend: str = "cpu"):
        from dask_awkward.lib.io.columnar import ColumnProjectionMixin

        return ColumnProjectionMixin.mock_empty(self, backend)  # type: ignore[arg-type]

    def prepare_for_projection(self):
        from dask_awkward.lib.io.columnar import ColumnProjectionMixin

        return ColumnProjectionMixin.prepare_for_projection(self)  # type: ignore[arg-type]

    def necessary_columns(self, report: Any, state: Any) -> frozenset[str]:
        from dask_awkward.lib.io.columnar import ColumnProjectionMixin

        return ColumnProjectionMixin.necessary_columns(self, report, state)  # type: ignore[arg-type]

    def project(self, report: Any, state: Any) -> "ArraysReader":
        return self.project_columns(self.necessary_columns(report, state))

    def project_manually(self, columns: frozenset[str]) -> "ArraysReader":
        return self.project_columns(columns)

    def project_columns(self, columns: frozenset[str]) -> "ArraysReader":
        """A reader of only the fields `columns` names (dotted paths into the form; field names
        may hold dots themselves, PHYSLITE's ``AnalysisJetsAuxDyn.pt``); one plain number field
        when a computation needs only the number of entries."""
        import awkward as ak

        keep = [f for f in self.fields if any(c == f or c.startswith(f + ".") for c in columns)]
        if not keep:
            keep = [next((f for f in self.fields if isinstance(self.form.content(f), ak.forms.NumpyForm)),
                         next(iter(self.fields)))]
        form = ak.forms.RecordForm([self.form.content(f) for f in keep], keep, parameters=self.form.parameters)
        return ArraysReader(self.root, self.table, {f: self.fields[f] for f in keep}, form, self.records,
                            self.dataset, self.codec_options)


def read(path_or_dataset: str | os.PathLike, expressions: str | Sequence[str] | None = None, *,
         inputs: Sequence[str | int] | None = None, layout: str = "branches", table: str | int | None = None,
         model: Any = None, device: str = "cpu", threads: int | None = 1):
    """A ``.aez`` file or a dataset folder as a lazy **dask-awkward** array: the restored table
    as :func:`jetzip.arrays` reads it (every branch, the input's names and types), one
    partition per chunk of a single file or per part of a dataset.

    Nothing is decoded until the array (or something computed from it) is computed, on the
    client's cluster or dask's default scheduler. Each partition reads only the fields the
    computation needs (dask-awkward's column projection), as :func:`jetzip.arrays` does with
    `expressions`. A single file's partition seeks to its own chunk (a partition at the end of
    a file costs what one at its start costs; its records' checksums are checked, the file's
    totals are not); a dataset's partition checks its part's SHA-256 against the manifest first.

    Args:
        path_or_dataset: a ``.aez`` file, or a dataset folder of :func:`compress`.
        expressions: branch names or patterns, as :func:`jetzip.arrays` takes them (None: all).
        inputs: datasets: only these inputs (their names, paths as compressed, or indices);
            all by default. The parts read together must share one schema (table layout).
        layout: ``"branches"`` (the input's own branches, ``Jet_pt``...; default) or
            ``"records"`` (each coded collection as one list of records, ``events.Jet.pt``,
            as coffea's NanoEvents has it; :func:`jetzip.reading.record_groups`).
        table: the table to read (default: the first with jets).
        model: for latent files made with ``embed_model=False``, or the ``.jzc`` entropy
            model of bounded files coded with one not shipped (it travels with the graph).
        device, threads: how the latent network runs in each partition (one thread by default).

    Returns:
        ``dask_awkward.Array`` with known divisions (entries).

    Raises:
        InputError: no such file, folder, input or branch. FormatError: a damaged file or
            manifest. JetzipError: Dask is not installed, or the inputs mix table layouts.
    """
    _require("dask", "dask_awkward")
    import dask_awkward as dak

    from .reading import _Selective, chunk_heads, convert_groups, read_table, record_groups, table_index

    if layout not in ("branches", "records"):
        raise JetzipError(f"unknown layout {layout!r}; use branches or records")
    root = os.fspath(path_or_dataset)
    dataset = os.path.isdir(root)
    model = load_any_model(model)
    options = {"model": model, "device": device, "threads": threads}
    if dataset:
        if table is not None:
            raise JetzipError("table= reads a single .aez; a dataset's parts hold its main table")
        m = read_manifest(root)
        parts = _dataset_parts(root, m, inputs)
        model = load_any_model(model, m["codec"])
        options["model"] = model
        first = os.path.join(root, parts[0]["file"])
        open_regular(first, "part").close()  # the header read for the meta: a regular file only
        items: list[Any] = parts
        divisions = tuple(np.cumsum([0] + [int(p["n_events"]) for p in parts]).tolist())
    else:
        if inputs is not None:
            raise JetzipError("inputs= selects inputs of a dataset folder; this is one file")
        first = root
    aez = _Selective(first)
    with aez:
        t = table_index(aez, table)
        if not dataset:
            items = [h for h in chunk_heads(aez) if h.table == t]
            if not items:
                raise JetzipError(f"{root} holds no entries in table {aez.tables[t].tree!r}")
            divisions = tuple([items[0].first_entry] + [h.first_entry + h.n_entries for h in items])
        tl, values, n = read_table(aez, expressions, table=t, entry_start=0, entry_stop=0, decode=False)
        if layout == "records" and not tl.info.jagged:
            raise JetzipError("layout='records' needs a jagged table (events of jets); this one is flat")
        empty = convert_groups(tl, values, n, layout == "records")
        groups = record_groups(tl, layout == "records")
    fields = {f: list(groups[f]) if f in groups else [f] for f in empty.fields}
    reader = ArraysReader(root, t, fields, empty.layout.form, layout == "records", dataset, options)
    return dak.from_map(reader, items, label="jetzip-read", divisions=divisions)


def _dataset_parts(outdir: str, m: Mapping[str, Any], inputs: Sequence[str | int] | str | int | None) -> list[dict]:
    """The parts of the dataset's `inputs` (all: None), sharing one schema.

    Raises:
        JetzipError: an input the dataset does not have, no parts, or parts of several layouts.
    """
    parts = m["parts"]
    if inputs is not None:
        wanted = set()
        by: dict[Any, set[int]] = {}  # index, name or path -> inputs (one pass, however many)
        for inp in m["inputs"]:
            for k in dict.fromkeys((inp["index"], inp["name"], inp["path"])):
                by.setdefault(k, set()).add(inp["index"])
        for sel in ([inputs] if isinstance(inputs, (str, int)) else inputs):
            hits = by.get(sel) if isinstance(sel, (str, int)) and not isinstance(sel, bool) else None
            if not hits:
                shown = ", ".join(inp["name"] for inp in m["inputs"][:10])
                more = ", ..." if len(m["inputs"]) > 10 else ""
                raise JetzipError(f"dataset {outdir} has no input {sel!r} (inputs: {shown}{more})")
            wanted.update(hits)
        parts = [p for p in parts if p["input"] in wanted]
    if not parts:
        raise JetzipError(f"dataset {outdir} has no parts")
    schemas = {p.get("schema") for p in parts}
    if len(schemas) > 1:
        kinds: dict[Any, str] = {}
        for p in parts:
            kinds.setdefault(p.get("schema"), m["inputs"][p["input"]]["name"])
        raise JetzipError(f"dataset {outdir} mixes {len(schemas)} table layouts (e.g. inputs "
                          + ", ".join(kinds.values()) + "); read them separately with inputs=[...]")
    return list(parts)


# -- benchmark --------------------------------------------------------------------------------
def bench(files: Sequence[str | os.PathLike], workdir: str | os.PathLike, *, scheduler: str = "local:2",
          client: Any = None, entries_per_task: int | None = None, repeats: int = 1,
          log: Callable[[str], None] = print, **compress_options: Any) -> dict[str, Any]:
    """jets/s of a dataset compress and decompress on a cluster against single-process
    :func:`jetzip.api.compress` / ``decompress`` of the same files, one after the other.

    The single-process run uses the library's own default threads (all cores for the
    network); the cluster's tasks one thread each. The cluster start-up is not timed. The
    best of `repeats` of each is kept.
    """
    from . import api

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = expand_inputs(files)
    model = compress_options.pop("model", None)
    error_bound = compress_options.get("error_bound")
    result: dict[str, Any] = {"files": [str(p) for p in paths], "scheduler": scheduler,
                              "entries_per_task": entries_per_task, "cpu_count": os.cpu_count(),
                              "load_average_before": _load()}
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    n_jets = 0
    _warm()  # imports (torch ~ seconds) are not timed, here or on the workers
    for r in range(repeats):
        single = workdir / "single"
        single.mkdir(exist_ok=True)
        t = time.perf_counter()
        n_jets = 0
        for p in paths:
            n_jets += api.compress(p, single / (Path(p).stem + ".aez"), model=model, force=True,
                                   **compress_options)["n_jets"]
        keep("single_compress", time.perf_counter() - t)
        t = time.perf_counter()
        for p in paths:
            api.decompress(single / (Path(p).stem + ".aez"), single / (Path(p).stem + ".h5"), force=True)
        keep("single_decompress", time.perf_counter() - t)
        log(f"repeat {r + 1}: single process done ({n_jets} jets)")
    with connect(client, scheduler) as c:
        if c is not None:
            c.run(_warm)
        for r in range(repeats):
            ds = workdir / "dataset"
            t = time.perf_counter()
            rep = compress(paths, ds, client=c, entries_per_task=entries_per_task, model=model, resume=False,
                           force=True, **compress_options)
            keep("cluster_compress", time.perf_counter() - t)
            t = time.perf_counter()
            decompress(ds, workdir / "restored", client=c, format="hdf5", force=True)
            keep("cluster_decompress", time.perf_counter() - t)
            log(f"repeat {r + 1}: cluster done ({rep['n_parts']} parts)")
    result.update({"n_jets": n_jets, "repeats": repeats, "codec": "bounded" if error_bound is not None else "latent",
                   "seconds": best, "jets_per_second": {k: n_jets / v for k, v in best.items()}})
    result["load_average_after"] = _load()
    result["speedup_compress"] = best["single_compress"] / best["cluster_compress"]
    result["speedup_decompress"] = best["single_decompress"] / best["cluster_decompress"]
    return result


def _load() -> list[float] | None:
    """The machine's 1/5/15-minute load averages: on a shared machine, what else was running."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _warm() -> None:
    """Import what a task needs (torch, the codecs, the table readers)."""
    import importlib

    for name in ("torch", "uproot", "h5py", "jetzip.api", "jetzip.engine", "jetzip.codecs.latent",
                 "jetzip.codecs.bounded", "jetzip.tables.root", "jetzip.tables.hdf5"):
        importlib.import_module(name)


def format_bench(result: Mapping[str, Any]) -> str:
    """The benchmark as a few lines of text."""
    s, r = result["seconds"], result["jets_per_second"]
    return "\n".join([
        (f"{len(result['files'])} files, {result['n_jets']} jets, codec {result['codec']}, "
         f"{result['cpu_count']} CPUs, cluster {result['scheduler']} (one thread per worker), "
         f"entries per task {result['entries_per_task']}; best of {result['repeats']}; load average "
         f"before {result.get('load_average_before')}, after {result.get('load_average_after')}"),
        f"{'':30s}{'single process':>16s}{'cluster':>10s}{'cluster/single':>16s}",
        (f"{'compress (M jets/s)':30s}{r['single_compress'] / 1e6:16.3f}{r['cluster_compress'] / 1e6:10.3f}"
         f"{result['speedup_compress']:16.2f}"),
        (f"{'decompress to HDF5 (M jets/s)':30s}{r['single_decompress'] / 1e6:16.3f}"
         f"{r['cluster_decompress'] / 1e6:10.3f}{result['speedup_decompress']:16.2f}"),
        (f"{'seconds: single c, d; cluster c, d':34s}{s['single_compress']:8.2f}{s['single_decompress']:8.2f}"
         f"{s['cluster_compress']:8.2f}{s['cluster_decompress']:8.2f}"),
    ])


def _main(argv: Sequence[str] | None = None) -> None:
    """``python -m jetzip.dask bench ...``: the dataset benchmark on synthetic NanoAOD files."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m jetzip.dask", description=bench.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="jets/s of a local cluster against one process, same files")
    b.add_argument("--workdir", default="bench_dask_work")
    b.add_argument("--files", type=int, default=4, help="synthetic NanoAOD files")
    b.add_argument("--jets-per-file", type=int, default=500_000)
    b.add_argument("--scheduler", default="local:2")
    b.add_argument("--entries-per-task", type=int)
    b.add_argument("--error-bound", help="bounded codec instead of the latent one")
    b.add_argument("--model", help="model file (default: the shipped one)")
    b.add_argument("--repeats", type=int, default=1)
    b.add_argument("--json", help="also write the result as JSON here")
    a = p.parse_args(argv)
    from .synthetic import write_nanoaod

    work = Path(a.workdir)
    (work / "inputs").mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(a.files):
        f = work / "inputs" / f"nano_{i}.root"
        if not f.exists():
            write_nanoaod(f, a.jets_per_file, seed=100 + i)
        files.append(str(f))
    options: dict[str, Any] = {"model": a.model}
    if a.error_bound:
        options["error_bound"] = a.error_bound
    result = bench(files, work, scheduler=a.scheduler, entries_per_task=a.entries_per_task, repeats=a.repeats,
                   log=lambda m: print(f"[bench] {m}", flush=True), **options)
    print(format_bench(result))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    from jetzip.dask import (
        _main as main,  # the importable module, so that workers find its functions
    )

    main()
