"""Write the tables of a ``.aez`` back into one ROOT file: every tree (TTree, or RNTuple when
the input was one) in the input's branch order, with the jets, every carried branch, the
real counters, and the file's other objects.

uproot writes TTrees with ``mktree`` + ``extend``; a jagged branch gets a counter: the file's
own (NanoAOD ``nJet``, uproot-style ``nJet_pt``, Delphes ``Jet_size``, recorded in
``info.extra["counters"]``), which takes the place of a scalar integer branch of that name
declared before it, so the order stays the input's, and has the input's integer type
(:mod:`.root_fastwrite`; int32 where uproot's fixes are not in use). A list branch without a
counter of its own (``std::vector``) gets one of its own, ``n<branch>``: branches whose lengths
may differ never share an invented counter. A tree that reaches the writer in one chunk (every
entry known before it is created) shares one counter among the lists whose lengths agree in
every entry (:func:`shared_counters`; said as ``restored_as``).

What uproot's TTree writer cannot hold is written as the closest thing it can, and named once
(``restored_as``): records as their fields (``MET.fX``), lists of lists as the flattened inner
values with their lengths (``b`` and ``b_counts``). A tree is created when its second chunk
arrives, or as soon as it is complete (the next table's chunk, the other objects, or the end),
from its first chunk (which says the carried branches' types); at the end when it has no entries.
"""
from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from ..errors import InputError
from .base import JetChunk, TableInfo

REST_TREE = "__jetzip_rest__"  # the other collections of a jet tree, in .aez files of format 2.0
COMPRESSIONS = ("input", "zstd", "zlib", "lz4", "lzma", "none")


def compression(name: str, input_setting: str | None = None):
    """uproot compression object for `name` (``zstd``, ``zlib``, ``lz4``, ``lzma`` at level 1,
    ``none``, or ``input``: the input file's algorithm and level, recorded as uproot names it,
    e.g. ``LZMA(9)``; zstd level 1 when unknown)."""
    import re

    import uproot

    if name not in COMPRESSIONS:
        raise InputError(f"unknown ROOT compression {name!r}; use {', '.join(COMPRESSIONS)}")
    if name == "input":
        m = re.fullmatch(r"(ZLIB|LZMA|LZ4|ZSTD)\((\d+)\)", str(input_setting or ""))
        if m:
            return {"ZLIB": uproot.ZLIB, "LZMA": uproot.LZMA, "LZ4": uproot.LZ4,
                    "ZSTD": uproot.ZSTD}[m.group(1)](int(m.group(2)))
        return uproot.ZSTD(1)  # not recorded ("" or, in older .aez files, "None"): never uncompressed
    return {"zstd": uproot.ZSTD(1), "zlib": uproot.ZLIB(1), "lz4": uproot.LZ4(1),
            "lzma": uproot.LZMA(1), "none": None}[name]


def ordered_types(order: list[str], types: dict[str, Any], counters: dict[str, str],
                  scalar_counters: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Branch types for mktree in `order`. A counter that comes before its first list branch is
    declared there as a scalar (uproot then puts the counter in its place); one that comes after
    is left to uproot, which puts it just before that list. Returns the types and the names that
    end up as uproot counters (filled from the lists, never given data)."""
    out: dict[str, Any] = {}
    seen_users: set[str] = set()
    as_counter: set[str] = set()
    users: dict[str, list[str]] = {}
    for name, c in counters.items():
        if name in types:
            users.setdefault(c, []).append(name)
    for name in order:
        if name in users:  # a counter of something we write
            as_counter.add(name)
            if not any(u in seen_users for u in users[name]):
                out[name] = np.dtype(scalar_counters.get(name, "int32"))
            continue
        if name in types:
            out[name] = types[name]
            if name in counters:
                seen_users.add(counters[name])
                as_counter.add(counters[name])
    for name, t in types.items():  # anything the order does not know goes at the end
        if name not in out:
            out[name] = t
            if name in counters:
                as_counter.add(counters[name])
    return out, as_counter


def shared_counters(counters: dict[str, str], invented: set[str], data: dict[str, Any]) -> dict[str, str]:
    """`counters` (list branch -> counter) with the `invented` counters (none of the input's
    branches) whose lengths are the same in every entry of `data` (all of the tree) made one:
    the first of them in branch order.

    uproot's TTree writer writes a list only with a counter, so each ``std::vector`` branch of the
    input comes back with one of its own; the MetaData TTree of an ATLAS PHYSLITE file (one entry,
    3,775 branches) came back with 4,533 such counters (538 kB, a fifth of the restored file)
    holding 21 different lists of lengths. Counters of the input itself are never merged."""
    import awkward as ak

    groups: dict[bytes, str] = {}
    rename: dict[str, str] = {}
    for name, c in counters.items():
        if c not in invented or c in rename or name not in data:
            continue
        try:
            lengths = np.asarray(ak.num(data[name], axis=1), dtype=np.int64)
        except Exception:  # noqa: BLE001 - not a list of this tree's entries: its counter stays its own
            continue
        if lengths.ndim != 1:
            continue
        rename[c] = groups.setdefault(lengths.tobytes(), c)
    return {name: rename.get(c, c) for name, c in counters.items()}


def written_from(names: list[str], bases: set[str]) -> dict[str, list[str]]:
    """``{base: [name, ...]}``: for each of `bases`, the `names` (in their order) written from
    it: the base itself, its fields (``base.field``, at any depth) and its lengths
    (``base_counts``, ``base_counts3``, ...). One pass over the names (a tree of 9,663 branches
    took 90 s when each base scanned every name)."""
    out: dict[str, list[str]] = {}
    for name in names:
        found = [name] + [name[:i] for i, ch in enumerate(name) if ch == "."]
        lengths = re.fullmatch(r"(.*)_counts\d*", name)
        if lengths:
            found.append(lengths.group(1))
        for base in dict.fromkeys(found):
            if base in bases:
                out.setdefault(base, []).append(name)
    return out


def _jagged(dt: str):
    """An awkward list type (a datashape string costs uproot ~30 ms to parse, per branch)."""
    import awkward as ak

    return ak.types.ListType(ak.types.NumpyType(np.dtype(dt).name))


def is_list(t) -> bool:
    return type(t).__name__ == "ListType" or (isinstance(t, str) and t.startswith("var"))


KIND_TEXT = {
    "fields": "records come back as their fields (name.field), also inside lists: uproot writes no classes",
    "flattened": "lists of lists (and lists of strings) come back as their flattened values (name, with "
                 "[N] written _N) and their lengths (name_counts): uproot writes neither",
    "shared": "lists without a counter in the input whose lengths agree in every entry share one counter "
              "(uproot writes a list only with a counter)",
    "lost": "not restored to the TTree (uproot cannot write that type; the .aez holds them)",
    "none": "missing entries (None) come back as empty lists, a missing record as its fields' empty "
            "lists or zeros, and a missing item of a list as 0, \"\" or an empty list: a TTree has no "
            "missing values",
}


def writable(name: str, array: Any) -> tuple[dict[str, Any], set[str]]:
    """A carried branch as branches uproot's TTree writer takes: ``({name: array, ...}, kinds)``
    where `kinds` names what changed (keys of :data:`KIND_TEXT`; empty when nothing did).
    Records become their fields (``name.field``, also inside lists), lists of lists the
    flattened inner values plus their lengths (``name_counts``; deeper levels ``name_counts3``,
    ...: :func:`deeper_counts`), lists of strings their bytes
    likewise. A type none of this reaches gives ``({}, {"lost"})``."""
    import awkward as ak

    if isinstance(array, np.ndarray):
        return {name: array}, set()
    layout = ak.to_layout(array)
    t = array.type.content
    if layout.parameters.get("__array__") in ("string", "bytestring"):
        return {name: array}, set()
    if isinstance(t, ak.types.NumpyType) or (isinstance(t, ak.types.RegularType)
                                             and isinstance(t.content, ak.types.NumpyType)):
        return {name: ak.to_numpy(array)}, set()
    if isinstance(t, ak.types.OptionType):
        if isinstance(t.content, ak.types.NumpyType):
            return writable(name, ak.fill_none(array, 0))
        if isinstance(t.content, ak.types.RecordType):  # its fields, each with its own missing entries
            filled = ak.zip({f: array[f] for f in ak.fields(array)}, depth_limit=1)
        else:  # a missing list is an empty one (entries are never dropped: every branch has them all)
            filled = ak.fill_none(array, [], axis=0)
        pieces, kinds = writable(name, filled)
        return pieces, kinds | {"none"}
    if isinstance(t, ak.types.RecordType):
        return _fields(name, array, ak.fields(array))
    if isinstance(t, (ak.types.ListType, ak.types.RegularType)):
        inner = t.content
        missing: set[str] = set()
        if isinstance(inner, ak.types.OptionType):
            # items that may be missing (Arrow's lists: Parquet written by pyarrow or pandas):
            # uproot writes no option type; a missing number comes back as 0, a missing string or
            # list as an empty one, a missing record as its fields' (said only where one is missing)
            if ak.any(ak.is_none(array, axis=1)):
                missing = {"none"}
            inner = inner.content
            if isinstance(inner, ak.types.NumpyType):
                pieces, kinds = writable(name, ak.fill_none(array, 0, axis=1))
                return pieces, kinds | missing
        if isinstance(inner, ak.types.NumpyType):
            return {name: array}, set()
        if isinstance(inner, ak.types.RecordType):
            pieces, kinds = _fields(name, array, ak.fields(array))
            return pieces, kinds | missing
        if isinstance(inner, (ak.types.ListType, ak.types.RegularType)) or \
                inner.parameters.get("__array__") in ("string", "bytestring"):
            plain = ak.without_parameters(array)
            safe = root_safe(name)
            inner, kinds = writable(safe, ak.flatten(plain, axis=2))  # a missing list: no values
            lengths = ak.num(plain, axis=2)
            if isinstance(lengths.type.content.content, ak.types.OptionType):
                lengths = ak.fill_none(lengths, 0, axis=1)
            out = {safe: inner.pop(safe)} if safe in inner else {}
            out[f"{safe}_counts"] = ak.values_astype(lengths, np.int32)
            out.update({deeper_counts(safe, k): v for k, v in inner.items()})
            return out, {"flattened", *kinds} | missing
    return {}, {"lost"}


def deeper_counts(name: str, key: str) -> str:
    """The name of a level's lengths one list level deeper: lists of lists of lists keep
    ``name_counts`` for the lengths of the second level and call the third level's
    ``name_counts3``, the fourth's ``name_counts4``, ... (other keys stay as they are)."""
    stem = f"{name}_counts"
    if not key.startswith(stem) or not (key == stem or key[len(stem):].isdigit()):
        return key
    return f"{stem}{int(key[len(stem):] or 2) + 1}"


def root_safe(name: str) -> str:
    """A branch name ROOT reads back as written: brackets in a name are read as array
    dimensions (``values[6]`` becomes six values per entry), so ``values[6]`` -> ``values_6``."""
    import re

    return re.sub(r"\[(\d*)\]", r"_\1", name)


def _fields(name: str, array: Any, fields: list[str]) -> tuple[dict[str, Any], set[str]]:
    out: dict[str, Any] = {}
    kinds = {"fields"}
    for field in fields:
        sub, sub_kinds = writable(f"{name}.{field}", array[field])
        out.update(sub)
        kinds |= sub_kinds
    return out, kinds


def _unoptioned(t: Any) -> Any:
    """An awkward type without its option (``?{...}`` is ``{...}``)."""
    import awkward as ak

    return t.content if isinstance(t, ak.types.OptionType) else t


def _carried_ancestor(name: str, carried: set[str]) -> str | None:
    """The carried branch whose counter `name`, written from it, shares: ``A`` for ``A.b`` and
    ``A.b_counts`` (one value per element of A); None for ``A.b_counts3``, ``A.b_counts4``, ...
    (one length per list of the level above, as many per entry as the sum of that level's
    lengths: a counter of their own) and for branches not written from a carried one."""
    if name in carried or re.search(r"_counts\d+$", name):
        return None
    base = re.sub(r"_counts$", "", name)
    while "." in base:
        base = base.rpartition(".")[0]
        if base in carried:
            return base
    return None


class RootWriter:
    """Write one TTree (or RNTuple) chunk by chunk, in the layout a TableInfo describes.

    Either on a path (its own file, with :meth:`write_extras`), or on an uproot file open for
    writing shared with other trees (:class:`RootFileWriter`).
    """

    def __init__(self, path: str, info: TableInfo, names: dict[str, str] | None = None,
                 kept_dtypes: dict[str, str] | None = None, root_compression: str = "zstd",
                 file: Any = None, input_compression: str | None = None) -> None:
        import uproot

        from .root_fastwrite import defer_metadata, install

        install()  # linear-time TTree creation, counters of the input's type (uproot fixes)
        self.info = info
        self.path = path
        self.names = dict(names if names is not None else info.columns)
        self.kept_dtypes = dict(kept_dtypes if kept_dtypes is not None else
                                {k: info.dtypes.get(k, "float64") for k in info.kept_branches})
        self.owns_file = file is None
        self.file = uproot.recreate(path, compression=compression(root_compression, input_compression)) \
            if file is None else file
        if file is None:  # jetzip (sizes): compressed tree metadata, written at close
            defer_metadata(self.file)
        self.counter = info.counter or (f"n{info.collection or 'Jet'}" if info.has_jets else "")
        self.shapes = {k: tuple(v) for k, v in info.extra.get("shapes", {}).items()}
        self.elements = {f"{n}[{k}]": n for n, shape in self.shapes.items() for k in range(int(np.prod(shape)))}
        self.counters = dict(info.extra.get("counters", {}))
        from .wide import wide_of

        self.slots = wide_of(info) if info.layout == "jets-per-row" or info.extra.get("slots") \
            or info.extra.get("wide") else None
        self.rntuple = bool(info.extra.get("rntuple"))
        self.tree: Any = None
        self.ntuple: Any = None
        self.projected = False  # an RNTuple's projected fields written as projections
        self.as_counter: set[str] = set()
        self.changed: dict[str, list[str]] = {}  # kind (KIND_TEXT) -> carried branches written so
        self.single_records: set[str] = set()  # carried branches of one record per entry (no list)
        self.entries = 0
        self.empty = False  # a tree without a branch uproot can write: not created
        # the first chunk's branches, held until a second chunk comes or the tree ends: a tree
        # written at once shares one counter among the lists whose lengths are equal
        self.held: dict[str, Any] | None = None

    # -------------------------------------------------------------- layout
    def _mktree(self, types: dict[str, Any], counters: dict[str, str]):
        """mktree with every counter in the input's integer type (uint32 for NanoAOD)."""
        from .root_fastwrite import counter_dtypes

        names = {*counters.values(), self.counter}
        with counter_dtypes({c: self.info.dtypes.get(c, "") for c in names if c}):
            return self.file.mktree(self.info.tree or "jets", types,
                                    counter_name=lambda b: counters.get(b, f"n{b}"))

    def _types(self, data: dict[str, Any] | None,
               whole: bool = False) -> tuple[dict[str, Any], dict[str, str], set[str]]:
        """(branch types in order, list branch -> counter, names uproot fills as counters).
        `whole`: `data` holds every entry of the tree, so lists whose lengths are equal in all of
        them share one invented counter (:func:`shared_counters`)."""
        info = self.info
        dt = {**info.dtypes, **self.kept_dtypes}
        types: dict[str, Any] = {}
        if self.slots:
            for jet in self.slots.jets:
                for name in jet.values():
                    types[name] = np.float32
            for pn, cols in self.slots.extras.items():
                if pn in info.jet_branches:
                    for name in cols:
                        types[name] = np.dtype(dt.get(pn, "float64"))
        else:
            for name in self.names.values():
                value = np.dtype(dt.get(name, "float32"))
                types[name] = _jagged(value.name) if info.jagged else value
            for name in info.jet_branches:
                types[name] = _jagged(dt.get(name, "float64")) if info.jagged else np.dtype(dt.get(name, "float64"))
            for oc in info.collections:
                for name in [*oc.columns.values(), *oc.jet_branches]:
                    types[name] = _jagged(oc.dtypes.get(name, "float32"))
        for name in self.kept_dtypes:
            if name not in self.elements:
                types[name] = np.dtype(self.kept_dtypes[name])
        for name, shape in self.shapes.items():  # fixed-size arrays, from their elements
            first = f"{name}[0]"
            if first in self.kept_dtypes:
                types[name] = np.dtype((np.dtype(self.kept_dtypes[first]), tuple(shape)))
        for name in info.carried_branches:
            if data is not None and name in data:
                continue  # typed from the data below
            d = dt.get(name)
            if d == "string":
                types[name] = "string"
            elif d is not None:
                types[name] = _jagged(str(d))
        if data is not None:
            import awkward as ak

            for name, value in data.items():
                if name in types:
                    continue
                if isinstance(value, np.ndarray):
                    types[name] = np.dtype((value.dtype, value.shape[1:])) if value.ndim > 1 else value.dtype
                elif ak.to_layout(value).parameters.get("__array__") == "string":
                    types[name] = "string"
                else:
                    types[name] = value.type.content
        counters: dict[str, Any] = {}
        # fields of a list of records share its counter; those of one record per entry do not
        # (its lists may differ in length)
        carried = set(info.carried_branches) - self.single_records
        # the outer lengths (b_counts) of a flattened list of lists b: as many per entry as b
        # had lists, so b's counter when b shares its collection's (n<collection>)
        outer = {f"{root_safe(c)}_counts": self.counters[c] for c in carried
                 if self.counters.get(c) not in (None, f"n{c}", f"n{root_safe(c)}")}
        # a counter the writer names (n<branch>) must not take the name of a branch of the input
        # (an input field nA beside a list of records A: its values were lost, silently)
        taken = {*types, *info.branch_order, *info.kept_branches} - set(self.counters.values()) - {self.counter}

        def invented(base: str) -> str:
            c = f"n{base}"
            while c in taken:
                c += "_"
            return c

        for name, t in types.items():
            if is_list(t) or (not isinstance(t, (np.dtype, str)) and type(t).__name__ in ("ListType", "RecordType")):
                parent = _carried_ancestor(name, carried)
                if f"{name}_counts" in types:  # flattened lists of lists: a length of their own
                    counters[name] = invented(name)
                elif name in outer:
                    counters[name] = outer[name]
                elif parent is not None:  # fields of one list of records: its counter
                    counters[name] = self.counters.get(parent) or invented(parent)
                elif name in self.counters:
                    counters[name] = self.counters[name]
                else:
                    counters[name] = self.counter if name in self._jet_names() else invented(name)
        for oc in info.collections:
            for name in [*oc.columns.values(), *oc.jet_branches]:
                counters[name] = self.counters.get(name, oc.counter or f"n{oc.name}")
        if whole and data is not None:  # counters that are no branch of the input may be shared
            real = {*info.branch_order, *info.kept_branches, self.counter, *(oc.counter for oc in info.collections)}
            merged = shared_counters(counters, set(counters.values()) - real, data)
            moved = [name for name, c in counters.items() if merged[name] != c]
            if moved:
                self.changed.setdefault("shared", []).extend(moved)
            counters = merged
        order = list(info.branch_order) or list(types)
        scalar_counters = {c: info.dtypes.get(c, "int32") for c in set(counters.values())}
        if info.jagged and info.has_jets and not self.slots and self.counter not in types:
            # the real counter: declared at its place; filled from the counts unless uproot fills it
            types[self.counter] = np.dtype(scalar_counters.get(self.counter, info.dtypes.get(self.counter, "int32")))
            if self.counter not in order:
                order.insert(0, self.counter)
        for oc in info.collections:  # the further collections' own counters, likewise
            if oc.counter and oc.counter not in types:
                types[oc.counter] = np.dtype(info.dtypes.get(oc.counter, scalar_counters.get(oc.counter, "int32")))
        expanded = []
        pieces = written_from(list(types), set(order))
        for name in order:  # a carried branch written as several (record fields) keeps its place
            expanded.extend(pieces.get(name) or [name])
        typed, as_counter = ordered_types(list(dict.fromkeys(expanded)), types, counters, scalar_counters)
        return typed, counters, as_counter

    def _jet_names(self) -> set[str]:
        return {*self.names.values(), *self.info.jet_branches}

    # -------------------------------------------------------------- chunks
    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None,
              carried: dict[str, Any] | None = None) -> None:
        """One chunk given as its parts (the writer protocol of :class:`~jetzip.tables.TableWriter`)."""
        self.write_chunk(JetChunk(columns, counts, kept, 0, self.entries, jet_kept or {}, carried or {}))

    def write_chunk(self, chunk: JetChunk) -> None:
        """Every branch of a chunk of the tree."""
        import awkward as ak

        info = self.info
        data: dict[str, Any] = {}
        counts = chunk.counts
        if self.slots:
            from .wide import unstack

            assert counts is not None
            data.update(unstack(chunk.columns, counts, self.slots, chunk.jet_kept))  # absent slots: NaN
        elif info.jagged and info.has_jets:
            assert counts is not None
            c = counts.astype(np.int64)
            for role, name in self.names.items():
                data[name] = ak.unflatten(chunk.columns[role].astype(np.dtype(info.dtypes.get(name, "float32"))), c)
            for name, v in chunk.jet_kept.items():
                data[name] = ak.unflatten(v, c)
            if self.tree is None or self.counter not in self.as_counter:
                if not self.rntuple or info.counter:
                    data[self.counter] = counts.astype(np.dtype(info.dtypes.get(self.counter, "int32")))
        elif info.has_jets:
            for role, name in self.names.items():
                data[name] = chunk.columns[role].astype(np.dtype(info.dtypes.get(name, "float32")))
            data.update(chunk.jet_kept)
        for oc in info.collections:
            part = chunk.others.get(oc.name)
            if part is None or part.counts is None:
                continue
            c = part.counts.astype(np.int64)
            if oc.counter and (self.tree is None or oc.counter not in self.as_counter):
                data[oc.counter] = part.counts.astype(np.dtype(info.dtypes.get(oc.counter, "int32")))
            for role, name in oc.columns.items():
                data[name] = ak.unflatten(part.columns[role].astype(np.dtype(oc.dtypes.get(name, "float32"))), c)
            for name, v in part.jet_kept.items():
                data[name] = ak.unflatten(v, c)
        data.update({k: v for k, v in chunk.kept.items() if k in self.kept_dtypes and k not in self.elements})
        for name, shape in self.shapes.items():
            parts = [chunk.kept.get(f"{name}[{k}]") for k in range(int(np.prod(shape)))]
            present = [p for p in parts if p is not None]
            if parts and len(present) == len(parts):
                data[name] = np.stack(present, axis=1).reshape(len(present[0]), *shape)
        for name, value in chunk.carried.items():
            if self.rntuple:
                data[name] = value
                continue
            if not isinstance(value, np.ndarray) and isinstance(_unoptioned(value.type.content), ak.types.RecordType):
                self.single_records.add(name)
            pieces, kinds = writable(name, value)
            for kind in kinds:
                members = self.changed.setdefault(kind, [])
                if name not in members:
                    members.append(name)
            data.update(pieces)
        n = chunk.n_entries
        if n == 0:
            return
        self.entries += n
        if self.rntuple:
            self._write_rntuple(data)
            return
        if self.empty:
            return
        if self.tree is None:
            if self.held is None:
                self.held = data  # created with the next chunk, or at the end with this one alone
                return
            held, self.held = self.held, None
            if not self._create(held, whole=False):
                return
        self._extend(data)

    def _create(self, data: dict[str, Any] | None, whole: bool) -> bool:
        """Create the tree for these branches (their first chunk); False when uproot can write
        none of them."""
        types, counters, self.as_counter = self._types(data, whole)
        if not types:
            self.empty = True  # nothing uproot can write (every branch unreadable): said at compress
            return False
        self.tree = self._mktree(types, counters)
        self.types = types
        if data is not None:
            self._extend(data)
        return True

    def _extend(self, data: dict[str, Any]) -> None:
        self.tree.extend({k: v for k, v in data.items() if k in self.types and k not in self.as_counter})

    def _write_rntuple(self, data: dict[str, Any]) -> None:
        """Fields as they were: 'Jet.pt' goes back into the record list 'Jet'; projected fields
        (``info.extra["rntuple_projected"]``: a NanoAOD RNTuple's ``Jet_pt`` of ``_collection6``,
        ``nJet``) as projections again, their collections rebuilt from them."""
        import awkward as ak

        from .root_fastwrite import rntuple_projections

        spec = self.info.extra.get("rntuple_projected")
        if spec and self.ntuple is None:
            self.projected = self._projections_taken(spec, data)
        if spec and self.projected:
            data = self._physical(spec, data)
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        order = (spec["order"] if spec and self.projected else None) or self.info.branch_order or list(data)
        for name in [*order, *[n for n in data if n not in order]]:
            if name not in data:
                continue
            if "." in name and self.info.jagged and name not in self.kept_dtypes:
                field, _, sub = name.partition(".")
                if field not in groups:
                    groups[field] = {}
                    top[field] = None
                groups[field][sub] = data[name]
            else:
                top[name] = data[name]
        for field, subs in groups.items():
            top[field] = ak.zip(subs)
        arr = ak.zip(top, depth_limit=1)
        if self.ntuple is None:
            with rntuple_projections(spec["fields"] if spec and self.projected else None):
                self.ntuple = self.file.mkrntuple(self.info.tree or "jets", arr)
        else:
            self.ntuple.extend(arr)

    @staticmethod
    def _projections_taken(spec: dict[str, Any], data: dict[str, Any]) -> bool:
        """Whether the projected fields go back as projections: uproot's writer takes them
        (:func:`.root_fastwrite.rntuple_projections`) and every collection to rebuild has its
        projected fields in the data."""
        from .root_fastwrite import install, rntuple_projections

        install()
        with rntuple_projections(spec["fields"]) as active:
            pass
        return active and all(p in data for leaves in spec["rebuilt"].values() for _, p in leaves)

    @staticmethod
    def _physical(spec: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """The physical fields of a chunk: each rebuilt collection zipped from its projected
        fields (``_collection6`` = {``Jet_pt``, ...} per entry, in the input's field order), the
        projected fields left out (the header points them at their sources)."""
        import awkward as ak

        out = {k: v for k, v in data.items()}
        for name, leaves in spec["rebuilt"].items():
            out[name] = ak.zip({leaf: ak.Array(out[p]) for leaf, p in leaves}, depth_limit=2)
        for f in spec["fields"]:
            if f[3] == -1:
                out.pop(f[0], None)
        return out

    # -------------------------------------------------------------- the rest
    def write_extras(self, blob: bytes) -> None:
        """Copy every object of the extras blob (a ROOT file) into the output (after the tree:
        every chunk came before, so a held one is the whole tree)."""
        if self.held is not None:
            self.finish()
        write_objects(self.file, blob, self.path)

    def finish(self) -> None:
        """Write a tree that came in one chunk (created now, its equal counters shared), or
        create an empty one if no chunk came (a table without entries)."""
        if self.tree is None and self.ntuple is None and not self.rntuple and not self.empty:
            held, self.held = self.held, None
            self._create(held, whole=held is not None)

    def close(self) -> None:
        from .root_fastwrite import write_metadata

        try:
            self.finish()
            if self.owns_file:
                write_metadata(self.file)  # jetzip (sizes): the trees' metadata, compressed
        finally:
            if self.owns_file:
                self.file.close()


def write_objects(file: Any, blob: bytes, path: str) -> list[str]:
    """Copy the objects of an extras blob (a ROOT file's bytes) into `file`; returns what could
    not be copied (one line each)."""
    import uproot

    from .root_extras import copy_objects

    tmp = f"{path}.jetzip-extras"
    with open(tmp, "wb") as f:
        f.write(blob)
    try:
        with uproot.open(tmp) as src:
            return copy_objects(src, file, skip={REST_TREE})
    finally:
        os.unlink(tmp)


class RootFileWriter:
    """The tables of a ``.aez`` as the trees of one ROOT file (a :class:`~jetzip.tables.FileWriter`)."""

    def __init__(self, path: str, infos: list[TableInfo], root_compression: str = "input",
                 main: int = 0, input_compression: str | None = None) -> None:
        import uproot

        from .root_fastwrite import defer_metadata, install

        install()
        self.path = path
        self.infos = infos
        self.main = main
        self.file = uproot.recreate(path, compression=compression(root_compression, input_compression))
        defer_metadata(self.file)  # jetzip (sizes): compressed tree metadata, written at close
        self.writers: dict[int, RootWriter] = {}
        self.missing: list[str] = []
        self.notes: list[str] = []

    def _writer(self, table: int) -> RootWriter:
        w = self.writers.get(table)
        if w is None:
            w = self.writers[table] = RootWriter(self.path, self.infos[table], file=self.file)
        return w

    def write(self, table: int, chunk: JetChunk) -> None:
        self._settle(but=table)
        self._writer(table).write_chunk(chunk)

    def _settle(self, but: int | None = None) -> None:
        """Create the trees whose one chunk is held (all but `but`'s): tables come one after
        the other (:class:`~jetzip.tables.base.TableWriter`), so a table that another's chunk
        follows is whole. Each tree is written as soon as it is complete: one table's chunk
        held at a time, and the trees before the other objects, in the tables' order (as when
        every tree was created with its first chunk)."""
        for i, w in self.writers.items():
            if i != but and w.held is not None:
                w.finish()

    def write_extras(self, blob: bytes, source_format: str) -> bool:
        if source_format != "root":
            return False
        self._settle()
        self.missing.extend(write_objects(self.file, blob, self.path))
        return True

    def close(self) -> None:
        from .root_fastwrite import write_metadata

        try:
            for i in range(len(self.infos)):
                w = self._writer(i)
                w.finish()
                for kind, names in w.changed.items():
                    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
                    line = f"{self.infos[i].tree or 'jets'}: {len(names)} branch(es) ({shown}): {KIND_TEXT[kind]}"
                    (self.missing if kind == "lost" else self.notes).append(line)
                if w.empty:
                    self.missing.append(f"tree {self.infos[i].tree or 'jets'} (no branch of it could be read)")
            write_metadata(self.file)  # jetzip (sizes): the trees' metadata and streamers, compressed
        finally:
            self.file.close()
