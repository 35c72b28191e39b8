"""Where a table's columns are in an HDF5 file, layout by layout (see :mod:`jetzip.tables.hdf5`).

The first of the HDF5 reader's steps, *choose the table* (:func:`only_table_group`) and *find
its columns* (:func:`columns_of`), from metadata only. Every size a layout declares is checked
against the others before anything is read (issue 23): pandas' ``blockN_items`` against its
``blockN_values`` and ``axis1``, ``axis0`` against the blocks, the names of a pandas table's
``values_block_N`` against the field's width, an awkward group's ``length`` against its offsets
and data buffers, and any dataset read whole against the bytes it stores. A file whose parts
disagree is refused in one line, never read wrongly.

Also here: pandas attributes as JSON (they travel in the ``.aez`` header) and reading rows of
columns (:func:`read_cols`).
"""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import pickle
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from .layouts import candidates
from .wide import find_wide

# A dataset read whole (names, offsets, counters) may declare at most this many times the bytes
# it stores, once it declares more than STORED_CHECK_BYTES: deflate cannot expand more than
# 1032:1, so more is a header claiming data that is not there.
MAX_EXPANSION = 1100
STORED_CHECK_BYTES = 64 << 20
MAX_BLOCKS = 1 << 16  # pandas blocks (one per dtype in practice)


@dataclasses.dataclass
class Col:
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


def open_file(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read as an HDF5 file ({exc})") from None


def text(value) -> str | None:
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


def numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "biuf" and dtype.shape == ()


def _vlen_base(ds, h5py) -> np.dtype | None:
    base = h5py.check_vlen_dtype(ds.dtype)
    return np.dtype(base) if base is not None and np.dtype(base).kind in "biuf" else None


def _int_attr(node, key: str, where: str, default: int | None = None) -> int:
    """An integer attribute, written as a number or as text (pandas, awkward)."""
    value = node.attrs.get(key)
    if value is None and default is not None:
        return default
    try:
        value = text(value) or value
        out = int(json.loads(value) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: attribute {key} is not a whole number ({str(value)[:40]!r})") from None
    if out < 0:
        raise InputError(f"{where}: attribute {key} is negative ({out})")
    return out


def check_stored(ds, name: str, where: str) -> None:
    """Refuse a dataset that declares far more bytes than it stores (chunks never written, or a
    filter expanding beyond deflate's 1032:1), from its metadata, before it is read."""
    try:
        declared = int(ds.size) * ds.dtype.itemsize
        if declared < STORED_CHECK_BYTES or ds.dtype.kind == "O":
            return
        stored = int(ds.id.get_storage_size())
    except Exception:  # noqa: BLE001 - a dataset h5py cannot size: nothing to check
        return
    if stored * MAX_EXPANSION < declared:
        raise InputError(f"{where}: {name} declares {'x'.join(map(str, ds.shape))} values ({declared} bytes) "
                         f"but stores {stored} bytes; refusing to expand it (not data, or a decompression bomb)")


def pandas_kind(node) -> str | None:
    kind = text(node.attrs.get("pandas_type"))
    if kind == "frame":
        return "pandas-fixed"
    if kind == "frame_table" and "table" in node:
        return "pandas-table"
    return None


def columns_of(node, h5py, where: str) -> tuple[str, list[Col], list[str]]:
    """(layout, columns, names of the group members the layout itself consists of)."""
    if isinstance(node, h5py.Dataset):
        return "compound", _compound_cols(node), []
    form = awkward_form(node)
    if form is not None:
        cols, own = _awkward_cols(node, form, h5py, where)
        return "awkward", cols, own
    kind = pandas_kind(node)
    if kind == "pandas-fixed":
        cols, own = _pandas_fixed_cols(node, h5py, where)
        return kind, cols, own
    if kind == "pandas-table":
        return kind, _pandas_table_cols(node, where), ["table", "_i_table"]
    cols = []
    for k, v in node.items():
        if not isinstance(v, h5py.Dataset) or v.ndim != 1:
            continue
        if v.dtype.names is None and numeric(v.dtype):
            cols.append(Col(k, v, dtype=v.dtype))
        elif v.dtype.names is None:
            base = _vlen_base(v, h5py)
            if base is not None:
                cols.append(Col(k, v, vlen=True, dtype=base))
    compounds = [k for k, v in node.items() if isinstance(v, h5py.Dataset) and v.dtype.names]
    if not cols and len(compounds) == 1:
        return "compound", _compound_cols(node[compounds[0]]), [compounds[0]]
    return "columns", cols, [c.name for c in cols]


def _compound_cols(ds) -> list[Col]:
    return [Col(n, ds, field=n, dtype=ds.dtype[n]) for n in ds.dtype.names if numeric(ds.dtype[n])]


def _pandas_fixed_cols(group, h5py, where: str) -> tuple[list[Col], list[str]]:
    """Columns of ``to_hdf(format="fixed")``; every block's names, values and the index must
    agree in shape (a ``block0_items`` of 10^8 names beside 4 columns is refused unread)."""
    cols: list[Col] = []
    own = ["axis0", "axis1"]
    nblocks = _int_attr(group, "nblocks", where, default=0)
    if nblocks > MAX_BLOCKS:
        raise InputError(f"{where}: pandas attribute nblocks says {nblocks} blocks; not a pandas frame")
    axis0, axis1 = group.get("axis0"), group.get("axis1")
    rows = int(axis1.shape[0]) if isinstance(axis1, h5py.Dataset) and axis1.ndim == 1 else None
    named = 0
    for b in range(nblocks):
        items, values = group.get(f"block{b}_items"), group.get(f"block{b}_values")
        own += [f"block{b}_items", f"block{b}_values"]
        if not isinstance(items, h5py.Dataset) or not isinstance(values, h5py.Dataset):
            raise InputError(f"{where}: pandas block {b} of {nblocks} lacks block{b}_items or block{b}_values")
        if items.ndim != 1:
            raise InputError(f"{where}: pandas block{b}_items is not a list of names (shape {items.shape})")
        n_items = int(items.shape[0])
        named += n_items
        if values.ndim != 2:
            continue  # object (pickled) blocks: not columns jetzip can carry
        transposed = bool(_int_attr(values, "transposed", where, default=1))
        n_cols, n_rows = (values.shape[1], values.shape[0]) if transposed else values.shape
        if n_items != n_cols:
            raise InputError(f"{where}: pandas block{b}_items names {n_items} columns but block{b}_values "
                             f"holds {n_cols}; the file is inconsistent")
        if rows is not None and n_rows != rows:
            raise InputError(f"{where}: pandas block{b}_values holds {n_rows} rows but the index (axis1) "
                             f"{rows}; the file is inconsistent")
        if not numeric(values.dtype):
            continue  # string blocks: not columns jetzip can carry
        check_stored(values, f"block{b}_values", where)
        check_stored(items, f"block{b}_items", where)
        names = [text(n) or str(n) for n in items[()]]
        for j, n in enumerate(names):
            cols.append(Col(n, values, index=j, transposed=transposed, dtype=values.dtype))
    if isinstance(axis0, h5py.Dataset) and axis0.ndim == 1 and int(axis0.shape[0]) != named:
        raise InputError(f"{where}: pandas axis0 names {int(axis0.shape[0])} columns but the blocks hold "
                         f"{named}; the file is inconsistent")
    if isinstance(axis1, h5py.Dataset) and axis1.ndim == 1 and numeric(axis1.dtype):
        taken = {c.name for c in cols}
        cols.append(Col("index" if "index" not in taken else "jetzip_index", axis1, dtype=axis1.dtype))
    return cols, own


def awkward_form(node) -> dict | None:
    """The form of an ``ak.to_buffers`` group (attributes ``form`` and ``length``), else None."""
    if "form" not in node.attrs or "length" not in node.attrs:
        return None
    try:
        form = json.loads(text(node.attrs["form"]) or "")
        int(json.loads(str(text(node.attrs["length"]) or node.attrs["length"])))
    except (ValueError, TypeError):
        return None
    return form if isinstance(form, dict) and "class" in form else None


def _awkward_cols(group, form: dict, h5py, where: str) -> tuple[list[Col], list[str]]:
    """Columns of the forms jet tables have: a record of numbers, lists of numbers, lists of
    records of numbers (``Jet.pt``) and records of numbers; buffers named ``{form_key}-data``
    and ``{form_key}-offsets`` (``ak.to_buffers``' default). Other fields are not columns.
    `form` is the group's (:func:`awkward_form`).

    The group's ``length`` must be the length of every top-level field (a list's offsets hold
    length + 1 values), offsets must start at 0 or more and end within their data buffers.
    """
    cols: list[Col] = []
    own: list[str] = []
    length = _int_attr(group, "length", where)

    def ds(key):
        d = group.get(key)
        return d if isinstance(d, h5py.Dataset) and d.ndim == 1 else None

    def numpy_col(name, f, offsets=None):
        if f.get("class") != "NumpyArray" or f.get("inner_shape") or (f.get("parameters") or {}).get("__array__"):
            return False
        d = ds(f"{f.get('form_key')}-data")
        if d is None or not numeric(d.dtype):
            return False
        if offsets is None and int(d.shape[0]) != length:
            raise InputError(f"{where}: the awkward length is {length} but {d.name.rsplit('/', 1)[-1]} holds "
                             f"{int(d.shape[0])} values; the file is inconsistent")
        cols.append(Col(name, d, vlen=offsets is not None, dtype=d.dtype, offsets=offsets))
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
                _check_offsets(off, cols[before:], length, where)
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


def _check_offsets(off, cols: list[Col], length: int, where: str) -> None:
    key = off.name.rsplit("/", 1)[-1]
    if int(off.shape[0]) != length + 1:
        raise InputError(f"{where}: the awkward length is {length} but {key} holds {int(off.shape[0]) - 1} "
                         "events; the file is inconsistent")
    if off.dtype.kind not in "iu":
        raise InputError(f"{where}: {key} holds {off.dtype} values, not integer offsets")
    check_stored(off, key, where)
    first, last = (int(off[0]), int(off[-1])) if length else (0, 0)
    if first < 0 or last < first:
        raise InputError(f"{where}: {key} runs from {first} to {last}; offsets must start at 0 or more and "
                         "never decrease")
    for c in cols:
        if last > int(c.ds.shape[0]):
            raise InputError(f"{where}: {key} points to value {last} but {c.ds.name.rsplit('/', 1)[-1]} holds "
                             f"{int(c.ds.shape[0])}; the file is inconsistent")


def awkward_prune(form: dict, keep: set[str]) -> dict:
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


def _pandas_table_cols(group, where: str) -> list[Col]:
    """Columns of ``to_hdf(format="table")``: the names of each ``values_block_N`` (pickled in
    the ``values_block_N_kind`` attribute) must be as many as the field is wide."""
    ds = group["table"]
    cols: list[Col] = []
    index_col = None
    for f in ds.dtype.names:
        dt = ds.dtype[f]
        if f.startswith("values_block_") and dt.shape and len(dt.shape) == 1:
            if dt.base.kind not in "biuf":
                continue  # strings: not columns jetzip can carry
            names = _unpickle_names(ds.attrs.get(f"{f}_kind"))
            if names is None:
                raise InputError(f"{where}: the column names of the pandas table's {f} ({f}_kind) cannot be "
                                 "read; the file is not a pandas table jetzip understands")
            if len(names) != dt.shape[0]:
                raise InputError(f"{where}: the pandas table's {f} holds {dt.shape[0]} columns but {f}_kind "
                                 f"names {len(names)}; the file is inconsistent")
            cols += [Col(str(n), ds, field=f, index=j, dtype=dt.base) for j, n in enumerate(names)]
        elif numeric(dt):
            if f == "index":
                index_col = Col(f, ds, field=f, dtype=dt)
            else:
                cols.append(Col(f, ds, field=f, dtype=dt))
    if index_col is not None:
        if any(c.name == "index" for c in cols):
            index_col.name = "jetzip_index"
        cols.append(index_col)
    return cols


def _names_of(node, h5py) -> list[str]:
    try:
        return [c.name for c in columns_of(node, h5py, node.name)[1]]
    except Exception:  # noqa: BLE001 - an unreadable or inconsistent member is looked at when chosen
        return []


def _has_jets(names: list[str]) -> bool:
    return bool(candidates(names)) or bool(find_wide(names))


def only_table_group(file, path: str, h5py) -> str | None:
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
            if _has_jets(_names_of(obj, h5py)) or _declares_table(obj):
                found.append(name)
        elif isinstance(obj, h5py.Dataset) and obj.dtype.names and _has_jets(list(obj.dtype.names)):
            found.append(name)

    file.visititems(visit)
    if len(found) > 1:
        raise InputError(f"{path}: jets in several tables ({', '.join(found[:10])}); choose one with --tree")
    return found[0] if found else None


def _declares_table(group) -> bool:
    """A pandas or awkward group: chosen even when its columns cannot be listed (an inconsistent
    one is then refused by name, not passed over)."""
    return pandas_kind(group) is not None or awkward_form(group) is not None


def read_cols(cols: Sequence[Col], start: int, stop: int) -> dict[str, np.ndarray]:
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


# --- attributes as JSON (pandas metadata travels in the header) -----------------------------

def attrs_to_json(attrs) -> list:
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


def attrs_from_json(items: list, attrs) -> None:
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
