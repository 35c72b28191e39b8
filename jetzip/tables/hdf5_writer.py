"""Writing tables back into HDF5 in the layout they came in (see :mod:`jetzip.tables.hdf5`).

Restores are no bigger than they need be (issue 20): every dataset is compressed (deflate, as
every HDF5 build and PyTables read it, behind the byte shuffle that floats compress better
with) in chunks sized to the data: a chunk holds about as many rows as the first write (never
fewer than ``MIN_CHUNK_ROWS`` or more than ``MAX_CHUNK_ROWS`` rows or ``CHUNK_BYTES`` bytes), so
a table of 200 events is not written in 65,536-row chunks. Datasets are therefore created at
the first write (or at close, empty), with minimized object headers where the HDF5 library
allows it (:func:`minimized_dcpl`: 137 B less per dataset, a fifth of a 40-event NanoAOD).

Jet columns keep the input's dtype (``info.dtypes``; float32 when it is not known): a float64
input comes back float64, so that values float32 cannot hold still meet their bound (issue 23).

Every other branch a ROOT or Parquet input carried (``carried``, awkward arrays) is written as
plain, compressible datasets (:func:`carried_columns`), never as variable-length data (which
HDF5 cannot compress and stores with 16 bytes of heap header per event: 14.7x the input on a
40-event NanoAOD): a number, string or fixed-size array per entry as one dataset; a list per
entry (``Muon_pt``) as its flat values with a counter dataset of lengths per entry
(``nMuon``), one counter for every list of equal lengths (the file's own counter, reused when it
holds those lengths; NanoAOD's name for it, or ``n<common prefix>``, otherwise), named with the
jets' counter in the group attribute ``counters`` (JSON ``{counter: [lists]}``); the file's
other counters of the same lists (uproot's ``nMuon_pt`` beside ``nMuon``) as copies; records as their fields
(``MET.fX``) and lists of lists as their flattened inner lists and lengths (``b`` and
``b_counts``), as the ROOT writer writes them. Read a list back with
``ak.unflatten(g["Muon_pt"][:], g["nMuon"][:])``.

Several tables (the trees of a ROOT file) go into one file, each in its own group named as its
tree, through one :class:`Hdf5Output` shared by a writer per table.
"""
from __future__ import annotations

import io
import json
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
# A whole dataset of at most this many bytes is stored in its object header, uncompressed:
# smaller than deflate's chunk with its index and filter message (5 % of a 40-event NanoAOD)
COMPACT_BYTES = 128
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


def _numeric(t: Any) -> np.dtype | None:
    """The numpy dtype of an awkward NumpyType of numbers or booleans, else None."""
    import awkward as ak

    if not isinstance(t, ak.types.NumpyType):
        return None
    dt = np.dtype(np.bool_ if t.primitive == "bool" else t.primitive)
    return dt if dt.kind in "biuf" else None


def _text(t: Any) -> Any:
    """h5py's string dtype for an awkward string (utf-8) or bytestring (ascii) type, else None."""
    import h5py

    kind = t.parameter("__array__") if hasattr(t, "parameter") else None
    return h5py.string_dtype("utf-8" if kind == "string" else "ascii") if kind in ("string", "bytestring") else None


def _kind(arr: Any) -> tuple[str, Any]:
    """How HDF5 holds one carried branch: ``("value", dtype)`` for a number, string or
    fixed-size array of numbers per entry (dtype with its shape), ``("list", dtype)`` for a list
    of numbers or strings, ``("record", None)``, ``("lists", None)`` for lists of lists or of
    records, ``("none", None)`` for anything else (missing values, unions)."""
    import awkward as ak

    if not isinstance(arr, ak.Array):
        a = np.asarray(arr)
        return ("value", np.dtype((a.dtype, a.shape[1:]))) if a.ndim and a.dtype.kind in "biuf" else ("none", None)
    t = ak.type(arr).content
    if _numeric(t) is not None or _text(t) is not None:
        return "value", _numeric(t) if _numeric(t) is not None else _text(t)
    if isinstance(t, ak.types.RecordType):
        return "record", None
    if isinstance(t, ak.types.RegularType):  # float[3] per entry: a 2-D dataset, when all regular
        shape, inner = [], t
        while isinstance(inner, ak.types.RegularType) and _text(inner) is None:
            shape.append(inner.size)
            inner = inner.content
        if _numeric(inner) is not None:
            return "value", np.dtype((_numeric(inner), tuple(shape)))
    if isinstance(t, (ak.types.ListType, ak.types.RegularType)):
        inner = t.content
        if _numeric(inner) is not None or _text(inner) is not None:
            return "list", _numeric(inner) if _numeric(inner) is not None else _text(inner)
        if isinstance(inner, (ak.types.ListType, ak.types.RegularType, ak.types.RecordType)):
            return "lists", None
    return "none", None


def carried_columns(name: str, arr: Any, notes: set[str] | None = None) -> list[tuple[str, Any, str, Any]]:
    """A carried branch as the columns HDF5 holds: ``(name, array, kind, dtype)`` with `kind`
    ``value`` or ``list`` (see :func:`_kind`), ``none`` for what HDF5 cannot hold. Records
    become their fields (``name.field``), lists of lists their flattened inner lists (``name``)
    and lengths (``name_counts``, int32; a third level ``name_counts3``, ...), recursively;
    `notes` collects one line per kind so
    rewritten (as the ROOT writer says it)."""
    import awkward as ak

    kind, dtype = _kind(arr)
    if kind == "record":
        if notes is not None:
            notes.add("records as their fields (MET.fX)")
        return [c for f in ak.fields(arr) for c in carried_columns(f"{name}.{f}", arr[f], notes)]
    if kind == "lists":
        if isinstance(ak.type(arr).content.content, ak.types.RecordType):
            if notes is not None:
                notes.add("records as their fields (MET.fX)")
            return [c for f in ak.fields(arr) for c in carried_columns(f"{name}.{f}", arr[f], notes)]
        if notes is not None:
            notes.add("lists of lists as the flattened inner values with their lengths (b and b_counts)")
        from .root_writer import deeper_counts

        counts = ak.values_astype(ak.num(arr, axis=2), np.int32)
        inner = [(deeper_counts(name, c), *rest) for c, *rest in carried_columns(name, ak.flatten(arr, axis=2), notes)]
        return [*[c for c in inner if c[0] == name], *carried_columns(f"{name}_counts", counts, notes),
                *[c for c in inner if c[0] != name]]
    return [(name, arr, kind, dtype)]


def _values(arr: Any, kind: str, dtype: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(the values a column's dataset holds, the lengths per entry of a list, else None)."""
    import awkward as ak
    import h5py

    counts = None
    if kind == "list":
        counts = np.asarray(ak.num(arr, axis=1), np.int64)
        arr = ak.flatten(arr, axis=1)
    text = h5py.check_string_dtype(dtype)
    if text is not None:
        strings = np.array(ak.to_list(arr), dtype=object)
        if text.length is None:
            return strings, counts
        # the dataset's own string type (its encoding with it): HDF5 has no ASCII -> UTF-8 conversion
        return np.array([x.encode(text.encoding) if isinstance(x, str) else x for x in strings],
                        dtype=h5py.string_dtype(text.encoding, text.length)), counts
    values = np.asarray(ak.to_numpy(arr) if isinstance(arr, ak.Array) else arr)
    return values.astype(np.dtype(dtype).base, copy=False), counts


def fixed_strings(strings: np.ndarray, dtype: Any) -> Any:
    """Strings (an object array) as fixed-length HDF5 strings, which deflate compresses (a
    variable-length string costs 16 bytes of heap header, uncompressed: 10,252 events of
    trigger names were 300 kB), when that is exact and not much larger: no NUL byte in any
    (numpy strips trailing NULs; HDF5 may end a string at one) and at most 4 times the
    variable-length bytes. Else `dtype` (variable-length) as it is."""
    import h5py

    encoding = h5py.check_string_dtype(dtype).encoding
    raw = [x.encode(encoding) if isinstance(x, str) else bytes(x) for x in strings]
    longest = max((len(x) for x in raw), default=0)
    if any(b"\0" in x for x in raw) or longest * len(raw) > 4 * sum(len(x) + 16 for x in raw):
        return dtype
    return h5py.string_dtype(encoding, max(longest, 1))


def _stem(name: str) -> str:
    """What a list's name starts with, for grouping lists into counters: up to the first dot
    (``CalorimeterHits.energy``), else the first underscore (``Muon_pt``)."""
    return name.split(".", 1)[0] if "." in name else (name.split("_", 1)[0] or name)


def counter_names(members: list[str], declared: str | None) -> list[str]:
    """Names for the counter of lists of equal lengths, best first: the file's own (`declared`),
    ``n`` + the members' common prefix up to a separator (``nCalorimeterHits`` for
    ``CalorimeterHits.energy`` and ``.time``; ``nElectron`` for NanoAOD's ``Electron_pt``, also
    after an RNTuple's ``_collection1.``), then ``n`` + the first member, ``<first>_counts``."""
    import os.path
    import re

    out = [declared] if declared else []
    first = members[0]
    common = os.path.commonprefix(members) if len(members) > 1 else first
    cut = max(common.rfind(c) for c in "._:") if len(members) > 1 else -1
    stems = [common[:cut]] if cut > 0 else []
    stems += [m.group(1) for m in [re.match(r"(?:.*[.:])?([^._:]+)[_.]", first)] if m]
    out += [f"n{stem}" for stem in stems if stem]
    out += [f"n{first}", f"{first}_counts"]
    return list(dict.fromkeys(out))


def _counter_dtype(dtype: str | None) -> np.dtype:
    """A counter's dataset type: the input's when it is an integer type, else uint32."""
    dt = np.dtype(dtype or "<u4")
    return dt if dt.kind in "iu" else np.dtype("<u4")


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


def check_space(path: str, need: int) -> None:
    """Refuse before HDF5 runs out of disk: a failed write leaves the library in a state where
    closing the file can crash the process (issue 12: a segmentation fault on a full disk)."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".")
    except (OSError, AttributeError):
        return
    if st.f_bavail * st.f_frsize < need + SPACE_MARGIN:
        raise InputError(f"cannot write HDF5 output: the disk is full (less than "
                         f"{(need + SPACE_MARGIN) >> 20} MiB free where {os.path.basename(path)} is written)")


_NO_ATTRS_HINT: list[Any] = []  # [the C function, or None where it cannot be reached], found once


def _no_attrs_hint() -> Any:
    """HDF5's ``H5Pset_dset_no_attrs_hint`` (1.10.5+), which h5py does not wrap, from the very
    libhdf5 h5py has loaded (found in /proc/self/maps; Linux only), else None."""
    if not _NO_ATTRS_HINT:
        func = None
        try:
            import ctypes

            import h5py

            if h5py.version.hdf5_version_tuple >= (1, 10, 5):
                with open("/proc/self/maps") as maps:
                    libs = {line.split()[-1] for line in maps if "/libhdf5" in line and "_hl" not in line}
                if len(libs) == 1:  # one libhdf5 in the process: the one h5py's ids belong to
                    func = ctypes.CDLL(libs.pop()).H5Pset_dset_no_attrs_hint
                    func.argtypes = [ctypes.c_int64, ctypes.c_bool]
                    func.restype = ctypes.c_int
        except (OSError, AttributeError, ImportError):
            func = None
        _NO_ATTRS_HINT.append(func)
    return _NO_ATTRS_HINT[0]


def minimized_dcpl() -> Any:
    """A dataset creation property list asking HDF5 for a minimized object header (no room
    kept for attributes added later: 218 B per small compressed dataset instead of 355), or
    None where h5py's HDF5 cannot be reached (the default header then: same data, larger)."""
    import h5py

    func = _no_attrs_hint()
    if func is None:
        return None
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    return dcpl if func(dcpl.id, True) >= 0 else None


class Hdf5Output:
    """One HDF5 output file, shared by the writers of its tables (one group each).

    Raises:
        InputError: the disk is full or the file cannot be created.
    """

    def __init__(self, path: str, track_order: bool = True) -> None:
        import h5py

        self.path = path
        check_space(path, 0)  # a full disk is said before any work is done
        try:
            # no raw-data chunk cache: a write that fails (full disk) fails in write(), and no dirty
            # chunk is left for a later close to flush (which crashed HDF5: issue 12)
            self.file: Any = h5py.File(path, "w", track_order=track_order, rdcc_nbytes=0, libver=LIBVER)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc}") from None

    def abort(self) -> None:
        """Give up on the file without flushing it again; the caller removes it."""
        import gc

        f, self.file = self.file, None
        if f is None:
            return
        try:
            f.close()
        except Exception:  # noqa: BLE001 - the disk is full; the file is removed by the caller
            pass
        gc.collect()

    def close(self) -> None:
        if self.file is not None:
            check_space(self.path, 0)
            self.file.close()
            self.file = None


class Hdf5Writer:
    """Write the table back in its layout: columns (jagged: plus the counter), variable-length
    datasets, a compound table, or pandas' fixed and table formats.

    `output`: the file shared with the writers of the other tables (:class:`Hdf5Output`; the
    caller closes it), else the writer makes and closes its own at `path`. `group`: where the
    table goes, instead of ``info.tree``.
    """

    def __init__(self, path: str, info: TableInfo, names: dict[str, str], kept_dtypes: dict[str, str],
                 output: Hdf5Output | None = None, group: str | None = None) -> None:
        self.path = path
        self.info = info
        self.names = names
        self.kept_dtypes = dict(kept_dtypes)
        self.tree = info.tree or "" if group is None else group
        self.wide = wide_of(info)
        self.layout = self._table_layout(info.extra.get("hdf5_layout", "columns") if info.format == "hdf5"
                                         else "columns")
        # jets counted per entry by a counter dataset (a table without jets has none)
        self.jagged_jets = info.jagged and not self.wide and info.has_jets
        self.counter: str | None = None
        if self.jagged_jets:
            self.counter = info.counter or (None if self.layout == "vlen" else f"n{info.collection or 'Jet'}")
        # the file's own counters of list branches (NanoAOD nMuon, Delphes GenJet_size)
        self.declared: dict[str, str] = {k: v for k, v in (info.extra.get("counters") or {}).items()
                                         if isinstance(v, str)}
        for coll in info.collections:
            for col in [*coll.columns.values(), *coll.jet_branches] if coll.counter else []:
                self.declared.setdefault(col, coll.counter)  # type: ignore[arg-type]
        # the jets' other counters in the file (uproot writes nJet_pt beside nJet): the same counts
        self.jet_counters: list[str] = []
        if self.jagged_jets and self.layout == "columns":
            own = (self.declared.get(n) for n in [*names.values(), *info.jet_branches])
            self.jet_counters = list(dict.fromkeys(c for c in own if c and c != self.counter and c in info.branch_order
                                                   and c not in self.kept_dtypes))
        self.position: dict[str, float] = {n: float(i) for i, n in enumerate(info.branch_order)}
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
        self.created = False
        self.owns_output = output is None
        self.output = output if output is not None else Hdf5Output(path, self.track_order)
        self.pending: list[tuple[dict, np.ndarray | None, dict, dict, dict]] = []
        self.pending_bytes = 0
        self.final = False  # datasets made at their final size: nothing more can be written
        self.at: dict[str, int] = {}  # rows written into each dataset
        # carried columns (carried_columns) by name: (kind, dtype, values in the first write), decided at the first
        # write that has any; lists of equal lengths share a counter (self.counters)
        self.carried_plan: dict[str, tuple[str, Any, int]] | None = None
        self.counters: dict[str, dict[str, Any]] = {}  # counter -> {"members": [...], "own": bool}
        self.counter_of: dict[str, str] = {}  # list column -> its counter
        self.aliases: dict[str, str] = {}  # another counter of the file -> the list column it counts
        self.carried_rows = 0  # entries of carried columns written
        self.missing: list[str] = []  # carried branches HDF5 cannot hold, one line each
        self.notes: list[str] = []  # carried branches written as something else, one line per kind

    @property
    def file(self) -> Any:
        """The open h5py file, or None once an error gave it up."""
        return self.output.file

    def _table_layout(self, layout: str) -> str:
        """The layout written: the input's, unless the table no longer fits it (jagged jets in
        a compound or pandas table, several jets per row in an awkward group): then columns."""
        jagged = self.info.jagged and not self.wide
        if layout == "compound" and not jagged or layout in ("pandas-fixed", "pandas-table") and not jagged:
            return layout
        if layout == "awkward" and not self.wide:
            return layout
        return "vlen" if layout == "vlen" else "columns"

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

    def _dataset(self, group, name: str, dtype: Any, per_jet: bool = False, width: int = 0, extra: int = 0,
                 rows: int | None = None, attrs: bool = False):
        """An empty compressed dataset with chunks sized to the data: of its final size (`extra`
        rows more than the table's: an awkward offsets buffer; `rows` instead of the table's:
        a list's flat values) or growable. `dtype` may carry a shape (a fixed-size array);
        `attrs`: attributes follow (a full object header keeps room for them)."""
        import h5py

        dtype = np.dtype(dtype)
        tail = (width,) if width else dtype.shape
        dtype = dtype.base
        vlen = h5py.check_vlen_dtype(dtype) is not None or dtype.kind == "O"
        item = (16 if vlen else dtype.itemsize) * int(np.prod(tail, dtype=np.int64))
        hint = (rows if rows is not None else self.hint_jets if per_jet else self.hint_rows) + extra
        kw: dict[str, Any] = {}
        dcpl = None if attrs else minimized_dcpl()
        if dcpl is not None:
            kw["dcpl"] = dcpl
        if self.final and hint == 0:
            return group.create_dataset(name, shape=(0, *tail), dtype=dtype, **kw)
        if self.final and hint * item <= COMPACT_BYTES and not vlen and not attrs:
            plist = kw.get("dcpl") or h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            plist.set_layout(h5py.h5d.COMPACT)  # in the object header: no chunk index, no filter
            return group.create_dataset(name, shape=(hint, *tail), dtype=dtype, dcpl=plist)
        chunk = chunk_rows(max(hint, 1), item)
        if self.final:
            shape, maxshape, chunk = (hint, *tail), (hint, *tail), min(chunk, hint)
        else:
            shape, maxshape = (0, *tail), (None, *tail)
        return group.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=(chunk, *tail),
                                    compression="gzip", compression_opts=GZIP_LEVEL, shuffle=not vlen, **kw)

    def _open_file(self):
        """The output file: open from __init__ until close, unless an error gave it up."""
        if self.file is None:
            raise InputError("cannot write HDF5 output: an earlier write failed")
        return self.file

    def _group(self, path: str):
        f = self._open_file()
        return f.require_group(path) if path else f

    def _new_group(self):
        """The table's group (made here, or before by the file's writer to keep the tables' order)."""
        f = self._open_file()
        if not self.tree:
            return f
        return f[self.tree] if self.tree in f else f.create_group(self.tree, track_order=self.track_order)

    def _order(self, names: list[str]) -> list[str]:
        end = float(len(self.info.branch_order))
        return sorted(names, key=lambda n: self.position.get(n, end))

    def _create(self, h5py) -> None:
        info = self.info
        tree = self.tree
        if self.layout == "compound":
            parent, _, dname = tree.rpartition("/")
            group = self._group(parent)
            fields = self._order(self.jet_names + list(self.kept_dtypes))
            dt = {**self.slot_dtypes, **self.kept_dtypes}
            self.table = self._dataset(group, dname or "jets", np.dtype([(n, dt[n]) for n in fields]), attrs=True)
            self.table.attrs["units"] = info.units  # read back by Hdf5Source: no guessing
            return
        if self.layout in ("pandas-fixed", "pandas-table"):
            self._create_pandas()
            return
        if self.layout == "awkward":
            self._create_awkward()
            return
        group = self._new_group()
        group.attrs["units"] = info.units  # read back by Hdf5Source: no guessing
        self.group = group
        dtypes: dict[str, Any] = {}
        per_jet: set[str] = set()
        for n in self.jet_names:
            dtypes[n] = h5py.vlen_dtype(np.dtype(self.slot_dtypes[n])) if self.layout == "vlen" else self.slot_dtypes[n]
        if self.jagged_jets:
            per_jet.update(self.jet_names if self.layout == "columns" else ())
            for name in [self.counter, *self.jet_counters] if self.counter else []:
                dtypes[name] = _counter_dtype(info.dtypes.get(name))  # the input's own integer type
        dtypes.update(self.kept_dtypes)
        for n, jet_dt in self.jet_dtypes.items():
            dtypes[n] = h5py.vlen_dtype(np.dtype(jet_dt)) if self.layout == "vlen" else jet_dt
            if self.jagged_jets and self.layout == "columns":
                per_jet.add(n)
        self.datasets: dict[str, Any] = {}
        self._create_columns(group, dtypes, per_jet)

    def _create_columns(self, group, dtypes: dict[str, Any], per_jet: set[str]) -> None:
        """The datasets of `dtypes` and of the planned carried columns and counters not made
        yet, in the input's order."""
        rows: dict[str, int] = {}  # a list's flat values: as many rows as its values
        for col, (kind, dtype, n_values) in (self.carried_plan or {}).items():
            if col not in self.datasets:
                dtypes[col] = dtype
                if kind == "list":
                    rows[col] = n_values
        for col, c in self.counters.items():
            if c["own"] and col not in self.datasets:
                dtypes[col] = c["dtype"]
        for col in self.aliases:
            if col not in self.datasets:
                dtypes[col] = _counter_dtype(self.info.dtypes.get(col))
        for col in self._order(list(dtypes)):
            if col in group:
                raise InputError(f"HDF5 output: two columns named {col!r}")
            self.datasets[col] = self._dataset(group, col, dtypes[col], per_jet=col in per_jet, rows=rows.get(col))

    def _create_awkward(self) -> None:
        desc = self.info.extra["awkward"]
        group = self._new_group()
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
        group = self._group(self.tree)
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
                vals = self._dataset(group, f"block{i}_values", b["dtype"], width=len(items), attrs=True)
                attrs_from_json(b["attrs"], vals.attrs)
                vals.attrs["transposed"] = np.uint8(1)
                self.blocks.append((items, vals))
            group.attrs["nblocks"] = np.int64(len(self.blocks))
            ds = group.create_dataset("axis0", data=np.array([n.encode() for n in axis0]))
            attrs_from_json(desc["axis0_attrs"], ds.attrs)
            self.index_name = desc.get("index")
            self.axis1 = self._dataset(group, "axis1", "<i8", attrs=True)
            attrs_from_json(desc["axis1_attrs"], self.axis1.attrs)
            return
        fields = desc["fields"]
        dt = np.dtype([(f["field"], np.dtype(f["dtype"]), tuple(f["shape"])) if f["shape"]
                       else (f["field"], np.dtype(f["dtype"])) for f in fields])
        self.fields = fields
        self.table = self._dataset(group, "table", dt, attrs=True)
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
        written as plain datasets of the table's group (see the module docstring) where HDF5
        holds them, else named in :attr:`missing`."""
        if self.file is None:
            raise InputError("cannot write HDF5 output: an earlier write failed")
        nbytes = sum(np.asarray(v).nbytes for v in columns.values()) * 2
        nbytes += sum(np.asarray(v).nbytes for d in (kept, jet_kept or {}) for v in d.values())
        nbytes += sum(int(getattr(v, "nbytes", 0)) for v in (carried or {}).values())
        self._check_space(2 * nbytes)
        part = (columns, counts, kept, jet_kept or {}, carried or {})
        try:
            if self.created:
                if part[4] and self.carried_plan is None:  # the first carried branches come late
                    self._plan_carried(part[4], part[2], counts)
                    self._create_columns(self.group, {}, set())
                self._write(*part[:4])
                self._write_carried(part[4], part[2], counts)
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
        columns, kept, carried = join([p[0] for p in parts]), join([p[2] for p in parts]), join([p[4] for p in parts])
        n_jets = len(next(iter(columns.values()))) if columns else 0
        if counts is not None:
            rows = len(counts)
        else:
            rows = n_jets if columns else len(next(iter({**kept, **carried}.values()), ()))
        if carried and self.carried_plan is None:
            self._plan_carried(carried, kept, counts, final)  # before the datasets: made in the input's order
        self._ensure(rows, n_jets, final)
        self._write(columns, counts, kept, join([p[3] for p in parts]))
        self._write_carried(carried, kept, counts)

    # --- carried branches: plain datasets, lists as flat values with a counter ---------------

    def _plan_carried(self, carried: dict[str, Any], kept: dict[str, np.ndarray], counts: np.ndarray | None,
                      final: bool = False) -> None:
        """Decide, from the first chunk with carried branches (the whole table when `final`),
        the dataset of each carried column (:func:`carried_columns`; a whole table's strings
        of fixed length where :func:`fixed_strings` says so) and the counters of its lists:
        lists of equal lengths that the file counts with one counter (or, without one, whose
        names share a stem) share one; a counter the table already writes (a kept branch, the
        jets') is reused where it holds those lengths."""
        import awkward as ak

        self.carried_plan = {}
        taken = {*self.jet_names, *self.jet_dtypes, *self.kept_dtypes, *([self.counter] if self.counter else []),
                 *self.jet_counters}
        notes: set[str] = set()
        lengths: dict[str, np.ndarray] = {}
        declared: dict[str, str | None] = {}
        where = "parquet" if self.info.format == "hdf5" else self.info.format
        for name, arr in carried.items():
            cols = carried_columns(name, arr, notes)
            base = self.position.get(name, float(len(self.info.branch_order)))
            for j, (col, sub, kind, dtype) in enumerate(cols):
                if self.layout not in ("columns", "vlen") or kind == "none":
                    self.missing.append(f"{col} ({_ak_type(sub)}: not a column HDF5 holds; decompress to "
                                        f".{where} to keep it)")
                    continue
                if col in taken:
                    self.missing.append(f"{col} (a column of that name is written already; decompress to "
                                        f".{where} to keep it)")
                    continue
                taken.add(col)
                self.position.setdefault(col, base + j / (len(cols) + 1))
                n = 0
                if kind == "list":
                    lengths[col] = np.asarray(ak.num(sub, axis=1), np.int64)
                    n = int(lengths[col].sum())
                    declared[col] = self.declared.get(col) or self.declared.get(name)
                if final and np.dtype(dtype).kind == "O":  # every string is here: fixed length if it pays
                    dtype = fixed_strings(_values(sub, kind, dtype)[0], dtype)
                self.carried_plan[col] = (kind, dtype, n)
        self.notes = sorted(notes)
        refs = {k: np.asarray(v) for k, v in kept.items() if k in self.kept_dtypes and np.asarray(v).dtype.kind in "iu"}
        if self.counter and counts is not None and self.layout == "columns":
            refs[self.counter] = np.asarray(counts)
        shared: dict[str, int] = {}
        for d in declared.values():
            if d:
                shared[d] = shared.get(d, 0) + 1
        groups: dict[tuple, list[list[str]]] = {}
        for col, col_lengths in lengths.items():
            d = declared[col]
            key = ("file", d) if d and (shared[d] > 1 or d in refs) else ("stem", _stem(col))
            for members in groups.setdefault(key, []):
                if np.array_equal(lengths[members[0]], col_lengths):
                    members.append(col)
                    break
            else:
                groups[key].append([col])
        for lists in groups.values():
            for members in lists:
                own = {declared[m] for m in members}
                self._add_counter(members, own.pop() if len(own) == 1 else None, lengths[members[0]], refs, taken)
        for col, d in declared.items():  # the file's per-branch counters (uproot's nMuon_pt beside nMuon)
            if d and d not in taken and d in self.position:
                taken.add(d)
                self.aliases[d] = col

    def _add_counter(self, members: list[str], declared: str | None, lengths: np.ndarray,
                     refs: dict[str, np.ndarray], taken: set[str]) -> None:
        """One counter for `members` (lists of these `lengths`): a column written anyway that
        holds them (the file's own counter), else a new one named by :func:`counter_names`."""
        names = counter_names(members, declared)
        borrowed = next((n for n in names if n in refs and np.array_equal(refs[n], lengths)), None)
        if borrowed is not None:
            self.counters[borrowed] = {"members": list(members), "own": False}
        else:
            name = next(n for n in [*names, *(f"{names[-1]}_{i}" for i in range(2, len(taken) + 3))]
                        if n not in taken)
            taken.add(name)
            self.counters[name] = {"members": list(members), "own": True,
                                   "dtype": _counter_dtype(self.info.dtypes.get(name))}
            self.position.setdefault(name, min(self.position[m] for m in members) - 0.5 / (len(members) + 1))
        for m in members:
            self.counter_of[m] = borrowed or name

    def _write_carried(self, carried: dict[str, Any], kept: dict[str, np.ndarray], counts: np.ndarray | None) -> None:
        if not carried or not self.carried_plan:
            return
        lengths: dict[str, np.ndarray] = {}
        for name, arr in carried.items():
            for col, sub, kind, _ in carried_columns(name, arr):
                if col not in self.carried_plan:
                    continue
                planned, dtype, _ = self.carried_plan[col]
                if kind != planned:
                    raise InputError(f"HDF5 output: carried branch {col} is {_ak_type(sub)} here, not as in "
                                     "the first chunk; decompress to .root or .parquet")
                values, n = _values(sub, kind, dtype)
                self._append(self.datasets[col], values)
                if n is not None:
                    lengths[col] = n
        refs = dict(kept)
        if self.counter and counts is not None:
            refs[self.counter] = counts
        for name, c in list(self.counters.items()):
            ref = lengths[c["members"][0]] if c["own"] else np.asarray(refs[name])
            for m in c["members"][1:] if c["own"] else list(c["members"]):
                if not np.array_equal(lengths[m], ref):
                    self._split(m, name, lengths[m])
            if c["own"]:
                ds = self.datasets[name]
                self._append(ds, ref.astype(ds.dtype))
        for alias, col in self.aliases.items():
            self._append(self.datasets[alias], lengths[col].astype(self.datasets[alias].dtype))
        self.carried_rows += len(next(iter(lengths.values()), ())) if lengths else 0

    def _split(self, member: str, counter: str, lengths: np.ndarray) -> None:
        """`member`'s lengths left its counter's in this chunk (possible only once datasets
        grow, beyond the first write): it gets a counter of its own, the old one's values so
        far then its own."""
        old = self.counters[counter]
        old["members"].remove(member)
        taken = set(self.group) | set(self.counters)
        name = next(n for n in [*counter_names([member], None), *(f"{member}_counts_{i}" for i in range(2, 10**6))]
                    if n not in taken)
        ds = self.datasets[counter]
        history = np.asarray(ds[:self.carried_rows])
        self.counters[name] = {"members": [member], "own": True, "dtype": ds.dtype}
        self.counter_of[member] = name
        self.datasets[name] = self._dataset(self.group, name, ds.dtype)
        self._append(self.datasets[name], history)
        self._append(self.datasets[name], lengths.astype(ds.dtype))

    def _check_space(self, need: int) -> None:
        try:
            check_space(self.path, need)
        except InputError:
            self._abort()
            raise

    def _fail(self, exc: BaseException):
        what = "the disk is full" if isinstance(exc, OSError) and _no_space(exc) or "no space" in str(exc).lower() \
            else str(exc).splitlines()[0]
        self._abort()
        raise InputError(f"cannot write HDF5 output: {what}") from None

    def _abort(self) -> None:
        """Give up on the file without flushing it again: drop every handle, close quietly."""
        self.datasets = {}
        self.table = self.axis1 = self.group = None
        self.blocks = []
        self.output.abort()

    def _by_name(self, columns, counts, kept, jet_kept=None) -> dict[str, np.ndarray]:
        """Every column of one row (event) per value, by its name in the file."""
        if self.wide:
            out = unstack(columns, counts, self.wide, jet_kept, dtype=self.slot_dtypes)
        else:
            out = {name: np.asarray(columns[role]) for role, name in self.names.items()}
        out.update({k: np.asarray(v) for k, v in kept.items() if k in self.kept_dtypes})
        return out

    def _write(self, columns, counts, kept, jet_kept) -> None:
        n_jets = len(next(iter(columns.values()))) if columns else 0
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
            if self.jagged_jets:
                assert counts is not None and self.counter is not None
                for name in [self.counter, *self.jet_counters]:
                    self._append(self.datasets[name], counts.astype(self.datasets[name].dtype))
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
                            walk(obj, dgroup[name] if name in dgroup else dgroup.create_group(name, track_order=True))
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
            counters = {k: c["members"] for k, c in self.counters.items() if c["members"]}
            if self.jagged_jets and self.layout == "columns" and self.counter:
                counters = {self.counter: [*self.jet_names, *self.jet_dtypes], **counters}
            if counters:  # which counter counts which lists: {counter: [lists]}
                self.group.attrs["counters"] = json.dumps(counters)
            if self.owns_output:
                self._check_space(0)
                self.output.close()
        except (OSError, RuntimeError) as exc:
            self._fail(exc)
