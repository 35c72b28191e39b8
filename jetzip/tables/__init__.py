"""Jet tables in and out: ROOT (uproot), HDF5 (h5py), CSV and Parquet (pyarrow, optional),
chosen by extension or name.

``open_table`` finds the jets in a file (layout presets, column names, units) and returns a
source that yields :class:`JetChunk` objects; ``open_writer`` writes chunks back in the
layout a :class:`TableInfo` describes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from typing import Any, Sequence, TypedDict

from ..errors import InputError
from .base import (CollectionChunk, CollectionInfo, JetChunk, JetSource, TableInfo, TableWriter, concat_chunks,
                   counts_without, describe_jet)
from .layouts import PRESETS, every_but, parse_columns

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

__all__ = ["concat_chunks", "counts_without", "describe_jet", "CollectionChunk", "CollectionInfo", "JetChunk",
           "JetSource", "TableInfo", "TableWriter", "FileSource", "FileWriter", "open_file", "open_file_writer",
           "open_table", "open_writer", "format_of", "FORMATS", "PRESETS", "parse_columns"]


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
    if columns and collection:
        raise InputError("--columns names the four columns of one collection: give --columns or --collection, "
                         "not both")
    if isinstance(keep_branches, str):
        keep_branches = (keep_branches,)
    if isinstance(drop_branches, str):
        drop_branches = (drop_branches,)
    if fmt not in ("root", "parquet") and every_but(collection)[0]:
        if every_but(collection)[1]:
            raise InputError(f"--collection {collection}: HDF5 and CSV tables code one collection; "
                             "leave out --collection")
        collection = None  # HDF5, Parquet and CSV readers code one collection: "all" is that one
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
                kept_dtypes: dict[str, str], root_compression: str = "input") -> TableWriter:
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


class FileSource:
    """Every table of a file that compress stores, and the rest of the file.

    Attributes:
        path: the file.
        format: ``root``, ``hdf5``, ``parquet`` or ``csv``.
        tables: one reader per table (:class:`JetSource`), in file order; entry ranges and
            ``max_jets`` apply to ``tables[main]``, the first table with jets.
        notes: ``{"not_carried": [...], "restored_as": [...]}``, one line each.
    """

    def __init__(self, path: str, fmt: str, tables: list[JetSource], extras=None) -> None:
        self.path = path
        self.format = fmt
        self.compression = ""  # the file's compression setting, where the format has one (ROOT)
        self.tables = tables
        self._extras = extras
        first = tables[0].info if tables else None
        self.notes: dict[str, list[str]] = {
            "not_carried": list((first.extra.get("not_carried") or []) if first else []),
            "restored_as": list((first.extra.get("restored_as") or []) if first else [])}

    @property
    def main(self) -> int:
        return next((i for i, t in enumerate(self.tables) if t.info.has_jets), 0)

    def extras(self) -> bytes | None:
        """The file's other objects as one blob its format's writer restores (None: nothing)."""
        if self._extras is not None:
            return self._extras()
        first = self.tables[0] if self.tables else None
        return first.extras() if first is not None and hasattr(first, "extras") else None

    def close(self) -> None:
        for t in self.tables:
            t.close()


def open_file(path: str | os.PathLike, **options) -> FileSource:
    """Open every table of a file for compress (same options as :func:`open_table`).

    Raises:
        InputError: as :func:`open_table`.
    """
    source = open_table(path, **options)
    files = getattr(source, "file_source", None)
    if files is not None:  # a reader of several tables (ROOT) describes the file itself
        return files()
    return FileSource(str(path), source.info.format, [source])


class FileWriter:
    """Writes the tables of a ``.aez`` back, one after the other, then the other objects.

    HDF5 holds every table: each in its own group named as its tree (``/Events``, ``/Runs``),
    in one file, in the tables' order. Parquet and CSV hold one table, the first with jets;
    :attr:`missing` names the others (the caller says so), and what a writer could not hold.
    :attr:`notes` names what was written as something else (one line per kind).
    """

    def __init__(self, path: str, fmt: str, infos: list[TableInfo], root_compression: str = "input",
                 main: int = 0) -> None:
        self.path, self.fmt, self.infos = path, fmt, infos
        self.main = main
        self.root_compression = root_compression
        self.writers: dict[int, TableWriter] = {}
        self._kept: dict[int, set[str]] = {}
        self.missing: list[str] = []
        self.notes: list[str] = []
        self.output: Any = None  # the HDF5 file every table's writer shares
        self.groups: dict[int, str] = {}
        if fmt == "hdf5" and len(infos) > 1:
            from .hdf5_writer import Hdf5Output

            self.groups = _group_names(infos, main)
            self.output = Hdf5Output(path)
            try:  # the groups in the tables' order, whichever table's writer makes its datasets first
                for table in sorted(self.groups):
                    if self.groups[table]:
                        self.output.file.create_group(self.groups[table], track_order=True)
            except (OSError, ValueError) as exc:
                self.output.abort()
                raise InputError(f"cannot write {path}: {exc}") from None
            return
        for i, info in enumerate(infos):
            if i != main:
                self.missing.append(f"table {info.tree} ({fmt} output holds one table; decompress to "
                                    f".{info.format} or .h5 to keep it)")

    @property
    def writer(self) -> TableWriter | None:
        """The main table's writer (None until it is opened)."""
        return self.writers.get(self.main)

    def _open(self, table: int) -> TableWriter:
        info = self.infos[table]
        restored = {*info.columns.values(), info.counter}
        kept_dtypes = {k: info.dtypes.get(k, "float64") for k in info.kept_branches if k not in restored}
        if self.output is not None:
            from .hdf5_writer import Hdf5Writer

            writer: TableWriter = Hdf5Writer(self.path, info, info.columns, kept_dtypes, output=self.output,
                                             group=self.groups[table])
        else:
            writer = open_writer(self.path, self.fmt, info, info.columns, kept_dtypes, self.root_compression)
        self.writers[table] = writer
        return writer

    def write(self, table: int, chunk: JetChunk) -> None:
        if table != self.main and self.output is None:
            return
        writer = self.writers.get(table) or self._open(table)
        info = self.infos[table]
        wanted = self._kept.setdefault(table, set(info.kept_branches))  # a set: 70,000 columns happen
        kept = {k: v for k, v in chunk.kept.items() if k in wanted}
        if chunk.carried or chunk.others:
            carried = dict(chunk.carried)
            for name, other in chunk.others.items():  # further collections: as jagged columns
                carried.update(_jagged_columns(other, info, name))
            writer.write(chunk.columns, chunk.counts, kept, chunk.jet_kept, carried=carried)
        elif info.jet_branches:
            writer.write(chunk.columns, chunk.counts, kept, chunk.jet_kept)
        else:
            writer.write(chunk.columns, chunk.counts, kept)

    def write_extras(self, blob: bytes, source_format: str) -> bool:
        """The source's other objects; False when this output cannot hold them."""
        writer = self.writer or self._open(self.main)
        if self.fmt != source_format or not hasattr(writer, "write_extras"):
            return False
        writer.write_extras(blob)
        return True

    def close(self) -> None:
        """Write every table (those without entries too) and close the file; after an error
        the output is given up (the caller removes it)."""
        tables = sorted(self.groups) if self.output is not None else [self.main]
        try:
            for table in tables:
                writer = self.writers.get(table) or self._open(table)
                writer.close()
                where = f"{self.groups[table]}/" if self.output is not None and table != self.main else ""
                self.missing.extend(where + line for line in getattr(writer, "missing", []))
                self.notes.extend(n for n in getattr(writer, "notes", []) if n not in self.notes)
            if self.output is not None:
                self.output.close()
        except BaseException:
            if self.output is not None:
                self.output.abort()
            raise


def _group_names(infos: list[TableInfo], main: int) -> dict[int, str]:
    """The HDF5 group of each table: its tree's name (nested for a ROOT directory, ``dir/t``);
    a table without one, or whose group would hold or sit inside an earlier one, gets
    ``table<i>``."""
    out: dict[int, str] = {}
    used: set[str] = set()

    def clash(name: str) -> bool:
        return not name or any(name == u or name.startswith(u + "/") or u.startswith(name + "/") for u in used)

    for i, info in enumerate(infos):
        name = (info.tree or "").strip("/")
        k = i
        while clash(name):
            name, k = f"table{k}", k + len(infos)
        used.add(name)
        out[i] = name
    return out


def _jagged_columns(other: CollectionChunk, info: TableInfo, name: str) -> dict[str, Any]:
    """A further collection's columns and per-member branches as jagged arrays by name."""
    import awkward as ak

    coll = next(c for c in info.collections if c.name == name)
    counts = other.counts if other.counts is not None else np.ones(other.n_jets, np.int64)
    out = {}
    for role, col in coll.columns.items():
        values = np.asarray(other.columns[role]).astype(np.dtype(coll.dtypes.get(col, "float32")))
        out[col] = ak.unflatten(values, counts)
    for col, values in other.jet_kept.items():
        out[col] = ak.unflatten(values, counts)
    return out


def open_file_writer(path: str, fmt: str, infos: list[TableInfo], root_compression: str = "input",
                     main: int = 0, input_compression: str | None = None) -> Any:
    """A writer for every table of a ``.aez``: every tree of a ROOT output
    (:class:`~jetzip.tables.root_writer.RootFileWriter`), else the first table with jets
    (:class:`FileWriter`). `root_compression`: see :func:`~jetzip.tables.root_writer.compression`;
    `input_compression`: the source file's, as its header recorded it."""
    if fmt == "root":
        from .root_writer import RootFileWriter

        return RootFileWriter(path, infos, root_compression, main, input_compression)
    return FileWriter(path, fmt, infos, root_compression, main)
