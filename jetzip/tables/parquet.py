"""Parquet tables with pyarrow (optional: ``pip install 'jetzip[parquet]'``).

What coffea-style analyses pass around, written by ``ak.to_parquet`` or pandas/pyarrow:

- flat columns, one jet per row (``pt``, ``eta``, ...), or several jets per row
  (``pxj1 ... pxj2``, see :mod:`jetzip.tables.wide`);
- jagged list columns, one row per event (``Jet_pt: list<float>``), maybe with a counter
  column (``nJet``) that is checked and restored;
- jagged records (``Jet: list<struct<pt, eta, phi, mass, ...>>``), as awkward writes an array
  of records; the columns are then called ``Jet.pt``, ``Jet.eta``, ... (collection ``Jet``).

Every other numeric column is carried by default (``drop`` patterns leave columns out):
list columns with the jets' lengths per jet (``jet_branches``), flat ones per event or row
(``kept_branches``); a top-level column with anything that is not a number in it (strings,
deeper nesting) is not carried (``other_branches``). The writer restores the file's own arrow
schema (types, field order, nullability and, when every column came back, its key-value
metadata such as pandas' or awkward's), so jet columns keep their original float type; the
values are the decoded float32 ones. Rows are read in record batches of about the requested
number of jets (estimated from the row-group statistics), never the whole file.
"""
from __future__ import annotations

import base64
import dataclasses
import fnmatch
import os
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..features import infer_units
from .base import JetChunk, TableInfo, entry_window
from .layouts import PRESETS
from .wide import Wide, find_jets, stack, unstack, wide_of

INSTALL_HINT = "Parquet needs pyarrow: pip install 'jetzip[parquet]' (or pip install pyarrow)"
COUNTER_NAMES = ("counts", "n_jets", "njets", "njet", "nJet", "jet_n", "n_jet")
MAX_EVENT_JETS = 1 << 20
SAMPLE_JETS = 5000
SCHEMA_LIMIT = 1 << 20  # bytes of serialized schema (with its metadata) kept in the header


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return pa, pq


@dataclasses.dataclass
class _PCol:
    name: str  # 'pt', 'Jet_pt', 'Jet.pt'
    top: str  # top-level field
    sub: str | None  # struct field, for records
    jagged: bool
    dtype: np.dtype


def _numeric_type(pa, t) -> np.dtype | None:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        try:
            return np.dtype(t.to_pandas_dtype())
        except (NotImplementedError, TypeError):
            return None
    return None


def _numeric_fields(pa, t) -> list[tuple[str, np.dtype]] | None:
    """(name, dtype) of each field of struct type `t`; None when it has none or one is not a number."""
    subs = [(t.field(i).name, _numeric_type(pa, t.field(i).type)) for i in range(t.num_fields)]
    numeric = [(n, d) for n, d in subs if d is not None]
    return numeric if subs and len(numeric) == len(subs) else None


def _columns_of(pa, schema) -> tuple[list[_PCol], list[str]]:
    """Carriable columns, and the top-level fields that are not."""
    cols: list[_PCol] = []
    other: list[str] = []
    for field in schema:
        t = field.type
        dt = _numeric_type(pa, t)
        if dt is not None:
            cols.append(_PCol(field.name, field.name, None, False, dt))
            continue
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            v = t.value_type
            dt = _numeric_type(pa, v)
            if dt is not None:
                cols.append(_PCol(field.name, field.name, None, True, dt))
                continue
            if pa.types.is_struct(v):
                subs = _numeric_fields(pa, v)
                if subs is not None:
                    cols += [_PCol(f"{field.name}.{n}", field.name, n, True, d) for n, d in subs]
                    continue
        elif pa.types.is_struct(t):
            subs = _numeric_fields(pa, t)
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
    wide: Wide | None  # several jets per row (tables.wide), or None

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
            self._setup(columns, preset, collection, units, keep, tuple(drop))
        except BaseException:
            self.file.close()
            raise

    def _setup(self, columns, preset_name, collection, units, keep, drop) -> None:
        pa = self.pa
        where = self.path
        schema = self.file.schema_arrow
        cols, not_numeric = _columns_of(pa, schema)
        self.cols = {c.name: c for c in cols}
        names = list(self.cols)
        preset = PRESETS[preset_name] if preset_name else None
        self.wide, coll_name, used, representation = find_jets(
            names, where=where, collection=collection, columns=columns, preset_name=preset_name)
        jet_names = self.wide.names() if self.wide is not None else list(used.values())
        jagged = {self.cols[n].jagged for n in jet_names}
        if len(jagged) > 1:
            raise InputError(f"{where}: jet columns mix lists and plain numbers ({', '.join(jet_names)})")
        self.jagged = jagged.pop() or self.wide is not None
        self.lists = self.jagged and self.wide is None
        self.n_rows = self.file.metadata.num_rows
        counter = None
        if self.lists:
            wanted = {c.lower() for c in COUNTER_NAMES}
            if coll_name:
                wanted |= {f"n{coll_name}".lower(), f"{coll_name}_n".lower()}
            counter = next((c.name for c in cols if not c.jagged and c.name.lower() in wanted
                            and c.dtype.kind in "iu"), None)
        self.counter = counter
        jet_set = set(jet_names)
        kept: list[str] = []
        for option, patterns in (("--keep-branches", keep), ("--drop-branches", drop)):
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                    raise InputError(f"{where}: {option} {pattern!r} matches no column")
        match = lambda n, ps: any(fnmatch.fnmatchcase(n, p) for p in ps)
        if self.wide is not None:  # per-slot variables, by pattern name
            self.wide.extras = {pn: cs for pn, cs in self.wide.extras.items()
                                if not match(pn, drop) and not any(match(x, drop) for x in cs)
                                and (not keep or match(pn, keep) or any(match(x, keep) for x in cs))}
            jet_names = self.wide.names()
            jet_set = set(jet_names)
        jet_tops = {self.cols[n].top for n in jet_names}
        jet_branches: list[str] = []
        dropped_tops: set[str] = set()
        for c in cols:
            if c.name in jet_set or c.name == counter:
                continue
            if match(c.name, drop):
                dropped_tops.add(c.top)
                continue
            # with --keep-branches only what it names (the jet record's own fields always)
            if keep and not match(c.name, keep) and c.top not in jet_tops:
                dropped_tops.add(c.top)
                continue
            if not c.jagged:
                kept.append(c.name)
            elif self.lists:
                jet_branches.append(c.name)
            else:
                dropped_tops.add(c.top)  # lists beside flat jets: not per row
        # a record is restored whole or not at all
        carried = {*jet_set, *kept, *jet_branches, *([counter] if counter else [])}
        for c in cols:
            if c.name not in carried:
                dropped_tops.add(c.top)
        bad_tops = {c.top for c in cols if c.top in dropped_tops and c.name in jet_set}
        if bad_tops:
            raise InputError(f"{where}: the jet record(s) {', '.join(sorted(bad_tops))} hold fields that "
                             "cannot all be carried; use --columns or drop fewer branches")
        kept = [n for n in kept if self.cols[n].top not in dropped_tops]
        jet_branches = [n for n in jet_branches if self.cols[n].top not in dropped_tops]
        if self.wide is not None:
            jet_branches = list(self.wide.extras)
        self.used = used
        self.kept = kept
        self.jet_branches = jet_branches
        self.jet_names = jet_names
        self.tops = list(dict.fromkeys(self.cols[n].top for n in [*jet_names, *kept,
                                                                  *(jet_branches if self.wide is None else [])]
                                       + ([counter] if counter else [])))
        # jets per row, from the row-group statistics of a jet column (batch sizes)
        self.jets_per_row = 1.0 if not self.lists else self._jets_per_row(jet_names[0])
        units_inferred, reason = False, ""
        if units is None and preset is not None and preset.units:
            units, reason = preset.units, f"the {preset.name} layout is in {preset.units}"
        if units is None:
            sample = next(iter(self.chunks(SAMPLE_JETS)), None)
            cols_sample = sample.columns if sample is not None else {r: np.empty(0) for r in used}
            units, reason = infer_units(cols_sample)
            units_inferred = True
        dtypes = {n: self.cols[n].dtype.name for n in [*jet_names, *kept]}
        if self.wide is not None:
            dtypes.update({pn: self.cols[c[0]].dtype.name for pn, c in self.wide.extras.items()})
        else:
            dtypes.update({n: self.cols[n].dtype.name for n in jet_branches})
        if counter:
            dtypes[counter] = self.cols[counter].dtype.name
        extra: dict[str, Any] = {"parquet": {"schema": None}}
        keep_schema = schema
        for top in [f.name for f in schema if f.name in dropped_tops or f.name in not_numeric]:
            keep_schema = keep_schema.remove(keep_schema.get_field_index(top))
        if dropped_tops or not_numeric:
            keep_schema = keep_schema.remove_metadata()
        blob = keep_schema.serialize().to_pybytes()
        if len(blob) > SCHEMA_LIMIT:
            keep_schema = keep_schema.remove_metadata()
            blob = keep_schema.serialize().to_pybytes()
            extra["not_carried"] = ["the file's schema metadata (too large)"]
        extra["parquet"]["schema"] = base64.b64encode(blob).decode()
        if self.wide is not None:
            extra.update(self.wide.to_extra())
        other = [*not_numeric, *[c.name for c in cols if c.top in dropped_tops and c.name not in jet_set]]
        self.info = TableInfo(
            file=os.path.basename(self.path), format="parquet", tree=None,
            layout="jets-per-row" if self.wide else ("jagged" if self.lists else "flat"), collection=coll_name,
            jagged=self.jagged, counter=counter, columns=self.wide.columns if self.wide else used,
            representation=representation, units=units,
            units_inferred=units_inferred, units_reason=reason, dtypes=dtypes, kept_branches=kept,
            jet_branches=jet_branches, branch_order=[c.name for c in cols], other_branches=other, extra=extra)
        self.n_entries = self.n_rows

    def _jets_per_row(self, name: str) -> float:
        meta = self.file.metadata
        c = self.cols[name]
        path = f"{c.top}.list.element" + (f".{c.sub}" if c.sub else "")
        values = rows = 0
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            rows += rg.num_rows
            for j in range(rg.num_columns):
                col = rg.column(j)
                if col.path_in_schema == path or (col.path_in_schema.startswith(c.top + ".")
                                                  and col.path_in_schema.endswith("." + (c.sub or "element"))):
                    values += col.num_values
                    break
        return max(values / rows, 1e-3) if rows else 1.0

    def _arrays(self, batch, names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Numpy arrays of the named columns of a record batch, and the jets per row of the lists."""
        pa = self.pa
        out: dict[str, np.ndarray] = {}
        lengths = None
        for n in names:
            c = self.cols[n]
            arr = batch.column(batch.schema.get_field_index(c.top))
            if c.jagged:
                lens = _values(pa, arr.value_lengths(), np.dtype(np.int64))
                if lengths is None:
                    lengths = lens
                elif not np.array_equal(lens, lengths):
                    i = int(np.argmax(lens != lengths))
                    raise InputError(f"{self.path}: a row has {int(lens[i])} values in {n} but {int(lengths[i])} "
                                     f"in {names[0]}; per-jet columns must match the jets "
                                     "(leave it out with drop_branches)")
                arr = arr.flatten()
            if c.sub is not None:
                arr = arr.field(c.sub)
            out[n] = _values(pa, arr, c.dtype)
        return out, lengths

    def chunks(self, jets_per_chunk: int = 1 << 18, entry_start: int = 0,
               entry_stop: int | None = None) -> Iterator[JetChunk]:
        """Chunks of whole events with about `jets_per_chunk` jets, covering entries
        ``[entry_start, entry_stop)`` (see :class:`~jetzip.tables.JetSource`)."""
        chunks = self._chunks_from_start(jets_per_chunk)
        if entry_start == 0 and entry_stop is None:
            return chunks
        return entry_window(chunks, entry_start, entry_stop)  # type: ignore[return-value]

    def _chunks_from_start(self, jets_per_chunk: int = 1 << 18) -> Iterator[JetChunk]:
        target = max(1, int(jets_per_chunk))
        if self.wide is not None:
            rows = max(1, target // len(self.wide.jets))
        else:
            rows = max(1, int(target / self.jets_per_row))
        first_jet = first_entry = 0
        try:
            for batch in self.file.iter_batches(batch_size=rows, columns=self.tops, use_threads=False):
                n = batch.num_rows
                if self.lists:
                    jets, lengths = self._arrays(batch, [*self.jet_names, *self.jet_branches])
                    assert lengths is not None
                    if lengths.max(initial=0) > MAX_EVENT_JETS:
                        i = int(np.argmax(lengths > MAX_EVENT_JETS))
                        raise InputError(f"{self.path}: event {first_entry + i} has {int(lengths[i])} jets "
                                         f"(more than {MAX_EVENT_JETS})")
                    counts = lengths.astype(np.uint32)
                    if self.counter:
                        declared, _ = self._arrays(batch, [self.counter])
                        if not np.array_equal(declared[self.counter], lengths):
                            i = int(np.argmax(declared[self.counter] != lengths))
                            raise InputError(f"{self.path}: event {first_entry + i}: {self.counter} says "
                                             f"{declared[self.counter][i]} jets, the lists hold {int(lengths[i])}")
                    columns = {role: jets[name] for role, name in self.used.items()}
                    jet_kept = {k: jets[k] for k in self.jet_branches}
                elif self.wide is not None:
                    raw, _ = self._arrays(batch, self.jet_names)
                    columns, counts, jet_kept = stack(raw, self.wide)
                else:
                    raw, _ = self._arrays(batch, self.jet_names)
                    columns = {role: raw[name] for role, name in self.used.items()}
                    counts, jet_kept = None, {}
                kept, _ = self._arrays(batch, self.kept)
                chunk = JetChunk(columns, counts, kept, first_jet, first_entry, jet_kept)
                yield chunk
                first_jet += chunk.n_jets
                first_entry += n
        except self.pa.ArrowException as exc:
            raise InputError(f"{self.path}: cannot read ({exc})") from None

    def extras(self) -> bytes | None:
        return None  # one table per file; its schema metadata travels in info.extra

    def close(self) -> None:
        self.file.close()


class ParquetWriter:
    """Write the table with the original's arrow schema (or a plain one for other inputs)."""

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
        schema = None
        stored = (info.extra.get("parquet") or {}).get("schema") if info.format == "parquet" else None
        if stored:
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(stored)))
            present = self._present_names()
            for f in list(schema):  # leave out what does not come back (e.g. dropped at compress)
                leaves = ([f.name] if not _is_record(pa, f.type)
                          else [f"{f.name}.{s.name}" for s in _record_fields(pa, f.type)])
                if not all(leaf in present for leaf in leaves):
                    schema = schema.remove(schema.get_field_index(f.name)).remove_metadata()
        if schema is None:
            schema = self._plain_schema()
        self.schema = schema
        # awkward writes list items as 'item', the Parquet spec (pyarrow's default) as 'element'
        compliant = not any(_is_list(pa, f.type) and f.type.value_field.name == "item" for f in schema)
        try:
            self.writer = pq.ParquetWriter(path, schema, use_compliant_nested_type=compliant)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot write {path}: {exc}") from None

    def _present_names(self) -> set[str]:
        jets = self.wide.names() if self.wide else list(self.names.values())
        return {*jets, *self.kept_dtypes, *self.jet_dtypes, *([self.counter] if self.counter else [])}

    def _plain_schema(self) -> Any:
        pa = self.pa
        info = self.info
        fields = []
        order = {n: i for i, n in enumerate(info.branch_order)}
        jets = self.wide.names() if self.wide else list(self.names.values())
        extra_dtype = {c: info.dtypes.get(pn, "float64") for pn, cs in (self.wide.extras.items() if self.wide else [])
                       for c in cs}
        entries: list[tuple[str, Any]] = []
        for n in jets:
            t = pa.from_numpy_dtype(np.dtype(extra_dtype[n])) if n in extra_dtype else pa.float32()
            entries.append((n, pa.list_(t) if info.jagged and not self.wide else t))
        if self.counter:
            entries.append((self.counter, pa.from_numpy_dtype(np.dtype(info.dtypes.get(self.counter, "uint32")))))
        for n, dt in self.jet_dtypes.items():
            entries.append((n, pa.list_(pa.from_numpy_dtype(np.dtype(dt)))))
        for n, dt in self.kept_dtypes.items():
            entries.append((n, pa.from_numpy_dtype(np.dtype(dt))))
        entries.sort(key=lambda e: order.get(e[0], len(order)))
        for n, t in entries:
            fields.append(pa.field(n, t))
        return pa.schema(fields)

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None) -> None:
        pa = self.pa
        jet_kept = jet_kept or {}
        if self.wide:
            assert counts is not None
            per_row = unstack(columns, counts, self.wide, jet_kept)
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
        offsets = None
        if self.info.jagged and not self.wide:
            assert counts is not None
            offsets = pa.array(np.concatenate([[0], np.cumsum(counts.astype(np.int64))]).astype(np.int32))
        arrays = []
        for f in self.schema:
            t = f.type
            if _is_record(pa, t):
                subs = _record_fields(pa, t)
                source = per_jet if _is_list(pa, t) else per_row
                inner = pa.StructArray.from_arrays(
                    [pa.array(source[f"{f.name}.{s.name}"]).cast(s.type) for s in subs], fields=list(subs))
                arr = pa.ListArray.from_arrays(offsets, inner) if _is_list(pa, t) else inner
            elif _is_list(pa, t):
                arr = pa.ListArray.from_arrays(offsets, pa.array(per_jet[f.name]).cast(t.value_type))
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
            self.writer.close()
        except OSError as exc:
            raise InputError(f"cannot write Parquet output: {exc}") from None


def _is_list(pa, t) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _is_record(pa, t) -> bool:
    return pa.types.is_struct(t) or (_is_list(pa, t) and pa.types.is_struct(t.value_type))


def _record_fields(pa, t):
    st = t.value_type if _is_list(pa, t) else t
    return [st.field(i) for i in range(st.num_fields)]
