"""Datasets of ``.aez`` parts: the plan, the per-part tasks and the manifest (no Dask here).

A *dataset* is a folder (OUTDIR) holding one ``.aez`` part per input file, or per range of
entries of a large input, plus ``manifest.json``. :mod:`jetzip.dask` runs the tasks defined here
on a ``dask.distributed`` cluster; without a cluster the same tasks run one after the other in
this process, so a dataset can be restored or inspected where Dask is not installed.

Layout of OUTDIR::

    manifest.json               the dataset (below), written last, atomically
    <stem>.aez                  the part of an input compressed whole
    <stem>.p0000.aez, ...       the parts of an input split into entry ranges, in order
    .jetzip-parts/<part>.json   one sidecar per finished part (its manifest entry), written
                                after the part is renamed into place: what a resumed run trusts

Parts are written by :func:`jetzip.api.compress` under a temporary name and renamed when
complete, so a part is never visible under its final name before it is whole.

``manifest.json`` is a JSON object: ``kind`` ("jetzip-dataset"), ``manifest_version``,
``jetzip_version``, ``codec`` (id), ``options`` (the compress options that shape the output;
the model by name and SHA-256), ``inputs`` (per input: ``index``, ``path`` as given,
``name`` (the stem restored files are named after), ``format``, ``n_entries``, ``parts``),
``parts`` (per part, in input and entry order: ``file``, ``input``, ``source``,
``entry_range`` ``[start, stop)`` (events, or rows of flat tables), ``n_jets``, ``n_events``,
``bytes``, ``sha256`` of the part file, ``key`` (the identity of the work: source path, size
and mtime, range and options), ``codec``), ``totals``, and ``sha256``: the SHA-256 of the
canonical JSON (sorted keys, no spaces) of everything else in the object.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import (
    FormatError,
    InputError,
    JetzipError,
    OutputExistsError,
    positive_int,
)

MANIFEST = "manifest.json"
SIDECARS = ".jetzip-parts"
KIND = "jetzip-dataset"
MANIFEST_VERSION = "1.0"
EXTENSION_OF = {"root": ".root", "hdf5": ".h5", "csv": ".csv", "parquet": ".parquet"}

# Options of jetzip.api.compress a dataset forwards to every part. Those in RUNTIME_OPTIONS do
# not change the output (same bytes whatever they are) and are left out of a part's identity.
TABLE_OPTIONS = ("tree", "columns", "preset", "collection", "units", "keep_branches", "drop_branches")
CODEC_OPTIONS = ("error_bound", "latent_dtype", "latent_tolerance", "embed_model", "chunk_jets",
                 "drop_invalid", "context_model")
RUNTIME_OPTIONS = ("device", "batch_size", "threads")
COMPRESS_OPTIONS = TABLE_OPTIONS + CODEC_OPTIONS + RUNTIME_OPTIONS
DECOMPRESS_OPTIONS = ("format", "device", "batch_size", "threads", "root_compression")


# -- helpers ----------------------------------------------------------------------------------
def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default).encode()


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON under a temporary name beside `path`, then rename (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def expand_inputs(files_or_glob: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Input paths: each item a file, or a glob pattern (sorted matches).

    Raises:
        InputError: a pattern matches nothing, a file is missing, or a file is given twice.
    """
    if isinstance(files_or_glob, (str, os.PathLike)):
        items = [files_or_glob]
    else:
        items = list(files_or_glob)
    out: list[str] = []
    for item in items:
        item = os.fspath(item)
        if not os.path.exists(item) and any(c in item for c in "*?["):
            hits = sorted(h for h in glob.glob(item) if os.path.isfile(h))
            if not hits:
                raise InputError(f"no file matches {item!r}")
            out += hits
        elif not os.path.isfile(item):
            raise InputError(f"{item} does not exist" if not os.path.exists(item) else f"{item} is not a file")
        else:
            out.append(item)
    if not out:
        raise InputError("no input files given")
    seen: dict[str, str] = {}
    for p in out:
        real = os.path.realpath(p)
        if real in seen:
            raise InputError(f"{p} is given twice (also as {seen[real]})")
        seen[real] = p
    return out


def split_options(options: Mapping[str, Any], allowed: Sequence[str], what: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise JetzipError(f"{what}: unknown or unsupported option(s) {', '.join(unknown)} "
                          f"(accepted: {', '.join(allowed)})")
    return dict(options)


def options_json(options: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The options that shape the output, as JSON (the model by name and SHA-256)."""
    out = {k: v for k, v in options.items() if k not in RUNTIME_OPTIONS and v is not None}
    for k in ("keep_branches", "drop_branches"):
        if isinstance(out.get(k), str):
            out[k] = [out[k]]
    if out.get("error_bound") is None and model is not None:
        out["model"] = {"name": model.name, "weights_sha256": model.weights_sha256}
    return json.loads(canonical(out))


# -- planning ---------------------------------------------------------------------------------
def count_entries(path: str, table_options: Mapping[str, Any]) -> int:
    """Events (rows of flat tables) in a table: the reader's count, or one pass over it (CSV)."""
    from .defaults import DEFAULT_CHUNK_JETS
    from .tables import open_table

    opts = {k: v for k, v in table_options.items() if k in TABLE_OPTIONS}
    source = open_table(path, **opts)
    try:
        n = getattr(source, "n_entries", None)
        if n is None:
            n = 0
            for chunk in source.chunks(DEFAULT_CHUNK_JETS):
                n += len(chunk.counts) if chunk.counts is not None else chunk.n_jets
        return int(n)
    finally:
        source.close()


def input_names(paths: Sequence[str]) -> list[str]:
    """The stem parts and restored files of each input are named after (unique)."""
    stems = [Path(p).stem or "input" for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    width = max(4, len(str(len(paths) - 1)))
    return [f"{i:0{width}d}-{s}" for i, s in enumerate(stems)]


def source_identity(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def plan_parts(paths: Sequence[str], n_entries: Sequence[int | None], entries_per_task: int | None,
               options_id: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
    """(inputs, part specs): each input whole, or split into ranges of `entries_per_task`."""
    names = input_names(paths)
    inputs, parts = [], []
    for i, (path, name, n) in enumerate(zip(paths, names, n_entries)):
        ident = source_identity(path)
        if entries_per_task and n is not None and n > entries_per_task:
            ranges: list[tuple[int, int] | None] = [(a, min(a + entries_per_task, n))
                                                    for a in range(0, n, entries_per_task)]
            width = max(4, len(str(len(ranges) - 1)))
            files = [f"{name}.p{k:0{width}d}.aez" for k in range(len(ranges))]
        else:
            ranges, files = [None], [f"{name}.aez"]
        for rng, file in zip(ranges, files):
            key = hashlib.sha256(canonical({"source": ident, "entry_range": rng,
                                            "options": options_id})).hexdigest()
            parts.append({"file": file, "input": i, "source": path, "entry_range": rng, "key": key})
        inputs.append({"index": i, "path": path, "name": name, "n_entries": n, "parts": files})
    return inputs, parts


# -- the compress task ------------------------------------------------------------------------
def sidecar_path(outdir: str | os.PathLike, part_file: str) -> Path:
    return Path(outdir) / SIDECARS / f"{part_file}.json"


def finished_part(outdir: str | os.PathLike, spec: Mapping[str, Any]) -> dict | None:
    """The record of a part already written for this very work and intact, else None."""
    side = sidecar_path(outdir, spec["file"])
    part = Path(outdir) / spec["file"]
    try:
        record = json.loads(side.read_text())
        if record.get("key") != spec["key"] or not part.is_file() \
                or part.stat().st_size != record.get("bytes"):
            return None
        if file_sha256(part) != record.get("sha256"):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    return record


def existing_conflict(outdir: str | os.PathLike, spec: Mapping[str, Any]) -> str | None:
    """Why writing `spec` would replace a file that is not an earlier attempt at the same work."""
    part = Path(outdir) / spec["file"]
    if not part.exists():
        return None
    try:
        record = json.loads(sidecar_path(outdir, spec["file"]).read_text())
    except (OSError, ValueError):
        return f"{part} exists and was not written by this dataset"
    if record.get("key") != spec["key"]:
        return f"{part} was made from another input, entry range or options"
    return None


def compress_part(spec: Mapping[str, Any], outdir: str, options: Mapping[str, Any], model: Any = None,
                  resume: bool = True, task_progress: Callable | None = None) -> dict[str, Any]:
    """Compress one part (a Dask task); returns its manifest record.

    A part already written for the same work and intact (its sidecar's key and SHA-256) is
    skipped (``"skipped": True``) when `resume`. A :class:`JetzipError` (bad input, ...) is
    returned as ``{"error": message}`` instead of raised: retrying cannot fix it. Other
    exceptions propagate (and are retried by the scheduler).
    """
    from . import api

    if resume:
        done = finished_part(outdir, spec)
        if done is not None:
            return {**done, "skipped": True}
    out = os.path.join(outdir, spec["file"])
    warnings: list[str] = []
    rng = spec["entry_range"]
    opts = dict(options)
    if opts.get("error_bound") is None:
        opts["model"] = model
    if opts.get("threads") is None:
        opts["threads"] = 1  # one network thread per task: the cluster gives the parallelism
    progress = api._noop_progress
    if task_progress is not None:
        def progress(done: int, total: int | None, unit: str | None = None) -> None:  # noqa: ARG001
            task_progress(spec["file"], done, total)
    try:
        report = api.compress(spec["source"], out, entry_range=None if rng is None else tuple(rng),
                              force=True, warn=warnings.append, progress=progress, **opts)
        from .aez import open_aez

        with open_aez(out) as aez:
            jagged = aez.table.jagged
            fmt = aez.table.format
            schema = schema_of(aez.table)
    except JetzipError as exc:
        return {"file": spec["file"], "input": spec["input"], "error": f"{spec['source']}: {exc}"}
    if rng is None:
        # The whole input: its entries are the events written (rows, dropped ones included).
        n = report["n_events"] + (0 if jagged else report["dropped_invalid"])
        rng = [0, n]
    record = {"file": spec["file"], "input": spec["input"], "source": spec["source"],
              "entry_range": list(rng), "key": spec["key"], "format": fmt, "codec": report["codec"],
              "n_jets": report["n_jets"], "n_events": report["n_events"], "bytes": report["bytes"],
              "sha256": file_sha256(out), "dropped_invalid": report["dropped_invalid"], "schema": schema,
              "seconds": round(report["seconds"], 4), "warnings": warnings}
    side = sidecar_path(outdir, spec["file"])
    side.parent.mkdir(exist_ok=True)
    write_json_atomic(side, record)
    return {**record, "skipped": False}


# -- the manifest -----------------------------------------------------------------------------
PART_KEYS = ("file", "input", "source", "entry_range", "key", "codec", "n_jets", "n_events", "bytes",
             "sha256", "dropped_invalid", "schema")


def schema_of(info: Any) -> str:
    """What the decoded arrays of a part look like (names, jaggedness, dtypes), as a short hash:
    parts with the same schema can be read as one array."""
    d = {k: getattr(info, k) for k in ("jagged", "counter", "collection", "representation", "kept_branches",
                                        "jet_branches", "branch_order")}
    d["columns"] = list(info.columns.items())
    names = [*info.kept_branches, *info.jet_branches, *([info.counter] if info.counter else [])]
    d["dtypes"] = {k: info.dtypes.get(k) for k in names}
    return hashlib.sha256(canonical(d)).hexdigest()[:16]


def build_manifest(inputs: list[dict], records: list[dict], codec: str, options: dict) -> dict:
    by_file = {r["file"]: r for r in records}
    parts: list[dict[str, Any]] = []
    for inp in inputs:
        recs = [by_file[f] for f in inp["parts"]]
        inp["format"] = recs[0].get("format")
        if inp["n_entries"] is None:
            inp["n_entries"] = recs[-1]["entry_range"][1]
        parts += [{k: r.get(k) for k in PART_KEYS} for r in recs]
    totals = {"n_inputs": len(inputs), "n_parts": len(parts),
              "n_jets": sum(p["n_jets"] for p in parts), "n_events": sum(p["n_events"] for p in parts),
              "bytes": sum(p["bytes"] for p in parts)}
    body = {"kind": KIND, "manifest_version": MANIFEST_VERSION, "jetzip_version": __version__,
            "codec": codec, "options": options, "inputs": inputs, "parts": parts, "totals": totals}
    body = json.loads(canonical(body))
    return {**body, "sha256": hashlib.sha256(canonical(body)).hexdigest()}


def write_manifest(outdir: str | os.PathLike, manifest: dict) -> Path:
    path = Path(outdir) / MANIFEST
    write_json_atomic(path, manifest)
    return path


def is_dataset(path: str | os.PathLike) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MANIFEST))


def read_manifest(outdir: str | os.PathLike) -> dict:
    """The manifest of a dataset folder, its own checksum verified.

    Raises:
        InputError: no such folder or no manifest. FormatError: damaged or not a manifest.
    """
    path = Path(outdir) / MANIFEST
    if not Path(outdir).is_dir():
        raise InputError(f"{outdir} is not a folder" if Path(outdir).exists() else f"{outdir} does not exist")
    if not path.is_file():
        raise InputError(f"{outdir} holds no {MANIFEST}: not a jetzip dataset (or its compress run "
                         "did not finish; run it again to resume)")
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: not readable JSON ({exc.__class__.__name__})") from None
    if not isinstance(m, dict) or m.get("kind") != KIND:
        raise FormatError(f"{path} is not a jetzip dataset manifest")
    major = str(m.get("manifest_version", "")).split(".")[0]
    if major != MANIFEST_VERSION.split(".")[0]:
        raise FormatError(f"{path}: manifest version {m.get('manifest_version')!r} needs another jetzip")
    body = {k: v for k, v in m.items() if k != "sha256"}
    if hashlib.sha256(canonical(body)).hexdigest() != m.get("sha256"):
        raise FormatError(f"{path} is corrupted: its content does not match its SHA-256")
    try:
        for p in m["parts"]:
            if not isinstance(p["file"], str) or "/" in p["file"] or p["file"].startswith("."):
                raise ValueError(f"part file name {p['file']!r}")
            int(p["n_jets"]), int(p["n_events"]), int(p["input"])
        for inp in m["inputs"]:
            if not isinstance(inp["name"], str) or "/" in inp["name"]:
                raise ValueError(f"input name {inp['name']!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{path}: malformed manifest ({exc})") from None
    return m


def parts_of(manifest: dict, input_index: int) -> list[dict]:
    return [p for p in manifest["parts"] if p["input"] == input_index]


# -- checks -----------------------------------------------------------------------------------
def check_part(part: Mapping[str, Any], outdir: str, verify: bool = True) -> dict[str, Any]:
    """One part against the manifest: size, SHA-256 and (`verify`) every record's checksum and
    the totals (:func:`jetzip.api.inspect`). Returns ``{"file", "ok", "problem"}``."""
    from . import api

    path = os.path.join(outdir, part["file"])
    out: dict[str, Any] = {"file": part["file"], "ok": False, "problem": None}
    try:
        size = os.path.getsize(path)
    except OSError:
        out["problem"] = f"{path} is missing"
        return out
    if size != part["bytes"]:
        out["problem"] = f"{path} has {size} bytes, the manifest says {part['bytes']}"
        return out
    if file_sha256(path) != part["sha256"]:
        out["problem"] = f"{path} does not match its SHA-256 in the manifest"
        return out
    if verify:
        try:
            info = api.inspect(path)
        except JetzipError as exc:
            out["problem"] = str(exc)
            return out
        if info.get("n_jets") != part["n_jets"] or info.get("n_events") != part["n_events"]:
            out["problem"] = (f"{path} holds {info.get('n_jets')} jets in {info.get('n_events')} events, "
                              f"the manifest says {part['n_jets']} in {part['n_events']}")
            return out
        out["payload_bytes"] = info.get("payload_bytes")
    out["ok"] = True
    return out


def check_sha(path: str, sha: str) -> None:
    if file_sha256(path) != sha:
        raise FormatError(f"{path} does not match its SHA-256 in the dataset manifest")


# -- the decompress task ----------------------------------------------------------------------
def restore_input(item: Mapping[str, Any], outdir: str, output: str, options: Mapping[str, Any],
                  model: Any = None, force: bool = False) -> dict[str, Any]:
    """Decode the parts of one input, in order, into one table file (a Dask task).

    The parts are checked against their SHA-256 in the manifest, must share one header
    (source table and codec), and stream through one writer, so the restored file is what a
    single-process ``decompress`` of the whole input gives. Returns a report; a
    :class:`JetzipError` is returned as ``{"error": message}``.
    """
    import time

    from .aez import open_aez
    from .atomic import atomic_output
    from .pipeline import InOrderWorker
    from .tables import format_of, open_file_writer

    t0 = time.perf_counter()
    opts = dict(options)
    fmt_opt = opts.pop("format", None)
    root_compression = opts.pop("root_compression", None) or "input"
    threads = opts.get("threads") or 1
    paths = [os.path.join(outdir, p["file"]) for p in item["parts"]]
    try:
        fmt = format_of(output, fmt_opt, sniff=False, hint="format=")
        for p, path in zip(item["parts"], paths):
            if not os.path.isfile(path):
                raise InputError(f"part {path} is missing")
            check_sha(path, p["sha256"])
        with open_aez(paths[0]) as first:
            infos = first.tables
            main = next((i for i, t in enumerate(infos) if t.has_jets), 0)
            source_json = first.header_json.get("tables", first.header_json.get("source"))
            configs = first.header.codecs
            first_compression = first.header.source.get("compression")
            codecs = first.codecs(model=model, device=opts.get("device", "auto"),
                                  batch_size=opts.get("batch_size"), threads=threads)
        workers = threads if all(c.parallel for c in codecs) else 1
        n_jets = n_events = 0
        extras: bytes | None = None
        with atomic_output(output, force, inputs=paths) as tmp:
            writer = open_file_writer(tmp, fmt, infos, root_compression, main, first_compression)

            def write(table: int, chunk: Any) -> None:
                writer.write(table, chunk)

            try:
                with InOrderWorker(write) as background:
                    for path in paths:
                        with open_aez(path) as aez:
                            if aez.header_json.get("tables", aez.header_json.get("source")) != source_json \
                                    or aez.header.codecs != configs:
                                raise FormatError(f"{path}: its header differs from the first part's "
                                                  f"({paths[0]}); parts of one input must match")
                            for _, chunk in aez.decoded(codecs, workers, tables=[main]):
                                background.submit(main, chunk)
                                n_jets += chunk.n_jets
                                n_events += chunk.n_entries
                    # the other tables (NanoAOD's Runs): every part carries them whole; once
                    with open_aez(paths[0]) as aez:
                        others = [i for i in range(len(infos)) if i != main]
                        if others:
                            for stored, chunk in aez.decoded(codecs, workers, tables=others):
                                background.submit(stored.table, chunk)
                        else:
                            for _ in aez.chunks():
                                pass
                        extras = aez.extras  # every part carries them: write them once
                if extras is not None:
                    writer.write_extras(bytes(extras), infos[main].format)
            finally:
                writer.close()
    except JetzipError as exc:
        return {"input": item["index"], "output": output, "error": str(exc)}
    return {"input": item["index"], "output": output, "format": fmt, "n_jets": n_jets,
            "n_events": n_events, "n_parts": len(paths), "seconds": time.perf_counter() - t0}


def restored_path(output: str | os.PathLike, item: Mapping[str, Any], fmt: str | None) -> str:
    """Where one input is restored: ``output`` a folder (``<name>`` + the input's extension, or
    `fmt`'s), or a pattern with ``{name}`` (and optionally ``{index}``), e.g. ``out/{name}.h5``."""
    output = os.fspath(output)
    if "{" in output:
        try:
            return output.format(name=item["name"], index=item["index"])
        except (KeyError, IndexError, ValueError) as exc:
            raise JetzipError(f"output pattern {output!r}: use {{name}} and {{index}} ({exc})") from None
    ext = EXTENSION_OF.get(fmt or item.get("format") or "", None)
    if ext is None:
        raise JetzipError(f"cannot tell the output format of input {item['path']}; pass format=")
    return os.path.join(output, item["name"] + ext)


def positive_or_none(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def check_outputs(outs: Sequence[str], force: bool) -> None:
    if len(set(outs)) != len(outs):
        raise JetzipError("several inputs would be restored to the same file; put {name} in the pattern")
    if not force:
        for o in outs:
            if os.path.exists(o):
                raise OutputExistsError(f"output {o} exists; use force=True (-f) to overwrite it")
