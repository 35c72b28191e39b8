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
from .defaults import RAW_BYTES_PER_JET
from .errors import InputError, positive_int
from .tables import TableInfo, counts_without
from .features import from_model_frame, outside_ranges, to_model_frame
from .residuals import frame_columns, residuals, summarize_all
from .tables import format_of, open_table



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
                          drop_branches=("*",),  # the jets only: no need to read 1,500 other branches
                          preset=preset)
    except InputError:
        if fmt == info.format:
            raise
        return open_table(original, units=info.units, format=fmt, drop_branches=("*",))


def evaluate(original: str | os.PathLike, compressed: str | os.PathLike, *, model=None,
             device: str = "auto", batch_size: int | None = None, max_jets: int | None = None,
             plots: str | os.PathLike | None = None, pdf: bool = False, baselines: bool = False,
             return_arrays: bool = False) -> dict[str, Any]:
    """How far the jets decoded from `compressed` are from those in `original`.

    Args:
        original: the table that was compressed (or the same table in another format).
        compressed: the ``.aez`` file.
        model: latent files without an embedded decoder: the model they were made with.
        device, batch_size: how the network runs (latent files).
        max_jets: compare only the first jets.
        plots: a folder for the seed report's figures (latent files: with the latent space).
        pdf: figures as PDF too.
        baselines: also measure classical codecs on the same jets at the file's bounds
            (see :func:`jetzip.baselines.measure`).
        return_arrays: add the original, decoded and residual columns under ``arrays``.

    Returns:
        ``original``, ``compressed``, ``codec``, ``n_jets``, ``residuals`` (per variable:
        n, mean, std, median, p1, p99, p99_abs, max_abs, tail fractions; E, pt, m relative,
        eta, phi absolute, phi wrapped), ``bytes``, ``bytes_per_jet``, ``ratio_to_float32``,
        ``bytes_per_jet_without_decoder``, ``alternatives``, ``invalid_jets_left_out`` (jets
        of the original the codec cannot store, left out by ``--drop-invalid``, not compared),
        ``variables`` (the stored columns, in order), ``residual_bounds`` (every residual
        variable's guaranteed bound, None where there is none), ``nanoaod_grid`` and
        ``already_nanoaod`` (:func:`jetzip.baselines.nanoaod_grid`, ``already_nanoaod``),
        ``notes`` (lines to print beside the tables: unbounded variables, input already at
        NanoAOD precision); with `plots` ``plots`` (figure -> paths) and ``plots_skipped``
        (figure -> why it was not drawn); for bounded files ``bounds``
        (per stored column: ``bound``, ``kind``, ``max_error``, ``violations``, ``within``)
        and ``all_within_bounds``; for latent files ``model``, ``latent_dtype``,
        ``fraction_outside_training_ranges``; ``baselines`` when asked.

    Raises:
        InputError: the two files do not hold the same jets or events.
    """
    if max_jets is not None:
        positive_int("max_jets", max_jets)
    if plots is not None:
        from .plots import require_matplotlib
        require_matplotlib()
    with open_aez(compressed) as aez:
        main = next((i for i, t in enumerate(aez.tables) if t.has_jets), 0)
        info = aez.tables[main]
        codecs = aez.codecs(model=model, device=device, batch_size=batch_size)
        codec = codecs[aez.header.tables[main].codecs[0]]
        decoded: list[dict[str, np.ndarray]] = []
        latents, counts_aez = [], []
        n = 0
        # the first collection only, in this process: the codec's diagnostics are this chunk's
        for chunk, jets in aez.decoded(codecs, tables=[main], carried=False, first_collection_only=True):
            cols = jets.columns
            take = chunk.n_jets if max_jets is None else max(0, min(chunk.n_jets, max_jets - n))
            decoded.append({k: v[:take] for k, v in cols.items()})
            lat = codec.diagnostics().get("latents")
            if lat is not None:
                latents.append(np.asarray(lat[:take], np.float32))
            if chunk.counts is not None:
                counts_aez.append(chunk.counts)
            n += take
            if max_jets is not None and n >= max_jets:
                break
        config = aez.header.codecs[aez.header.tables[main].codecs[0]]
        size = aez.size or os.path.getsize(compressed)
        decoder_bytes = len(aez.side["DECW"]) + 16 if "DECW" in aez.side else 0
        payload_bytes = sum(len(c.payload) for c in aez.chunks(tables=[main]))
    roles = list(info.columns)
    source = _open_original(original, info)
    try:
        parts, counts_orig, m = [], [], 0
        left_out = 0  # jets of the original the codec cannot store (NaN, inf, ...)
        for chunk in source.chunks(1 << 20):
            cols = {r: np.asarray(chunk.columns[r]) for r in roles if r in chunk.columns}
            if set(cols) != set(roles):
                raise InputError(f"{original} does not hold the columns {', '.join(roles)} that "
                                 f"{compressed} was made from")
            counts = chunk.counts
            bad, _ = codec.invalid(cols)  # compress refused them or (--drop-invalid) left them out
            if bad.any():
                left_out += int(bad.sum())
                cols = {k: v[~bad] for k, v in cols.items()}
                counts = None if counts is None else counts_without(counts, bad)
            take = len(cols[roles[0]]) if max_jets is None else max(0, max_jets - m)
            parts.append({k: v[:take] for k, v in cols.items()})
            if counts is not None:
                counts_orig.append(counts)
            m += len(parts[-1][roles[0]])
            if max_jets is not None and m >= max_jets:
                break
    finally:
        source.close()
    orig_cols = {r: np.concatenate([p[r] for p in parts]) if parts else np.zeros(0) for r in roles}
    dec_cols = {r: np.concatenate([d[r] for d in decoded]) if decoded else np.zeros(0) for r in roles}
    n_orig, n_dec = len(orig_cols[roles[0]]), len(dec_cols[roles[0]])
    if n_orig != n_dec:
        raise InputError(f"{original} holds {n_orig} jets but {compressed} holds {n_dec}; "
                         "they are not the same table (or invalid jets were dropped when compressing)")
    if counts_aez and counts_orig and not _same_events(np.concatenate(counts_aez), np.concatenate(counts_orig),
                                                       n_orig, whole=max_jets is None):
        raise InputError(f"{original} and {compressed} have different jets per event; "
                         "they are not the same table")
    # what a reader of the restored file sees: the stored float32 values
    dec_cols = {k: v.astype(np.float32) for k, v in dec_cols.items()}
    orig = to_model_frame(orig_cols, info.representation, info.units)
    o_cols = residual_columns(orig_cols, info.representation, info.units)
    d_cols = residual_columns(dec_cols, info.representation, info.units)
    res = residuals(o_cols, d_cols)
    stats = summarize_all(res)
    total_jets = n_dec
    whole = total_jets and max_jets is None
    report: dict[str, Any] = {
        "original": str(original), "compressed": str(compressed), "codec": config["id"],
        "n_jets": total_jets, "residuals": stats,
        "bytes": size, "bytes_per_jet": size / total_jets if whole else None,
        "ratio_to_float32": size / (total_jets * RAW_BYTES_PER_JET) if whole else None,
        "input_bytes": os.path.getsize(original),
        "ratio_to_input": size / max(os.path.getsize(original), 1),
        "bytes_per_jet_without_decoder": (size - decoder_bytes) / total_jets if whole else None,
        # the jets' own bytes: no header, no decoder, no carried branches or other objects
        "payload_bytes_per_jet": payload_bytes / total_jets if whole else None,
        "conventions": "E, pt, m relative (decoded-original)/original; eta, phi absolute, phi wrapped",
        "invalid_jets_left_out": left_out,
        "variables": list(roles),
    }
    cls = type(codec)
    facts = cls.summary(config)
    if facts.get("model"):
        ranges = facts.get("training_ranges")
        report.update({"model": facts["model"], "latent_dtype": facts.get("latent_dtype"),
                       "fraction_outside_training_ranges":
                           float(outside_ranges(orig, ranges).mean()) if ranges and len(orig) else None})
    bounds = cls.guaranteed_bounds(config)
    # every residual variable with its guaranteed bound, None where the codec bounds none (E of a
    # pt, eta, phi, mass table is computed from the bounded columns, not bounded itself)
    report["residual_bounds"] = {k: (float(bounds[k]) if bounds and k in bounds else None) for k in stats}
    if bounds is not None:
        report["bounds"] = bound_check(bounds, cls.bound_errors(config, orig_cols, dec_cols),
                                       dict(config.get("bound_kinds") or {}))
        report["all_within_bounds"] = all(b["within"] for b in report["bounds"].values())
    from .baselines import MAX_JETS, ZSTD_LEVEL, already_nanoaod, nanoaod_grid

    report["nanoaod_grid"] = nanoaod_grid({r: v[:MAX_JETS] for r, v in orig_cols.items()})
    report["already_nanoaod"] = already_nanoaod({r: v[:MAX_JETS] for r, v in orig_cols.items()})
    report["notes"] = notes(report, bounds)
    report["alternatives"] = alternatives(orig_cols, info.representation, info.units,
                                          level=ZSTD_LEVEL if baselines else 3)
    if baselines:
        from .baselines import measure

        report["baselines"] = measure(orig_cols, info.representation,
                                      bounds,
                                      np.concatenate(counts_orig) if counts_orig and max_jets is None else None,
                                      units=info.units)
    if plots is not None:
        from .plots import skipped_figures, write_all

        lat = np.concatenate(latents) if latents else np.zeros((0, 3))
        history = _training_history(model)
        title = figure_title(compressed, original, config)
        report["plots"] = write_all(plots, o_cols, d_cols, res, lat, history, pdf=pdf, title=title)
        report["plots_skipped"] = skipped_figures(o_cols, res, lat, history)
    with open_aez(compressed) as aez:
        several = sum(len(t.all_collections()) for t in aez.tables) > 1
    if several and max_jets is None:  # every other collection of every table, against its bound
        report["collections"] = every_collection(original, compressed, model=model, device=device,
                                                 batch_size=batch_size, baselines=baselines)
        if bounds is not None:
            report["all_within_bounds"] = report["all_within_bounds"] and \
                all(c.get("all_within_bounds", True) for c in report["collections"])
    if return_arrays:
        report["arrays"] = {"original": o_cols, "decoded": d_cols, "residuals": res}
    return report


def residual_columns(columns: dict[str, np.ndarray], representation: str, units: str) -> dict[str, np.ndarray]:
    """The variables residuals are taken on, in GeV: E, pt, eta, phi, and m for tables that
    store a mass (PtEtaPhiM, PxPyPzM)."""
    frame = to_model_frame(columns, representation, units)
    out = frame_columns(frame)
    if representation in ("PtEtaPhiM", "PxPyPzM"):
        out["m"] = from_model_frame(frame, "PtEtaPhiM", "GeV", np.float64)["m"]
    return out


def notes(report: dict[str, Any], bounds: dict[str, float] | None) -> list[str]:
    """Lines a physicist should read beside the figures: which variables are not bounded, and an
    input already rounded to NanoAOD's precision."""
    out = []
    if bounds:
        free = [k for k, b in report["residual_bounds"].items() if b is None]
        if free:
            out.append(f"{', '.join(free)} not bounded: computed from the bounded "
                       f"{', '.join(k for k in report['variables'] if k in bounds)}")
    if report.get("already_nanoaod"):
        out.append(f"the input's {', '.join(report['already_nanoaod'])} are already rounded to NanoAOD's precision "
                   "(10 mantissa bits for pt and mass, 12 for eta and phi): rounding them to that precision "
                   "again shows error 0, and --error-bound nanoaod rounds them a second time")
    return out


def figure_title(compressed: str | os.PathLike, original: str | os.PathLike, config: dict[str, Any]) -> str:
    """What every figure says it shows: the files and the codec (latent: model and latents;
    bounded: the bounds)."""
    from .codecs import codec_class

    facts = codec_class(config["id"]).summary(config)
    if facts.get("model"):
        codec = f"latent ({facts['model']}, {facts.get('latent_dtype')} latents)"
    elif facts.get("bounds"):
        codec = f"{config['id']} (" + ", ".join(f"{k} {v:.3g}" for k, v in facts["bounds"].items()) + ")"
    else:
        codec = str(config["id"])
    return f"{os.path.basename(os.fspath(compressed))}, codec {codec}, against {os.path.basename(os.fspath(original))}"


def every_collection(original: str | os.PathLike, compressed: str | os.PathLike, *, model: Any = None,
                     device: str = "auto", batch_size: int | None = None,
                     baselines: bool = False) -> list[dict[str, Any]]:
    """Every coded collection of every table of `compressed` against the same columns of
    `original` (read by name, :func:`jetzip.tables.open_table` with the table and the four
    columns): per collection ``table``, ``collection``, ``n_jets``, ``bytes`` (its payloads),
    ``bytes_per_jet``, and for a codec with bounds ``bounds`` (as :func:`bound_check`) and
    ``all_within_bounds``; with `baselines`, the classical codecs at those bounds.

    Raises:
        InputError: the original does not hold the same members per entry.
    """
    from .codecs import codec_class

    out = []
    with open_aez(compressed) as aez:
        codecs = aez.codecs(model=model, device=device, batch_size=batch_size)
        decoded: dict[tuple[int, int], list] = {}
        sizes: dict[tuple[int, int], int] = {}
        for stored, chunk in aez.decoded(codecs, carried=False):
            for c, coll in enumerate(aez.tables[stored.table].all_collections()):
                part = chunk if c == 0 else chunk.others[coll.name]
                decoded.setdefault((stored.table, c), []).append((part.columns, part.counts))
                sizes[(stored.table, c)] = sizes.get((stored.table, c), 0) + len(stored.collections[c].payload)
        originals = {t: _original_collections(original, aez.tables[t]) for t in sorted({t for t, _ in decoded})}
        for (t, c), parts in decoded.items():
            info = aez.tables[t]
            coll = info.all_collections()[c]
            config = aez.header.codecs[aez.header.tables[t].codecs[c]]
            cls = codec_class(config["id"])
            orig_parts = originals[t][c]
            roles = list(coll.columns)
            orig = {r: np.concatenate([p[0][r] for p in orig_parts]) if orig_parts else np.zeros(0) for r in roles}
            dec = {r: np.concatenate([p[0][r] for p in parts]) if parts else np.zeros(0) for r in roles}
            n = len(dec[roles[0]])
            if len(orig[roles[0]]) != n:
                raise InputError(f"{original} holds {len(orig[roles[0]])} {coll.name or 'jets'} in {info.tree}, "
                                 f"{compressed} {n}: they are not the same table")
            dec = {k: v.astype(np.dtype(coll.dtypes.get(coll.columns[k], "float32"))) for k, v in dec.items()}
            row: dict[str, Any] = {"table": info.tree, "collection": coll.name, "codec": config["id"], "n_jets": n,
                                   "bytes": sizes[(t, c)], "bytes_per_jet": sizes[(t, c)] / n if n else None}
            bounds = cls.guaranteed_bounds(config)
            if bounds is not None:
                row["bounds"] = bound_check(bounds, cls.bound_errors(config, orig, dec),
                                            dict(config.get("bound_kinds") or {}))
                row["all_within_bounds"] = all(b["within"] for b in row["bounds"].values())
            if baselines:
                from .baselines import measure

                row["baselines"] = measure(orig, coll.representation, bounds, None, units=coll.units)
            out.append(row)
    return out


def _original_collections(original: str | os.PathLike, info: TableInfo) -> list[list[tuple[dict, Any]]]:
    """Per collection of `info` (in ``all_collections()`` order), the original's chunks of its
    four columns as ``(columns, counts)``: the table opened once, with every collection the
    ``.aez`` coded and nothing carried (``drop_branches=("*",)``: only the coded columns are read).

    Raises:
        InputError: the original lacks the table or a collection.
    """
    from .tables import open_file

    colls = info.all_collections()
    names = [c.name for c in colls if c.name]
    units = colls[0].units if colls and colls[0].units in ("GeV", "MeV") else None
    source = open_file(original, tree=info.tree, collection=",".join(names) if len(names) == len(colls) else None,
                       units=units, drop_branches=("*",))
    try:
        table = next((t for t in source.tables if t.info.tree == info.tree), None)
        if table is None:
            raise InputError(f"{original} has no table {info.tree}")
        found = [c.name for c in table.info.all_collections()]
        out: list[list[tuple[dict, Any]]] = [[] for _ in colls]
        for chunk in table.chunks(1 << 20):
            for c, coll in enumerate(colls):
                if c == 0:
                    out[c].append((chunk.columns, chunk.counts))
                elif coll.name in chunk.others:
                    other = chunk.others[coll.name]
                    out[c].append((other.columns, other.counts))
                else:
                    raise InputError(f"{original}: {info.tree} has no collection {coll.name} "
                                     f"(it has {', '.join(n for n in found if n) or 'none'})")
        return out
    finally:
        source.close()


def bound_check(bounds: dict[str, float], errors: dict[str, np.ndarray],
                kinds: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per stored column: the largest error against its bound. `errors` are the codec's own
    per-jet errors in each bound's units (:meth:`jetzip.codecs.Codec.bound_errors`: relative for
    pt, E and m with exact zeros kept with their sign, absolute for eta and phi, and for
    Cartesian tables |dpx|/pt, |dpy|/pt, |dpz|/|p| of the original four-vector); `kinds` says
    which (the codec configuration's ``bound_kinds``)."""
    out = {}
    for role, bound in bounds.items():
        err = np.asarray(errors[role], np.float64)
        violations = int((err > bound).sum())
        out[role] = {"bound": float(bound), "kind": str(kinds.get(role, "")),
                     "max_error": float(err.max()) if len(err) else 0.0,
                     "violations": violations, "within": violations == 0}
    return out


def _training_history(model) -> list[dict]:
    """The training history for the loss-curve figure, from the model file when given."""
    if model is None:
        return []
    from .model import Model, load_model
    m = model if isinstance(model, Model) else load_model(model)
    return list(m.history)


def alternatives(columns: dict[str, np.ndarray], representation: str, units: str = "GeV",
                 level: int = 3) -> dict[str, Any]:
    """What users compare jetzip with, on the same jets (the first ``baselines.MAX_JETS``): sizes
    and residual widths side by side.

    - lossless: the four stored float32 columns, byte-shuffled, zstd level 3
      (``lossless_zstd3_bytes_per_jet``);
    - float16: :func:`jetzip.baselines.float16_zstd` (cast in GeV, byte-shuffled, zstd at
      `level`: 19 when ``evaluate --baselines`` also runs, so that its baselines table and this
      one show the same number). Returns ``residual_std``, ``residual_p99_abs`` for every
      residual variable, ``non_finite`` (values that overflowed float16), ``zstd_level``.
    """
    from .baselines import MAX_JETS, byte_shuffle, float16_zstd

    cols = {r: np.asarray(v, np.float32)[:MAX_JETS] for r, v in columns.items()}
    n = len(next(iter(cols.values()))) if cols else 0
    if n == 0:
        return {}
    import zstandard

    out: dict[str, Any] = {"n_jets": n, "raw_float32_bytes_per_jet": 16.0}
    out["lossless_zstd3_bytes_per_jet"] = len(zstandard.ZstdCompressor(level=3).compress(
        byte_shuffle(list(cols.values())))) / n
    per_jet, back, overflow = float16_zstd(cols, units, level)
    res = residuals(residual_columns(cols, representation, units), residual_columns(back, representation, units))
    out["float16"] = {
        "bytes_per_jet": per_jet, "zstd_level": level,
        "residual_std": {k: float(v[np.isfinite(v)].std()) for k, v in res.items() if np.isfinite(v).any()},
        "residual_p99_abs": {k: float(np.percentile(np.abs(v[np.isfinite(v)]), 99))
                             for k, v in res.items() if np.isfinite(v).any()},
        "non_finite": overflow,
    }
    return out
