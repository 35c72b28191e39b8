"""The library API the CLI forwards to: compress, decompress, inspect.

How one chunk of jets flows through :func:`compress`::

    tables.open_file(...).tables[i].chunks()   read whole events of each table (reader thread)
    codec.invalid(columns)            jets the codec refuses (NaN, ...): fail or drop
    codec.encode(columns, counts)     bytes (codecs/latent.py: the network via engine.py;
                                      codecs/bounded/: quantization + rANS, chunks in parallel)
    AezWriter.write_chunk(...)        the .aez container (aez.py; writer thread)

:func:`decompress` runs it backwards: ``aez.open_aez(...).decoded(...)`` (the one decode loop:
every collection's codec, chunks in parallel) -> ``tables.open_file_writer(...).write``.
Every function takes plain Python values, raises :class:`~jetzip.errors.JetzipError` on bad
input, and returns a JSON-serialisable report.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .aez import MAX_EVENTS_PER_CHUNK, MAX_JETS_PER_CHUNK, AezWriter, Header, TableSpec, open_aez
from .atomic import atomic_output
from .codecs import Codec
from .defaults import (DEFAULT_BOUNDED_CHUNK_JETS, DEFAULT_CHUNK_JETS, DEFAULT_CONTEXT_MODEL, DEFAULT_DEVICE,
                       DEFAULT_LATENT_DTYPE,
                       LATENT_DTYPE_CHOICES,
                       DEFAULT_ROOT_COMPRESSION, MIN_WRITE_JETS, RAW_BYTES_PER_JET, available_cores)
from .errors import (FormatError, InputError, JetzipError, ModelMismatchError, damage_message, damaged_input,
                     open_input, positive_int)
from .model import Model, load_model, resolve_model
from .pipeline import InOrderWorker, ordered_map, ordered_process_map, prefetch
from .tables import (CollectionInfo, JetChunk, TableInfo, concat_chunks, describe_jet, format_of, open_file,
                     open_file_writer)
from .tables.base import entry_window
from .features import REPRESENTATIONS
from .tables.layouts import every_but, is_jet_name

Progress = Callable[..., None]  # progress(done, total_or_None, unit): unit "events" or "jets"
Warn = Callable[[str], None]
MASS_WARNING = ("the restored mass is not usable (the 3-float latent does not carry it; relative "
                "errors of order 1); use --error-bound for a bounded mass")


def _noop_progress(done: int, total: int | None, unit: str | None = None) -> None:  # noqa: ARG001
    pass


def _noop_warn(message: str) -> None:  # noqa: ARG001
    pass


MAX_WARNING_LINES = 8  # of one kind; the rest are counted in one line (every one is in the report)


def warn_each(warn: Callable[[str], None], prefix: str, lines: Sequence[str], rest: str) -> None:
    """One warning per line, up to :data:`MAX_WARNING_LINES`; beyond that the first ones and a
    last line counting the others and saying where they all are (`rest`)."""
    if len(lines) <= MAX_WARNING_LINES:
        for line in lines:
            warn(f"{prefix}: {line}")
        return
    for line in lines[:MAX_WARNING_LINES - 1]:
        warn(f"{prefix}: {line}")
    warn(f"{prefix}: and {len(lines) - MAX_WARNING_LINES + 1} more ({rest})")


def _with_unit(progress: Progress) -> Callable[[int, "int | None", str], None]:
    """`progress` called with the unit when it takes a third argument, else as
    ``progress(done, total)`` (callbacks written for jetzip 0.1)."""
    import inspect as _inspect

    try:
        params = _inspect.signature(progress).parameters.values()
    except (TypeError, ValueError):  # builtins and the like: the two-argument form
        return lambda done, total, unit: progress(done, total)
    takes_unit = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 3 \
        or any(p.kind == p.VAR_POSITIONAL for p in params)
    if takes_unit:
        return lambda done, total, unit: progress(done, total, unit)
    return lambda done, total, unit: progress(done, total)


def make_codec(info: TableInfo | CollectionInfo, *, error_bound: str | float | Mapping[str, float] | None = None,
               model: Model | str | os.PathLike | None = None, latent_dtype: str = DEFAULT_LATENT_DTYPE,
               latent_tolerance: str | Mapping[str, float] | None = None, embed_model: bool | None = None,
               device: str = DEFAULT_DEVICE, batch_size: int | None = None,
               threads: int | None = None, context_model: Any = DEFAULT_CONTEXT_MODEL) -> Codec:
    """The codec compress uses for a collection (`info`: its name, representation and units):
    bounded when `error_bound` is given, else latent; `context_model` (bounded only):
    ``"auto"`` (the shipped learned model), ``"none"`` (each chunk's own tables), a model file or
    a ``ContextModel``. Constituent collections (:func:`jetzip.tables.layouts.collection_kind`)
    get the bounded codec's constituent contexts, and Cartesian or constituent tables the
    chunks' own tables (the learned model was trained on jets in (pt, eta, phi))."""
    if error_bound is not None:
        from .codecs.bounded import BoundedCodec, parse_error_bound
        from .entropy.context import ContextModel, context_model_option
        from .tables.layouts import collection_kind

        name = info.collection if isinstance(info, TableInfo) else info.name
        slots = len(((info.extra.get("wide") or {}).get("jets") or [])) if isinstance(info, TableInfo) else 0
        kind = collection_kind(name, slots)
        learned = context_model_option(context_model)
        if kind != "jets" or info.representation in ("PxPyPzE", "PxPyPzM"):
            learned = None
        bounded = BoundedCodec(parse_error_bound(error_bound, info.representation), info.representation,
                               info.units, learned, kind=kind)
        if learned is not None and not isinstance(context_model, ContextModel) and \
                str(context_model).lower() not in ("auto", "none"):
            bounded.context_model_file = os.fspath(context_model)
        bounded.prepare()  # the compiled loops, once here, before worker processes need them
        return bounded
    from .codecs.latent import LatentCodec, parse_tolerance

    if info.representation not in REPRESENTATIONS:
        name = info.collection if isinstance(info, TableInfo) else info.name
        raise InputError(f"collection {name!r} holds pt, eta and phi only: the latent codec codes four-vectors; "
                         "code it with --error-bound, or leave it out of --collection to carry it")

    codec = LatentCodec(resolve_model(model), info.representation, info.units, latent_dtype,
                        "auto" if embed_model is None else embed_model,
                        parse_tolerance(latent_tolerance), device, batch_size, threads)
    codec.prepare()
    return codec


def compress(input: str | os.PathLike, output: str | os.PathLike, *,
             error_bound: str | float | Mapping[str, float] | None = None,
             model: Model | str | os.PathLike | None = None, tree: str | None = None,
             columns: str | dict | None = None, preset: str | None = None,
             collection: str | None = None, units: str | None = None,
             keep_branches: Sequence[str] = (), drop_branches: Sequence[str] = (),
             latent_dtype: str = DEFAULT_LATENT_DTYPE, latent_tolerance: str | Mapping[str, float] | None = None,
             embed_model: bool | None = None, device: str = DEFAULT_DEVICE, batch_size: int | None = None,
             chunk_jets: int | None = None, force: bool = False, drop_invalid: bool = False,
             threads: int | None = None, max_jets: int | None = None,
             entry_range: tuple[int, int] | None = None, context_model: Any = DEFAULT_CONTEXT_MODEL,
             carried_compression: str | None = None, strict: bool = False,
             progress: Progress = _noop_progress, warn: Warn = _noop_warn) -> dict[str, Any]:
    """Compress one jet table into a ``.aez`` file.

    Args:
        input: the table (ROOT, HDF5, CSV or Parquet; format from the extension or content).
        output: the ``.aez`` path; written under a temporary name and renamed when complete.
        error_bound: use the error-bounded codec (CLI ``--error-bound``): one number (relative
            for pt and E or mass, absolute for eta and phi), ``"pt=5e-4,eta=2.5e-4,..."`` or
            ``"nanoaod"``; see :func:`jetzip.codecs.bounded.parse_error_bound`. None: the
            3-float latent codec.
        model: latent codec only: a :class:`~jetzip.model.Model` or model file (default: the
            shipped model or ``$JETZIP_MODEL``).
        tree, columns, preset, collection, units: where the jets are and in which units (see
            :func:`jetzip.tables.open_table`; CLI ``--tree``, ``--columns``, ...).
        keep_branches, drop_branches: glob patterns of other branches to keep or leave out.
        latent_dtype: ``float32`` or ``float16`` latents.
        latent_tolerance: latent codec: jets not reproduced within it are stored verbatim
            (default ``pt=5e-3`` relative, ``eta=5e-3``, ``phi=5e-3`` absolute).
        embed_model: store the decoder in the file; None (default): only when the model is not
            one shipped with jetzip (a shipped model is named by its SHA-256 and found in the
            package); False (``--no-embed-model``): only its hash.
        device, batch_size, threads: how the network runs (``--device auto|cpu|cuda[:N]``);
            `threads` also sets how many chunks the bounded codec codes at once.
        chunk_jets: jets per chunk (default 2^18 latent, 2^20 bounded; whole events).
        force: overwrite an existing output.
        drop_invalid: leave out jets the codec refuses (NaN, inf, ...) instead of failing.
        max_jets: compress only the first events holding at most this many jets.
        entry_range: ``(start, stop)``: only events (rows of flat tables) start <= i < stop,
            as Dask tasks split a large file (:mod:`jetzip.dask`).
        context_model: bounded codec: the entropy model (CLI ``--context-model``): ``"none"``
            (default: the chunks' own tables), ``"auto"`` (the shipped learned model
            ``models/context_v1.jzc``: about 2 % smaller jets, 6x slower to read), or a model
            file from ``jetzip train --entropy-model``. Per chunk and stream the smaller of
            model and own tables is used.
        carried_compression: how the carried branches are compressed (CLI
            ``--carried-compression``): ``"lzma"``, ``"zstd"``, optionally ``":LEVEL"``; None: LZMA
            where the input used it, else zstd.
        strict: refuse to write anything when some part of the input cannot be carried (CLI
            ``--strict``): a branch uproot cannot read, an object it cannot write back.
        progress: called as ``progress(done, total_or_None, unit)`` per chunk, with `unit`
            "events" (jagged tables) or "jets" (one jet per row).
        warn: called with each warning (one line each).

    Returns:
        ``input``, ``output``, ``codec`` (id), ``codec_config``, ``n_jets``, ``n_events``,
        ``n_chunks``, ``bytes``, ``payload_bytes`` (the jets' own bytes), ``bytes_per_jet``
        (the whole file over the first table's main collection), ``n_four_vectors`` (of every
        coded collection of every table), ``payload_bytes_per_jet`` (payload bytes over those),
        ``ratio_to_float32``, ``dropped_invalid``,
        ``units``, ``units_inferred``, ``seconds``, and what the codec reports
        (:meth:`~jetzip.codecs.Codec.encode_report`: for the latent codec ``model``,
        ``model_sha256``, ``exact_jets`` stored verbatim, ``outside_training_ranges``).

    Raises:
        InputError: missing or unreadable input, no jets found, invalid jets (without
            `drop_invalid`), bad options.
        OutputExistsError: `output` exists and `force` is false.
        JetzipError: any other problem with the arguments.
    """
    t0 = time.perf_counter()
    report_progress = _with_unit(progress)
    if str(output) == "-":
        raise JetzipError("a .aez file cannot go to standard output; give a file name")
    if chunk_jets is None:
        chunk_jets = DEFAULT_CHUNK_JETS if error_bound is None else DEFAULT_BOUNDED_CHUNK_JETS
    positive_int("chunk_jets", chunk_jets)
    chunk_jets = min(int(chunk_jets), MAX_JETS_PER_CHUNK)
    if max_jets is not None:
        positive_int("max_jets", max_jets)
    if threads is not None:
        positive_int("threads", threads)
    if entry_range is not None:
        try:
            start, stop = (int(x) for x in entry_range)
        except (TypeError, ValueError):
            raise JetzipError(f"entry_range must be (start, stop), not {entry_range!r}") from None
        if not 0 <= start <= stop:
            raise JetzipError(f"entry_range must have 0 <= start <= stop, not {entry_range!r}")
        entry_range = (start, stop)
    if isinstance(keep_branches, str):
        keep_branches = (keep_branches,)  # one pattern, not its characters
    if isinstance(drop_branches, str):
        drop_branches = (drop_branches,)
    if latent_dtype not in LATENT_DTYPE_CHOICES:
        raise JetzipError(f"unknown latent dtype {latent_dtype!r}; use {', '.join(LATENT_DTYPE_CHOICES)}")
    if error_bound is None:
        resolve_model(model)  # a missing model fails before the input is read
    else:
        from .entropy.context import context_model_option

        context_model_option(context_model)  # a bad model file fails before the input is read
        ignored = [name for name, given in (("--model", model is not None),
                                            ("--tolerance", latent_tolerance is not None),
                                            ("--latent-dtype", latent_dtype != DEFAULT_LATENT_DTYPE),
                                            ("--no-embed-model", embed_model is False)) if given]
        if ignored:
            warn(f"{', '.join(ignored)} only apply to the latent codec; the error-bounded codec ignores them")
    options = dict(tree=tree, columns=columns, preset=preset, units=units, keep_branches=keep_branches,
                   drop_branches=drop_branches, threads=threads)
    source = open_file(input, collection=collection, **options)
    _check_left_out(source, collection)
    chosen: list[str] = []
    if source.format in ("root", "parquet") and every_but(collection)[0] and not columns:
        # --collection all: a collection whose coding costs more than carrying it is carried
        source, chosen = _carry_where_smaller(source, input, collection, options, error_bound, context_model,
                                              chunk_jets, carried_compression)
    try:
        main = source.main
        info = source.tables[main].info
        inferred = [(t, coll) for t in source.tables for coll in t.info.all_collections() if coll.units_inferred]
        for t, coll in inferred:
            what = "" if len(inferred) == 1 else \
                f" of {coll.name or 'jets'}" + (f" in {t.info.tree}" if len(source.tables) > 1 else "")
            warn(f"units{what}: assuming {coll.units} ({coll.units_reason}); use --units to declare them")
        if chosen:
            source.notes["coded_or_carried"] = chosen
        lost = source.notes["not_carried"]
        if strict and lost:
            raise InputError(f"{input}: --strict: {len(lost)} thing(s) of the input cannot be carried: "
                             + "; ".join(lost[:5]) + (f"; and {len(lost) - 5} more" if len(lost) > 5 else ""))
        warn_each(warn, "not carried into the .aez", lost,
                  f"all of them: jetzip inspect {output} --json, header.notes.not_carried")
        if info.extra.get("csv_separator_note"):
            warn(str(info.extra["csv_separator_note"]))

        def new_codec(coll: CollectionInfo) -> Codec:
            return make_codec(coll, error_bound=error_bound, model=model, latent_dtype=latent_dtype,
                              latent_tolerance=latent_tolerance, embed_model=embed_model, device=device,
                              batch_size=batch_size, threads=threads, context_model=context_model)

        codecs: list[Codec] = []
        specs: list[TableSpec] = []
        for t in source.tables:
            idx = []
            for coll in t.info.all_collections():
                codec = new_codec(coll)
                config = codec.get_config()
                same = next((i for i, c in enumerate(codecs) if c.get_config() == config), None)
                if same is None:
                    codecs.append(codec)
                    same = len(codecs) - 1
                idx.append(same)
            specs.append(TableSpec(t.info, idx, carried_groups(t.info)))
        first_codec = codecs[specs[main].codecs[0]] if specs[main].codecs else None
        side: dict[str, bytes] = {}
        for c in codecs:
            side.update(c.side_records())
        if error_bound is None:  # the network never saw muons or particles
            for name in dict.fromkeys(coll.name for t in source.tables for coll in t.info.all_collections()
                                      if coll.name and not is_jet_name(coll.name)):
                warn(f"{name}: the latent codec's network is trained on jets; {name} comes back with larger "
                     "errors (its mass above all): use --error-bound to bound every value")
        input_bytes = os.path.getsize(input) if os.path.isfile(input) else None
        header = Header([c.get_config() for c in codecs], specs, chunk_jets,
                        {"file": os.path.basename(str(input)), "format": source.format,
                         **({"compression": source.compression} if source.compression else {}),
                         **({"bytes": input_bytes}  # the whole input: what a restore is compared with
                            if entry_range is None and max_jets is None and input_bytes else {})},
                        notes={k: v for k, v in source.notes.items() if v})
        workers = (threads or available_cores()) if codecs and all(c.parallel for c in codecs) else 1
        dropped = 0
        with atomic_output(output, force, inputs=[input]) as tmp, open(tmp, "wb") as f:
            writer = AezWriter(f, header, side, *carried_method(source, carried_compression))
            for t_index, (t, spec) in enumerate(zip(source.tables, specs)):
                is_main = t_index == main
                chunks = t.chunks(chunk_jets, *(entry_range if entry_range and is_main else (0, None)))
                chunks = limited(split_large(chunks), max_jets if is_main else None)
                dropped += _encode_table(t_index, spec, [codecs[i] for i in spec.codecs], chunks, writer,
                                         workers, drop_invalid, report_progress if is_main else None,
                                         getattr(t, "n_entries", None))
            extras = source.extras()
            if extras:
                writer.write_extras(extras)
            tail = writer.close()
            size = writer.bytes_written
            payload_bytes = writer.payload_bytes
            parts = dict(writer.part_bytes)
    except Exception as exc:
        if damaged_input(exc):  # a basket that does not decompress: the input's fault, named
            raise InputError(damage_message(exc, str(input))) from None
        raise
    finally:
        source.close()
    n = tail["n_jets"]
    n_coded = sum(sum(t["n_jets"]) for t in tail["tables"])  # four-vectors of every coded collection
    if dropped:
        warn(f"dropped {dropped} invalid jets ({', '.join(sorted({c.invalid_text for c in codecs}))})")
    report: dict[str, Any] = {
        "input": str(input), "output": str(output), "codec": first_codec.codec_id if first_codec else None,
        "codec_config": first_codec.get_config() if first_codec else None, "n_jets": n, "n_events": tail["n_events"],
        "n_chunks": tail["n_chunks"], "bytes": size, "payload_bytes": payload_bytes,
        "input_bytes": input_bytes, "ratio_to_input": size / input_bytes if input_bytes else None,
        "bytes_by_part": parts, "tables": tail["tables"],
        "bytes_per_jet": size / n if n else None,
        "n_four_vectors": n_coded,
        "payload_bytes_per_jet": payload_bytes / n_coded if n_coded else None,
        "ratio_to_float32": size / (n * RAW_BYTES_PER_JET) if n else None,
        "dropped_invalid": dropped, "units": info.units, "units_inferred": info.units_inferred,
        "carried_not_coded": chosen,
        "seconds": time.perf_counter() - t0,
    }
    if input_bytes and size > input_bytes:
        warn(f"the .aez ({size} bytes) is larger than its input ({input_bytes} bytes)")
    if first_codec is None:
        return report
    codec = first_codec
    stats, messages = codec.encode_report(n)
    report.update(stats)
    for message in messages:
        warn(message)
    if not codec.mass_usable(codec.get_config()):
        warn(MASS_WARNING)
    return report


def _check_left_out(source: Any, collection: str | None) -> None:
    """``--collection all,-NAME``: every NAME is a collection of the file (a typo would code it).

    Raises:
        InputError: naming the names that are no collection.
    """
    from .tables.layouts import find_collections

    every, but = every_but(collection)
    if not every or not but:
        return
    known = {name for t in source.tables for name, c in find_collections(t.info.branch_order).items()
             if len({"pt", "eta", "phi", "px", "py", "pz"} & set(c.columns)) >= 3}
    unknown = sorted(but - known)
    if unknown:
        source.close()
        raise InputError(f"--collection {collection}: no collection {', '.join(unknown)} to leave out; "
                         f"the file's: {', '.join(sorted(n for n in known if n)) or 'none'}")


def _carry_where_smaller(source: Any, input: Any, collection: str | None, options: dict, error_bound: Any,
                         context_model: Any, chunk_jets: int, carried_compression: str | None
                         ) -> tuple[Any, list[str]]:
    """`source` reopened without the collections (beyond the main table's first) that are
    smaller carried than coded (:mod:`jetzip.choose`), and a note line for each; with the latent
    codec (`error_bound` None), without the collections that are not jets' four-vectors (its
    network never saw muons or particles; it cannot code pt, eta and phi alone)."""
    from .choose import coded_or_carried

    def new_codec(coll: CollectionInfo) -> Codec:
        return make_codec(coll, error_bound=error_bound, threads=1, context_model=context_model)

    try:
        if error_bound is None:  # the network is trained on jets' four-vectors
            carry_these = list(dict.fromkeys(c.name for t in source.tables for c in t.info.collections
                                             if c.representation not in REPRESENTATIONS or not is_jet_name(c.name)))
            notes = [f"{name}: carried losslessly (the latent codec's network is trained on jet four-vectors; "
                     "--error-bound codes every collection)" for name in carry_these]
        else:
            carry_these, notes = coded_or_carried(source.tables[source.main], new_codec,
                                                  carried_method(source, carried_compression)[0], chunk_jets)
    except BaseException:
        source.close()
        raise
    if not carry_these:
        return source, []
    source.close()
    narrowed = ",".join([str(collection)] + [f"-{name}" for name in carry_these])
    return open_file(input, collection=narrowed, **options), notes


def carried_groups(info: TableInfo) -> list[list[str]]:
    """The groups a table's carried branches are stored in (see :mod:`jetzip.carry`): one, in
    file order. Measured on the files in ``../shared``, one compressed stream per chunk beats
    one per collection prefix by 1 % (NanoAOD TTree) to 75 % (an RNTuple NanoAOD whose fields
    repeat each other's values); a reader asking for one branch decompresses the chunk's."""
    names = [*info.kept_branches, *info.jet_branches, *info.carried_branches]
    for coll in info.collections:
        names += coll.jet_branches
    order = {n: i for i, n in enumerate(info.branch_order)}
    names.sort(key=lambda n: order.get(n, len(order)))
    return [names] if names else []


def carried_method(source: Any, choice: str | None = None) -> tuple[int, int | None]:
    """(method, level) for the carried branches: LZMA where the input used LZMA (ROOT files
    written by CMSSW), else zstd (faster; smaller than the inputs' ZLIB or LZ4 baskets), unless
    `choice` (``"lzma"``, ``"zstd"``, ``"lzma:9"``) says otherwise."""
    from . import carry

    if choice:
        name, _, level = str(choice).partition(":")
        if name not in carry.METHODS:
            raise JetzipError(f"unknown carried-data compression {choice!r}; use lzma or zstd (optionally :LEVEL)")
        return carry.METHODS[name], int(level) if level.isdigit() else None
    algorithm = str(getattr(source, "compression", "") or "")
    if algorithm.upper().startswith("LZMA"):
        return carry.METHOD_LZMA, None
    return carry.METHOD_ZSTD, None


def _encode_table(t_index: int, spec: TableSpec, codecs: list[Codec], chunks: Iterable[JetChunk],
                  writer: AezWriter, workers: int, drop_invalid: bool,
                  progress: Callable[[int, int | None, str], None] | None, total: int | None) -> int:
    """Encode every chunk of one table into `writer`; returns the number of jets dropped
    (with `drop_invalid`).

    Raises:
        InputError: jets the codecs cannot store (without `drop_invalid`), counted by reason.
    """
    info = spec.info
    colls = info.all_collections()
    invalid: dict[str, int] = {}
    first_invalid = ""
    further = ""  # a further collection holding the first invalid member
    dropped = 0

    def checked(chunk: JetChunk) -> JetChunk | None:
        """Reader thread: the codecs' checks; None for a chunk that is not written."""
        nonlocal dropped, first_invalid, further
        for c, (coll, codec) in enumerate(zip(colls, codecs)):
            part = chunk if c == 0 else chunk.others[coll.name]
            bad, reasons = codec.invalid(part.columns)
            if not bad.any():
                continue
            if not drop_invalid:
                for reason, k in reasons.items():
                    invalid[reason] = invalid.get(reason, 0) + k
                if not first_invalid:
                    first_invalid = describe_jet(info, chunk, int(np.argmax(bad))) if c == 0 else \
                        f"{coll.name} member {int(np.argmax(bad))} of entries from {chunk.first_entry}"
                    further = coll.name if c else ""
                continue
            dropped += int(bad.sum())
            if c == 0:
                chunk = chunk.without(bad)
            else:
                from .tables import CollectionChunk, counts_without

                keep = ~bad
                chunk.others[coll.name] = CollectionChunk(
                    {k: np.asarray(v)[keep] for k, v in part.columns.items()},
                    None if part.counts is None else counts_without(part.counts, bad),
                    {k: np.asarray(v)[keep] for k, v in part.jet_kept.items()})
        return None if invalid else chunk

    def write(chunk: JetChunk, payloads: list[bytes]) -> None:
        """Writer thread."""
        writer.write_chunk(t_index, chunk, payloads)

    with InOrderWorker(write) as background, contextlib.closing(prefetch(map(checked, chunks))) as ready:
        written = (c for c in ready if c is not None)
        for chunk, payloads in encoded(codecs, colls, written, workers):
            if progress is not None:
                progress(chunk.n_entries, total, "events" if chunk.counts is not None else "jets")
            background.submit(chunk, payloads)
    if invalid:
        raise InputError(
            f"{info.file}: {sum(invalid.values())} jet(s) cannot be encoded ("
            + ", ".join(f"{k} {r}" for r, k in invalid.items())
            + f"); the first is {first_invalid}. Fix the input or pass --drop-invalid "
            "to leave them out" + (f", or carry {further} losslessly: --collection all,-{further} or a list "
                                   "without it" if further else ""))
    return dropped


def encoded(codecs: list[Codec], colls: list[CollectionInfo], chunks: Iterable[JetChunk],
            workers: int) -> Iterator[tuple[JetChunk, list[bytes]]]:
    """``(chunk, [payload of each collection])`` for each chunk, in order.

    Codecs whose chunks are independent (``Codec.parallel``: the bounded codec) code `workers`
    chunks side by side when there are two chunks or more: on threads where their loops
    release the GIL (``Codec.threaded``: payload version 3's compiled loops), else in worker
    processes (a small file pays no process start-up); the others (the latent codec, whose
    network already uses every core) here. The bytes do not depend on `workers`.
    """
    def parts(c: JetChunk) -> list[tuple[dict, np.ndarray | None]]:
        return [(c.columns, c.counts) if i == 0 else (c.others[coll.name].columns, c.others[coll.name].counts)
                for i, coll in enumerate(colls)]

    it = iter(chunks)
    head = [c for c in (next(it, None), next(it, None)) if c is not None]
    if not codecs:
        for c in itertools.chain(head, it):
            yield c, []
        return
    def encode(c: JetChunk) -> tuple[JetChunk, list[bytes]]:
        return c, [_encode_one(codec, cols, counts) for codec, (cols, counts) in zip(codecs, parts(c))]

    if workers <= 1 or len(head) < 2 or not all(c.parallel for c in codecs):
        yield from map(encode, itertools.chain(head, it))
        return
    if all(c.threaded() for c in codecs):
        yield from ordered_map(encode, itertools.chain(head, it), workers)
        return
    configs = [c.task_config() for c in codecs]
    yield from ordered_process_map(_encode_collections_task, itertools.chain(head, it),
                                   lambda c: (configs, parts(c)), workers)


def _encode_one(codec: Codec, columns: Mapping[str, np.ndarray], counts: np.ndarray | None) -> bytes:
    """A collection's payload; empty when it has no members in the chunk (no codec runs)."""
    return codec.encode(columns, counts) if len(next(iter(columns.values()), ())) else b""


def _encode_collections_task(configs: list[dict], parts: list[tuple[dict, np.ndarray | None]]) -> list[bytes]:
    """Every collection of one chunk encoded in a worker process."""
    from .codecs.base import encode_task

    return [encode_task(config, cols, counts) if len(next(iter(cols.values()), ())) else b""
            for config, (cols, counts) in zip(configs, parts)]


def reasons_text(codec: Codec) -> list[str]:
    return [codec.invalid_text]


def without_jets(chunk: JetChunk, bad: np.ndarray) -> JetChunk:
    """The chunk less the jets flagged in `bad` (their events stay, maybe empty)."""
    return chunk.without(bad)


def split_large(chunks: Iterable[JetChunk]) -> Iterator[JetChunk]:
    """Chunks within the container's ceilings (events and jets per chunk), split by events.

    Raises:
        InputError: one event holds more jets than a chunk may.
    """
    for chunk in chunks:
        for piece in chunk.split(MAX_JETS_PER_CHUNK, MAX_EVENTS_PER_CHUNK):
            if piece.n_jets > MAX_JETS_PER_CHUNK:
                raise InputError(f"event {piece.first_entry} holds {piece.n_jets} jets, more "
                                 f"than jetzip stores in one chunk ({MAX_JETS_PER_CHUNK})")
            yield piece


def entries(chunks: Iterable[JetChunk], entry_range: tuple[int, int] | None) -> Iterator[JetChunk]:
    """Only the events (rows) in ``[start, stop)`` of the file; stops reading after `stop`."""
    if entry_range is None:
        yield from chunks
        return
    yield from entry_window(chunks, *entry_range)


def limited(chunks: Iterable[JetChunk], max_jets: int | None) -> Iterator[JetChunk]:
    """The first whole events (or rows) holding at most `max_jets` jets in all."""
    if max_jets is None:
        yield from chunks
        return
    left = max_jets
    for chunk in chunks:
        piece = chunk.head(left)
        if piece is not None:
            left -= piece.n_jets
            yield piece
        if piece is not chunk or left == 0:
            return


def decompress(input: str | os.PathLike, output: str | os.PathLike, *,
               model: Model | str | os.PathLike | None = None, format: str | None = None,
               device: str = DEFAULT_DEVICE, batch_size: int | None = None, force: bool = False,
               root_compression: str = DEFAULT_ROOT_COMPRESSION, threads: int | None = None,
               strict: bool = False,
               progress: Progress = _noop_progress, warn: Warn = _noop_warn) -> dict[str, Any]:
    """Restore the table from a ``.aez`` file, in the layout it came in.

    Args:
        input: the ``.aez`` file.
        output: a ``.root``, ``.h5``, ``.csv`` or ``.parquet`` path, or ``-`` (CSV on stdout).
        model: latent files without an embedded decoder: the model they were made with.
        format: the output format when the extension does not say (CLI ``--format``).
        device, batch_size, threads: how the network runs (latent) or how many chunks decode
            at once (bounded).
        force: overwrite an existing output.
        root_compression: ROOT output compression (CLI ``--compression``): ``"input"`` (default:
            the input file's algorithm and level), or ``"zstd"``, ``"zlib"``, ``"lz4"``,
            ``"lzma"`` at level 1, or ``"none"``.
        strict: an output that cannot hold everything the .aez holds (another format, a type
            uproot cannot write) is an error, and nothing is written (CLI ``--strict``).
        progress, warn: as in :func:`compress`.

    Returns:
        ``input``, ``output``, ``format``, ``codec``, ``n_jets``, ``n_events``,
        ``input_bytes``, ``missing_branches``, ``not_restored`` (what the output format cannot
        hold, one line each), ``seconds``.

    Raises:
        FormatError: the file is damaged (nothing reaches stdout from a damaged file).
        ModelMismatchError: the given model is not the one the file was made with.
        OutputExistsError: `output` exists and `force` is false.
    """
    t0 = time.perf_counter()
    report_progress = _with_unit(progress)
    if str(output) != "-" and os.path.isdir(output):  # before any decoding
        raise InputError(f"output {output} is a folder; give a file name (.root, .h5, .parquet or .csv)")
    fmt = format_of(output, format, sniff=False, hint="--format")
    if str(output) == "-" and fmt != "csv":
        raise JetzipError(f"-o - writes CSV only; {fmt.upper() if fmt == 'hdf5' else fmt} output needs a file name")
    if threads is not None:
        positive_int("threads", threads)
    with open_aez(input) as aez:
        codecs = aez.codecs(model=model, device=device, batch_size=batch_size, threads=threads)
        infos = aez.tables
        main = next((i for i, t in enumerate(infos) if t.has_jets), 0)
        info = infos[main]
        codec = codecs[aez.header.tables[main].codecs[0]] if aez.header.tables[main].codecs else None
        to_stdout = str(output) == "-"
        if to_stdout:
            aez.verify()  # nothing reaches stdout from a damaged file
        if fmt == "csv" and info.jagged and info.layout != "jets-per-row":
            index = "jetzip_event" if "event" in {*info.kept_branches, *info.branch_order} else "event"
            warn(f"CSV holds one jet per row with a column {index}; events without jets are not "
                 "kept in CSV (use .root or .h5 to keep them)")
        if any(not c.mass_usable(c.get_config()) for c in codecs):
            warn(MASS_WARNING)
        notes = aez.header.notes.get("restored_as") or info.extra.get("restored_as", []) or []
        warn_each(warn, "restored as", notes, f"all of them: jetzip inspect {input} --json, header.notes.restored_as")
        size = aez.size or 0
        n_jets = n_events = 0
        workers = (threads or available_cores()) if codecs and all(c.parallel for c in codecs) else 1
        not_restored: list[str] = []

        def run(path: str) -> None:
            nonlocal n_jets, n_events
            writer = open_file_writer(path, fmt, infos, root_compression, main,
                                      aez.header.source.get("compression"))

            def write(table: int, chunks: list[JetChunk]) -> None:
                writer.write(table, concat_chunks(chunks))

            try:
                with InOrderWorker(write) as background:
                    pending: list[JetChunk] = []
                    pending_table = -1
                    pending_size = 0
                    for stored, chunk in aez.decoded(codecs, workers):
                        if stored.table != pending_table or pending_size >= MIN_WRITE_JETS:
                            if pending:
                                background.submit(pending_table, pending)
                            pending, pending_table, pending_size = [], stored.table, 0
                        pending.append(chunk)
                        pending_size += max(chunk.n_jets, chunk.n_entries)
                        if stored.table == main:
                            n_jets += chunk.n_jets
                            n_events += chunk.n_entries
                            report_progress(chunk.n_entries, None, "events" if chunk.counts is not None else "jets")
                    if pending:
                        background.submit(pending_table, pending)
                if aez.extras is not None and not writer.write_extras(bytes(aez.extras), aez.header.source.get(
                        "format", info.format)):
                    warn(f"{fmt} output cannot hold the other objects of the original "
                         f"{info.format} file; decompress to .{info.format} to keep them")
            finally:
                writer.close()
            for line in getattr(writer, "notes", []):
                warn(f"restored as: {line}")
            if strict and writer.missing:
                raise InputError(f"--strict: {fmt} output cannot hold everything the .aez holds: "
                                 + "; ".join(writer.missing[:3]) + ("; ..." if len(writer.missing) > 3 else ""))
            not_restored.extend(writer.missing)
            warn_each(warn, "not restored", writer.missing, "all of them: decompress --json, not_restored")

        if to_stdout:
            run("-")
        else:
            with atomic_output(output, force, inputs=[input]) as tmp:
                run(tmp)
            original = aez.header.source.get("bytes")
            restored = os.path.getsize(output) if os.path.isfile(output) else None
            if isinstance(original, int) and original > 0 and restored and restored > 1.05 * original:
                warn(f"the restored {fmt} file ({restored} bytes) is {restored / original:.2f}x the original "
                     f"{aez.header.source.get('file', 'file')} ({original} bytes)")
    if info.other_branches:
        shown = ", ".join(info.other_branches[:10])
        more = f" and {len(info.other_branches) - 10} more" if len(info.other_branches) > 10 else ""
        warn(f"the restored table lacks {len(info.other_branches)} branch(es) of the original "
             f"({shown}{more}); they were left out when compressing (--drop-branches, or uproot could not read "
             "them)")
    return {"input": str(input), "output": str(output), "format": fmt, "codec": codec.codec_id if codec else None,
            "n_jets": n_jets, "n_events": n_events, "input_bytes": size,
            "missing_branches": info.other_branches, "not_restored": not_restored,
            "seconds": time.perf_counter() - t0}


def restore_to(writer: Any, info: TableInfo, kept_dtypes: Mapping[str, str]) -> Callable[..., None]:
    """``write(columns, counts, kept, jet_kept)`` for a table writer: the kept branches the
    restored table holds, and the per-jet ones when the source had any."""
    def write(columns: dict, counts: np.ndarray | None, kept: dict, jet_kept: dict) -> None:
        kept = {k: v for k, v in kept.items() if k in kept_dtypes}
        if info.jet_branches:
            writer.write(columns, counts, kept, jet_kept)
        else:
            writer.write(columns, counts, kept)
    return write


def checked_path(path: Any) -> str:
    """A file path argument as a string, or an InputError for anything else (None, numbers)."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path, not {path!r}")
    return os.fspath(path)


def file_kind(path: str | os.PathLike) -> str:
    """'aez', 'model', 'context_model' or 'unknown', from the magic number."""
    from .container import AEZ_MAGIC, MODEL_MAGIC

    with open_input(path) as f:
        head = f.read(8)
    if head[:4] == b"PK\x03\x04":  # a zip: the .npz of a context model (the bounded codec's)
        return "context_model"
    return {AEZ_MAGIC: "aez", MODEL_MAGIC: "model"}.get(head, "unknown")


def inspect(path: str | os.PathLike, verify: bool = True, model: str | os.PathLike | None = None) -> dict[str, Any]:
    """Describe a ``.aez`` file, a model file or a context model (``.jzc``). `model`: the
    context model a bounded file was coded with when it is not the shipped one (to verify it).

    Returns:
        For a ``.aez``: ``kind`` ("aez"), ``path``, ``bytes``, ``format_version``, ``header``
        (the stored JSON), ``codec``, ``codec_description``, and with `verify` (every record's
        checksum and the embedded decoder's hash checked) ``verified``, ``n_jets``,
        ``n_events``, ``n_chunks``, ``payload_bytes``, ``bytes_per_jet``,
        ``payload_bytes_per_jet``, ``ratio_to_float32``, ``side_bytes``, ``extras_bytes``,
        and the codec's own facts (:meth:`~jetzip.codecs.Codec.summary` and
        :meth:`~jetzip.codecs.Codec.payload_stats`: ``mass_usable`` always; for the latent
        codec ``model``, ``latent_bytes``; for the bounded codec ``bounds`` and
        ``stream_bytes``, bytes per column stream).
        For a model file: its header with ``kind`` ("model"), ``path``, ``bytes``. For a
        context model: ``kind`` ("context_model"), ``path``, ``bytes``, ``sha256`` (what files
        record), ``streams`` and its training record.

    Raises:
        InputError: not a path, or unreadable. FormatError: damaged or neither kind of file.
    """
    kind = file_kind(checked_path(path))
    if kind == "model":
        m = load_model(path)
        return {**m.header(), "kind": "model", "path": str(path), "bytes": os.path.getsize(path)}
    if kind == "context_model":
        from .entropy.context import ContextModel

        cm = ContextModel.load(str(path))
        return {**cm.meta, "kind": "context_model", "path": str(path), "bytes": os.path.getsize(path),
                "sha256": cm.sha256, "streams": sorted(cm.streams)}
    if kind != "aez":
        raise FormatError(f"{path} is neither a .aez file nor a jetzip model file")
    from .codecs import DecodeContext, codec_class

    with open_aez(path) as aez:
        config = aez.header.codec
        out: dict[str, Any] = {"kind": "aez", "path": str(path), "bytes": aez.size,
                               "format_version": f"{aez.major}.{aez.minor}", "header": aez.header_json,
                               "codec": config["id"], "codec_config": config, "table": aez.table.to_json()}
        cls = codec_class(config["id"])
        out.update(cls.summary(config))
        out["codec_description"] = cls.describe(config)
        if verify:
            ctx = DecodeContext(path=str(path), model=model)
            main = next((i for i, t in enumerate(aez.tables) if t.has_jets), 0)
            classes = [codec_class(c["id"]) for c in aez.header.codecs]
            for config_i, class_i in zip(aez.header.codecs, classes):
                class_i.verify_side_records(config_i, aez.side, f".aez file {path}")
            tables: list[dict[str, Any]] = [{"name": t.info.tree, "entries": 0, "chunks": 0, "carried_bytes": 0,
                       "carried_branches": sum(len(g) for g in t.groups),
                       "collections": [{"name": coll.name, "codec": aez.header.codecs[i]["id"], "jets": 0, "bytes": 0}
                                       for coll, i in zip(t.info.all_collections(), t.codecs)]}
                      for t in aez.header.tables]
            stats: list[dict[str, Any]] = [{} for _ in aez.header.codecs]
            needs_model: dict[int, str] = {}  # codec -> why its payloads could not be decoded
            parts = {"header": aez.head_bytes, "side": sum(len(v) for v in aez.side.values()), "jets": 0,
                     "carried": 0, "extras": 0}
            for chunk in aez.chunks():
                t = tables[chunk.table]
                t["entries"] += chunk.n_entries
                t["chunks"] += 1
                chunk.carried_arrays()  # decompressed and checked, as decode would
                carried = sum(len(b) for b in chunk.blocks)
                t["carried_bytes"] += carried
                parts["carried"] += carried
                for k, (stored, i) in enumerate(zip(chunk.collections, aez.header.tables[chunk.table].codecs)):
                    t["collections"][k]["jets"] += stored.n_jets
                    t["collections"][k]["bytes"] += len(stored.payload)
                    parts["jets"] += len(stored.payload)
                    if not stored.n_jets or i in needs_model:
                        continue  # nothing stored, or a model to decode it with is not at hand
                    one = dataclasses.replace(chunk, collections=[stored])
                    try:
                        facts = classes[i].payload_stats(aez.header.codecs[i], [one], ctx)  # as decode checks
                    except ModelMismatchError as exc:
                        needs_model[i] = str(exc)
                        continue
                    if chunk.table == main and k == 0:  # the streams of the first collection are reported
                        _add_stats(stats[i], facts)
            parts["extras"] = aez.extras_stored
            parts["framing"] = (aez.size or 0) - sum(parts.values())  # records' framing, event counts
            tail = aez.tail or {}
            n = tail["n_jets"]
            first = aez.header.tables[main].codecs[0] if aez.header.tables[main].codecs else None
            out.update(stats[first] if first is not None else {})
            if needs_model:  # every checksum verified; these payloads need a model to be checked
                out["payloads_not_verified"] = sorted(set(needs_model.values()))
            out.update({
                "verified": True, **tail, "tables": tables, "bytes_by_part": parts,
                "payload_bytes": tables[main]["collections"][0]["bytes"] if tables[main]["collections"] else 0,
                "side_bytes": parts["side"], "extras_bytes": parts["extras"],
                "bytes_per_jet": aez.size / n if n else None,
                "payload_bytes_per_jet": (tables[main]["collections"][0]["bytes"] / n) if n else None,
                "ratio_to_float32": aez.size / (n * RAW_BYTES_PER_JET) if n else None,
            })
    return out


def _add_stats(total: dict[str, Any], more: Mapping[str, Any]) -> None:
    """Sum codec statistics (numbers, and dicts of numbers) into `total`."""
    for k, v in more.items():
        if isinstance(v, Mapping):
            _add_stats(total.setdefault(k, {}), v)
        elif isinstance(v, (int, float)):
            total[k] = total.get(k, 0) + v
        else:
            total[k] = v
