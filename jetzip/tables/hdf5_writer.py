"""Writing a table back into HDF5 in the layout it came in (see :mod:`jetzip.tables.hdf5`).

Restores are no bigger than they need be (issue 20): every dataset is compressed (deflate, as
every HDF5 build and PyTables read it, behind the byte shuffle that floats compress better
with) in chunks sized to the data: a chunk holds about as many rows as the first write (never
fewer than ``MIN_CHUNK_ROWS`` or more than ``MAX_CHUNK_ROWS`` rows or ``CHUNK_BYTES`` bytes), so
a table of 200 events is not written in 65,536-row chunks. Datasets are therefore created at
the first write (or at close, empty).

Jet columns keep the input's dtype (``info.dtypes``; float32 when it is not known): a float64
input comes back float64, so that values float32 cannot hold still meet their bound (issue 23).
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from ..errors import InputError
from .base import TableInfo
from .hdf5_layouts import attrs_from_json
from .wide import unstack, wide_of

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SPACE_MARGIN = 4 << 20  # free bytes kept beyond a write (HDF5 metadata, the close)
GZIP_LEVEL = 4
MIN_CHUNK_ROWS = 256
MAX_CHUNK_ROWS = 1 << 16
CHUNK_BYTES = 1 << 20
# Writes are held back until they reach this many bytes: a table that fits is written with its
# datasets at their final size (one compact chunk index each: 365 B of HDF5 metadata per
# column instead of 2.5 kB, what a 40-event NanoAOD of 1,500 columns is made of).
BUFFER_BYTES = 32 << 20
LIBVER = ("v110", "v110")  # HDF5 >= 1.10 (2016) reads these files; PyTables and pandas do


def chunk_rows(hint: int, row_bytes: int) -> int:
    """Rows per HDF5 chunk for a dataset whose first write holds `hint` rows of `row_bytes`."""
    rows = 1 << max(int(hint) - 1, 0).bit_length()  # the power of two at or above the hint
    return int(max(1, min(max(rows, MIN_CHUNK_ROWS), MAX_CHUNK_ROWS, CHUNK_BYTES // max(int(row_bytes), 1))))


def jet_dtype(info: TableInfo, name: str) -> np.dtype:
    """The dtype a jet column is written in: the input's floating type, else float32."""
    dt = np.dtype(info.dtypes.get(name, "float32"))
    return dt if dt.kind == "f" and dt.itemsize in (4, 8) else np.dtype(np.float32)


def _join(parts: list[Any]) -> Any:
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    import awkward as ak

    return ak.concatenate(parts)


def _ak_type(arr: Any) -> str:
    import awkward as ak

    return str(ak.type(arr).content) if isinstance(arr, ak.Array) else str(getattr(arr, "dtype", type(arr)))


def _h5_type(arr: Any) -> Any:
    """The HDF5 dtype of a carried branch, one value per entry: a number, a list of numbers
    (variable-length), or a string; None for anything else (records, nested lists)."""
    import awkward as ak
    import h5py

    if not isinstance(arr, ak.Array):
        a = np.asarray(arr)
        return a.dtype if a.ndim == 1 and a.dtype.kind in "biuf" else None
    t = ak.type(arr).content
    if isinstance(t, ak.types.OptionType):
        return None
    if isinstance(t, ak.types.NumpyType):
        return np.dtype(t.primitive if t.primitive != "bool" else np.bool_)
    if isinstance(t, (ak.types.ListType, ak.types.RegularType)):
        if (t.parameter("__array__") or "") == "string":
            return h5py.string_dtype()
        inner = t.content
        if isinstance(inner, ak.types.NumpyType):
            return h5py.vlen_dtype(np.dtype(inner.primitive if inner.primitive != "bool" else np.bool_))
    return None


def _h5_values(arr: Any, dtype: Any) -> np.ndarray:
    import awkward as ak
    import h5py

    if h5py.check_string_dtype(dtype) is not None:
        return np.array(ak.to_list(arr), dtype=object)
    base = h5py.check_vlen_dtype(dtype)
    if base is None:
        return np.asarray(ak.to_numpy(arr) if isinstance(arr, ak.Array) else arr).astype(dtype, copy=False)
    flat = np.asarray(ak.to_numpy(ak.flatten(arr, axis=1))).astype(base, copy=False)
    return _rows_of(flat, np.asarray(ak.num(arr, axis=1), np.int64))


def _rows_of(flat: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A 1-D object array of the `counts`-long pieces of `flat` (a variable-length dataset's
    rows; assigned one by one: equal lengths would make numpy build a 2-D array)."""
    out = np.empty(len(counts), dtype=object)
    for i, part in enumerate(np.split(flat, np.cumsum(np.asarray(counts, np.int64))[:-1])):
        out[i] = part
    return out


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
            # one column per (slot, variable): the 4-vector's own float type, the extras' own dtype
            self.jet_names = [n for slot in self.wide.jets for n in slot.values()]
            self.slot_dtypes = {n: jet_dtype(info, n).str for n in self.jet_names}
            for pn, cols in self.wide.extras.items():
                self.slot_dtypes.update({c: info.dtypes.get(pn, "float64") for c in cols})
                self.jet_names += cols
        else:
            self.jet_dtypes = {n: info.dtypes.get(n, "float64") for n in info.jet_branches}
            self.jet_names = list(names.values())
            self.slot_dtypes = {n: jet_dtype(info, n).str for n in self.jet_names}
        self.file = None
        self.created = False
        self._check_space(0)  # a full disk is said before any work is done
        try:
            # no raw-data chunk cache: a write that fails (full disk) fails in write(), and no dirty
            # chunk is left for a later close to flush (which crashed HDF5: issue 12)
            self.file = h5py.File(path, "w", track_order=self.track_order, rdcc_nbytes=0, libver=LIBVER)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc}") from None
        self.pending: list[tuple[dict, np.ndarray | None, dict, dict, dict]] = []
        self.pending_bytes = 0
        self.final = False  # datasets made at their final size: nothing more can be written
        self.at: dict[str, int] = {}  # rows written into each dataset
        self.carried_kinds: dict[str, Any] | None = None  # carried branch -> its dataset's dtype
        self.missing: list[str] = []  # carried branches HDF5 cannot hold, one line each

    def _ensure(self, rows: int, jets: int, final: bool) -> None:
        """Create the table's datasets (once): for the whole table of `rows` events (or rows)
        and `jets` jets when `final`, else growable with chunks sized for writes of that size."""
        if self.created:
            return
        import h5py

        self.created = True
        self.final = final
        self.hint_rows, self.hint_jets = int(rows), int(jets)
        try:
            self._create(h5py)
        except (OSError, RuntimeError) as exc:
            self._fail(exc)
        except BaseException:
            self._abort()
            raise

    def _dataset(self, group, name: str, dtype: Any, per_jet: bool = False, width: int = 0, extra: int = 0, **kw):
        """An empty compressed dataset with chunks sized to the data: of its final size (`extra`
        rows more than the table's: an awkward offsets buffer) or growable."""
        import h5py

        dtype = np.dtype(dtype)
        vlen = h5py.check_vlen_dtype(dtype) is not None
        item = (16 if vlen else dtype.itemsize) * max(width, 1)
        hint = (self.hint_jets if per_jet else self.hint_rows) + extra
        tail = (width,) if width else ()
        if self.final and hint == 0:
            return group.create_dataset(name, shape=(0, *tail), dtype=dtype, **kw)
        rows = chunk_rows(max(hint, 1), item)
        if self.final:
            shape, maxshape, rows = (hint, *tail), (hint, *tail), min(rows, hint)
        else:
            shape, maxshape = (0, *tail), (None, *tail)
        return group.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=(rows, *tail),
                                    compression="gzip", compression_opts=GZIP_LEVEL, shuffle=not vlen, **kw)

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
            self.table = self._dataset(group, dname or "jets", np.dtype([(n, dt[n]) for n in fields]))
            self.table.attrs["units"] = info.units  # read back by Hdf5Source: no guessing
            return
        if self.layout in ("pandas-fixed", "pandas-table") and not (info.jagged and not self.wide):
            self._create_pandas()
            return
        if self.layout == "awkward" and not self.wide:
            self._create_awkward()
            return
        self.layout = "vlen" if self.layout == "vlen" else "columns"
        f = self._open_file()
        group = f.create_group(tree, track_order=self.track_order) if tree else f
        group.attrs["units"] = info.units  # read back by Hdf5Source: no guessing
        self.group = group
        jagged = info.jagged and not self.wide
        dtypes: dict[str, Any] = {}
        per_jet: set[str] = set()
        for n in self.jet_names:
            dtypes[n] = h5py.vlen_dtype(np.dtype(self.slot_dtypes[n])) if self.layout == "vlen" else self.slot_dtypes[n]
        self.counter = None
        if jagged:
            per_jet.update(self.jet_names if self.layout == "columns" else ())
            self.counter = info.counter or (None if self.layout == "vlen" else f"n{info.collection or 'Jet'}")
            if self.counter:
                dtypes[self.counter] = info.dtypes.get(self.counter, "<u4") if self.layout == "vlen" else "<u4"
        dtypes.update(self.kept_dtypes)
        for n, jet_dt in self.jet_dtypes.items():
            dtypes[n] = h5py.vlen_dtype(np.dtype(jet_dt)) if self.layout == "vlen" else jet_dt
            if jagged and self.layout == "columns":
                per_jet.add(n)
        self.datasets = {}
        for n in self._order(list(dtypes)):
            if n in group:
                raise InputError(f"HDF5 output: two columns named {n!r}")
            self.datasets[n] = self._dataset(group, n, dtypes[n], per_jet=n in per_jet)

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
                self.datasets[b["data"]] = self._dataset(group, b["data"], b["dtype"], per_jet=bool(b["offsets"]))
            if b["offsets"] and b["offsets"] not in group:
                d = self._dataset(group, b["offsets"], b["offsets_dtype"], extra=1)
                self._append(d, np.zeros(1, d.dtype))
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

    def _create_pandas(self) -> None:
        info = self.info
        desc = info.extra["pandas"]
        group = self._group(info.tree or "")
        attrs_from_json(desc["group_attrs"], group.attrs)
        group.attrs["units"] = info.units
        self.group = group
        if self.layout == "pandas-fixed":
            carried = set(self.jet_names) | set(self.kept_dtypes)
            axis0 = [n for n in desc["axis0"] if n in carried]
            self.blocks = []
            for i, b in enumerate(x for x in desc["blocks"] if any(n in carried for n in x["items"])):
                items = [n for n in b["items"] if n in carried]
                ds = group.create_dataset(f"block{i}_items", data=np.array([n.encode() for n in items]))
                attrs_from_json(b["items_attrs"], ds.attrs)
                vals = self._dataset(group, f"block{i}_values", b["dtype"], width=len(items))
                attrs_from_json(b["attrs"], vals.attrs)
                vals.attrs["transposed"] = np.uint8(1)
                self.blocks.append((items, vals))
            group.attrs["nblocks"] = np.int64(len(self.blocks))
            ds = group.create_dataset("axis0", data=np.array([n.encode() for n in axis0]))
            attrs_from_json(desc["axis0_attrs"], ds.attrs)
            self.index_name = desc.get("index")
            self.axis1 = self._dataset(group, "axis1", "<i8")
            attrs_from_json(desc["axis1_attrs"], self.axis1.attrs)
            return
        fields = desc["fields"]
        dt = np.dtype([(f["field"], np.dtype(f["dtype"]), tuple(f["shape"])) if f["shape"]
                       else (f["field"], np.dtype(f["dtype"])) for f in fields])
        self.fields = fields
        self.table = self._dataset(group, "table", dt)
        attrs_from_json(desc["table_attrs"], self.table.attrs)

    def _append(self, ds, values: np.ndarray) -> None:
        n = self.at.get(ds.name, 0)
        end = n + len(values)
        if end > ds.shape[0]:
            if self.final:
                raise InputError(f"HDF5 output: more rows for {ds.name} than the table was made for")
            ds.resize((end,) + ds.shape[1:])
        if len(values) and values.dtype == object:  # variable-length rows: h5py makes rows of equal
            ds.write_direct(values, np.s_[0:len(values)], np.s_[n:end])  # length a 2-D array otherwise
        elif len(values):
            ds[n:end] = values
        self.at[ds.name] = end

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None,
              carried: dict[str, Any] | None = None) -> None:
        """One chunk; `carried`: other branches as awkward arrays, one entry per event (row),
        written as datasets of the table's group where HDF5 holds them (numbers, lists of
        numbers, strings), else named in :attr:`missing`."""
        if self.file is None:
            raise InputError("cannot write HDF5 output: an earlier write failed")
        nbytes = sum(np.asarray(v).nbytes for v in columns.values()) * 2
        nbytes += sum(np.asarray(v).nbytes for d in (kept, jet_kept or {}) for v in d.values())
        nbytes += sum(int(getattr(v, "nbytes", 0)) for v in (carried or {}).values())
        self._check_space(2 * nbytes)
        part = (columns, counts, kept, jet_kept or {}, carried or {})
        try:
            if self.created:
                self._write(*part[:4])
                self._write_carried(part[4])
                return
            self.pending.append(part)  # held back: a table that fits is made at its final size
            self.pending_bytes += nbytes
            if self.pending_bytes >= BUFFER_BYTES:
                self._flush(final=False)
        except (OSError, RuntimeError) as exc:
            self._fail(exc)

    def _flush(self, final: bool) -> None:
        """Create the datasets for what is held back (the whole table when `final`) and write it."""
        parts, self.pending, self.pending_bytes = self.pending, [], 0
        if not parts:
            self._ensure(0, 0, final)
            return

        def join(dicts: list[dict]) -> dict:
            return {k: _join([d[k] for d in dicts]) for k in dicts[0]}

        counts = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])  # type: ignore[misc]
        columns = join([p[0] for p in parts])
        n_jets = len(next(iter(columns.values()))) if columns else 0
        self._ensure(len(counts) if counts is not None else n_jets, n_jets, final)
        self._write(columns, counts, join([p[2] for p in parts]), join([p[3] for p in parts]))
        self._write_carried(join([p[4] for p in parts]))

    def _write_carried(self, carried: dict[str, Any]) -> None:
        if not carried:
            return
        if self.carried_kinds is None:  # the first write decides which carried branches HDF5 holds
            self.carried_kinds = {}
            group = getattr(self, "group", None)
            for name, arr in carried.items():
                dtype = _h5_type(arr) if group is not None and name not in group else None
                if dtype is None:
                    self.missing.append(f"{name} ({_ak_type(arr)}: not a column HDF5 holds; decompress to "
                                        f".{self.info.format if self.info.format != 'hdf5' else 'parquet'} to keep it)")
                    continue
                self.carried_kinds[name] = dtype
                self.datasets[name] = self._dataset(group, name, dtype)
        for name, dtype in self.carried_kinds.items():
            self._append(self.datasets[name], _h5_values(carried[name], dtype))

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
            out = unstack(columns, counts, self.wide, jet_kept, dtype=self.slot_dtypes)
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
            per_jet = {name: np.asarray(columns[role]) for role, name in self.names.items()}
            per_jet.update({k: np.asarray(v) for k, v in jet_kept.items() if k in self.jet_dtypes})
            for name, v in per_jet.items():
                self._append(self.datasets[name], _rows_of(v.astype(self.datasets[name].dtype.metadata["vlen"]),
                                                           counts))
            if self.counter:
                self._append(self.datasets[self.counter], counts.astype(self.datasets[self.counter].dtype))
        else:
            for role, name in self.names.items():
                self._append(self.datasets[name], np.asarray(columns[role]).astype(self.datasets[name].dtype))
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
            if not self.created:
                self._flush(final=True)  # every chunk came before the extras
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
            if not self.created:
                self._flush(final=True)
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
