"""The library API the CLI forwards to: compress, decompress, inspect, train.

Data flow of :func:`compress`: read (``tables``) -> model frame (``features``) -> encode
(``codec``) -> write (``aez``); :func:`decompress` runs it backwards. Every function takes
plain Python values, raises :class:`~jetzip.errors.JetzipError` on bad input, and returns a
JSON-serialisable report.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from . import __version__
from .aez import FORMAT_MAJOR, FORMAT_MINOR, LATENT_DTYPES, AezWriter, open_aez
from .atomic import atomic_output
from .engine import DEFAULT_BATCH_SIZE, Decoder, Encoder
from .errors import FormatError, InputError, JetzipError, positive_int
from .features import (from_model_frame, outside_ranges, to_model_frame, unencodable_jets,
                       unencodable_reasons)
from .model import Model, load_model, resolve_model
from .pipeline import InOrderWorker, prefetch
from .tables import TableInfo, counts_without, describe_jet, format_of, open_table, open_writer

RAW_BYTES_PER_JET = 16  # four float32 values
# Jets read, encoded and written at a time: memory is a few chunks deep whatever the input size
DEFAULT_CHUNK_JETS = 1 << 18
Progress = Callable[[int, "int | None"], None]
Warn = Callable[[str], None]
T = TypeVar("T")


def _noop_progress(done: int, total: int | None) -> None:  # noqa: ARG001
    pass


def _noop_warn(message: str) -> None:  # noqa: ARG001
    pass


def compress(input: str | os.PathLike, output: str | os.PathLike, *,
             model: Model | str | os.PathLike | None = None, tree: str | None = None,
             columns: str | dict | None = None, preset: str | None = None,
             collection: str | None = None, units: str | None = None,
             keep_branches: Sequence[str] = (), latent_dtype: str = "float32",
             embed_model: bool = True, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
             chunk_jets: int = DEFAULT_CHUNK_JETS, force: bool = False, drop_invalid: bool = False,
             threads: int | None = None, progress: Progress = _noop_progress,
             warn: Warn = _noop_warn) -> dict[str, Any]:
    """Compress one jet table into a .aez file; returns a report of sizes and counts.

    `threads`: CPU threads for the network (default: torch's thread count); reading and
    writing run in one more thread each.
    """
    t0 = time.perf_counter()
    if str(output) == "-":
        raise JetzipError("a .aez file cannot go to standard output; give a file name")
    positive_int("chunk_jets", chunk_jets)
    if isinstance(keep_branches, str):
        keep_branches = (keep_branches,)  # one pattern, not its characters
    if latent_dtype not in LATENT_DTYPES:
        raise JetzipError(f"unknown latent dtype {latent_dtype!r}; use {', '.join(LATENT_DTYPES)}")
    the_model = resolve_model(model)
    source = open_table(input, tree=tree, columns=columns, preset=preset, collection=collection,
                        units=units, keep_branches=keep_branches)
    try:
        info = source.info
        if info.units_inferred:
            warn(f"units: assuming {info.units} ({info.units_reason}); use --units to declare them")
        encoder = Encoder(the_model, device, batch_size, workers=threads)
        header = make_header(the_model, info, latent_dtype, embed_model, chunk_jets)
        ranges = the_model.metadata.get("training_ranges")
        dropped = outside = 0
        with atomic_output(output, force, inputs=[input]) as tmp, open(tmp, "wb") as f:
            writer = AezWriter(f, header, the_model.packed("decoder") if embed_model else None)
            total = getattr(source, "n_entries", None)
            invalid: dict[str, int] = {}
            first_invalid = ""
            def prepare(chunk):
                """Runs in the reader thread: conversion and checks overlap the network."""
                frame = to_model_frame(chunk.columns, info.representation, info.units)
                bad = unencodable_jets(frame)
                x = None if bad.any() else encoder.norm.apply(frame)
                return chunk, frame, bad, x

            def write(latents, counts, kept, frame) -> None:
                """Runs in the writer thread: the range check and the output overlap the network."""
                nonlocal outside
                if ranges:
                    outside += int(outside_ranges(frame, ranges).sum())
                writer.write_chunk(latents, counts, kept)

            with InOrderWorker(write) as background, \
                    contextlib.closing(prefetch(map(prepare, source.chunks(chunk_jets)))) as chunks:
                for chunk, frame, bad, x in chunks:
                    counts = chunk.counts
                    progress(len(counts) if counts is not None else chunk.n_jets, total)
                    if bad.any() and not drop_invalid:
                        # Keep scanning (without encoding) to report the total, then fail.
                        for reason, k in unencodable_reasons(frame[bad]).items():
                            invalid[reason] = invalid.get(reason, 0) + k
                        first_invalid = first_invalid or describe_jet(info, chunk, int(np.argmax(bad)))
                        continue
                    if invalid:
                        continue
                    if bad.any():
                        dropped += int(bad.sum())
                        frame = frame[~bad]
                        x = encoder.norm.apply(frame)
                        if counts is not None:
                            counts = counts_without(counts, bad)
                    background.submit(encoder.run(x), counts, chunk.kept, frame)
            if invalid:
                raise InputError(
                    f"{info.file}: {sum(invalid.values())} jet(s) cannot be encoded ("
                    + ", ".join(f"{k} {r}" for r, k in invalid.items())
                    + f"); the first is {first_invalid}. Fix the input or pass --drop-invalid "
                    "to leave them out")
            tail = writer.close()
            size = writer.bytes_written
    finally:
        source.close()
    n = tail["n_jets"]
    if dropped:
        warn(f"dropped {dropped} invalid jets (NaN, inf, non-positive E or pt, or E < pt)")
    if outside:
        warn(f"{outside} of {n} jets ({outside / max(n, 1):.2%}) lie outside the model's training "
             f"ranges (pt {ranges['pt'][0]:.3g}-{ranges['pt'][1]:.3g} GeV, |eta| <= "
             f"{ranges['abs_eta'][1]:.3g}); expect larger residuals for them")
    return {
        "input": str(input), "output": str(output), "n_jets": n, "n_events": tail["n_events"],
        "n_chunks": tail["n_chunks"], "bytes": size,
        "bytes_per_jet": size / n if n else None,
        "ratio_to_float32": size / (n * RAW_BYTES_PER_JET) if n else None,
        "dropped_invalid": dropped, "outside_training_ranges": outside,
        "units": info.units, "units_inferred": info.units_inferred, "seconds": time.perf_counter() - t0,
        "model": the_model.name, "model_sha256": the_model.weights_sha256,
    }


def make_header(model: Model, info: TableInfo, latent_dtype: str, embed: bool, chunk_jets: int) -> dict:
    return {
        "jetzip_version": __version__,
        "format_version": f"{FORMAT_MAJOR}.{FORMAT_MINOR}",
        "model": {"name": model.name, "arch": model.arch.to_json(),
                  "weights_sha256": model.weights_sha256, "decoder_sha256": model.decoder_sha256,
                  "embedded": bool(embed),
                  "training_ranges": model.metadata.get("training_ranges")},
        "normalization": model.normalization.to_json(),
        "latent": {"dim": model.arch.latent, "dtype": latent_dtype, "byte_order": "little"},
        "source": info.to_json(),
        "chunking": {"max_jets_per_chunk": chunk_jets, "counts_codec": "zlib-u32"},
    }


def decompress(input: str | os.PathLike, output: str | os.PathLike, *,
               model: Model | str | os.PathLike | None = None, format: str | None = None,
               device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE, force: bool = False,
               root_compression: str = "zstd", threads: int | None = None,
               progress: Progress = _noop_progress, warn: Warn = _noop_warn) -> dict[str, Any]:
    """Restore the jet table from a .aez file (ROOT, HDF5 or CSV; '-' writes CSV to stdout).

    ROOT output is compressed with `root_compression` (zstd level 1 by default: ROOT >= 6.20
    reads it; use "zlib" for older ROOT versions). `threads` as in :func:`compress`.
    """
    t0 = time.perf_counter()
    fmt = format_of(output, format, sniff=False, hint="--format")
    if str(output) == "-" and fmt != "csv":
        raise JetzipError(f"-o - writes CSV only; {fmt.upper() if fmt == 'hdf5' else 'ROOT'} output needs a file name")
    with open_aez(input) as aez:
        decoder = Decoder(aez.decoder_model(model), device, batch_size, workers=threads)
        info = aez.table
        # Older files could list the counter among kept branches; it is restored anyway.
        restored = {*info.columns.values(), info.counter}
        kept_dtypes = {k: info.dtypes.get(k, "float64") for k in info.kept_branches if k not in restored}
        to_stdout = str(output) == "-"
        if to_stdout:
            aez.verify()  # nothing reaches stdout from a damaged file
        if fmt == "csv" and info.jagged:
            warn("CSV holds one jet per row with an 'event' column; events without jets are not "
                 "kept in CSV (use .root or .h5 to keep them)")
        size = aez.size or 0
        n_jets = n_events = 0

        def run(path: str) -> None:
            nonlocal n_jets, n_events
            writer = open_writer(path, fmt, info, info.columns, kept_dtypes, root_compression)

            def write(latents_out, chunk) -> None:
                """Runs in the writer thread: conversion and output overlap the network."""
                frame = decoder.norm.invert(latents_out)
                writer.write(from_model_frame(frame, info.representation, info.units), chunk.counts,
                             {k: v for k, v in chunk.kept.items() if k in kept_dtypes})

            try:
                with InOrderWorker(write) as background, contextlib.closing(prefetch(aez.chunks())) as chunks:
                    for chunk in chunks:
                        background.submit(decoder.run(chunk.latents), chunk)
                        n_jets += len(chunk.latents)
                        n_events += len(chunk.counts) if chunk.counts is not None else len(chunk.latents)
                        progress(len(chunk.latents), None)
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
             f"({shown}{more}); keep event-level ones with compress --keep-branches")
    return {"input": str(input), "output": str(output), "format": fmt, "n_jets": n_jets,
            "n_events": n_events, "input_bytes": size, "missing_branches": info.other_branches,
            "seconds": time.perf_counter() - t0}


def checked_path(path: Any) -> str:
    """A file path argument as a string, or an InputError for anything else (None, numbers)."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path, not {path!r}")
    return os.fspath(path)


def file_kind(path: str | os.PathLike) -> str:
    """'aez', 'model' or 'unknown', from the magic number."""
    from .container import AEZ_MAGIC, MODEL_MAGIC

    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror}") from None
    return {AEZ_MAGIC: "aez", MODEL_MAGIC: "model"}.get(head, "unknown")


def inspect(path: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """Describe a .aez file (header, sizes, checksum verification) or a model file."""
    kind = file_kind(checked_path(path))
    if kind == "model":
        m = load_model(path)
        return {**m.header(), "kind": "model", "path": str(path), "bytes": os.path.getsize(path)}
    if kind != "aez":
        raise FormatError(f"{path} is neither a .aez file nor a jetzip model file")
    with open_aez(path) as aez:
        out: dict[str, Any] = {"kind": "aez", "path": str(path), "bytes": aez.size,
                               "format_version": f"{aez.major}.{aez.minor}", "header": aez.header}
        if verify:
            tail = aez.verify()
            n = tail["n_jets"]
            itemsize = np.dtype(LATENT_DTYPES[aez.latent_dtype]).itemsize
            out.update({
                "verified": True, **tail,
                "latent_bytes": n * aez.latent_dim * itemsize,
                "decoder_bytes": len(aez.decoder_payload or b""),
                "bytes_per_jet": aez.size / n if n else None,
                "ratio_to_float32": aez.size / (n * RAW_BYTES_PER_JET) if n else None,
            })
    return out
