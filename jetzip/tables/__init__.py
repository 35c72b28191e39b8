"""Jet tables in and out: ROOT (uproot), HDF5 (h5py), CSV and Parquet (pyarrow, optional),
chosen by extension or name.

``open_table`` finds the jets in a file (layout presets, column names, units) and returns a
source that yields :class:`JetChunk` objects; ``open_writer`` writes chunks back in the
layout a :class:`TableInfo` describes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, TypedDict

from ..errors import InputError
from .base import JetChunk, JetSource, TableInfo, TableWriter, counts_without, describe_jet
from .layouts import PRESETS, parse_columns

FORMATS = ("root", "hdf5", "csv", "parquet")
EXTENSIONS = {".root": "root", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".csv": "csv",
              ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".parq": "parquet", ".pq": "parquet"}
MAGIC = {b"root": "root", b"\x89HDF\r\n\x1a\n": "hdf5", b"PAR1": "parquet"}


class _SourceOptions(TypedDict):
    """The keyword arguments every source takes (ROOT's also takes `threads`)."""
    tree: str | None
    columns: dict[str, str] | None
    preset: str | None
    collection: str | None
    units: str | None
    keep: tuple[str, ...]
    drop: tuple[str, ...]

__all__ = ["counts_without", "describe_jet", "JetChunk", "JetSource", "TableInfo", "TableWriter", "open_table",
           "open_writer", "format_of", "FORMATS", "PRESETS", "parse_columns"]


def format_of(path: str | os.PathLike, explicit: str | None = None, sniff: bool = True,
              hint: str = "") -> str:
    """The table format of `path`: `explicit`, else its extension, else its first bytes.

    `hint` names the option that sets the format, where the command has one.
    """
    if explicit:
        if explicit not in FORMATS:
            raise InputError(f"unknown format {explicit!r}; use {', '.join(FORMATS)}")
        return explicit
    if str(path) == "-":
        return "csv"
    ext = Path(path).suffix.lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    if sniff and os.path.isfile(path):
        with open(path, "rb") as f:
            head = f.read(8)
        for magic, fmt in MAGIC.items():
            if head.startswith(magic):
                return fmt
    raise InputError(f"{path}: unknown table format (extension {ext or 'none'}); "
                     f"use .root, .h5/.hdf5, .csv or .parquet{', or ' + hint if hint else ''}")


def open_table(path: str | os.PathLike, *, tree: str | None = None, columns=None,
               preset: str | None = None, collection: str | None = None, units: str | None = None,
               keep_branches: Sequence[str] = (), format: str | None = None,
               drop_branches: Sequence[str] = (), threads: int | None = None) -> JetSource:
    """Open a jet table for reading; raises InputError naming what is wrong or missing.

    Every other numeric column is carried by default (per-jet ones in ``info.jet_branches``,
    per-event or per-row ones in ``info.kept_branches``); `keep_branches` (fnmatch patterns)
    carries only what they name, `drop_branches` leaves what they name out. A pattern that
    matches no column is an error.
    """
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory, not a jet table")
    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; use {', '.join(PRESETS)}")
    if units is not None and units not in ("GeV", "MeV"):
        raise InputError(f"unknown units {units!r}; use GeV or MeV")
    fmt = format_of(path, format)
    if isinstance(keep_branches, str):
        keep_branches = (keep_branches,)
    if isinstance(drop_branches, str):
        drop_branches = (drop_branches,)
    kw = _SourceOptions(tree=tree, columns=parse_columns(columns), preset=preset, collection=collection,
                        units=units, keep=tuple(keep_branches), drop=tuple(drop_branches))
    if fmt == "root":
        from .root import RootSource
        return RootSource(path, threads=threads, **kw)  # uproot's decompression and interpretation pool
    if fmt == "hdf5":
        from .hdf5 import Hdf5Source
        return Hdf5Source(path, **kw)
    if fmt == "parquet":
        from .parquet import ParquetSource
        return ParquetSource(path, **kw)
    from .csv import CsvSource
    return CsvSource(path, **kw)


def open_writer(path: str, fmt: str, info: TableInfo, names: dict[str, str],
                kept_dtypes: dict[str, str], root_compression: str = "zstd") -> TableWriter:
    """A writer for `fmt` at `path` (a temporary path, or '-' for CSV on stdout)."""
    if fmt == "root":
        from .root import RootWriter
        return RootWriter(path, info, names, kept_dtypes, root_compression)
    if fmt == "hdf5":
        from .hdf5 import Hdf5Writer
        return Hdf5Writer(path, info, names, kept_dtypes)
    if fmt == "parquet":
        from .parquet import ParquetWriter
        return ParquetWriter(path, info, names, kept_dtypes)
    from .csv import CsvWriter
    return CsvWriter(path, info, names, kept_dtypes)
