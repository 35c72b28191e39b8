"""HDF5 tables with h5py, in the layouts people write them.

Table layouts (``TableInfo.extra["hdf5_layout"]``), each read without pandas or PyTables and
written back the same way (:mod:`jetzip.tables.hdf5_writer`):

- ``columns``: a group (the file root unless ``--tree`` names one) whose 1-D datasets are the
  columns. Per-event jet counts may sit beside flat jet columns in a dataset named like
  ``nJet``/``counts``/``n_jets``; their sum must equal the number of jets, and the table is then
  jagged, zero-jet events included. jetzip's own output has this layout.
- ``vlen``: jagged HDF5 as h5py writes it: the jet columns are variable-length datasets, one
  element (an array of jets) per event; a counter dataset beside them (``njet``) is checked
  against the lengths and restored.
- ``compound``: one compound (structured) dataset whose fields are the columns.
- ``pandas-fixed``: ``DataFrame.to_hdf(..., format="fixed")``: a group with ``axis0`` (column
  names), ``axis1`` (the index) and ``blockN_items``/``blockN_values`` (columns of one dtype).
- ``awkward``: ``ak.to_buffers`` in one group (attributes ``form`` and ``length``, buffers
  ``nodeN-data``/``nodeN-offsets``), as awkward's documentation writes HDF5: records of numbers,
  lists of numbers (``Jet_pt``) and lists of records (``Jet.pt``); read buffer slices by the
  offsets, written back with the form (less any field not carried).
- ``pandas-table``: ``to_hdf(..., format="table")``: a group with a compound dataset ``table``
  holding ``index``, ``values_block_N`` (several columns in one field; their names are in the
  attributes) and data columns. The pandas attributes are copied back verbatim; PyTables'
  optional index (``_i_table``) is not written, pandas reads the file without it.

Several jets per row (``pxj1 ... pxj2``, the top-tagging landscape's zero-padded constituents
``E_0, PX_0, ... PZ_199``) in any of these layouts are read as events of jets (see
:mod:`jetzip.tables.wide`; a row's trailing all-zero or all-NaN slots are padding, not jets).

The reader's setup is four named steps: *choose the table* (:func:`hdf5_layouts.only_table_group`,
``--tree``), *choose the jets* (:meth:`Hdf5Source._choose_jets`: the columns, the counter or
lengths, events), *plan what to carry* (:meth:`Hdf5Source._plan_carry`, and
:mod:`jetzip.tables.hdf5_extras` for the rest of the file) and *describe* (the
:class:`TableInfo`).

What is carried: every numeric column beside the jets, by default (``keep`` patterns carry only
what they name, ``drop`` patterns leave columns out, as for ROOT): per-jet columns as ``jet_branches``, per-event
(or per-row) ones as ``kept_branches``; the pandas index as a column named ``index``. Everything else in the file
(other groups and datasets, 2-D datasets, attributes) travels in :meth:`Hdf5Source.extras` as an
in-memory HDF5 image that :meth:`Hdf5Writer.write_extras` copies back, up to ``EXTRAS_LIMIT``
bytes; what does not fit or cannot be copied is named in ``info.extra["not_carried"]``.

Memory and time stay bounded by the data (issue 23): every size a layout declares is checked
against the others and against the bytes stored before anything is read
(:mod:`jetzip.tables.hdf5_layouts`); counters are read and checked in blocks (a counter that
declares far more events than there are jets is refused), chunks are cut by jets, and an event
of more than ``MAX_EVENT_JETS`` jets is an error.

Reading starts at the entry asked for (issue 24): ``chunks(n, entry_start=a)`` slices every
dataset from event (row) `a`; the jets before it are found from the counter's running sums
(kept per block of ``COUNTER_BLOCK`` events at open) or an awkward offset, never by reading
them. ``first_jet`` is then exact, except in tables whose jets per event only the jets
themselves say (variable-length datasets without a counter, several jets per row), where it
counts from `entry_start`'s first jet.
"""
from __future__ import annotations

import fnmatch
import os
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..features import infer_units
from .base import JetChunk, TableInfo
from .hdf5_extras import EXTRAS_LIMIT, extras_image, plan_extras
from .hdf5_layouts import (Col, attrs_to_json, awkward_form, awkward_prune, check_stored, columns_of, open_file,
                           only_table_group, read_cols, text)
from .hdf5_writer import Hdf5Writer
from .layouts import PRESETS
from .wide import Wide, WideChunk, entry_bounds, find_jets, match_any, pad_of, stack

COUNTER_NAMES = ("counts", "n_jets", "njets", "njet", "nJet", "jet_n", "n_jet")  # any case
MAX_EVENT_JETS = 1 << 20  # jets in one event: more is refused (memory stays bounded)
# A counter may declare at most this many events per jet (and always 2^24): more is not a
# plausible jet counter but a header claiming rows that are not there.
MAX_EVENTS_PER_JET = 1000
MIN_EVENT_LIMIT = 1 << 24
# A jet column of at least SPARSE_MIN_CHUNKS chunks with fewer than 1 in SPARSE_RATIO written
# is refused (never-written chunks are the fill value, not jets)
SPARSE_MIN_CHUNKS = 1024
SPARSE_RATIO = 100
COUNTER_BLOCK = 1 << 20  # counter values read at a time
SAMPLE_JETS = 5000
PAD_SAMPLE_ROWS = 4096  # rows of a table of several jets per row that decide its padding

__all__ = ["EXTRAS_LIMIT", "Hdf5Source", "Hdf5Writer"]


def _check_written(ds, name: str, where: str) -> None:
    """A chunked dataset whose chunks were mostly never written declares rows that hold no
    data (only the fill value): refuse it from its metadata instead of reading them."""
    try:
        if ds.chunks is None or ds.ndim != 1:
            return
        total = -(-int(ds.shape[0]) // int(ds.chunks[0]))
        if total < SPARSE_MIN_CHUNKS:
            return
        written = ds.id.get_num_chunks()
    except Exception:  # noqa: BLE001 - an h5py without chunk queries: nothing to check
        return
    if written * SPARSE_RATIO < total:
        raise InputError(f"{where}: {name} declares {ds.shape[0]} rows but only {written} of its {total} "
                         "chunks were ever written (the rest is fill value, not data); not a jet table")


def _counter_sums(ds, n_jets: int, where: str, name: str, strict: bool) -> list[int] | None:
    """The jets of each block of ``COUNTER_BLOCK`` events when `ds` holds whole non-negative
    counts adding up to `n_jets` (read in blocks, never whole), else None.

    A counter declaring more events than a jet table can plausibly have is an error when
    `strict` (it is named like a counter), so that a header cannot make jetzip read 10^9 rows.
    """
    if ds.dtype.kind not in "iuf" or ds.ndim != 1:
        return None
    n = int(ds.shape[0])
    limit = max(MAX_EVENTS_PER_JET * n_jets, MIN_EVENT_LIMIT)
    if n > limit:
        if strict:
            raise InputError(f"{where}: counter {name} declares {n} events for {n_jets} jets (more than "
                             f"{limit}): not a plausible jet counter; read the jets one per row with "
                             "--preset flat")
        return None
    sums: list[int] = []
    total = 0
    for start in range(0, n, COUNTER_BLOCK):
        values = np.asarray(ds[start:start + COUNTER_BLOCK])
        if ds.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
            return None
        if (values < 0).any():
            return None
        sums.append(int(values.astype(np.int64).sum()))
        total += sums[-1]
        if total > n_jets:
            return None
    return sums if total == n_jets else None




class Hdf5Source:
    """A jet table in an HDF5 file (see the module docstring); ``n_entries`` events (or rows)."""

    wide: Wide | None  # several jets per row (tables.wide), or None
    n_entries: int

    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = (), drop: Sequence[str] = ()) -> None:
        import h5py

        self.path = path
        self.file = open_file(path)
        try:
            node, tree = self._choose_table(tree, columns, h5py)
            self._setup(node, tree, columns, preset, collection, units, keep, drop, h5py)
        except OSError as exc:
            self.file.close()
            raise InputError(f"{path}: cannot read ({exc})") from None
        except BaseException:
            self.file.close()
            raise

    # --- setup, step 1: choose the table ----------------------------------------------------

    def _choose_table(self, tree: str | None, columns, h5py) -> tuple[Any, str | None]:
        if tree is None and columns is None:  # named columns are looked for at the root
            tree = only_table_group(self.file, self.path, h5py)
        try:
            return (self.file[tree] if tree else self.file), tree
        except KeyError:
            raise InputError(f"{self.path}: no group or dataset {tree!r}; top level: "
                             f"{', '.join(self.file.keys())}") from None

    def _setup(self, node, tree, columns, preset_name, collection, units, keep, drop, h5py) -> None:
        where = f"{self.path}:{tree}" if tree else self.path
        if isinstance(node, h5py.Dataset) and node.dtype.names is None:
            raise InputError(f"{where} is a plain dataset, not a table (compound dataset or group)")
        layout, cols, own = columns_of(node, h5py, where)
        if layout == "compound" and isinstance(node, h5py.Group):
            tree = f"{tree or ''}/{own[0]}".lstrip("/")
            node = node[own[0]]
            own = []
        self.node = node
        self.cols = {c.name: c for c in cols}
        preset = PRESETS[preset_name] if preset_name else None
        coll_name, used, representation = self._choose_jets(
            where, layout, cols, columns, preset, collection)
        kept, jet_branches, user_excluded = self._plan_carry(where, cols, keep, drop)
        self._describe(where, node, tree, layout, cols, own, preset, units, coll_name, used, representation,
                       kept, jet_branches, user_excluded, h5py)

    # --- setup, step 2: choose the jets -----------------------------------------------------

    def _choose_jets(self, where: str, layout: str, cols: list[Col], columns, preset,
                     collection) -> tuple[str, dict[str, str], str]:
        """Which columns are the jets, whether and how the table is jagged, its events."""
        names = list(self.cols)
        self.wide, coll_name, used, representation = find_jets(
            names, where=where, collection=collection, columns=columns,
            preset_name=preset.name if preset else None)
        for n in used.values():
            if self.cols[n].dtype.kind not in "biuf":
                raise InputError(f"{where}: column {n} is not numeric")
        jet_cols = [self.cols[n] for n in (used.values() if self.wide is None else self.wide.names())]
        vlen = {c.vlen for c in jet_cols}
        if len(vlen) > 1:
            raise InputError(f"{where}: jet columns mix variable-length and plain datasets "
                             f"({', '.join(c.name for c in jet_cols)})")
        self.vlen = vlen.pop()
        lengths = {c.length for c in jet_cols}
        if len(lengths) != 1:
            raise InputError(f"{where}: jet columns have different lengths "
                             f"({', '.join(f'{c.name}={c.length}' for c in jet_cols)})")
        n_rows = lengths.pop()
        for c in {id(c.ds): c for c in jet_cols}.values():
            _check_written(c.ds, c.name, where)
            check_stored(c.ds, c.name, where)
        flat_only = preset is not None and not preset.jagged
        jet_names = {c.name for c in jet_cols}

        counter = None
        self._block_jets: list[int] | None = None
        counter_names = {c.lower() for c in COUNTER_NAMES}
        if coll_name:
            counter_names |= {f"n{coll_name}".lower(), f"{coll_name}_n".lower()}
        plain = [c for c in cols if not c.vlen and c.index is None and c.field is None and c.name not in jet_names]
        if self.vlen:
            # events = rows; a counter beside them is checked against the lengths while reading
            for c in plain:
                if c.name.lower() in counter_names and c.length == n_rows and c.dtype.kind in "iuf":
                    counter = c.name
                    break
            self.n_entries = n_rows
            self.n_jets: int | None = None
        elif self.wide is None and layout == "columns" and not flat_only:
            for c in plain:
                if c.name.lower() in counter_names:
                    sums = _counter_sums(c.ds, n_rows, where, c.name, strict=True)
                    if sums is not None:
                        counter, self._block_jets = c.name, sums
                        break
            self.n_jets = n_rows
            self.n_entries = self.cols[counter].length if counter else n_rows
        else:
            self.n_jets = None if self.wide else n_rows
            self.n_entries = n_rows
        self.jagged = counter is not None or self.vlen or self.wide is not None
        self.counter = counter
        self.used = used if self.wide is None else dict(self.wide.jets[0])
        if self.wide is not None:
            rows = read_cols([self.cols[n] for n in self.wide.names()], 0, min(self.n_entries, PAD_SAMPLE_ROWS))
            self.wide.pad = pad_of(rows, self.wide)
        return coll_name, used, representation

    # --- setup, step 3: plan what to carry --------------------------------------------------

    def _plan_carry(self, where: str, cols: list[Col], keep: Sequence[str],
                    drop: Sequence[str]) -> tuple[list[str], list[str], set[str]]:
        """(kept branches, per-jet branches, columns left out on purpose): every other numeric
        column, or only those --keep-branches names; never those --drop-branches names (as
        the ROOT reader does)."""
        names = list(self.cols)
        jet_names = set(self.used.values()) if self.wide is None else set(self.wide.names())
        per_event = self.n_entries
        kept: list[str] = []
        jet_branches: list[str] = []
        user_excluded: set[str] = set()
        for option, patterns in (("--keep-branches", keep), ("--drop-branches", drop)):
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                    raise InputError(f"{where}: {option} {pattern!r} matches no column")
        for c in cols:
            if c.name in jet_names or c.name == self.counter:
                continue
            if match_any(c.name, drop) or (keep and not match_any(c.name, keep)):
                user_excluded.add(c.name)  # left out on purpose: not in the extras either
                continue
            if not c.vlen and c.length == per_event and (self.wide is not None or not self.jagged
                                                         or c.length != self.n_jets):
                kept.append(c.name)
            elif self.jagged and not self.wide and c.vlen == self.vlen and \
                    (self.vlen and c.length == self.n_entries or not self.vlen and c.length == self.n_jets):
                jet_branches.append(c.name)
            elif keep:
                raise InputError(f"{where}: --keep-branches: {c.name} has {c.length} rows, not one per "
                                 f"{'event' if self.jagged else 'row'} ({per_event})"
                                 + (f" or jet ({self.n_jets})" if self.jagged and self.n_jets else ""))
        for name in [*kept, *jet_branches]:
            check_stored(self.cols[name].ds, name, where)
        if self.wide is not None:  # per-slot variables: per jet
            jet_branches = [pn for pn, cs in self.wide.extras.items()
                            if not match_any(pn, drop) and not any(match_any(x, drop) for x in cs)
                            and (not keep or match_any(pn, keep) or any(match_any(x, keep) for x in cs))]
            self.wide.extras = {pn: self.wide.extras[pn] for pn in jet_branches}
        return kept, jet_branches, user_excluded

    # --- setup, step 4: describe ------------------------------------------------------------

    def _describe(self, where, node, tree, layout, cols, own, preset, units, coll_name, used, representation,
                  kept, jet_branches, user_excluded, h5py) -> None:
        names = list(self.cols)
        jet_names = list(used.values()) if self.wide is None else self.wide.names()
        counter = self.counter
        carried = {*jet_names, counter, *kept, *jet_branches}
        other = [n for n in names if n not in carried]
        units_inferred, reason = False, ""
        declared = text(node.attrs.get("units"))
        if units is None and declared in ("GeV", "MeV"):
            units, reason = declared, f"the file declares {declared} (units attribute)"
        if units is None and preset is not None and preset.units:
            units, reason = preset.units, f"the {preset.name} layout is in {preset.units}"
        self.kept = kept
        self.jet_branches = jet_branches
        if units is None:
            units, reason = infer_units(self._sample())
            units_inferred = True
        # members restored by the writer (not copied into the extras image)
        self._own = (set(own) if layout != "columns" else carried - {None}) | user_excluded
        self.tree = tree
        extra: dict[str, Any] = {"hdf5_layout": "vlen" if self.vlen and layout == "columns" else layout}
        group_node = self.file[(node if isinstance(node, h5py.Group) else node.parent).name]  # a Group, not the File
        try:  # h5py lists a group's members by name unless it tracks their creation order
            extra["hdf5_track_order"] = bool(group_node.id.get_create_plist().get_link_creation_order())
        except Exception:  # noqa: BLE001
            extra["hdf5_track_order"] = False
        if layout == "awkward":
            extra["awkward"] = self._awkward_description(node, cols, carried)
        if self.wide is not None:
            extra.update(self.wide.to_extra())
            dtypes = {n: self.cols[n].dtype.name for n in [*self.wide.names(), *kept]}
            dtypes.update({pn: self.cols[cols_[0]].dtype.name for pn, cols_ in self.wide.extras.items()})
            used = self.wide.columns
        else:
            dtypes = {n: self.cols[n].dtype.name for n in [*used.values(), *kept, *jet_branches]
                      + ([counter] if counter else [])}
        if layout.startswith("pandas"):
            extra["pandas"] = self._pandas_description(layout, node, cols)
        self.info = TableInfo(
            file=os.path.basename(self.path), format="hdf5", tree=tree,
            layout="jets-per-row" if self.wide else ("jagged" if self.jagged else "flat"),
            collection=coll_name, jagged=self.jagged, counter=counter, columns=used,
            representation=representation, units=units, units_inferred=units_inferred,
            units_reason=reason, dtypes=dtypes, kept_branches=kept, jet_branches=jet_branches,
            branch_order=list(names), other_branches=other, extra=extra)
        self._extras: bytes | None = None
        self._extras_done = False
        self._own_group = node if isinstance(node, h5py.Group) else node.parent
        skip = {f"{self._own_group.name.rstrip('/')}/{m}" for m in self._own}
        if isinstance(node, h5py.Dataset):
            skip.add(node.name)
        self._extras_skip = skip
        self._extras_plan, not_carried = plan_extras(self.file, self._own_group, skip)
        if not_carried:
            self.info.extra["not_carried"] = not_carried
        # other datasets of the table's group that the extras image brings back are not lost
        group_path = self._own_group.name.rstrip("/")
        self.info.other_branches = [n for n in other if f"{group_path}/{n}" not in self._extras_plan]

    def _awkward_description(self, node, cols: list[Col], carried: set) -> dict:
        """The pruned form and the buffer of each carried column, for the writer."""
        import json

        length = node.attrs["length"]
        form = awkward_form(node)
        assert form is not None  # the layout is "awkward": the node has a form
        return {"form": json.dumps(awkward_prune(form, {c for c in carried if c})),
                "length_is_text": isinstance(length, (str, bytes, np.bytes_)),
                "columns": {c.name: {"data": c.ds.name.rsplit("/", 1)[-1], "dtype": c.dtype.str,
                                     "offsets": c.offsets.name.rsplit("/", 1)[-1] if c.offsets is not None else None,
                                     "offsets_dtype": c.offsets.dtype.str if c.offsets is not None else None}
                            for c in cols if c.name in carried}}

    def _pandas_description(self, layout: str, node, cols: list[Col]) -> dict:
        """What the writer needs to write the same pandas layout: attributes, dtypes, blocks."""
        desc: dict[str, Any] = {"group_attrs": attrs_to_json(node.attrs)}
        if layout == "pandas-fixed":
            blocks = []
            b = 0
            while f"block{b}_values" in node:
                values = node[f"block{b}_values"]
                names = [c.name for c in cols if c.ds == values]
                if names:
                    blocks.append({"items": names, "dtype": values.dtype.str,
                                   "attrs": attrs_to_json(values.attrs),
                                   "items_attrs": attrs_to_json(node[f"block{b}_items"].attrs)})
                b += 1
            desc["blocks"] = blocks
            carried = [c.name for c in cols if c.index is not None]
            axis0 = node.get("axis0")  # its length is the blocks' (hdf5_layouts): the frame's column order
            if axis0 is not None:
                check_stored(axis0, "axis0", self.path)
                taken = set(carried)
                carried = [n for n in (text(x) or str(x) for x in axis0[()]) if n in taken]
            desc["axis0"] = carried
            desc["axis0_attrs"] = attrs_to_json(axis0.attrs) if axis0 is not None else []
            desc["axis1_attrs"] = attrs_to_json(node["axis1"].attrs) if "axis1" in node else []
            desc["index"] = next((c.name for c in cols if c.ds.name.endswith("/axis1")), None)
        else:
            table = node["table"]
            fields = []
            for f in table.dtype.names:
                dt = table.dtype[f]
                members = [c.name for c in cols if c.field == f]
                fields.append({"field": f, "dtype": dt.base.str, "shape": list(dt.shape), "columns": members})
            desc["fields"] = fields
            desc["table_attrs"] = attrs_to_json(table.attrs)
        return desc

    # --- reading ----------------------------------------------------------------------------

    def _sample(self) -> dict[str, np.ndarray]:
        for chunk in self._chunks(SAMPLE_JETS, 0, self.n_entries, sample=True):
            return {role: v[:SAMPLE_JETS] for role, v in chunk.columns.items()}
        return {role: np.empty(0) for role in self.used}

    def _jets(self, start: int, stop: int) -> dict[str, np.ndarray]:
        rows = read_cols([self.cols[n] for n in self.used.values()], start, stop)
        return {role: rows[n] for role, n in self.used.items()}

    def _rows(self, names: Sequence[str], start: int, stop: int) -> dict[str, np.ndarray]:
        return read_cols([self.cols[n] for n in names], start, stop) if names else {}

    def chunks(self, jets_per_chunk: int = 1 << 18, entry_start: int = 0,
               entry_stop: int | None = None) -> Iterator[JetChunk]:
        """Chunks of whole events with about `jets_per_chunk` jets, covering entries
        ``[entry_start, entry_stop)`` (see :class:`~jetzip.tables.JetSource`); the datasets are
        read from `entry_start` on."""
        start, stop = entry_bounds(entry_start, entry_stop, self.n_entries)
        return self._chunks(max(1, int(jets_per_chunk)), start, stop)

    def _chunks(self, target: int, start: int, stop: int, sample: bool = False) -> Iterator[JetChunk]:
        try:
            if self.wide is not None:
                yield from self._wide_chunks(self.wide, target, start, stop)
            elif self.vlen:
                yield from self._vlen_chunks(target, start, stop)
            elif not self.jagged:
                for a in range(start, stop, target):
                    b = min(a + target, stop)
                    yield JetChunk(self._jets(a, b), None, self._rows(self.kept, a, b), a, a)
            else:
                yield from self._counter_chunks(target, start, stop, sample)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read ({exc})") from None

    def _giant(self, event: int, n: int) -> InputError:
        return InputError(f"{self.path}: event {event} has {n} jets (more than {MAX_EVENT_JETS}); "
                          "not a plausible event (is the counter right?)")

    def _counter_total(self, start: int) -> int:
        """Jets in events ``[0, start)`` by the counter: whole blocks from the sums kept at open
        (or read now, for a counter beside variable-length columns), then part of one block."""
        assert self.counter is not None
        ds = self.cols[self.counter].ds
        full = start // COUNTER_BLOCK
        if self._block_jets is None:
            total = sum(int(np.asarray(ds[b * COUNTER_BLOCK:(b + 1) * COUNTER_BLOCK]).astype(np.int64).sum())
                        for b in range(full))
        else:
            total = sum(self._block_jets[:full])
        rest = np.asarray(ds[full * COUNTER_BLOCK:start])
        return total + int(rest.astype(np.int64).sum())

    def _counter_chunks(self, target: int, start: int, stop: int, sample: bool) -> Iterator[JetChunk]:
        """Whole events, about `target` jets at a time: counts are read in blocks, never whole."""
        counter, n_jets = self.counter, self.n_jets
        assert counter is not None and n_jets is not None  # jets in columns, events by their counter
        counts_ds = self.cols[counter].ds
        first_jet = self._counter_total(start) if start else 0
        ev = start
        buf = np.empty(0, dtype=np.int64)
        cum = buf
        buf_start = start
        while ev < stop:
            off = ev - buf_start
            if off >= len(buf):
                buf = np.asarray(counts_ds[ev:min(ev + COUNTER_BLOCK, stop)]).astype(np.int64)
                cum = np.cumsum(buf)
                buf_start, off = ev, 0
            base = int(cum[off - 1]) if off else 0
            take = max(1, int(np.searchsorted(cum, base + target, side="right")) - off)
            counts = buf[off:off + take]
            if counts.max(initial=0) > MAX_EVENT_JETS:
                i = int(np.argmax(counts > MAX_EVENT_JETS))
                raise self._giant(ev + i, int(counts[i]))
            n = int(cum[off + take - 1]) - base
            if first_jet + n > n_jets:
                raise InputError(f"{self.path}: counter {counter} counts more jets than the jet columns hold")
            yield JetChunk(self._jets(first_jet, first_jet + n), counts.astype(np.uint32),
                           self._rows(self.kept, ev, ev + take), first_jet, ev,
                           self._rows(self.jet_branches, first_jet, first_jet + n))
            if sample:
                return
            first_jet += n
            ev += take

    def _vlen_chunks(self, target: int, start: int, stop: int) -> Iterator[JetChunk]:
        names = list(self.used.values())
        step = max(1, min(256, target // 8))  # events; then about `target` jets at the mean seen
        first = self.cols[names[0]]
        if first.offsets is not None:  # awkward lists: the offsets say where each event's jets are
            first_jet = int(first.offsets[start]) - int(first.offsets[0]) if start < stop else 0
        else:
            first_jet = self._counter_total(start) if start and self.counter else 0
        ev = start
        while ev < stop:
            if first.offsets is not None:  # awkward lists: the offsets say where `target` jets end
                o = np.asarray(first.offsets[ev:min(ev + COUNTER_BLOCK, stop) + 1]).astype(np.int64)
                step = max(1, int(np.searchsorted(o[1:] - o[0], target, side="right")))
            elif self.counter:  # the counter says where `target` jets end
                declared_block = np.asarray(self.cols[self.counter].ds[ev:min(ev + COUNTER_BLOCK, stop)])
                step = max(1, int(np.searchsorted(np.cumsum(declared_block.astype(np.int64)), target,
                                                  side="right")))
            end = min(ev + step, stop)
            if first.offsets is not None:
                chunk = self._awkward_chunk(names, ev, end, first_jet)
                yield chunk
                first_jet += chunk.n_jets
                ev = end
                continue
            rows = read_cols([self.cols[n] for n in [*names, *self.jet_branches]], ev, end)
            lengths = np.fromiter((len(a) for a in rows[names[0]]), np.int64, end - ev)
            for n, v in rows.items():
                other = np.fromiter((len(a) for a in v), np.int64, end - ev)
                if (other != lengths).any():
                    i = int(np.argmax(other != lengths))
                    raise InputError(f"{self.path}: event {ev + i}: {n} has {int(other[i])} values, "
                                     f"{names[0]} {int(lengths[i])}")
            if lengths.max(initial=0) > MAX_EVENT_JETS:
                i = int(np.argmax(lengths > MAX_EVENT_JETS))
                raise self._giant(ev + i, int(lengths[i]))
            self._check_counter(ev, end, lengths, names[0])
            flat = {n: (np.concatenate(list(v)) if len(v) else np.empty(0, self.cols[n].dtype))
                    .astype(self.cols[n].dtype, copy=False) for n, v in rows.items()}
            n_jets = int(lengths.sum())
            yield JetChunk({role: flat[n] for role, n in self.used.items()}, lengths.astype(np.uint32),
                           self._rows(self.kept, ev, end), first_jet, ev,
                           {n: flat[n] for n in self.jet_branches})
            first_jet += n_jets
            ev = end
            # next step: about `target` jets at this chunk's jets per event
            per_event = max(n_jets / max(len(lengths), 1), 1e-3)
            step = int(min(max(1, target / per_event), COUNTER_BLOCK))

    def _check_counter(self, ev: int, stop: int, lengths: np.ndarray, holder: str) -> None:
        """A counter beside variable-length jet columns must say the jets per event that `holder` holds."""
        if not self.counter:
            return
        declared = np.asarray(self.cols[self.counter].ds[ev:stop])
        if (declared != lengths).any():
            i = int(np.argmax(declared != lengths))
            raise InputError(f"{self.path}: event {ev + i}: counter {self.counter} says "
                             f"{declared[i]} jets, {holder} holds {int(lengths[i])}")

    def _awkward_chunk(self, names: list[str], ev: int, stop: int, first_jet: int) -> JetChunk:
        """Events ev:stop of awkward list columns: offsets, then one slice of each data buffer."""
        offsets: dict[int, np.ndarray] = {}
        lengths = None
        flat: dict[str, np.ndarray] = {}
        for n in [*names, *self.jet_branches]:
            c = self.cols[n]
            key = id(c.offsets)
            if key not in offsets:
                o = np.asarray(c.offsets[ev:stop + 1]).astype(np.int64)
                if (np.diff(o) < 0).any() or (len(o) and (o[0] < 0 or o[-1] > c.ds.shape[0])):
                    raise InputError(f"{self.path}: the offsets of {n} are not valid (decreasing or past the data)")
                offsets[key] = o
            o = offsets[key]
            lens = np.diff(o)
            if lengths is None:
                lengths = lens
                if lengths.max(initial=0) > MAX_EVENT_JETS:
                    i = int(np.argmax(lengths > MAX_EVENT_JETS))
                    raise self._giant(ev + i, int(lengths[i]))
            elif not np.array_equal(lens, lengths):
                i = int(np.argmax(lens != lengths))
                raise InputError(f"{self.path}: event {ev + i}: {n} has {int(lens[i])} values, "
                                 f"{names[0]} {int(lengths[i])}")
            flat[n] = np.asarray(c.ds[int(o[0]):int(o[-1])]) if len(o) else np.empty(0, c.dtype)
        assert lengths is not None
        self._check_counter(ev, stop, lengths, names[0])
        return JetChunk({role: flat[n] for role, n in self.used.items()}, lengths.astype(np.uint32),
                        self._rows(self.kept, ev, stop), first_jet, ev, {n: flat[n] for n in self.jet_branches})

    def _wide_chunks(self, wide: Wide, target: int, start: int, stop: int) -> Iterator[JetChunk]:
        rows_per = max(1, target // len(wide.jets))
        names = wide.names()
        first_jet = 0
        for a in range(start, stop, rows_per):
            b = min(a + rows_per, stop)
            jets, counts, per_jet = stack(self._rows(names, a, b), wide)
            yield WideChunk(jets, counts, self._rows(self.kept, a, b), first_jet, a, per_jet)
            first_jet += int(counts.sum())

    # --- everything else in the file ----------------------------------------------------------

    def extras(self) -> bytes | None:
        """Other groups, datasets and attributes of the file as an in-memory HDF5 image."""
        if self._extras_done:
            return self._extras
        self._extras_done = True
        self._extras, failed = extras_image(self.file, self._own_group, self._extras_plan, self._extras_skip)
        if failed:
            self.info.extra["not_carried"] = [*self.info.extra.get("not_carried", []), *failed]
        return self._extras

    def close(self) -> None:
        self.file.close()
