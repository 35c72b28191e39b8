"""CSV tables: a header row, then one jet per row. Written by numpy, read in blocks of rows.

A jagged table written as CSV gets an ``event`` column (the event index) before the jet
columns; events without jets cannot be represented in CSV and are lost there (use ROOT or
HDF5 to keep them).
"""
from __future__ import annotations

import fnmatch
import io
import os
import sys
from typing import IO, Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..features import infer_units
from .base import JetChunk, TableInfo
from .layouts import PRESETS, choose_collection


class CsvSource:
    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = ()) -> None:
        if tree:
            raise InputError(f"{path}: --tree does not apply to CSV files")
        self.path = path
        try:
            self.f = open(path, "r", newline="", encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{path} does not exist") from None
        except OSError as exc:
            raise InputError(f"cannot open {path}: {exc.strerror}") from None
        try:
            self._setup(columns, preset, collection, units, keep)
        except BaseException:
            self.f.close()
            raise

    def _setup(self, columns, preset_name, collection, units, keep) -> None:
        try:
            header = self.f.readline()
        except UnicodeDecodeError:
            raise InputError(f"{self.path}: not a text CSV file") from None
        if not header.strip():
            raise InputError(f"{self.path} is empty (no header row)")
        self.names = [h.strip().strip('"') for h in header.strip().split(",")]
        if len(set(self.names)) != len(self.names):
            raise InputError(f"{self.path}: duplicate column names in the header")
        preset = PRESETS[preset_name] if preset_name else None
        coll = choose_collection(self.names, where=self.path, columns=columns, collection=collection,
                                 preset=preset if preset and preset.collection else None)
        used = coll.used_columns(self.names)
        kept: list[str] = []
        for pattern in keep:
            hits = [n for n in self.names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise InputError(f"{self.path}: --keep-branches {pattern!r} matches no column")
            kept += [h for h in hits if h not in kept]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.used = used
        self.kept = kept
        self.data_start = self.f.tell()
        units_inferred, reason = False, ""
        if units is None and preset is not None and preset.units:
            units, reason = preset.units, f"the {preset.name} layout is in {preset.units}"
        if units is None:
            first = next(self._blocks(5000), None)
            sample = first[0] if first is not None else {r: np.zeros(0) for r in used}
            units, reason = infer_units(sample)
            units_inferred = True
        self.info = TableInfo(
            file=os.path.basename(self.path), format="csv", tree=None, layout="flat",
            collection=coll.name, jagged=False, counter=None, columns=used,
            representation=coll.representation or "", units=units, units_inferred=units_inferred,
            units_reason=reason, dtypes={n: "float64" for n in [*used.values(), *kept]},
            kept_branches=kept, other_branches=[n for n in self.names if n not in used.values() and n not in kept])

    def _blocks(self, rows: int) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        self.f.seek(self.data_start)
        line_no = 1
        ncol = len(self.names)
        while True:
            lines = []
            for line in self.f:
                line_no += 1
                if line.strip():
                    lines.append((line_no, line))
                if len(lines) >= rows:
                    break
            if not lines:
                return
            block = np.empty((len(lines), ncol), dtype=np.float64)
            for i, (no, line) in enumerate(lines):
                cells = line.rstrip("\r\n").split(",")
                if len(cells) != ncol:
                    raise InputError(f"{self.path}: line {no} has {len(cells)} cells, the header has {ncol}")
                try:
                    block[i] = [float(c) if c.strip() else np.nan for c in cells]
                except ValueError:
                    bad = next(c for c in cells if not _is_number(c))
                    raise InputError(f"{self.path}: line {no}: non-numeric cell {bad.strip()!r}") from None
            cols = {role: block[:, self.index[n]] for role, n in self.used.items()}
            kept = {n: block[:, self.index[n]] for n in self.kept}
            yield cols, kept

    def chunks(self, jets_per_chunk: int = 1 << 18) -> Iterator[JetChunk]:
        first = 0
        try:
            for cols, kept in self._blocks(min(jets_per_chunk, 1 << 18)):
                n = len(next(iter(cols.values())))
                yield JetChunk(cols, None, kept, first, first)
                first += n
        except UnicodeDecodeError:
            raise InputError(f"{self.path}: not a text CSV file (undecodable bytes after row {first})") from None

    def close(self) -> None:
        self.f.close()


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return not cell.strip()


class CsvWriter:
    """Write CSV to a path or to stdout (``-``)."""

    def __init__(self, path: str, info: TableInfo, names: dict[str, str], kept_dtypes: dict[str, str]) -> None:
        self.stream: IO[str] = sys.stdout if path == "-" else open(path, "w", newline="")
        self.own = path != "-"
        self.info = info
        self.names = names
        self.kept_names = list(kept_dtypes) if not info.jagged else []
        self.event = 0
        header = (["event"] if info.jagged else []) + list(names.values()) + self.kept_names
        self.stream.write(",".join(header) + "\n")

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray]) -> None:
        n = len(next(iter(columns.values())))
        parts = []
        fmts = []
        if self.info.jagged:
            assert counts is not None
            parts.append(np.repeat(np.arange(self.event, self.event + len(counts)), counts.astype(np.int64)))
            fmts.append("%d")
            self.event += len(counts)
        for role in self.names:
            parts.append(columns[role].astype(np.float32).astype(np.float64))
            fmts.append("%.9g")
        for k in self.kept_names:
            v = kept[k]
            parts.append(v)
            fmts.append("%d" if v.dtype.kind in "iub" else "%.17g")
        if n == 0:
            return
        buf = io.StringIO()
        np.savetxt(buf, np.column_stack([p.astype(np.float64) for p in parts]), fmt=fmts, delimiter=",")
        self.stream.write(buf.getvalue())

    def close(self) -> None:
        if self.own:
            self.stream.close()
        else:
            self.stream.flush()
