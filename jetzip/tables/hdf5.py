"""HDF5 tables with h5py, in the layouts people write them.

Table layouts (``TableInfo.extra["hdf5_layout"]``), each read without pandas or PyTables and
written back the same way:

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

Several jets per row (``pxj1 ... pxj2``) in any of these layouts are read as events of jets
(see :mod:`jetzip.tables.wide`).

What is carried: every numeric column beside the jets, by default (``keep`` patterns carry only
what they name, ``drop`` patterns leave columns out, as for ROOT): per-jet columns as ``jet_branches``, per-event
(or per-row) ones as ``kept_branches``; the pandas index as a column named ``index``. Everything else in the file
(other groups and datasets, 2-D datasets, attributes) travels in :meth:`Hdf5Source.extras` as an
in-memory HDF5 image that :meth:`Hdf5Writer.write_extras` copies back, up to ``EXTRAS_LIMIT``
bytes; what does not fit or cannot be copied is named in ``info.extra["not_carried"]``.

Memory stays bounded by the data: counters are read and checked in blocks (a counter that
declares far more events than there are jets is refused), chunks are cut by jets, and an
event of more than ``MAX_EVENT_JETS`` jets is an error.
"""
from __future__ import annotations

import base64
import dataclasses
import fnmatch
import io
import os
import pickle
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..features import infer_units
from .base import JetChunk, TableInfo, entry_window
from .layouts import PRESETS, candidates
from .wide import Wide, find_jets, find_wide, stack, unstack, wide_of

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
EXTRAS_LIMIT = 64 << 20  # bytes of other datasets carried in the extras image
SAMPLE_JETS = 5000
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SPACE_MARGIN = 4 << 20  # free bytes kept beyond a write (HDF5 metadata, the close)
PANDAS_MEMBERS = {"pandas-fixed": ("axis0", "axis1"), "pandas-table": ("table", "_i_table")}


@dataclasses.dataclass
class _Col:
    """Where one column lives: a dataset, maybe a field of it, maybe a position in a 2-D block."""

    name: str
    ds: Any
    field: str | None = None
    index: int | None = None
    transposed: bool = True  # pandas blocks: rows along axis 0
    vlen: bool = False
    dtype: np.dtype = dataclasses.field(default_factory=lambda: np.dtype("f8"))
    offsets: Any = None  # awkward ListOffsetArray: the offsets dataset (events = len - 1)

    @property
    def length(self) -> int:
        if self.offsets is not None:
            return int(self.offsets.shape[0]) - 1
        if self.index is not None and not self.transposed:
            return int(self.ds.shape[1])
        return int(self.ds.shape[0])


def _open(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read as an HDF5 file ({exc})") from None


def _text(value) -> str | None:
    if isinstance(value, (bytes, np.bytes_)):
        value = bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


class _NoGlobals(pickle.Unpickler):
    """pandas stores column-name lists pickled (protocol 0) in attributes: plain lists and
    strings only, nothing that names a class or function."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def _unpickle_names(value) -> list | None:
    if not isinstance(value, (bytes, np.bytes_)) or len(value) > 1 << 20:
        return None
    try:
        out = _NoGlobals(io.BytesIO(bytes(value))).load()
    except Exception:  # noqa: BLE001 - anything unexpected: not a pandas name list
        return None
    return out if isinstance(out, list) else None


def _numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "biuf" and dtype.shape == ()


def _vlen_base(ds, h5py) -> np.dtype | None:
    base = h5py.check_vlen_dtype(ds.dtype)
    return np.dtype(base) if base is not None and np.dtype(base).kind in "biuf" else None


def _pandas_kind(node) -> str | None:
    kind = _text(node.attrs.get("pandas_type"))
    if kind == "frame":
        return "pandas-fixed"
    if kind == "frame_table" and "table" in node:
        return "pandas-table"
    return None


def _columns_of(node, h5py) -> tuple[str, list[_Col], list[str]]:
    """(layout, columns, names of the group members the layout itself consists of)."""
    if isinstance(node, h5py.Dataset):
        return "compound", _compound_cols(node), []
    form = _awkward_form(node)
    if form is not None:
        cols, own = _awkward_cols(node, form, h5py)
        return "awkward", cols, own
    kind = _pandas_kind(node)
    if kind == "pandas-fixed":
        cols, own = _pandas_fixed_cols(node, h5py)
        return kind, cols, own
    if kind == "pandas-table":
        return kind, _pandas_table_cols(node), ["table", "_i_table"]
    cols = []
    for k, v in node.items():
        if not isinstance(v, h5py.Dataset) or v.ndim != 1:
            continue
        if v.dtype.names is None and _numeric(v.dtype):
            cols.append(_Col(k, v, dtype=v.dtype))
        elif v.dtype.names is None:
            base = _vlen_base(v, h5py)
            if base is not None:
                cols.append(_Col(k, v, vlen=True, dtype=base))
    compounds = [k for k, v in node.items() if isinstance(v, h5py.Dataset) and v.dtype.names]
    if not cols and len(compounds) == 1:
        return "compound", _compound_cols(node[compounds[0]]), [compounds[0]]
    return "columns", cols, [c.name for c in cols]


def _compound_cols(ds) -> list[_Col]:
    return [_Col(n, ds, field=n, dtype=ds.dtype[n]) for n in ds.dtype.names if _numeric(ds.dtype[n])]


def _pandas_fixed_cols(group, h5py) -> tuple[list[_Col], list[str]]:
    cols: list[_Col] = []
    own = ["axis0", "axis1"]
    nblocks = int(group.attrs.get("nblocks", 0))
    for b in range(nblocks):
        items, values = group.get(f"block{b}_items"), group.get(f"block{b}_values")
        own += [f"block{b}_items", f"block{b}_values"]
        if not isinstance(items, h5py.Dataset) or not isinstance(values, h5py.Dataset) \
                or values.ndim != 2 or not _numeric(values.dtype):
            continue  # object (pickled) or string blocks: not columns jetzip can carry
        names = [_text(n) or str(n) for n in items[()]]
        transposed = bool(int(values.attrs.get("transposed", 1)))
        for j, n in enumerate(names):
            cols.append(_Col(n, values, index=j, transposed=transposed, dtype=values.dtype))
    axis1 = group.get("axis1")
    if isinstance(axis1, h5py.Dataset) and axis1.ndim == 1 and _numeric(axis1.dtype):
        taken = {c.name for c in cols}
        cols.append(_Col("index" if "index" not in taken else "jetzip_index", axis1, dtype=axis1.dtype))
    return cols, own


def _awkward_form(node) -> dict | None:
    """The form of an ``ak.to_buffers`` group (attributes ``form`` and ``length``), else None."""
    import json

    if "form" not in node.attrs or "length" not in node.attrs:
        return None
    try:
        form = json.loads(_text(node.attrs["form"]) or "")
        int(json.loads(str(_text(node.attrs["length"]) or node.attrs["length"])))
    except (ValueError, TypeError):
        return None
    return form if isinstance(form, dict) and "class" in form else None


def _awkward_cols(group, form: dict, h5py) -> tuple[list[_Col], list[str]]:
    """Columns of the forms jet tables have: a record of numbers, lists of numbers, lists of
    records of numbers (``Jet.pt``) and records of numbers; buffers named ``{form_key}-data``
    and ``{form_key}-offsets`` (``ak.to_buffers``' default). Other fields are not columns.
    `form` is the group's (:func:`_awkward_form`)."""
    cols: list[_Col] = []
    own: list[str] = []

    def ds(key):
        d = group.get(key)
        return d if isinstance(d, h5py.Dataset) and d.ndim == 1 else None

    def numpy_col(name, f, offsets=None):
        if f.get("class") != "NumpyArray" or f.get("inner_shape") or (f.get("parameters") or {}).get("__array__"):
            return False
        d = ds(f"{f.get('form_key')}-data")
        if d is None or not _numeric(d.dtype):
            return False
        cols.append(_Col(name, d, vlen=offsets is not None, dtype=d.dtype, offsets=offsets))
        own.append(d.name.rsplit("/", 1)[-1])
        return True

    def field(name, f, prefix_records: bool) -> None:
        cls = f.get("class")
        if cls == "NumpyArray":
            numpy_col(name, f)
        elif cls == "ListOffsetArray":
            off = ds(f"{f.get('form_key')}-offsets")
            if off is None:
                return
            c = f.get("content", {})
            before = len(cols)
            if c.get("class") == "NumpyArray":
                numpy_col(name, c, off)
            elif c.get("class") == "RecordArray" and c.get("fields"):
                for sub, sf in zip(c["fields"], c["contents"]):
                    numpy_col(f"{name}.{sub}" if prefix_records else sub, sf, off)
            if len(cols) > before:
                own.append(off.name.rsplit("/", 1)[-1])
        elif cls == "RecordArray" and f.get("fields"):
            for sub, sf in zip(f["fields"], f["contents"]):
                numpy_col(f"{name}.{sub}", sf)

    if form.get("class") == "RecordArray" and form.get("fields"):
        for name, f in zip(form["fields"], form["contents"]):
            field(name, f, True)
    elif form.get("class") == "ListOffsetArray":
        field("", form, False)
    return cols, own


def _awkward_prune(form: dict, keep: set[str]) -> dict:
    """The form without the fields whose columns are not carried (so that it matches the buffers
    the writer writes)."""
    import copy

    form = copy.deepcopy(form)

    def prune_record(rec: dict, prefix: str) -> bool:
        fields, contents = [], []
        for name, f in zip(rec["fields"], rec["contents"]):
            full = f"{prefix}{name}"
            cls = f.get("class")
            if cls == "NumpyArray":
                ok = full in keep
            elif cls == "ListOffsetArray" and f.get("content", {}).get("class") == "RecordArray":
                ok = prune_record(f["content"], f"{full}.")
            elif cls == "ListOffsetArray":
                ok = full in keep
            elif cls == "RecordArray":
                ok = prune_record(f, f"{full}.")
            else:
                ok = False
            if ok:
                fields.append(name)
                contents.append(f)
        rec["fields"], rec["contents"] = fields, contents
        return bool(fields)

    if form.get("class") == "RecordArray":
        prune_record(form, "")
    elif form.get("class") == "ListOffsetArray" and form.get("content", {}).get("class") == "RecordArray":
        prune_record(form["content"], "")
    return form


def _pandas_table_cols(group) -> list[_Col]:
    ds = group["table"]
    cols: list[_Col] = []
    index_col = None
    for f in ds.dtype.names:
        dt = ds.dtype[f]
        if f.startswith("values_block_") and dt.shape and len(dt.shape) == 1:
            names = _unpickle_names(ds.attrs.get(f"{f}_kind"))
            if names is None or len(names) != dt.shape[0] or dt.base.kind not in "biuf":
                continue
            cols += [_Col(str(n), ds, field=f, index=j, dtype=dt.base) for j, n in enumerate(names)]
        elif _numeric(dt):
            if f == "index":
                index_col = _Col(f, ds, field=f, dtype=dt)
            else:
                cols.append(_Col(f, ds, field=f, dtype=dt))
    if index_col is not None:
        if any(c.name == "index" for c in cols):
            index_col.name = "jetzip_index"
        cols.append(index_col)
    return cols


def _names_of(node, h5py) -> list[str]:
    try:
        return [c.name for c in _columns_of(node, h5py)[1]]
    except Exception:  # noqa: BLE001 - an unreadable member is not a table
        return []


def _has_jets(names: list[str]) -> bool:
    return bool(candidates(names)) or bool(find_wide(names))


def _only_table_group(file, path: str, h5py) -> str | None:
    """With no --tree: the file root if its columns hold jets, else the one table that does.

    A table is a group of column datasets (pandas groups included) or a compound dataset,
    anywhere in the file. jetzip writes jagged tables into a group named after the source tree
    (``/Events``), so its own output must be found without ``--tree``.
    """
    if _has_jets(_names_of(file, h5py)):
        return None
    found: list[str] = []

    def visit(name, obj) -> None:
        if any(name.startswith(f + "/") for f in found):
            return  # inside a table already found (pandas' table dataset)
        if isinstance(obj, h5py.Group):
            if _has_jets(_names_of(obj, h5py)):
                found.append(name)
        elif isinstance(obj, h5py.Dataset) and obj.dtype.names and _has_jets(list(obj.dtype.names)):
            found.append(name)

    file.visititems(visit)
    if len(found) > 1:
        raise InputError(f"{path}: jets in several tables ({', '.join(found[:10])}); choose one with --tree")
    return found[0] if found else None


def _read_cols(cols: Sequence[_Col], start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows start:stop of the given columns, reading each dataset (or compound block) once."""
    out: dict[str, np.ndarray] = {}
    blocks: dict[int, Any] = {}
    for c in cols:
        key = id(c.ds)
        if key not in blocks:
            if c.index is not None and c.field is None and not c.transposed:
                blocks[key] = c.ds[:, start:stop]
            else:
                blocks[key] = c.ds[start:stop]
        b = blocks[key]
        if c.field is not None:
            b = b[c.field]
        if c.index is not None:
            b = b[:, c.index] if (c.field is not None or c.transposed) else b[c.index]
        out[c.name] = np.ascontiguousarray(b)
    return out


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


def _counter_check(ds, n_jets: int, where: str, name: str, strict: bool) -> bool:
    """Whether `ds` holds whole non-negative counts adding up to `n_jets`, read in blocks.

    A counter declaring more events than a jet table can plausibly have is an error when
    `strict` (it is named like a counter), so that a header cannot make jetzip read 10^9 rows.
    """
    if ds.dtype.kind not in "iuf" or ds.ndim != 1:
        return False
    n = int(ds.shape[0])
    limit = max(MAX_EVENTS_PER_JET * n_jets, MIN_EVENT_LIMIT)
    if n > limit:
        if strict:
            raise InputError(f"{where}: counter {name} declares {n} events for {n_jets} jets (more than "
                             f"{limit}): not a plausible jet counter; read the jets one per row with "
                             "--preset flat")
        return False
    total = 0
    for start in range(0, n, COUNTER_BLOCK):
        values = np.asarray(ds[start:start + COUNTER_BLOCK])
        if ds.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
            return False
        if (values < 0).any():
            return False
        total += int(values.astype(np.int64).sum())
        if total > n_jets:
            return False
    return total == n_jets


def _match_any(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class Hdf5Source:
    wide: Wide | None  # several jets per row (tables.wide), or None

    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = (), drop: Sequence[str] = ()) -> None:
        import h5py

        self.path = path
        self.file = _open(path)
        try:
            if tree is None and columns is None:  # named columns are looked for at the root
                tree = _only_table_group(self.file, path, h5py)
            node = self.file[tree] if tree else self.file
        except KeyError:
            self.file.close()
            raise InputError(f"{path}: no group or dataset {tree!r}; top level: "
                             f"{', '.join(self.file.keys())}") from None
        except BaseException:
            self.file.close()
            raise
        try:
            self._setup(node, tree, columns, preset, collection, units, keep, drop, h5py)
        except OSError as exc:
            self.file.close()
            raise InputError(f"{path}: cannot read ({exc})") from None
        except BaseException:
            self.file.close()
            raise

    # --- setup ------------------------------------------------------------------------------

    def _setup(self, node, tree, columns, preset_name, collection, units, keep, drop, h5py) -> None:
        where = f"{self.path}:{tree}" if tree else self.path
        if isinstance(node, h5py.Dataset) and node.dtype.names is None:
            raise InputError(f"{where} is a plain dataset, not a table (compound dataset or group)")
        layout, cols, own = _columns_of(node, h5py)
        if layout == "compound" and isinstance(node, h5py.Group):
            tree = f"{tree or ''}/{own[0]}".lstrip("/")
            node = node[own[0]]
            own = []
        self.node = node
        self.cols = {c.name: c for c in cols}
        names = list(self.cols)
        preset = PRESETS[preset_name] if preset_name else None
        self.wide, coll_name, used, representation = find_jets(
            names, where=where, collection=collection, columns=columns, preset_name=preset_name)
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
        for c in jet_cols:
            _check_written(c.ds, c.name, where)
        flat_only = preset is not None and not preset.jagged
        jet_names = {c.name for c in jet_cols}

        counter = None
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
            self.n_jets = None
        elif self.wide is None and layout == "columns" and not flat_only:
            for c in plain:
                if c.name.lower() in counter_names and _counter_check(c.ds, n_rows, where, c.name, strict=True):
                    counter = c.name
                    break
            self.n_jets = n_rows
            self.n_entries = self.cols[counter].length if counter else n_rows
        else:
            self.n_jets = None if self.wide else n_rows
            self.n_entries = n_rows
        self.jagged = counter is not None or self.vlen or self.wide is not None
        self.counter = counter

        # --- what else is carried: every other numeric column, or only those --keep-branches
        # names; never those --drop-branches names (as the ROOT reader does)
        per_event = self.n_entries
        kept: list[str] = []
        jet_branches: list[str] = []
        user_excluded: set[str] = set()
        for option, patterns in (("--keep-branches", keep), ("--drop-branches", drop)):
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                    raise InputError(f"{where}: {option} {pattern!r} matches no column")
        for c in cols:
            if c.name in jet_names or c.name == counter:
                continue
            if _match_any(c.name, drop) or (keep and not _match_any(c.name, keep)):
                user_excluded.add(c.name)  # left out on purpose: not in the extras either
                continue
            if not c.vlen and c.length == per_event and (self.wide is not None or not self.jagged
                                                         or c.length != self.n_jets):
                kept.append(c.name)
            elif self.jagged and not self.wide and c.vlen == self.vlen and \
                    (self.vlen and c.length == n_rows or not self.vlen and c.length == self.n_jets):
                jet_branches.append(c.name)
            elif keep:
                raise InputError(f"{where}: --keep-branches: {c.name} has {c.length} rows, not one per "
                                 f"{'event' if self.jagged else 'row'} ({per_event})"
                                 + (f" or jet ({self.n_jets})" if self.jagged and self.n_jets else ""))
        if self.wide is not None:  # per-slot variables: per jet
            jet_branches = [pn for pn, cs in self.wide.extras.items()
                            if not _match_any(pn, drop) and not any(_match_any(x, drop) for x in cs)
                            and (not keep or _match_any(pn, keep) or any(_match_any(x, keep) for x in cs))]
            self.wide.extras = {pn: self.wide.extras[pn] for pn in jet_branches}
        carried = {*(jet_names if self.wide is None else self.wide.names()), counter, *kept, *jet_branches}
        other = [n for n in names if n not in carried]

        units_inferred, reason = False, ""
        declared = _text(node.attrs.get("units"))
        if units is None and declared in ("GeV", "MeV"):
            units, reason = declared, f"the file declares {declared} (units attribute)"
        if units is None and preset is not None and preset.units:
            units, reason = preset.units, f"the {preset.name} layout is in {preset.units}"
        self.used = used if self.wide is None else dict(self.wide.jets[0])
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
            branch_order=[n for n in names], other_branches=other, extra=extra)
        self._extras: bytes | None = None
        self._extras_done = False
        self._extras_plan, not_carried = self._plan_extras()
        if not_carried:
            self.info.extra["not_carried"] = not_carried
        # other datasets of the table's group that the extras image brings back are not lost
        group_path = self._own_group.name.rstrip("/")
        self.info.other_branches = [n for n in other if f"{group_path}/{n}" not in self._extras_plan]

    def _awkward_description(self, node, cols: list[_Col], carried: set) -> dict:
        """The pruned form and the buffer of each carried column, for the writer."""
        import json

        length = node.attrs["length"]
        form = _awkward_form(node)
        assert form is not None  # the layout is "awkward": the node has a form
        return {"form": json.dumps(_awkward_prune(form, {c for c in carried if c})),
                "length_is_text": isinstance(length, (str, bytes, np.bytes_)),
                "columns": {c.name: {"data": c.ds.name.rsplit("/", 1)[-1], "dtype": c.dtype.str,
                                     "offsets": c.offsets.name.rsplit("/", 1)[-1] if c.offsets is not None else None,
                                     "offsets_dtype": c.offsets.dtype.str if c.offsets is not None else None}
                            for c in cols if c.name in carried}}

    def _pandas_description(self, layout: str, node, cols: list[_Col]) -> dict:
        """What the writer needs to write the same pandas layout: attributes, dtypes, blocks."""
        desc: dict[str, Any] = {"group_attrs": _attrs_to_json(node.attrs)}
        if layout == "pandas-fixed":
            blocks = []
            b = 0
            while f"block{b}_values" in node:
                values = node[f"block{b}_values"]
                names = [c.name for c in cols if c.ds == values]
                if names:
                    blocks.append({"items": names, "dtype": values.dtype.str,
                                   "attrs": _attrs_to_json(values.attrs),
                                   "items_attrs": _attrs_to_json(node[f"block{b}_items"].attrs)})
                b += 1
            desc["blocks"] = blocks
            axis0 = [_text(n) or str(n) for n in node["axis0"][()]]
            carried = {c.name for c in cols}
            desc["axis0"] = [n for n in axis0 if n in carried]
            desc["axis0_attrs"] = _attrs_to_json(node["axis0"].attrs)
            desc["axis1_attrs"] = _attrs_to_json(node["axis1"].attrs) if "axis1" in node else []
            desc["index"] = next((c.name for c in cols if c.ds.name.endswith("/axis1")), None)
        else:
            table = node["table"]
            fields = []
            for f in table.dtype.names:
                dt = table.dtype[f]
                members = [c.name for c in cols if c.field == f]
                fields.append({"field": f, "dtype": dt.base.str, "shape": list(dt.shape), "columns": members})
            desc["fields"] = fields
            desc["table_attrs"] = _attrs_to_json(table.attrs)
        return desc

    # --- reading ----------------------------------------------------------------------------

    def _sample(self) -> dict[str, np.ndarray]:
        for chunk in self._chunks_from_start(SAMPLE_JETS, sample=True):
            return {role: v[:SAMPLE_JETS] for role, v in chunk.columns.items()}
        return {role: np.empty(0) for role in self.used}

    def _jets(self, start: int, stop: int) -> dict[str, np.ndarray]:
        rows = _read_cols([self.cols[n] for n in self.used.values()], start, stop)
        return {role: rows[n] for role, n in self.used.items()}

    def _rows(self, names: Sequence[str], start: int, stop: int) -> dict[str, np.ndarray]:
        return _read_cols([self.cols[n] for n in names], start, stop) if names else {}

    def chunks(self, jets_per_chunk: int = 1 << 18, entry_start: int = 0,
               entry_stop: int | None = None) -> Iterator[JetChunk]:
        """Chunks of whole events with about `jets_per_chunk` jets, covering entries
        ``[entry_start, entry_stop)`` (see :class:`~jetzip.tables.JetSource`)."""
        chunks = self._chunks_from_start(jets_per_chunk)
        if entry_start == 0 and entry_stop is None:
            return chunks
        return entry_window(chunks, entry_start, entry_stop)  # type: ignore[return-value]

    def _chunks_from_start(self, jets_per_chunk: int = 1 << 18, sample: bool = False) -> Iterator[JetChunk]:
        target = max(1, int(jets_per_chunk))
        try:
            if self.wide is not None:
                yield from self._wide_chunks(self.wide, target)
            elif self.vlen:
                yield from self._vlen_chunks(target)
            elif not self.jagged:
                for start in range(0, self.n_entries, target):
                    stop = min(start + target, self.n_entries)
                    yield JetChunk(self._jets(start, stop), None, self._rows(self.kept, start, stop), start, start)
            else:
                yield from self._counter_chunks(target, sample)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read ({exc})") from None

    def _giant(self, event: int, n: int) -> InputError:
        return InputError(f"{self.path}: event {event} has {n} jets (more than {MAX_EVENT_JETS}); "
                          "not a plausible event (is the counter right?)")

    def _counter_chunks(self, target: int, sample: bool) -> Iterator[JetChunk]:
        """Whole events, about `target` jets at a time: counts are read in blocks, never whole."""
        counter, n_jets = self.counter, self.n_jets
        assert counter is not None and n_jets is not None  # jets in columns, events by their counter
        counts_ds = self.cols[counter].ds
        first_jet = 0
        ev = 0
        buf = np.empty(0, dtype=np.int64)
        cum = buf
        buf_start = 0
        while ev < self.n_entries:
            off = ev - buf_start
            if off >= len(buf):
                buf = np.asarray(counts_ds[ev:ev + COUNTER_BLOCK]).astype(np.int64)
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

    def _vlen_chunks(self, target: int) -> Iterator[JetChunk]:
        names = list(self.used.values())
        step = max(1, min(256, target // 8))  # events; then about `target` jets at the mean seen
        first_jet = 0
        ev = 0
        first = self.cols[names[0]]
        while ev < self.n_entries:
            if first.offsets is not None:  # awkward lists: the offsets say where `target` jets end
                o = np.asarray(first.offsets[ev:ev + COUNTER_BLOCK + 1]).astype(np.int64)
                step = max(1, int(np.searchsorted(o[1:] - o[0], target, side="right")))
            elif self.counter:  # the counter says where `target` jets end
                declared_block = np.asarray(self.cols[self.counter].ds[ev:ev + COUNTER_BLOCK]).astype(np.int64)
                step = max(1, int(np.searchsorted(np.cumsum(declared_block), target, side="right")))
            stop = min(ev + step, self.n_entries)
            if first.offsets is not None:
                yield self._awkward_chunk(names, ev, stop, first_jet)
                first_jet += int(self._last_jets)
                ev = stop
                continue
            rows = _read_cols([self.cols[n] for n in [*names, *self.jet_branches]], ev, stop)
            lengths = np.fromiter((len(a) for a in rows[names[0]]), np.int64, stop - ev)
            for n, v in rows.items():
                other = np.fromiter((len(a) for a in v), np.int64, stop - ev)
                if (other != lengths).any():
                    i = int(np.argmax(other != lengths))
                    raise InputError(f"{self.path}: event {ev + i}: {n} has {int(other[i])} values, "
                                     f"{names[0]} {int(lengths[i])}")
            if lengths.max(initial=0) > MAX_EVENT_JETS:
                i = int(np.argmax(lengths > MAX_EVENT_JETS))
                raise self._giant(ev + i, int(lengths[i]))
            self._check_counter(ev, stop, lengths, names[0])
            flat = {n: (np.concatenate(list(v)) if len(v) else np.empty(0, self.cols[n].dtype))
                    .astype(self.cols[n].dtype, copy=False) for n, v in rows.items()}
            n_jets = int(lengths.sum())
            yield JetChunk({role: flat[n] for role, n in self.used.items()}, lengths.astype(np.uint32),
                           self._rows(self.kept, ev, stop), first_jet, ev,
                           {n: flat[n] for n in self.jet_branches})
            first_jet += n_jets
            ev = stop
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
        self._last_jets = int(lengths.sum())
        return JetChunk({role: flat[n] for role, n in self.used.items()}, lengths.astype(np.uint32),
                        self._rows(self.kept, ev, stop), first_jet, ev, {n: flat[n] for n in self.jet_branches})

    def _wide_chunks(self, wide: Wide, target: int) -> Iterator[JetChunk]:
        k = len(wide.jets)
        rows_per = max(1, target // k)
        names = wide.names()
        first_jet = 0
        for start in range(0, self.n_entries, rows_per):
            stop = min(start + rows_per, self.n_entries)
            raw = self._rows(names, start, stop)
            jets, counts, per_jet = stack(raw, wide)
            yield JetChunk(jets, counts, self._rows(self.kept, start, stop), first_jet, start, per_jet)
            first_jet += int(counts.sum())

    # --- everything else in the file ----------------------------------------------------------

    def _plan_extras(self) -> tuple[set[str], list[str]]:
        """Which other datasets the extras image will hold (paths), and what it cannot: from
        metadata only, at open, so that the header can say what comes back."""
        import h5py

        own_group = self.node if isinstance(self.node, h5py.Group) else self.node.parent
        skip = {f"{own_group.name.rstrip('/')}/{m}" for m in self._own}
        if isinstance(self.node, h5py.Dataset):
            skip.add(self.node.name)
        copy: set[str] = set()
        skipped: list[str] = []
        budget = EXTRAS_LIMIT

        def walk(group) -> None:
            nonlocal budget
            for name in group:
                path = f"{group.name.rstrip('/')}/{name}"
                if path in skip:
                    continue
                link = group.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    skipped.append(f"{path} (a link)")
                    continue
                obj = group[name]
                if isinstance(obj, h5py.Group):
                    walk(obj)
                    continue
                size = obj.id.get_storage_size()
                if size > budget:
                    skipped.append(f"{path} ({size} bytes, beyond the {EXTRAS_LIMIT >> 20} MiB "
                                   "carried beside the jets)")
                    continue
                budget -= size
                copy.add(path)

        walk(self.file)
        self._own_group = own_group
        return copy, skipped

    def extras(self) -> bytes | None:
        """Other groups, datasets and attributes of the file as an in-memory HDF5 image."""
        if self._extras_done:
            return self._extras
        import h5py

        self._extras_done = True
        own_group = self._own_group
        bio = io.BytesIO()
        wrote = False
        failed: list[str] = []
        with h5py.File(bio, "w", track_order=True) as out:
            def copy_attrs(src, dst) -> None:
                nonlocal wrote
                for k in src.attrs:
                    if k == "units" and src.name == own_group.name:
                        continue
                    try:
                        dst.attrs[k] = src.attrs[k]
                        wrote = True
                    except Exception:  # noqa: BLE001 - an attribute h5py cannot copy
                        failed.append(f"{src.name} attribute {k}")

            def walk(group, dst) -> None:
                nonlocal wrote
                copy_attrs(group, dst)
                for name in group:
                    path = f"{group.name.rstrip('/')}/{name}"
                    if not isinstance(group.get(name, getlink=True), h5py.HardLink):
                        continue
                    obj = group[name]
                    if isinstance(obj, h5py.Group):
                        walk(obj, dst.require_group(name))
                    elif path in self._extras_plan:
                        try:
                            group.copy(obj, dst, name)
                            wrote = True
                        except Exception:  # noqa: BLE001
                            failed.append(path)

            walk(self.file, out)
        if failed:
            self.info.extra["not_carried"] = [*self.info.extra.get("not_carried", []), *failed]
        self._extras = bio.getvalue() if wrote else None
        return self._extras

    def close(self) -> None:
        self.file.close()


# --- attributes as JSON (pandas metadata travels in the header) -----------------------------

def _attrs_to_json(attrs) -> list:
    import h5py

    out = []
    for k in attrs:
        try:
            v = attrs[k]
        except Exception:  # noqa: BLE001 - unreadable attribute types
            continue
        if isinstance(v, h5py.Empty):
            out.append([k, {"empty": np.dtype(v.dtype).str}])
        elif isinstance(v, (bytes, np.bytes_)):
            enc: dict[str, str | int] = {"bytes": base64.b64encode(bytes(v)).decode()}
            try:  # PyTables reads UTF-8 (null-terminated) strings as str, ASCII ones as bytes
                t = h5py.h5a.open(attrs._id, k.encode()).get_type()
                if isinstance(t, h5py.h5t.TypeStringID) and not t.is_variable_str():
                    enc.update(cset=int(t.get_cset()), strpad=int(t.get_strpad()))
            except Exception:  # noqa: BLE001
                pass
            out.append([k, enc])
        elif isinstance(v, str):
            out.append([k, {"str": v}])
        else:
            a = np.asarray(v)
            if a.dtype.kind not in "biufS":
                continue
            out.append([k, {"dtype": a.dtype.str, "shape": list(a.shape),
                            "data": base64.b64encode(a.tobytes()).decode()}])
    return out


def _attrs_from_json(items: list, attrs) -> None:
    import h5py

    for k, enc in items:
        if "empty" in enc:
            attrs[k] = h5py.Empty(np.dtype(enc["empty"]))
        elif "bytes" in enc:
            v = base64.b64decode(enc["bytes"])
            if "cset" in enc and v:
                if k in attrs:
                    del attrs[k]
                t = h5py.h5t.C_S1.copy()
                t.set_size(len(v))
                t.set_cset(int(enc["cset"]))
                t.set_strpad(int(enc["strpad"]))
                aid = h5py.h5a.create(attrs._id, k.encode(), t, h5py.h5s.create(h5py.h5s.SCALAR))
                aid.write(np.array(v, dtype=f"S{len(v)}"), mtype=t)
            else:
                attrs[k] = np.bytes_(v)
        elif "str" in enc:
            attrs[k] = enc["str"]
        else:
            a = np.frombuffer(base64.b64decode(enc["data"]), dtype=np.dtype(enc["dtype"]))
            a = a.reshape(enc["shape"])
            attrs[k] = a[()] if a.shape == () else a


# --- writing ----------------------------------------------------------------------------------

def _no_space(exc: OSError) -> bool:
    text = str(exc).lower()
    return getattr(exc, "errno", None) == 28 or "no space" in text or "disk full" in text or "write failed" in text


class Hdf5Writer:
    """Write the table back in its layout: columns (jagged: plus the counter), variable-length
    datasets, a compound table, or pandas' fixed and table formats."""

    def __init__(self, path: str, info: TableInfo, names: dict[str, str], kept_dtypes: dict[str, str]) -> None:
        import h5py

        self.path = path
        self.info = info
        self.names = names
        self.kept_dtypes = dict(kept_dtypes)
        self.layout = info.extra.get("hdf5_layout", "columns") if info.format == "hdf5" else "columns"
        self.wide = wide_of(info)
        self.rows = 0
        # members in the original's order: by creation when it tracked that (and for other
        # formats, whose column order is their file order), else by name as h5py lists them
        self.track_order = bool(info.extra.get("hdf5_track_order", True)) if info.format == "hdf5" else True
        if self.wide is not None:
            self.jet_dtypes: dict[str, str] = {}
            # one column per (slot, variable): the 4-vector's float32, the extras' own dtype
            self.jet_names = [n for slot in self.wide.jets for n in slot.values()]
            self.slot_dtypes = {n: "<f4" for n in self.jet_names}
            for pn, cols in self.wide.extras.items():
                self.slot_dtypes.update({c: info.dtypes.get(pn, "float64") for c in cols})
                self.jet_names += cols
        else:
            self.jet_dtypes = {n: info.dtypes.get(n, "float64") for n in info.jet_branches}
            self.jet_names = list(names.values())
            self.slot_dtypes = {n: "<f4" for n in self.jet_names}
        self.file = None
        self._check_space(0)  # a full disk is said before any work is done
        try:
            # no raw-data chunk cache: a write that fails (full disk) fails in write(), and no dirty
            # chunk is left for a later close to flush (which crashed HDF5: issue 12)
            self.file = h5py.File(path, "w", track_order=self.track_order, rdcc_nbytes=0)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc}") from None
        try:
            self._create(h5py)
        except (OSError, RuntimeError) as exc:
            self._fail(exc)
        except BaseException:
            self._abort()
            raise

    def _open_file(self):
        """The output file: open from __init__ until close, unless an error gave it up."""
        if self.file is None:
            raise InputError("cannot write HDF5 output: an earlier write failed")
        return self.file

    def _group(self, path: str):
        f = self._open_file()
        return f.require_group(path) if path else f

    def _order(self, names: list[str]) -> list[str]:
        order = {n: i for i, n in enumerate(self.info.branch_order)}
        return sorted(names, key=lambda n: order.get(n, len(order)))

    def _create(self, h5py) -> None:
        info = self.info
        tree = info.tree or ""
        if self.layout == "compound" and (not info.jagged or self.wide):
            self.layout = "compound"
            parent, _, dname = tree.rpartition("/")
            group = self._group(parent)
            fields = self._order(self.jet_names + list(self.kept_dtypes))
            dt = {**self.slot_dtypes, **self.kept_dtypes}
            self.table = group.create_dataset(dname or "jets", shape=(0,), maxshape=(None,),
                                              dtype=np.dtype([(n, dt[n]) for n in fields]), chunks=True)
            self.table.attrs["units"] = info.units  # read back by Hdf5Source: no guessing
            return
        if self.layout in ("pandas-fixed", "pandas-table") and not (info.jagged and not self.wide):
            self._create_pandas(h5py)
            return
        if self.layout == "awkward" and not self.wide:
            self._create_awkward()
            return
        self.layout = "vlen" if self.layout == "vlen" else "columns"
        f = self._open_file()
        group = f.create_group(tree, track_order=self.track_order) if tree else f
        group.attrs["units"] = info.units  # read back by Hdf5Source: no guessing
        self.group = group
        dtypes: dict[str, Any] = {}
        for n in self.jet_names:
            dtypes[n] = h5py.vlen_dtype(np.float32) if self.layout == "vlen" else self.slot_dtypes[n]
        self.counter = None
        if info.jagged and not self.wide:
            self.counter = info.counter or (None if self.layout == "vlen" else f"n{info.collection or 'Jet'}")
            if self.counter:
                dtypes[self.counter] = info.dtypes.get(self.counter, "<u4") if self.layout == "vlen" else "<u4"
        dtypes.update(self.kept_dtypes)
        for n, jet_dt in self.jet_dtypes.items():
            dtypes[n] = h5py.vlen_dtype(np.dtype(jet_dt)) if self.layout == "vlen" else jet_dt
        self.datasets = {}
        for n in self._order(list(dtypes)):
            if n in group:
                raise InputError(f"HDF5 output: two columns named {n!r}")
            self.datasets[n] = group.create_dataset(n, shape=(0,), maxshape=(None,), dtype=dtypes[n],
                                                    chunks=(1 << 12,) if self.layout == "vlen" else (1 << 16,))

    def _create_awkward(self) -> None:
        desc = self.info.extra["awkward"]
        tree = self.info.tree or ""
        f = self._open_file()
        group = f.create_group(tree, track_order=self.track_order) if tree else f
        group.attrs["form"] = desc["form"]
        group.attrs["units"] = self.info.units
        self.group = group
        self.ak_columns = desc["columns"]
        self.datasets = {}
        self.ak_offsets: dict[str, int] = {}
        for b in self.ak_columns.values():
            if b["data"] not in group:
                self.datasets[b["data"]] = group.create_dataset(b["data"], shape=(0,), maxshape=(None,),
                                                                dtype=np.dtype(b["dtype"]), chunks=(1 << 16,))
            if b["offsets"] and b["offsets"] not in group:
                d = group.create_dataset(b["offsets"], shape=(1,), maxshape=(None,),
                                         dtype=np.dtype(b["offsets_dtype"]), chunks=(1 << 16,))
                d[0] = 0
                self.datasets[b["offsets"]] = d
                self.ak_offsets[b["offsets"]] = 0
        self.events = 0

    def _write_awkward(self, columns, counts, kept, jet_kept) -> None:
        values = {name: np.asarray(columns[role]) for role, name in self.names.items()}
        values.update({k: np.asarray(v) for k, v in jet_kept.items()})
        values.update({k: np.asarray(v) for k, v in kept.items()})
        if self.info.counter and counts is not None:
            values[self.info.counter] = counts
        n_events = len(counts) if counts is not None else len(next(iter(columns.values())))
        for name, b in self.ak_columns.items():
            self._append(self.datasets[b["data"]], values[name].astype(np.dtype(b["dtype"])))
        if counts is not None:
            ends = np.cumsum(counts.astype(np.int64))
            for key, last in self.ak_offsets.items():
                ds = self.datasets[key]
                self._append(ds, (last + ends).astype(ds.dtype))
                self.ak_offsets[key] = last + int(ends[-1]) if len(ends) else last
        self.events += n_events

    def _create_pandas(self, h5py) -> None:
        info = self.info
        desc = info.extra["pandas"]
        group = self._group(info.tree or "")
        _attrs_from_json(desc["group_attrs"], group.attrs)
        group.attrs["units"] = info.units
        self.group = group
        if self.layout == "pandas-fixed":
            carried = set(self.jet_names) | set(self.kept_dtypes)
            axis0 = [n for n in desc["axis0"] if n in carried]
            self.blocks = []
            for i, b in enumerate(x for x in desc["blocks"] if any(n in carried for n in x["items"])):
                items = [n for n in b["items"] if n in carried]
                ds = group.create_dataset(f"block{i}_items", data=np.array([n.encode() for n in items]))
                _attrs_from_json(b["items_attrs"], ds.attrs)
                vals = group.create_dataset(f"block{i}_values", shape=(0, len(items)), maxshape=(None, len(items)),
                                            dtype=np.dtype(b["dtype"]),
                                            chunks=(max(1, (1 << 16) // len(items)), len(items)))
                _attrs_from_json(b["attrs"], vals.attrs)
                vals.attrs["transposed"] = np.uint8(1)
                self.blocks.append((items, vals))
            group.attrs["nblocks"] = np.int64(len(self.blocks))
            ds = group.create_dataset("axis0", data=np.array([n.encode() for n in axis0]))
            _attrs_from_json(desc["axis0_attrs"], ds.attrs)
            self.index_name = desc.get("index")
            self.axis1 = group.create_dataset("axis1", shape=(0,), maxshape=(None,), dtype="<i8", chunks=(1 << 16,))
            _attrs_from_json(desc["axis1_attrs"], self.axis1.attrs)
            return
        fields = desc["fields"]
        dt = np.dtype([(f["field"], np.dtype(f["dtype"]), tuple(f["shape"])) if f["shape"]
                       else (f["field"], np.dtype(f["dtype"])) for f in fields])
        self.fields = fields
        self.table = group.create_dataset("table", shape=(0,), maxshape=(None,), dtype=dt, chunks=True)
        _attrs_from_json(desc["table_attrs"], self.table.attrs)

    @staticmethod
    def _append(ds, values: np.ndarray) -> None:
        n = len(ds)
        ds.resize((n + len(values),) + ds.shape[1:])
        ds[n:] = values

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None) -> None:
        if self.file is None:
            raise InputError("cannot write HDF5 output: an earlier write failed")
        nbytes = sum(np.asarray(v).nbytes for v in columns.values()) * 2
        nbytes += sum(np.asarray(v).nbytes for d in (kept, jet_kept or {}) for v in d.values())
        self._check_space(2 * nbytes)
        try:
            self._write(columns, counts, kept, jet_kept or {})
        except (OSError, RuntimeError) as exc:
            self._fail(exc)

    def _check_space(self, need: int) -> None:
        """Refuse before HDF5 runs out of disk: a failed write leaves the library in a state where
        closing the file can crash the process (issue 12: a segmentation fault on a full disk)."""
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)) or ".")
        except (OSError, AttributeError):
            return
        if st.f_bavail * st.f_frsize < need + SPACE_MARGIN:
            self._abort()
            raise InputError(f"cannot write HDF5 output: the disk is full (less than "
                             f"{(need + SPACE_MARGIN) >> 20} MiB free where {os.path.basename(self.path)} is written)")

    def _fail(self, exc: BaseException):
        what = "the disk is full" if isinstance(exc, OSError) and _no_space(exc) or "no space" in str(exc).lower() \
            else str(exc).splitlines()[0]
        self._abort()
        raise InputError(f"cannot write HDF5 output: {what}") from None

    def _abort(self) -> None:
        """Give up on the file without flushing it again: drop every handle, close quietly."""
        import gc

        self.datasets = {}
        self.table = self.axis1 = self.group = None
        self.blocks = []
        f, self.file = self.file, None
        if f is None:
            return
        try:
            f.close()
        except Exception:  # noqa: BLE001 - the disk is full; the file is removed by the caller
            pass
        gc.collect()

    def _by_name(self, columns, counts, kept, jet_kept=None) -> dict[str, np.ndarray]:
        """Every column of one row (event) per value, by its name in the file."""
        if self.wide:
            out = unstack(columns, counts, self.wide, jet_kept)
        else:
            out = {name: np.asarray(columns[role]) for role, name in self.names.items()}
        out.update({k: np.asarray(v) for k, v in kept.items() if k in self.kept_dtypes})
        return out

    def _write(self, columns, counts, kept, jet_kept) -> None:
        n_jets = len(next(iter(columns.values())))
        if self.layout == "awkward":
            self._write_awkward(columns, counts, kept, jet_kept)
            return
        if self.layout == "compound":
            data = self._by_name(columns, counts, kept, jet_kept)
            block = np.empty(n_jets, dtype=self.table.dtype)
            for name in self.table.dtype.names:
                block[name] = data[name]
            self._append(self.table, block)
            return
        if self.layout == "pandas-fixed":
            data = self._by_name(columns, counts, kept, jet_kept)
            rows = len(next(iter(data.values())))
            for items, vals in self.blocks:
                self._append(vals, np.stack([data[n].astype(vals.dtype) for n in items], axis=1)
                             if items else np.empty((rows, 0), vals.dtype))
            index = data.get(self.index_name) if self.index_name else None
            self._append(self.axis1, np.arange(self.rows, self.rows + rows) if index is None else index)
            self.rows += rows
            return
        if self.layout == "pandas-table":
            data = self._by_name(columns, counts, kept, jet_kept)
            rows = len(next(iter(data.values())))
            block = np.zeros(rows, dtype=self.table.dtype)
            for f in self.fields:
                if f["shape"]:
                    for j, n in enumerate(f["columns"]):
                        if n in data:
                            block[f["field"]][:, j] = data[n]
                elif f["columns"] and f["columns"][0] in data:
                    block[f["field"]] = data[f["columns"][0]]
                elif f["field"] == "index":
                    block["index"] = np.arange(self.rows, self.rows + rows)
            self._append(self.table, block)
            self.rows += rows
            return
        if self.wide:
            for name, v in self._by_name(columns, counts, kept, jet_kept).items():
                self._append(self.datasets[name], v)
            return
        if self.layout == "vlen":
            assert counts is not None
            cuts = np.cumsum(counts.astype(np.int64))[:-1]
            per_jet = {name: np.asarray(columns[role], np.float32) for role, name in self.names.items()}
            per_jet.update({k: np.asarray(v) for k, v in jet_kept.items() if k in self.jet_dtypes})
            for name, v in per_jet.items():
                obj = np.empty(len(counts), dtype=object)
                obj[:] = np.split(v.astype(self.datasets[name].dtype.metadata["vlen"]), cuts)
                self._append(self.datasets[name], obj)
            if self.counter:
                self._append(self.datasets[self.counter], counts.astype(self.datasets[self.counter].dtype))
        else:
            for role, name in self.names.items():
                self._append(self.datasets[name], np.asarray(columns[role]).astype("<f4"))
            if self.info.jagged:
                assert counts is not None and self.counter is not None
                self._append(self.datasets[self.counter], counts.astype("<u4"))
            for k, v in jet_kept.items():
                if k in self.jet_dtypes:
                    self._append(self.datasets[k], v)
        for k, v in kept.items():
            if k in self.kept_dtypes:
                self._append(self.datasets[k], v)

    def write_extras(self, blob: bytes) -> None:
        """Copy back what :meth:`Hdf5Source.extras` carried (objects the output lacks, attributes)."""
        import h5py

        if self.file is None:
            raise InputError("cannot write HDF5 output: an earlier write failed")
        if bytes(blob[:8]) != HDF5_MAGIC:
            return  # another format's extras (a ROOT file's other trees): not for an HDF5 file
        self._check_space(2 * len(blob))
        try:
            with h5py.File(io.BytesIO(blob), "r") as src:
                def walk(sgroup, dgroup) -> None:
                    for k in sgroup.attrs:
                        if k not in dgroup.attrs:
                            dgroup.attrs[k] = sgroup.attrs[k]
                    for name, obj in sgroup.items():
                        if isinstance(obj, h5py.Group):
                            walk(obj, dgroup.require_group(name))
                        elif name not in dgroup:
                            sgroup.copy(obj, dgroup, name)
                walk(src, self.file)
        except (OSError, RuntimeError) as exc:
            self._fail(exc)

    def close(self) -> None:
        if self.file is None:
            return  # aborted after an error (already reported)
        try:
            if self.layout == "pandas-table":
                self.table.attrs["NROWS"] = np.int64(len(self.table))
            if self.layout == "awkward":
                self.group.attrs["length"] = str(self.events) if self.info.extra["awkward"]["length_is_text"] \
                    else np.int64(self.events)
            self._check_space(0)
            self.file.close()
            self.file = None
        except (OSError, RuntimeError) as exc:
            self._fail(exc)
