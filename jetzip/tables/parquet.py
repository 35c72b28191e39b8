"""Parquet tables with pyarrow (optional: ``pip install 'jetzip[parquet]'``).

What coffea-style analyses pass around, written by ``ak.to_parquet`` or pandas/pyarrow:

- flat columns, one jet per row (``pt``, ``eta``, ...), or several jets per row
  (``pxj1 ... pxj2``, see :mod:`jetzip.tables.wide`);
- jagged list columns, one row per event (``Jet_pt: list<float>``), maybe with a counter
  column (``nJet``) that is checked and restored; NanoAOD written as Parquet (``nJet`` and
  ``Jet_pt`` among its columns) reads the ``Jet`` collection, as the ROOT reader does, and with
  ``--collection all`` (or ``Jet,Muon``) every further collection of lists (``Muon_pt``, its
  per-member lists ``Muon_charge`` and counter ``nMuon``, checked and written back);
- jagged records (``Jet: list<struct<pt, eta, phi, mass, ...>>``), as awkward writes an array
  of records; the columns are then called ``Jet.pt``, ``Jet.eta``, ... (collection ``Jet``);
- one row per jet with its constituents in list columns (particle_transformer's
  ``jet_pt ... jet_energy`` beside ``part_px ... part_energy``): the jets are read, and
  ``--collection part`` reads the constituents instead, the ``jet_*`` scalars then being kept
  per row.

What is carried (nothing is dropped without a word):

- numeric columns of one value per row: ``kept_branches``;
- numeric list columns of the jet collection (``Jet_btag``, ``Jet.jetId``): ``jet_branches``,
  one value per jet (their lengths must be the jets');
- every other column (other collections, strings, nested lists, constituent lists beside flat
  jets): :attr:`JetChunk.carried`, one awkward array entry per row, named in file order in
  ``info.extra["carried"]`` and, where :class:`TableInfo` has it (the container that stores
  carried columns), ``carried_branches``; without it they are also listed in ``other_branches``,
  so that ``decompress`` says they are missing.

``drop`` patterns leave columns out, ``keep`` patterns carry only what they name (the jet
record's own fields always).

The writer restores the file's own arrow schema (types, field order, nullability and, when every
column came back, its key-value metadata such as pandas' or awkward's), carried columns in their
places, zstd-compressed; jet columns keep their original float type, holding the decoded values.

Memory and time are bounded by the data (issue 23): rows are read one row group at a time, in
record batches of about the requested number of jets by that row group's own jets per row (a
skewed file is read in small batches where its jets are dense); a row group whose jet columns
declare more than ``MAX_VALUES_PER_BYTE`` values per stored byte is refused at open (100 events
of 10^6 jets stored in 121 kB are not data a jet table has). Reading starts at the row group
that holds ``entry_start`` (issue 24), and ``first_jet`` is exact: the jets of the row groups
before it come from the column statistics (except in lists holding null items, or a file
without statistics, or several jets per row, where it counts from ``entry_start``'s first jet).
"""
from __future__ import annotations

import base64
import dataclasses
import fnmatch
import os
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import InputError, JetzipError
from ..features import infer_units
from .base import CollectionChunk, CollectionInfo, JetChunk, TableInfo
from .layouts import PRESETS, choose_collections, every_but, split_name
from .wide import Wide, WideChunk, entry_bounds, find_jets, match_any, pad_of, stack, unstack, wide_of

COUNTER_NAMES = ("counts", "n_jets", "njets", "njet", "nJet", "jet_n", "n_jet")
MAX_EVENT_JETS = 1 << 20
SAMPLE_JETS = 5000
SCHEMA_LIMIT = 1 << 20  # bytes of serialized schema (with its metadata) kept in the header
# A row group's jet columns may hold at most this many values per stored byte, once they hold
# more than BOMB_MIN_VALUES: real jets take several bytes each, whatever the codec.
MAX_VALUES_PER_BYTE = 256
BOMB_MIN_VALUES = 1 << 22
ZSTD_LEVEL = 3
# TableInfo.carried_branches comes with the container that stores JetChunk.carried (format 3.0)
CARRIED_FIELD = "carried_branches" in {f.name for f in dataclasses.fields(TableInfo)}
# Columns read from one file: arrow spends about 5 kB and 30 us per column of every record
# batch, so 10^5 columns of a 26 MB file took 1.2 GB (issue 23); real jet tables have a few
# thousand (NanoAOD as Parquet: 1,499).
MAX_COLUMNS = 1 << 14


def _pyarrow():
    from ..extras import pyarrow, pyarrow_parquet

    try:
        return pyarrow(), pyarrow_parquet()
    except JetzipError as exc:
        raise InputError(str(exc)) from None


@dataclasses.dataclass
class _PCol:
    name: str  # 'pt', 'Jet_pt', 'Jet.pt'
    top: str  # top-level field
    sub: str | None  # struct field, for records
    jagged: bool
    dtype: np.dtype


def _numeric_type(pa, t, cache: dict) -> np.dtype | None:
    if t in cache:
        return cache[t]
    out = None
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        try:
            out = np.dtype(t.to_pandas_dtype())
        except (NotImplementedError, TypeError):
            out = None
    cache[t] = out
    return out


def _numeric_fields(pa, t, cache: dict) -> list[tuple[str, np.dtype]] | None:
    """(name, dtype) of each field of struct type `t`; None when it has none or one is not a number."""
    subs = [(t.field(i).name, _numeric_type(pa, t.field(i).type, cache)) for i in range(t.num_fields)]
    numeric = [(n, d) for n, d in subs if d is not None]
    return numeric if subs and len(numeric) == len(subs) else None


def _columns_of(pa, schema) -> tuple[list[_PCol], list[str]]:
    """Numeric columns (flat, lists, fields of records), and the top-level fields that are not."""
    cols: list[_PCol] = []
    other: list[str] = []
    cache: dict = {}
    for field in schema:
        t = field.type
        dt = _numeric_type(pa, t, cache)
        if dt is not None:
            cols.append(_PCol(field.name, field.name, None, False, dt))
            continue
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            v = t.value_type
            dt = _numeric_type(pa, v, cache)
            if dt is not None:
                cols.append(_PCol(field.name, field.name, None, True, dt))
                continue
            if pa.types.is_struct(v):
                subs = _numeric_fields(pa, v, cache)
                if subs is not None:
                    cols += [_PCol(f"{field.name}.{n}", field.name, n, True, d) for n, d in subs]
                    continue
        elif pa.types.is_struct(t):
            subs = _numeric_fields(pa, t, cache)
            if subs is not None:
                cols += [_PCol(f"{field.name}.{n}", field.name, n, False, d) for n, d in subs]
                continue
        other.append(field.name)
    return cols, other


def _values(pa, arr, dtype: np.dtype) -> np.ndarray:
    """An arrow array of numbers -> numpy (nulls as NaN for floats, 0 for integers)."""
    if arr.null_count:
        fill = np.nan if dtype.kind == "f" else (False if dtype.kind == "b" else 0)
        arr = arr.fill_null(pa.scalar(fill, type=arr.type))
    return np.asarray(arr.to_numpy(zero_copy_only=False)).astype(dtype, copy=False)




class ParquetSource:
    """A jet table in a Parquet file (see the module docstring); ``n_entries`` rows."""

    wide: Wide | None  # several jets per row (tables.wide), or None
    n_entries: int

    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = (), drop: Sequence[str] = ()) -> None:
        pa, pq = _pyarrow()
        self.pa = pa
        if tree:
            raise InputError(f"{path}: --tree does not apply to Parquet files")
        self.path = path
        try:
            self.file = pq.ParquetFile(path)
        except FileNotFoundError:
            raise InputError(f"{path} does not exist") from None
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{path}: cannot read as a Parquet file ({exc})") from None
        try:
            self._setup(columns, preset, collection, units, tuple(keep), tuple(drop))
        except BaseException:
            self.file.close()
            raise

    # --- setup ------------------------------------------------------------------------------

    def _setup(self, columns, preset_name, collection, units, keep, drop) -> None:
        schema = self.file.schema_arrow
        if len(schema) > MAX_COLUMNS and not keep and not drop:
            self._too_wide(len(schema))
        cols, not_numeric = _columns_of(self.pa, schema)
        self.cols = {c.name: c for c in cols}
        names = list(self.cols)
        every = every_but(collection)[0] and columns is None
        listed = [c.strip() for c in (collection or "").split(",") if c.strip()] if not every else []
        several = every or (len(listed) > 1 and columns is None)  # 'all', 'Jet,Muon': further collections
        if preset_name is None and (collection is None or every or listed[:1] == ["Jet"]) and columns is None \
                and "nJet" in self.cols and "Jet_pt" in self.cols:
            preset_name = "nanoaod"  # NanoAOD written as Parquet: its Jet, as the ROOT reader reads it
        preset = PRESETS[preset_name] if preset_name else None
        coll_name, used, representation = self._choose_jets(names, columns, preset_name,
                                                            None if every else (listed[0] if several else collection))
        self.others = self._other_collections(names, coll_name, collection, preset) if several else []
        kept, jet_branches, carried, dropped = self._plan_carry(schema, cols, coll_name, keep, drop)
        read = len(schema) - len(dropped)
        if read > MAX_COLUMNS:
            self._too_wide(read)
        self.n_entries = self.file.metadata.num_rows
        self._plan_row_groups()
        self._describe(schema, cols, not_numeric, preset, units, coll_name, used, representation, kept,
                       jet_branches, carried, dropped)

    def _too_wide(self, n: int) -> None:
        raise InputError(f"{self.path}: {n} columns to carry, more than jetzip reads from one Parquet file "
                         f"({MAX_COLUMNS}); choose what to carry with --keep-branches or --drop-branches")

    def _choose_jets(self, names, columns, preset_name, collection) -> tuple[str, dict[str, str], str]:
        where = self.path
        self.wide, coll_name, used, representation = find_jets(
            names, where=where, collection=collection, columns=columns, preset_name=preset_name)
        jet_names = self.wide.names() if self.wide is not None else list(used.values())
        jagged = {self.cols[n].jagged for n in jet_names}
        if len(jagged) > 1:
            raise InputError(f"{where}: jet columns mix lists and plain numbers ({', '.join(jet_names)})")
        self.jagged = jagged.pop() or self.wide is not None
        self.lists = self.jagged and self.wide is None
        counter = None
        if self.lists:
            wanted = {c.lower() for c in COUNTER_NAMES}
            if coll_name:
                wanted |= {f"n{coll_name}".lower(), f"{coll_name}_n".lower()}
            counter = next((c.name for c in self.cols.values() if not c.jagged and c.name.lower() in wanted
                            and c.dtype.kind in "iu"), None)
        self.counter = counter
        self.used = used
        self.jet_names = jet_names
        return coll_name, used, representation

    def _other_collections(self, names: list[str], coll_name: str, collection: str | None, preset: Any
                           ) -> list[CollectionInfo]:
        """``--collection all`` (or ``Jet,Muon``) on jagged lists (NanoAOD as Parquet): every
        further collection of plain list columns (``Muon_pt``; not records), with its counter
        column (``nMuon``) if any.

        Raises:
            InputError: a named collection that is not a collection of plain list columns."""
        if not self.lists:
            return []
        out = []
        taken = set(self.jet_names)
        for c in choose_collections(names, where=self.path, collection=collection, preset=preset):
            used = c.used_columns(names)
            if c.name == coll_name or not c.name or set(used.values()) & taken:
                continue
            if not all(self.cols[n].jagged and self.cols[n].sub is None for n in used.values()):
                if every_but(collection)[0]:
                    continue  # records, numbers per row: carried as they are
                raise InputError(f"{self.path}: collection {c.name!r} is not a collection of lists "
                                 f"({', '.join(used.values())}); jetzip codes further collections of lists")
            counter = next((n for n in (f"n{c.name}", f"{c.name}_n") if n in self.cols
                            and not self.cols[n].jagged and self.cols[n].dtype.kind in "iu"), None)
            taken |= set(used.values())
            out.append(CollectionInfo(c.name, used, c.representation or "", "GeV", counter=counter))
        return out

    def _of_collection(self, c: _PCol, coll_name: str, jet_tops: set[str]) -> bool:
        """Whether list column `c` holds one value per jet of the jet collection: a field of the
        jet record, or a list named like the collection (``Jet_btag``; no prefix for ``btag``
        beside ``pt``)."""
        if c.top in jet_tops:
            return True
        prefix = split_name(c.name)[0]
        return prefix == coll_name or (bool(coll_name) and c.name.startswith(f"{coll_name}_"))

    def _plan_carry(self, schema, cols: list[_PCol], coll_name: str, keep, drop
                    ) -> tuple[list[str], list[str], list[str], set[str]]:
        """(kept branches, per-jet branches, carried top-level fields, top-level fields left out
        on purpose) (see the module docstring)."""
        where = self.path
        tops = [f.name for f in schema]
        for option, patterns in (("--keep-branches", keep), ("--drop-branches", drop)):
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(n, pattern) for n in [*self.cols, *tops]):
                    raise InputError(f"{where}: {option} {pattern!r} matches no column")
        if self.wide is not None:  # per-slot variables, by pattern name
            self.wide.extras = {pn: cs for pn, cs in self.wide.extras.items()
                                if not match_any(pn, drop) and not any(match_any(x, drop) for x in cs)
                                and (not keep or match_any(pn, keep) or any(match_any(x, keep) for x in cs))}
            self.jet_names = self.wide.names()
        jet_set = set(self.jet_names)
        jet_tops = {self.cols[n].top for n in self.jet_names}
        kept: list[str] = []
        jet_branches: list[str] = []
        in_use: set[str] = set(jet_tops) | ({self.counter} if self.counter else set())
        dropped: set[str] = set()
        for oc in self.others:  # further collections: their columns and counters are theirs
            in_use |= {*oc.columns.values(), *([oc.counter] if oc.counter else [])}
        theirs = {n for oc in self.others for n in [*oc.columns.values(), *([oc.counter] if oc.counter else [])]}
        for c in cols:
            if c.name in jet_set or c.name == self.counter or c.name in theirs:
                continue
            if match_any(c.name, drop) or (keep and not match_any(c.name, keep) and c.top not in jet_tops):
                dropped.add(c.top)
                continue
            if not c.jagged:
                kept.append(c.name)
                in_use.add(c.top)
            elif c.jagged and self.lists and self._of_collection(c, coll_name, jet_tops):
                jet_branches.append(c.name)
                in_use.add(c.top)
            elif c.jagged and c.sub is None and (owner := next((oc for oc in self.others if self._of_collection(
                    c, oc.name, set())), None)) is not None:
                owner.jet_branches.append(c.name)  # Muon_charge: one value per muon
                in_use.add(c.top)
        # a record is carried whole: its numeric fields stay columns only when every field is one
        bad = {c.top for c in cols if c.top in dropped and c.name in jet_set}
        if bad:
            raise InputError(f"{where}: the jet record(s) {', '.join(sorted(bad))} hold fields that "
                             "cannot all be carried; use --columns or drop fewer branches")
        kept = [n for n in kept if self.cols[n].top not in dropped]
        jet_branches = [n for n in jet_branches if self.cols[n].top not in dropped]
        if self.wide is not None:
            jet_branches = list(self.wide.extras)
        carried = [t for t in tops if t not in in_use and t not in dropped
                   and not match_any(t, drop) and (not keep or match_any(t, keep))]
        dropped |= {t for t in tops if t not in in_use and t not in carried}
        self.kept = kept
        self.jet_branches = jet_branches
        self.carried = carried
        return kept, jet_branches, carried, dropped

    def _plan_row_groups(self) -> None:
        """Rows and jets of each row group (from the file's metadata), and the bomb check."""
        meta = self.file.metadata
        paths = {}
        leaf = {}
        for n in self.jet_names:
            c = self.cols[n]
            paths[n] = (c.top, c.sub)
        wanted = set(paths.values())
        schema = self.file.schema
        for j in range(meta.num_columns):
            if not wanted:
                break
            parts = schema.column(j).path.split(".")
            key = (parts[0], parts[-1] if len(parts) > 1 and parts[-1] not in ("element", "item") else None)
            if key in wanted:
                leaf[key] = j
                wanted.discard(key)
        first = leaf.get(paths[self.jet_names[0]])
        self.group_rows: list[int] = []
        self.group_jets: list[int] = []
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            rows = rg.num_rows
            self.group_rows.append(rows)
            values = stored = 0
            for j in leaf.values():
                col = rg.column(j)
                values += col.num_values
                stored += col.total_compressed_size
            if values >= BOMB_MIN_VALUES and values > MAX_VALUES_PER_BYTE * max(stored, 1):
                raise InputError(f"{self.path}: row group {g} declares {values} values of its jet columns in "
                                 f"{stored} bytes ({values // max(stored, 1)} per byte): not jet data; refusing "
                                 "to expand it (memory and time stay bounded by the file's size)")
            jets = rows
            if self.lists and first is not None:
                col = rg.column(first)
                stats = col.statistics
                # the statistics count the values that are not null: the jets, unless the lists
                # hold null items (read as NaN jets); without statistics, an upper bound
                jets = int(stats.num_values) if stats is not None and stats.num_values is not None \
                    else int(col.num_values)
            self.group_jets.append(jets)

    def _describe(self, schema, cols, not_numeric, preset, units, coll_name, used, representation, kept,
                  jet_branches, carried, dropped) -> None:
        units_inferred, reason = False, ""
        if units is None and preset is not None and preset.units:
            units, reason = preset.units, f"the {preset.name} layout is in {preset.units}"
        if self.wide is not None or units is None:
            sample = next(self._chunks(SAMPLE_JETS, 0, self.n_entries, sample=True), None)
            if sample is not None and self.wide is not None:
                self.wide.pad = pad_of(sample, self.wide)
            if units is None:
                if isinstance(sample, JetChunk):
                    roles = sample.columns
                elif sample is not None and self.wide is not None:
                    roles = stack(sample, self.wide)[0]
                else:
                    roles = {r: np.empty(0) for r in used}
                units, reason = infer_units(roles)
                units_inferred = True
        names_dt: dict[np.dtype, str] = {}

        def dtype_name(n: str) -> str:  # dtype.name is slow: once per dtype, not per column
            dt = self.cols[n].dtype
            if dt not in names_dt:
                names_dt[dt] = dt.name
            return names_dt[dt]
        dtypes = {n: dtype_name(n) for n in [*self.jet_names, *kept]}
        if self.wide is not None:
            dtypes.update({pn: dtype_name(c[0]) for pn, c in self.wide.extras.items()})
        else:
            dtypes.update({n: dtype_name(n) for n in jet_branches})
        if self.counter:
            dtypes[self.counter] = dtype_name(self.counter)
        for oc in self.others:
            oc.units = units
            oc.dtypes = {n: dtype_name(n) for n in [*oc.columns.values(), *oc.jet_branches]}
            if oc.counter:
                dtypes[oc.counter] = dtype_name(oc.counter)
        extra: dict[str, Any] = {"parquet": {"schema": None}}
        keep_schema = schema
        if dropped:
            keep_schema = self.pa.schema([f for f in schema if f.name not in dropped])
        blob = keep_schema.serialize().to_pybytes()
        if len(blob) > SCHEMA_LIMIT:
            keep_schema = keep_schema.remove_metadata()
            blob = keep_schema.serialize().to_pybytes()
            extra["not_carried"] = ["the file's schema metadata (too large)"]
        extra["parquet"]["schema"] = base64.b64encode(blob).decode()
        extra["parquet"]["complete"] = not dropped  # the file's own metadata fits what comes back
        if carried:
            extra["carried"] = carried
        if self.wide is not None:
            extra.update(self.wide.to_extra())
        jet_set = set(self.jet_names)
        other = [*[c.name for c in cols if c.top in dropped and c.name not in jet_set],
                 *[t for t in not_numeric if t in dropped]]
        described: dict[str, Any] = {"other_branches": [*other, *carried]}
        if CARRIED_FIELD:  # a container that stores carried columns: they are not missing
            described = {"other_branches": other, "carried_branches": carried}
        self.info = TableInfo(
            file=os.path.basename(self.path), format="parquet", tree=None,
            layout="jets-per-row" if self.wide else ("jagged" if self.lists else "flat"), collection=coll_name,
            jagged=self.jagged, counter=self.counter, columns=self.wide.columns if self.wide else used,
            representation=representation, units=units,
            units_inferred=units_inferred, units_reason=reason, dtypes=dtypes, kept_branches=kept,
            jet_branches=jet_branches, branch_order=[c.name for c in cols], extra=extra,
            collections=self.others, **described)

    # --- reading ----------------------------------------------------------------------------

    def _arrays(self, batch, names: Sequence[str], index: dict[str, int], first_entry: int = 0
                ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Numpy arrays of the named columns of a record batch (whose first row is entry
        `first_entry` of the file), and the jets per row of the lists."""
        pa = self.pa
        out: dict[str, np.ndarray] = {}
        lengths = None
        for n in names:
            c = self.cols[n]
            arr = batch.column(index[c.top])
            if c.jagged:
                lens = _values(pa, arr.value_lengths(), np.dtype(np.int64))
                if lengths is None:
                    lengths = lens
                elif not np.array_equal(lens, lengths):
                    i = int(np.argmax(lens != lengths))
                    what = "a per-jet column must hold a value per jet" if n not in self.jet_names else \
                        "the four-vector columns of a collection must hold the same jets"
                    hint = "" if n in self.jet_names else f" (or leave {n} out: --drop-branches {n})"
                    raise InputError(f"{self.path}: event {first_entry + i} has {int(lens[i])} values in {n} "
                                     f"but {int(lengths[i])} in {names[0]}; {what}{hint}")
                arr = arr.flatten()
            if c.sub is not None:
                arr = arr.field(c.sub)
            out[n] = _values(pa, arr, c.dtype)
        return out, lengths

    def _batch_rows(self, g: int, target: int) -> int:
        """Rows per record batch in row group `g`: about `target` jets at its jets per row."""
        if self.wide is not None:
            return max(1, target // len(self.wide.jets))
        if not self.lists:
            return target
        rows = max(self.group_rows[g], 1)
        per_row = max(self.group_jets[g] / rows, 1e-3)
        return int(max(1, min(target / per_row, rows)))

    def chunks(self, jets_per_chunk: int = 1 << 18, entry_start: int = 0,
               entry_stop: int | None = None) -> Iterator[JetChunk]:
        """Chunks of whole events with about `jets_per_chunk` jets, covering entries
        ``[entry_start, entry_stop)`` (see :class:`~jetzip.tables.JetSource`); reading starts at
        the row group that holds `entry_start`."""
        start, stop = entry_bounds(entry_start, entry_stop, self.n_entries)
        return self._chunks(max(1, int(jets_per_chunk)), start, stop)

    def _chunks(self, target: int, start: int, stop: int, sample: bool = False) -> Iterator[Any]:
        """Chunks of rows ``[start, stop)`` (`sample`: the jet columns of the first batch only, as
        a mapping of columns for a table of several jets per row)."""
        pa = self.pa
        if sample:
            tops = list(dict.fromkeys(self.cols[n].top for n in self.jet_names))
        else:
            per_jet = self.jet_branches if self.wide is None else []
            numeric = [self.cols[n].top for n in [*self.jet_names, *self.kept, *per_jet]]
            for oc in self.others:
                numeric += [*oc.columns.values(), *oc.jet_branches, *([oc.counter] if oc.counter else [])]
            tops = list(dict.fromkeys([*numeric, *([self.counter] if self.counter else []), *self.carried]))
        index = {t: i for i, t in enumerate(tops)}
        group_start = 0
        first_jet = 0
        try:
            for g, rows in enumerate(self.group_rows):
                g0, g1 = group_start, group_start + rows
                group_start = g1
                if g1 <= start:
                    first_jet += self.group_jets[g] if self.wide is None else 0  # jets per row: counted from start
                    continue
                if g0 >= stop:
                    return
                row = g0
                for batch in self.file.iter_batches(batch_size=self._batch_rows(g, target), row_groups=[g],
                                                    columns=tops, use_threads=False):
                    b0, b1 = row, row + batch.num_rows
                    row = b1
                    if b1 <= start:  # rows of this row group before the start: only their jets counted
                        first_jet += self._jets_in(batch, index)
                        continue
                    if b0 < start:
                        first_jet += self._jets_in(batch.slice(0, start - b0), index)
                        batch, b0 = batch.slice(start - b0), start
                    if b1 > stop:
                        batch = batch.slice(0, stop - b0)
                    if sample:
                        yield self._sample_of(batch, index)
                        return
                    chunk = self._chunk(batch, index, first_jet, b0)
                    batch = None  # the arrow batch is not held while the chunk is used (wide tables)
                    # a row group's jets may be denser in some rows than its mean: pieces of
                    # about `target` jets all the same
                    yield from chunk.split(target, max(chunk.n_entries, 1))
                    first_jet += chunk.n_jets
                    if b1 >= stop:
                        return
        except pa.ArrowException as exc:
            raise InputError(f"{self.path}: cannot read ({exc})") from None

    def _jets_in(self, batch, index: dict[str, int]) -> int:
        if not self.lists:
            return batch.num_rows if self.wide is None else 0
        arr = batch.column(index[self.cols[self.jet_names[0]].top])
        return int(_values(self.pa, arr.value_lengths(), np.dtype(np.int64)).sum())

    def _sample_of(self, batch, index: dict[str, int]) -> Any:
        raw, lengths = self._arrays(batch, self.jet_names, index)
        if self.wide is not None:
            return raw  # the padding is decided from the raw slots
        return JetChunk({role: raw[n] for role, n in self.used.items()}, lengths, {}, 0, 0)

    def _chunk(self, batch, index: dict[str, int], first_jet: int, first_entry: int) -> JetChunk:
        if self.lists:
            jets, lengths = self._arrays(batch, [*self.jet_names, *self.jet_branches], index, first_entry)
            assert lengths is not None
            if lengths.max(initial=0) > MAX_EVENT_JETS:
                i = int(np.argmax(lengths > MAX_EVENT_JETS))
                raise InputError(f"{self.path}: event {first_entry + i} has {int(lengths[i])} jets "
                                 f"(more than {MAX_EVENT_JETS})")
            counts = lengths.astype(np.uint32)
            if self.counter:
                declared, _ = self._arrays(batch, [self.counter], index)
                if not np.array_equal(declared[self.counter], lengths):
                    i = int(np.argmax(declared[self.counter] != lengths))
                    raise InputError(f"{self.path}: event {first_entry + i}: {self.counter} says "
                                     f"{declared[self.counter][i]} jets, the lists hold {int(lengths[i])}")
            columns = {role: jets[name] for role, name in self.used.items()}
            jet_kept = {k: jets[k] for k in self.jet_branches}
        else:
            raw, _ = self._arrays(batch, self.jet_names, index)
            if self.wide is not None:
                columns, counts_, jet_kept = stack(raw, self.wide)
                kept, _ = self._arrays(batch, self.kept, index)
                return WideChunk(columns, counts_, kept, first_jet, first_entry, jet_kept,
                                 self._carried(batch, index))
            columns = {role: raw[name] for role, name in self.used.items()}
            counts, jet_kept = None, {}
        kept, _ = self._arrays(batch, self.kept, index)
        return JetChunk(columns, counts, kept, first_jet, first_entry, jet_kept, self._carried(batch, index),
                        self._others(batch, index, first_entry))

    def _others(self, batch, index: dict[str, int], first_entry: int) -> dict[str, CollectionChunk]:
        """The further collections of a record batch (``--collection all``), counters checked."""
        out = {}
        for oc in self.others:
            names = [*oc.columns.values(), *oc.jet_branches]
            arrays, lengths = self._arrays(batch, names, index, first_entry)
            assert lengths is not None
            if oc.counter:
                declared, _ = self._arrays(batch, [oc.counter], index)
                if not np.array_equal(declared[oc.counter], lengths):
                    i = int(np.argmax(declared[oc.counter] != lengths))
                    raise InputError(f"{self.path}: event {first_entry + i}: {oc.counter} says "
                                     f"{declared[oc.counter][i]} members of {oc.name}, the lists hold "
                                     f"{int(lengths[i])}")
            out[oc.name] = CollectionChunk({role: arrays[n] for role, n in oc.columns.items()},
                                           lengths.astype(np.uint32), {k: arrays[k] for k in oc.jet_branches})
        return out

    def _carried(self, batch, index: dict[str, int]) -> dict[str, Any]:
        if not self.carried:
            return {}
        import awkward as ak

        return {t: ak.from_arrow(batch.column(index[t])) for t in self.carried}

    def extras(self) -> bytes | None:
        return None  # one table per file; its schema metadata travels in info.extra

    def close(self) -> None:
        self.file.close()


class ParquetWriter:
    """Write the table with the original's arrow schema (or a plain one for other inputs),
    zstd-compressed; carried columns (:attr:`JetChunk.carried`, awkward arrays) in their places.

    The file is opened at the first write, when it is known which carried columns come back:
    a carried column of the schema that does not come is left out (with the schema's metadata).
    """

    def __init__(self, path: str, info: TableInfo, names: dict[str, str], kept_dtypes: dict[str, str]) -> None:
        pa, pq = _pyarrow()
        self.pa, self.pq = pa, pq
        self.path = path
        self.info = info
        self.names = names
        self.kept_dtypes = dict(kept_dtypes)
        self.wide = wide_of(info)
        self.jet_dtypes = {n: info.dtypes.get(n, "float64") for n in info.jet_branches
                           if n not in kept_dtypes and self.wide is None}
        self.counter = info.counter if info.jagged and not self.wide else None
        # counters of further collections (nMuon): written from their lists' lengths
        self.other_counters = {c.counter: next(iter(c.columns.values())) for c in info.collections
                               if c.counter and info.jagged}
        self.carried_names = carried_names(info) if info.format == "parquet" else []
        self.writer: Any = None
        self.schema: Any = None
        try:  # the output can be written: said now, before any decoding
            with open(path, "wb"):
                pass
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc}") from None

    def _open(self, carried: dict[str, Any]) -> None:
        pa, pq = self.pa, self.pq
        info = self.info
        schema = None
        stored = (info.extra.get("parquet") or {}).get("schema") if info.format == "parquet" else None
        present = self._present_names() | set(carried)
        if stored:
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(stored)))
            if not (info.extra.get("parquet") or {}).get("complete", True):
                schema = schema.remove_metadata()
            for f in list(schema):  # leave out what does not come back (e.g. dropped at compress)
                leaves = ([f.name] if not _is_record(pa, f.type) or f.name in self.carried_names
                          else [f"{f.name}.{s.name}" for s in _record_fields(pa, f.type)])
                if not all(leaf in present for leaf in leaves):
                    schema = schema.remove(schema.get_field_index(f.name)).remove_metadata()
        if schema is None:
            schema = self._plain_schema(carried)
        self.schema = schema
        # awkward writes list items as 'item', the Parquet spec (pyarrow's default) as 'element'
        compliant = not any(_is_list(pa, f.type) and f.type.value_field.name == "item" for f in schema)
        try:
            self.writer = pq.ParquetWriter(self.path, schema, use_compliant_nested_type=compliant,
                                           compression="zstd", compression_level=ZSTD_LEVEL)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot write {self.path}: {exc}") from None

    def _present_names(self) -> set[str]:
        jets = self.wide.names() if self.wide else list(self.names.values())
        return {*jets, *self.kept_dtypes, *self.jet_dtypes, *([self.counter] if self.counter else []),
                *self.other_counters}

    def _plain_schema(self, carried: dict[str, Any]) -> Any:
        pa = self.pa
        info = self.info
        fields = []
        order = {n: i for i, n in enumerate(info.branch_order)}
        jets = self.wide.names() if self.wide else list(self.names.values())
        extra_dtype = {c: info.dtypes.get(pn, "float64") for pn, cs in (self.wide.extras.items() if self.wide else [])
                       for c in cs}
        entries: list[tuple[str, Any]] = []
        for n in jets:
            t = pa.from_numpy_dtype(np.dtype(extra_dtype[n]) if n in extra_dtype else _jet_dtype(info, n))
            entries.append((n, pa.list_(t) if info.jagged and not self.wide else t))
        for counter in [*([self.counter] if self.counter else []), *self.other_counters]:
            entries.append((counter, pa.from_numpy_dtype(np.dtype(info.dtypes.get(counter, "uint32")))))
        for n, dt in self.jet_dtypes.items():
            entries.append((n, pa.list_(pa.from_numpy_dtype(np.dtype(dt)))))
        for n, dt in self.kept_dtypes.items():
            entries.append((n, pa.from_numpy_dtype(np.dtype(dt))))
        entries.sort(key=lambda e: order.get(e[0], len(order)))
        for n, arr in carried.items():  # other collections of another format's file, after the table
            entries.append((n, _to_arrow(arr).type))
        for n, t in entries:
            fields.append(pa.field(n, t))
        return pa.schema(fields)

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None,
              carried: dict[str, Any] | None = None) -> None:
        pa = self.pa
        jet_kept = jet_kept or {}
        carried = carried or {}
        if self.writer is None:
            self._open(carried)
        if self.wide:
            assert counts is not None
            per_row = unstack(columns, counts, self.wide, jet_kept,
                              dtype={n: _jet_dtype(self.info, n) for n in self.wide.names()})
            per_jet: dict[str, np.ndarray] = {}
        else:
            per_row = {}
            per_jet = {name: np.asarray(columns[role]) for role, name in self.names.items()}
            per_jet.update({k: np.asarray(v) for k, v in jet_kept.items() if k in self.jet_dtypes})
        if not self.info.jagged:
            per_row.update(per_jet)
        per_row.update({k: np.asarray(v) for k, v in kept.items() if k in self.kept_dtypes})
        if self.counter and counts is not None:
            per_row[self.counter] = counts
        for counter, first in self.other_counters.items():
            if first in carried:
                import awkward as ak

                per_row[counter] = np.asarray(ak.num(carried[first], axis=1))
        offsets = None
        if self.info.jagged and not self.wide:
            assert counts is not None
            offsets = np.concatenate([[0], np.cumsum(counts.astype(np.int64))])
        arrays = []
        for f in self.schema:
            t = f.type
            if f.name in carried:
                arr = _to_arrow(carried[f.name])
            elif _is_record(pa, t):
                subs = _record_fields(pa, t)
                source = per_jet if _is_list(pa, t) else per_row
                inner = pa.StructArray.from_arrays(
                    [pa.array(source[f"{f.name}.{s.name}"]).cast(s.type) for s in subs], fields=list(subs))
                arr = _list_array(pa, t, offsets, inner) if _is_list(pa, t) else inner
            elif _is_list(pa, t):
                arr = _list_array(pa, t, offsets, pa.array(per_jet[f.name]).cast(t.value_type))
            else:
                arr = pa.array(per_row[f.name]).cast(t)
            if not arr.type.equals(t):
                arr = arr.cast(t)
            arrays.append(arr)
        try:
            self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        except OSError as exc:
            raise InputError(f"cannot write Parquet output: {exc}") from None

    def close(self) -> None:
        try:
            if self.writer is None:
                self._open({})
            self.writer.close()
        except OSError as exc:
            raise InputError(f"cannot write Parquet output: {exc}") from None


def carried_names(info: TableInfo) -> list[str]:
    """The branches a table carries as awkward arrays (:attr:`JetChunk.carried`), in order."""
    return list(getattr(info, "carried_branches", None) or info.extra.get("carried") or [])


def _jet_dtype(info: TableInfo, name: str) -> np.dtype:
    """The type a jet column is written in: the input's floating type, else float32."""
    dt = np.dtype(info.dtypes.get(name, "float32"))
    return dt if dt.kind == "f" and dt.itemsize in (4, 8) else np.dtype(np.float32)


def _to_arrow(array: Any) -> Any:
    """An awkward (or arrow) array of carried values as an arrow array."""
    import awkward as ak

    if isinstance(array, ak.Array):
        return ak.to_arrow(array, extensionarray=False)
    return array


def _list_array(pa, t, offsets: np.ndarray | None, values) -> Any:
    assert offsets is not None
    if pa.types.is_large_list(t):
        return pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64)), values)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def _is_list(pa, t) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _is_record(pa, t) -> bool:
    return pa.types.is_struct(t) or (_is_list(pa, t) and pa.types.is_struct(t.value_type))


def _record_fields(pa, t):
    st = t.value_type if _is_list(pa, t) else t
    return [st.field(i) for i in range(st.num_fields)]
