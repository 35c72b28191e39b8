"""``jetzip evaluate``: how far are the decoded jets from the originals, per variable?

Decodes a .aez, reads the original table with the same tree, columns and units, checks that
both hold the same events with the same jet counts, and summarizes the residuals (see
:mod:`jetzip.residuals` for the conventions), the size, and the jets outside the model's
training ranges. Optionally draws the seed report's figures (:mod:`jetzip.plots`).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .aez import open_aez
from .engine import DEFAULT_BATCH_SIZE, Decoder
from .errors import InputError
from .errors import positive_int
from .tables import counts_without
from .features import from_model_frame, outside_ranges, to_model_frame, unencodable_jets
from .residuals import frame_columns, residuals, summarize_all
from .tables import format_of, open_table

RAW_BYTES_PER_JET = 16


def _same_events(a: np.ndarray, b: np.ndarray, n_jets: int, whole: bool) -> bool:
    """Do both tables split the compared jets into the same events? With --max-jets (not
    `whole`) only the events that end before the last compared jet are certain to be read on
    both sides; trailing empty events may be in one read and not the other."""
    if whole:
        return bool(np.array_equal(a, b))
    ends_a, ends_b = np.cumsum(a, dtype=np.int64), np.cumsum(b, dtype=np.int64)
    return bool(np.array_equal(ends_a[ends_a < n_jets], ends_b[ends_b < n_jets]))


def _open_original(original: str | os.PathLike, info):
    """The original table, read like the .aez's source; another kind of file (the table after a
    round trip through HDF5, say) is read by its own format, finding the jets in it."""
    try:
        fmt = format_of(original)
    except InputError:
        fmt = info.format
    tree = info.extra.get("tree_cycle", info.tree) if fmt == "root" else info.tree
    # a flat CSV (maybe one that needed --preset flat) is read flat again
    preset = "flat" if fmt == "csv" and info.format == "csv" and not info.jagged else None
    try:
        return open_table(original, tree=tree, columns=info.columns, units=info.units, format=fmt,
                          preset=preset)
    except InputError:
        if fmt == info.format:
            raise
        return open_table(original, units=info.units, format=fmt)


def evaluate(original: str | os.PathLike, compressed: str | os.PathLike, *, model=None,
             device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE, max_jets: int | None = None,
             plots: str | os.PathLike | None = None, pdf: bool = False,
             return_arrays: bool = False) -> dict[str, Any]:
    """Residual statistics of `compressed` against `original`; figures into `plots` if given."""
    if max_jets is not None:
        positive_int("max_jets", max_jets)
    if plots is not None:
        from .plots import require_matplotlib
        require_matplotlib()
    with open_aez(compressed) as aez:
        info = aez.table
        dec_model = aez.decoder_model(model)
        decoder = Decoder(dec_model, device, batch_size)
        decoded, latents, counts_aez = [], [], []
        n = 0
        for chunk in aez.chunks():
            take = chunk.latents if max_jets is None else chunk.latents[: max(0, max_jets - n)]
            latents.append(np.asarray(take, np.float32))
            decoded.append(decoder.decode(take))
            if chunk.counts is not None:
                counts_aez.append(chunk.counts)
            n += len(take)
            if max_jets is not None and n >= max_jets:
                break
        header = aez.header
        size = aez.size or os.path.getsize(compressed)
        decoder_bytes = len(aez.decoder_payload) + 16 if aez.decoder_payload is not None else 0
    source = _open_original(original, info)
    try:
        frames, counts_orig, m = [], [], 0
        for chunk in source.chunks(1 << 20):
            frame = to_model_frame(chunk.columns, source.info.representation, source.info.units)
            counts = chunk.counts
            bad = unencodable_jets(frame)  # compress refused them or (--drop-invalid) left them out
            if bad.any():
                frame = frame[~bad]
                counts = None if counts is None else counts_without(counts, bad)
            frames.append(frame[: None if max_jets is None else max(0, max_jets - m)])
            if counts is not None:
                counts_orig.append(counts)
            m += len(frames[-1])
            if max_jets is not None and m >= max_jets:
                break
    finally:
        source.close()
    orig = np.concatenate(frames) if frames else np.zeros((0, 4))
    dec = np.concatenate(decoded) if decoded else np.zeros((0, 4))
    if len(orig) != len(dec):
        raise InputError(f"{original} holds {len(orig)} jets but {compressed} holds {len(dec)}; "
                         "they are not the same table (or invalid jets were dropped when compressing)")
    if counts_aez and counts_orig and not _same_events(np.concatenate(counts_aez), np.concatenate(counts_orig),
                                                       len(orig), whole=max_jets is None):
        raise InputError(f"{original} and {compressed} have different jets per event; "
                         "they are not the same table")
    o_cols = frame_columns(orig)
    d_cols = frame_columns(dec)
    if info.representation == "PtEtaPhiM":
        o_cols["m"] = from_model_frame(orig, "PtEtaPhiM", "GeV", np.float64)["m"]
        d_cols["m"] = from_model_frame(dec, "PtEtaPhiM", "GeV", np.float64)["m"]
    res = residuals(o_cols, d_cols)
    stats = summarize_all(res)
    ranges = header["model"].get("training_ranges")
    outside = None
    if ranges and len(orig):
        outside = float(outside_ranges(orig, ranges).mean())
    total_jets = len(dec)
    report: dict[str, Any] = {
        "original": str(original), "compressed": str(compressed), "n_jets": total_jets,
        "model": header["model"]["name"], "latent_dtype": header["latent"]["dtype"],
        "residuals": stats,
        "bytes": size, "bytes_per_jet": size / total_jets if total_jets and max_jets is None else None,
        "ratio_to_float32": size / (total_jets * RAW_BYTES_PER_JET) if total_jets and max_jets is None else None,
        "bytes_per_jet_without_decoder": (size - decoder_bytes) / total_jets
        if total_jets and max_jets is None else None,
        "fraction_outside_training_ranges": outside,
        "conventions": "E, pt, m relative (decoded-original)/original; eta, phi absolute, phi wrapped",
    }
    report["alternatives"] = alternatives(orig, info.representation)
    if plots is not None:
        from .plots import write_all
        report["plots"] = write_all(plots, o_cols, d_cols, res, np.concatenate(latents) if latents else
                                    np.zeros((0, 3)), _training_history(model), pdf=pdf)
    if return_arrays:
        report["arrays"] = {"original": o_cols, "decoded": d_cols, "residuals": res}
    return report


def _training_history(model) -> list[dict]:
    """The training history for the loss-curve figure, from the model file when given."""
    if model is None:
        return []
    from .model import Model, load_model
    m = model if isinstance(model, Model) else load_model(model)
    return list(m.history)


def alternatives(orig: np.ndarray, representation: str, max_jets: int = 1_000_000) -> dict[str, Any]:
    """What users compare jetzip with, on the same jets: sizes and residual widths side by side.

    - lossless: the four float32 columns, byte-shuffled, compressed with zstd level 3;
    - float16: the four columns in the file's representation cast to float16 (then zstd 3).
    """
    frame = orig[:max_jets]
    n = len(frame)
    if n == 0:
        return {}
    cols = from_model_frame(frame, representation, "GeV", np.float32)
    out: dict[str, Any] = {"n_jets": n, "raw_float32_bytes_per_jet": 16.0}
    try:
        import zstandard
    except ImportError:  # sizes after zstd need the zstandard package (a jetzip dependency)
        zstandard = None

    def shuffled(arrays: list[np.ndarray]) -> bytes:
        return b"".join(np.ascontiguousarray(a).view(np.uint8).reshape(len(a), -1).T.tobytes() for a in arrays)

    if zstandard is not None:
        c = zstandard.ZstdCompressor(level=3)
        out["lossless_zstd3_bytes_per_jet"] = len(c.compress(shuffled(list(cols.values())))) / n
    half = {k: v.astype(np.float16) for k, v in cols.items()}
    back = to_model_frame({k: v.astype(np.float32) for k, v in half.items()}, representation, "GeV")
    res = residuals(frame_columns(frame), frame_columns(back))
    out["float16"] = {
        "bytes_per_jet": 8.0 if zstandard is None else
        len(zstandard.ZstdCompressor(level=3).compress(shuffled(list(half.values())))) / n,
        "residual_std": {k: float(np.nanstd(v)) for k, v in res.items()},
        "residual_p99_abs": {k: float(np.nanpercentile(np.abs(v), 99)) for k, v in res.items()},
        "non_finite": int(sum(int((~np.isfinite(v.astype(np.float32))).sum()) for v in half.values())),
    }
    return out
