"""The library API the CLI forwards to: compress, decompress, inspect.

How one chunk of jets flows through :func:`compress`::

    tables.open_table(...).chunks()   read whole events (reader thread, pipeline.prefetch)
    codec.invalid(columns)            jets the codec refuses (NaN, ...): fail or drop
    codec.encode(columns, counts)     bytes (codecs/latent.py: the network via engine.py;
                                      codecs/bounded.py: quantization + rANS, chunks in parallel)
    AezWriter.write_chunk(...)        the .aez container (aez.py; writer thread)

:func:`decompress` runs it backwards: ``aez.open_aez(...).chunks()`` -> ``codec.decode`` ->
``tables.open_writer(...).write``. Every function takes plain Python values, raises
:class:`~jetzip.errors.JetzipError` on bad input, and returns a JSON-serialisable report.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .aez import MAX_EVENTS_PER_CHUNK, MAX_JETS_PER_CHUNK, AezWriter, Header, open_aez
from .atomic import atomic_output
from .codecs import Codec
from .defaults import (DEFAULT_BOUNDED_CHUNK_JETS, DEFAULT_CHUNK_JETS, DEFAULT_DEVICE, DEFAULT_LATENT_DTYPE,
                       DEFAULT_ROOT_COMPRESSION, MIN_WRITE_JETS, RAW_BYTES_PER_JET)
from .errors import FormatError, InputError, JetzipError, open_input, positive_int
from .model import Model, load_model, resolve_model
from .pipeline import InOrderWorker, ordered_process_map, prefetch
from .tables import JetChunk, TableInfo, describe_jet, format_of, open_table, open_writer
from .tables.base import entry_window

Progress = Callable[..., None]  # progress(done, total_or_None, unit): unit "events" or "jets"
Warn = Callable[[str], None]
MASS_WARNING = ("the restored mass is not usable (the 3-float latent does not carry it; relative "
                "errors of order 1); use --error-bound for a bounded mass")


def _noop_progress(done: int, total: int | None, unit: str | None = None) -> None:  # noqa: ARG001
    pass


def _noop_warn(message: str) -> None:  # noqa: ARG001
    pass


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


def make_codec(info: TableInfo, *, error_bound: str | float | Mapping[str, float] | None = None,
               model: Model | str | os.PathLike | None = None, latent_dtype: str = DEFAULT_LATENT_DTYPE,
               latent_tolerance: str | Mapping[str, float] | None = None, embed_model: bool = True,
               device: str = DEFAULT_DEVICE, batch_size: int | None = None,
               threads: int | None = None, context_model: Any = "auto") -> Codec:
    """The codec compress uses for a table: bounded when `error_bound` is given, else latent;
    `context_model` (bounded only): ``"auto"``, ``"none"``, a model file or a ``ContextModel``."""
    if error_bound is not None:
        from .codecs.bounded import BoundedCodec, parse_error_bound
        from .entropy.context import ContextModel, context_model_option

        bounded = BoundedCodec(parse_error_bound(error_bound, info.representation), info.representation,
                               info.units, context_model_option(context_model))
        if context_model is not None and not isinstance(context_model, ContextModel) and \
                str(context_model).lower() not in ("auto", "none"):
            bounded.context_model_file = os.fspath(context_model)
        return bounded
    from .codecs.latent import LatentCodec, parse_tolerance

    codec = LatentCodec(resolve_model(model), info.representation, info.units, latent_dtype, embed_model,
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
             embed_model: bool = True, device: str = DEFAULT_DEVICE, batch_size: int | None = None,
             chunk_jets: int | None = None, force: bool = False, drop_invalid: bool = False,
             threads: int | None = None, max_jets: int | None = None,
             entry_range: tuple[int, int] | None = None, context_model: Any = "auto",
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
        embed_model: store the decoder in the file (``--no-embed-model``: only its hash).
        device, batch_size, threads: how the network runs (``--device auto|cpu|cuda[:N]``);
            `threads` also sets how many chunks the bounded codec codes at once.
        chunk_jets: jets per chunk (default 2^18 latent, 2^20 bounded; whole events).
        force: overwrite an existing output.
        drop_invalid: leave out jets the codec refuses (NaN, inf, ...) instead of failing.
        max_jets: compress only the first events holding at most this many jets.
        entry_range: ``(start, stop)``: only events (rows of flat tables) start <= i < stop,
            as Dask tasks split a large file (:mod:`jetzip.dask`).
        context_model: bounded codec: the learned entropy model (CLI ``--context-model``):
            ``"auto"`` (the shipped ``models/context_v1.jzc`` when installed), ``"none"`` (the
            chunks' own tables only), or a model file from ``jetzip train --entropy-model``.
            Per chunk and stream the smaller of model and own tables is used.
        progress: called as ``progress(done, total_or_None, unit)`` per chunk, with `unit`
            "events" (jagged tables) or "jets" (one jet per row).
        warn: called with each warning (one line each).

    Returns:
        ``input``, ``output``, ``codec`` (id), ``codec_config``, ``n_jets``, ``n_events``,
        ``n_chunks``, ``bytes``, ``payload_bytes`` (the jets' own bytes), ``bytes_per_jet``,
        ``payload_bytes_per_jet``, ``ratio_to_float32``, ``dropped_invalid``,
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
    if latent_dtype not in ("float32", "float16"):
        raise JetzipError(f"unknown latent dtype {latent_dtype!r}; use float32, float16")
    if error_bound is None:
        resolve_model(model)  # a missing model fails before the input is read
    else:
        from .entropy.context import context_model_option

        context_model_option(context_model)  # a bad model file fails before the input is read
        ignored = [name for name, given in (("--model", model is not None),
                                            ("--tolerance", latent_tolerance is not None),
                                            ("--latent-dtype", latent_dtype != DEFAULT_LATENT_DTYPE),
                                            ("--no-embed-model", not embed_model)) if given]
        if ignored:
            warn(f"{', '.join(ignored)} only apply to the latent codec; the error-bounded codec ignores them")
    source = open_table(input, tree=tree, columns=columns, preset=preset, collection=collection,
                        units=units, keep_branches=keep_branches, drop_branches=drop_branches,
                        threads=threads)
    try:
        info = source.info
        if info.units_inferred:
            warn(f"units: assuming {info.units} ({info.units_reason}); use --units to declare them")
        for line in info.extra.get("not_carried", []) or []:
            warn(f"not carried into the .aez: {line}")
        if info.extra.get("csv_separator_note"):
            warn(str(info.extra["csv_separator_note"]))
        codec = make_codec(info, error_bound=error_bound, model=model, latent_dtype=latent_dtype,
                           latent_tolerance=latent_tolerance, embed_model=embed_model, device=device,
                           batch_size=batch_size, threads=threads, context_model=context_model)
        header = Header(codec.get_config(), info, chunk_jets)
        workers = (threads or os.cpu_count() or 1) if codec.parallel else 1
        with atomic_output(output, force, inputs=[input]) as tmp, open(tmp, "wb") as f:
            writer = AezWriter(f, header, codec.side_records())
            total = getattr(source, "n_entries", None)
            invalid: dict[str, int] = {}
            dropped = 0
            first_invalid = ""

            def checked(chunk: JetChunk) -> JetChunk | None:
                """Reader thread: the codec's checks; None for a chunk that is not written."""
                nonlocal dropped, first_invalid
                bad, reasons = codec.invalid(chunk.columns)
                if bad.any() and not drop_invalid:
                    # Keep scanning (without encoding) to report the total, then fail.
                    for reason, k in reasons.items():
                        invalid[reason] = invalid.get(reason, 0) + k
                    first_invalid = first_invalid or describe_jet(info, chunk, int(np.argmax(bad)))
                    return None
                if invalid:
                    return None
                if bad.any():
                    dropped += int(bad.sum())
                    chunk = without_jets(chunk, bad)
                return chunk

            def write(chunk: JetChunk, payload: bytes) -> None:
                """Writer thread."""
                writer.write_chunk(payload, chunk.n_jets, chunk.counts, chunk.kept, chunk.jet_kept)

            chunks = limited(split_large(entries(source.chunks(chunk_jets), entry_range)), max_jets)
            with InOrderWorker(write) as background, \
                    contextlib.closing(prefetch(map(checked, chunks))) as ready:
                written = (c for c in ready if c is not None)
                for chunk, payload in coded(codec, "encode", written, workers):
                    if chunk.counts is not None:
                        report_progress(len(chunk.counts), total, "events")
                    else:
                        report_progress(chunk.n_jets, total, "jets")
                    background.submit(chunk, payload)
            if invalid:
                raise InputError(
                    f"{info.file}: {sum(invalid.values())} jet(s) cannot be encoded ("
                    + ", ".join(f"{k} {r}" for r, k in invalid.items())
                    + f"); the first is {first_invalid}. Fix the input or pass --drop-invalid "
                    "to leave them out")
            extras = source.extras() if hasattr(source, "extras") else None
            if extras:
                writer.write_extras(extras)
            tail = writer.close()
            size = writer.bytes_written
            payload_bytes = writer.payload_bytes
    finally:
        source.close()
    n = tail["n_jets"]
    if dropped:
        warn(f"dropped {dropped} invalid jets ({', '.join(reasons_text(codec))})")
    report: dict[str, Any] = {
        "input": str(input), "output": str(output), "codec": codec.codec_id,
        "codec_config": codec.get_config(), "n_jets": n, "n_events": tail["n_events"],
        "n_chunks": tail["n_chunks"], "bytes": size, "payload_bytes": payload_bytes,
        "bytes_per_jet": size / n if n else None,
        "payload_bytes_per_jet": payload_bytes / n if n else None,
        "ratio_to_float32": size / (n * RAW_BYTES_PER_JET) if n else None,
        "dropped_invalid": dropped, "units": info.units, "units_inferred": info.units_inferred,
        "seconds": time.perf_counter() - t0,
    }
    stats, messages = codec.encode_report(n)
    report.update(stats)
    for message in messages:
        warn(message)
    if not codec.mass_usable(codec.get_config()):
        warn(MASS_WARNING)
    return report


def coded(codec: Codec, direction: str, chunks: Iterable[Any], workers: int,
          where: str = "") -> Iterator[tuple[Any, Any]]:
    """``(chunk, codec.encode(...) or codec.decode(...))`` for each chunk, in order.

    The bounded codec's work is many small numpy steps that hold the GIL, so chunks are coded
    in `workers` processes side by side (each chunk is independent: the bytes are the same);
    only when there are two chunks or more, so a small file pays no process start-up. The
    latent codec runs in this process: its network already uses every core (engine.py).
    """
    it = iter(chunks)
    head = [c for c in (next(it, None), next(it, None)) if c is not None]
    if direction == "encode":
        def local(c: Any) -> Any:
            return codec.encode(c.columns, c.counts)
    else:
        def local(c: Any) -> Any:
            return codec.decode(c.payload, c.n_jets, c.counts, f"{where}: chunk {c.index}")
    if not codec.parallel or workers <= 1 or len(head) < 2:
        for c in itertools.chain(head, it):
            yield c, local(c)
        return
    from .codecs.base import decode_task, encode_task

    config = codec.task_config()
    if direction == "encode":
        yield from ordered_process_map(encode_task, itertools.chain(head, it),
                                       lambda c: (config, c.columns, c.counts), workers)
    else:
        yield from ordered_process_map(
            decode_task, itertools.chain(head, it),
            lambda c: (config, bytes(c.payload), c.n_jets, c.counts, f"{where}: chunk {c.index}"), workers)


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


class _Coalescer:
    """Join decoded chunks until they are worth a write (see defaults.MIN_WRITE_JETS)."""

    def __init__(self, write: Callable[..., None]) -> None:
        self.write = write
        self.parts: list[tuple[dict, np.ndarray | None, dict, dict]] = []
        self.jets = self.events = 0

    def add(self, columns: dict, counts: np.ndarray | None, kept: dict, jet_kept: dict) -> None:
        self.parts.append((columns, counts, kept, jet_kept))
        self.jets += len(next(iter(columns.values()))) if columns else 0
        self.events += len(counts) if counts is not None else 0
        if self.jets >= MIN_WRITE_JETS or self.events >= MIN_WRITE_JETS:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        parts, self.parts, self.jets, self.events = self.parts, [], 0, 0
        if len(parts) == 1:
            self.write(*parts[0])
            return

        def join(dicts: list[dict]) -> dict:
            return {k: np.concatenate([d[k] for d in dicts]) for k in dicts[0]}

        counts = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        self.write(join([p[0] for p in parts]), counts, join([p[2] for p in parts]), join([p[3] for p in parts]))


def decompress(input: str | os.PathLike, output: str | os.PathLike, *,
               model: Model | str | os.PathLike | None = None, format: str | None = None,
               device: str = DEFAULT_DEVICE, batch_size: int | None = None, force: bool = False,
               root_compression: str = DEFAULT_ROOT_COMPRESSION, threads: int | None = None,
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
        root_compression: ROOT output compression (zstd level 1 by default: ROOT >= 6.20
            reads it; use "zlib" for older ROOT versions).
        progress, warn: as in :func:`compress`.

    Returns:
        ``input``, ``output``, ``format``, ``codec``, ``n_jets``, ``n_events``,
        ``input_bytes``, ``missing_branches``, ``seconds``.

    Raises:
        FormatError: the file is damaged (nothing reaches stdout from a damaged file).
        ModelMismatchError: the given model is not the one the file was made with.
        OutputExistsError: `output` exists and `force` is false.
    """
    t0 = time.perf_counter()
    report_progress = _with_unit(progress)
    fmt = format_of(output, format, sniff=False, hint="--format")
    if str(output) == "-" and fmt != "csv":
        raise JetzipError(f"-o - writes CSV only; {fmt.upper() if fmt == 'hdf5' else fmt} output needs a file name")
    if threads is not None:
        positive_int("threads", threads)
    with open_aez(input) as aez:
        codec = aez.codec(model=model, device=device, batch_size=batch_size, threads=threads)
        info = aez.table
        # Older files could list the counter among kept branches; it is restored anyway.
        restored = {*info.columns.values(), info.counter}
        kept_dtypes = {k: info.dtypes.get(k, "float64") for k in info.kept_branches if k not in restored}
        to_stdout = str(output) == "-"
        if to_stdout:
            aez.verify()  # nothing reaches stdout from a damaged file
        if fmt == "csv" and info.jagged and info.layout != "jets-per-row":
            index = "jetzip_event" if "event" in {*info.kept_branches, *info.branch_order} else "event"
            warn(f"CSV holds one jet per row with a column {index}; events without jets are not "
                 "kept in CSV (use .root or .h5 to keep them)")
        if not codec.mass_usable(codec.get_config()):
            warn(MASS_WARNING)
        for line in info.extra.get("restored_as", []) or []:
            warn(f"restored as: {line}")
        size = aez.size or 0
        n_jets = n_events = 0
        workers = (threads or os.cpu_count() or 1) if codec.parallel else 1
        where = f"{input}"

        def run(path: str) -> None:
            nonlocal n_jets, n_events
            writer = open_writer(path, fmt, info, info.columns, kept_dtypes, root_compression)
            write = restore_to(writer, info, kept_dtypes)

            try:
                with InOrderWorker(write) as background, \
                        contextlib.closing(prefetch(aez.chunks())) as chunks:
                    joined = _Coalescer(background.submit)
                    nonempty = (c for c in chunks if c.n_jets or c.n_events)  # nothing to write
                    for chunk, cols in coded(codec, "decode", nonempty, workers, where):
                        joined.add(cols, chunk.counts, chunk.kept, chunk.jet_kept)
                        n_jets += chunk.n_jets
                        n_events += chunk.n_events
                        report_progress(chunk.n_events, None, "events" if chunk.counts is not None else "jets")
                    joined.flush()
                if aez.extras is not None:
                    if fmt != info.format or not hasattr(writer, "write_extras"):
                        warn(f"{fmt} output cannot hold the other objects of the original "
                             f"{info.format} file; decompress to .{info.format} to keep them")
                    else:
                        writer.write_extras(bytes(aez.extras))
            finally:
                writer.close()

        if to_stdout:
            run("-")
        else:
            with atomic_output(output, force, inputs=[input]) as tmp:
                run(tmp)
    if info.other_branches:
        shown = ", ".join(info.other_branches[:10])
        more = f" and {len(info.other_branches) - 10} more" if len(info.other_branches) > 10 else ""
        warn(f"the restored table lacks {len(info.other_branches)} branch(es) of the original "
             f"({shown}{more}); they were left out when compressing")
    return {"input": str(input), "output": str(output), "format": fmt, "codec": codec.codec_id,
            "n_jets": n_jets, "n_events": n_events, "input_bytes": size,
            "missing_branches": info.other_branches, "seconds": time.perf_counter() - t0}


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
                               "codec": config["id"]}
        cls = codec_class(config["id"])
        out.update(cls.summary(config))
        out["codec_description"] = cls.describe(config)
        if verify:
            cls.verify_side_records(config, aez.side, f".aez file {path}")
            payload = 0

            def counted() -> Iterator[Any]:
                nonlocal payload
                for chunk in aez.chunks():
                    payload += len(chunk.payload)
                    yield chunk

            out.update(cls.payload_stats(config, counted(), DecodeContext(path=str(path), model=model)))
            tail = aez.tail or {}
            n = tail["n_jets"]
            out.update({
                "verified": True, **tail, "payload_bytes": payload,
                "side_bytes": sum(len(v) for v in aez.side.values()),
                "extras_bytes": len(aez.extras) if aez.extras is not None else 0,
                "bytes_per_jet": aez.size / n if n else None,
                "payload_bytes_per_jet": payload / n if n else None,
                "ratio_to_float32": aez.size / (n * RAW_BYTES_PER_JET) if n else None,
            })
    return out
