"""Write the jet tree back (TTree, or RNTuple when the input was one), in the input's branch
order, with the per-jet and per-event branches, the real counter, and the extras blob's objects.

uproot writes TTrees with ``mktree`` + ``extend``; a jagged branch gets a counter named by
``info.extra["counters"]`` (NanoAOD ``nJet``, uproot-style ``nJet_pt``, Delphes ``Jet_size``),
which takes the place of a scalar integer branch of that name declared before it, so the order
stays the input's, and has the input's integer type (:mod:`.root_fastwrite`; int32 where
uproot's fixes are not in use). When the jet tree's other collections travel in the extras blob, the jets are
written to a side file first and merged with them, entry range by entry range, in
:meth:`RootWriter.write_extras` (bounded memory).
"""
from __future__ import annotations

import os
from typing import Iterator, Any

import numpy as np

from .base import TableInfo

REST_TREE = "__jetzip_rest__"


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


def _jagged(dt: str):
    """An awkward list type (a datashape string costs uproot ~30 ms to parse, per branch)."""
    import awkward as ak

    return ak.types.ListType(ak.types.NumpyType(np.dtype(dt).name))


def is_list(t) -> bool:
    return type(t).__name__ == "ListType" or (isinstance(t, str) and t.startswith("var"))


class RootWriter:
    """Write a TTree chunk by chunk, in the layout described by a TableInfo."""

    def __init__(self, path: str, info: TableInfo, names: dict[str, str],
                 kept_dtypes: dict[str, str], root_compression: str = "zstd") -> None:
        import uproot

        from .root import compression
        from .root_fastwrite import install

        install()  # linear-time TTree creation, counters of the input's type (uproot fixes)
        self.info = info
        self.path = path
        self.names = names
        self.kept_dtypes = dict(kept_dtypes)
        self.comp = compression(root_compression)
        self.file = uproot.recreate(path, compression=self.comp)
        self.counter = info.counter or f"n{info.collection or 'Jet'}"
        self.shapes = {k: tuple(v) for k, v in info.extra.get("shapes", {}).items()}
        self.elements = {f"{n}[{k}]": n for n, shape in self.shapes.items() for k in range(int(np.prod(shape)))}
        self.counters = dict(info.extra.get("counters", {}))
        self.rest = list(info.extra.get("rest_branches", []))
        from .wide import wide_of

        self.slots = wide_of(info) if info.layout == "jets-per-row" or info.extra.get("slots") \
            or info.extra.get("wide") else None
        self.rntuple = bool(info.extra.get("rntuple"))
        self.side_path: str = ""
        self.side: Any = None
        self.merged = False
        self.tree = None
        self.ntuple = None
        self.as_counter: set[str] = set()
        if self.rest:
            # the jets wait in a side file until the other collections come (write_extras);
            # plain arrays, not a second TTree: uproot's mktree is quadratic in the branches
            self.side_path = f"{path}.jetzip-jets"
            self.side = open(self.side_path, "wb")  # noqa: SIM115 - closed in _merge or close
            self.as_counter = set() if self.rntuple else self._types(with_rest=True)[1]
        elif not self.rntuple:
            types, self.as_counter = self._types(with_rest=False)
            self.tree = self._mktree(types)

    # -------------------------------------------------------------- layout
    def _mktree(self, types: dict[str, Any]):
        """mktree with every counter in the input's integer type (uint32 for NanoAOD)."""
        from .root_fastwrite import counter_dtypes

        names = {*self.counters.values(), self.counter}
        with counter_dtypes({c: self.info.dtypes.get(c, "") for c in names}):
            return self.file.mktree(self.info.tree or "jets", types,
                                    counter_name=lambda b: self.counters.get(b, self.counter))

    def _types(self, with_rest: bool) -> tuple[dict[str, Any], set[str]]:
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
                types[name] = _jagged("float32") if info.jagged else np.float32
            for name in info.jet_branches:
                types[name] = _jagged(dt.get(name, "float64")) if info.jagged else np.dtype(dt.get(name, "float64"))
        for name in self.kept_dtypes:
            if name not in self.elements:
                types[name] = np.dtype(self.kept_dtypes[name])
        for name, shape in self.shapes.items():  # fixed-size arrays, from their elements
            first = f"{name}[0]"
            if first in self.kept_dtypes:
                types[name] = np.dtype((np.dtype(self.kept_dtypes[first]), tuple(shape)))
        if with_rest:
            for name in self.rest:
                types[name] = "string" if dt.get(name) == "string" else _jagged(dt.get(name, "float64"))
        counters = {}
        for name, t in types.items():
            if is_list(t):
                counters[name] = self.counters.get(name, self.counter)
        order = list(info.branch_order) or list(types)
        scalar_counters = {self.counter: info.dtypes.get(self.counter, "int32")}
        if info.jagged and not self.slots and self.counter not in types:
            # the real counter: declared at its place; filled from the counts unless uproot fills it
            types[self.counter] = np.dtype(scalar_counters[self.counter])
            if self.counter not in order:
                order.insert(0, self.counter)
        # counters whose list branches are not written (dropped) stay plain kept branches
        return ordered_types(order, types, counters, scalar_counters)

    # -------------------------------------------------------------- chunks
    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None) -> None:
        import awkward as ak

        info = self.info
        jet_kept = jet_kept or {}
        data: dict[str, Any] = {}
        if self.slots:
            from .wide import unstack

            assert counts is not None
            data.update(unstack(columns, counts, self.slots, jet_kept))  # absent slots: NaN
        elif info.jagged:
            assert counts is not None
            c = counts.astype(np.int64)
            for role, name in self.names.items():
                data[name] = ak.unflatten(columns[role].astype(np.float32), c)
            for name, v in jet_kept.items():
                data[name] = ak.unflatten(v, c)
            if self.counter not in self.as_counter and (not self.rntuple or info.counter):
                data[self.counter] = counts.astype(np.dtype(info.dtypes.get(self.counter, "int32")))
        else:
            for role, name in self.names.items():
                data[name] = columns[role].astype(np.float32)
            data.update(jet_kept)
        data.update({k: v for k, v in kept.items() if k in self.kept_dtypes and k not in self.elements})
        for name, shape in self.shapes.items():
            parts = [kept.get(f"{name}[{k}]") for k in range(int(np.prod(shape)))]
            present = [p for p in parts if p is not None]
            if parts and len(present) == len(parts):
                data[name] = np.stack(present, axis=1).reshape(len(present[0]), *shape)
        if not data or len(next(iter(data.values()))) == 0:
            return
        if self.side is not None:
            _dump(self.side, data)
            return
        if self.rntuple:
            self._write_rntuple(data)
            return
        assert self.tree is not None
        self.tree.extend(data)

    def _write_rntuple(self, data: dict[str, Any]) -> None:
        """Fields as they were: 'Jet.pt' goes back into the record list 'Jet'."""
        import awkward as ak

        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        order = self.info.branch_order or list(data)
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
            self.ntuple = self.file.mkrntuple(self.info.tree or "jets", arr)
        else:
            self.ntuple.extend(arr)

    # -------------------------------------------------------------- extras
    def write_extras(self, blob: bytes) -> None:
        """Copy every object of the extras blob (a ROOT file) into the output; the jet tree's
        other collections are merged back into it in the input's branch order."""
        tmp = f"{self.path}.jetzip-extras"
        with open(tmp, "wb") as f:
            f.write(blob)
        try:
            self.write_extras_file(tmp)
        finally:
            os.unlink(tmp)

    def write_extras_file(self, path: str) -> None:
        """:meth:`write_extras` from a file holding the blob (streamed, not held in memory)."""
        import uproot

        from .root_extras import copy_objects

        with uproot.open(path) as src:
            if self.side is not None and REST_TREE in src:
                self._merge(src[REST_TREE])
            copy_objects(src, self.file, skip={REST_TREE})

    def _merge(self, rest_tree) -> None:
        """The jets from the side file and the other collections, entry range by entry range."""
        assert self.side is not None and self.side_path is not None
        self.side.close()
        self.side = None
        if self.rntuple:
            self._merge_rntuple(rest_tree)
            return
        types, as_counter = self._types(with_rest=True)
        tree = self._mktree(types)
        rest_keys = [k for k in rest_tree.keys(recursive=True) if k in types and k not in as_counter]
        n_rest = rest_tree.num_entries
        e = 0
        for e, n, part in self._side_parts(n_rest):
            part.update(rest_tree.arrays(rest_keys, entry_start=e, entry_stop=e + n, library="ak", how=dict))
            tree.extend({k: part[k] for k in types if k in part and k not in as_counter})
            e += n
        if e != n_rest:
            raise ValueError(f"the extras hold {n_rest} events of the other collections, the jets {e}")
        self._drop_side()
        self.side_path = ""
        self.merged = True

    def _merge_rntuple(self, rest) -> None:
        n_rest = rest.num_entries
        for e, n, part in self._side_parts(n_rest):
            arr = rest.arrays(entry_start=e, entry_stop=e + n)
            for name in self.rest:
                a = arr
                for piece in name.split("."):
                    a = a[piece]
                part[name] = a
            self._write_rntuple(part)
        self._drop_side()
        self.side_path = ""
        self.merged = True

    def _side_parts(self, n_rest: int) -> Iterator[tuple[int, int, dict]]:
        """(first event, events, arrays) of each part of the side file, in order; refuses a side
        file that holds more events than the `n_rest` events of the other collections."""
        e = 0
        with open(self.side_path, "rb") as f:
            for part in _load_all(f):
                n = len(next(iter(part.values())))
                if e + n > n_rest:
                    raise ValueError(f"the extras hold {n_rest} events of the other collections, "
                                     "fewer than the jets")
                yield e, n, part
                e += n

    def _drop_side(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None
        if self.side_path and os.path.exists(self.side_path):
            os.unlink(self.side_path)

    def close(self) -> None:
        try:
            if self.side is not None and self.rntuple:  # no extras came: the jets alone
                self.side.close()
                self.side = None
                with open(self.side_path, "rb") as f:
                    for part in _load_all(f):
                        self._write_rntuple(part)
            if self.side is not None:  # no extras came: the jets alone (without the other collections)
                self.side.close()
                self.side = None
                types, as_counter = self._types(with_rest=False)
                tree = self._mktree(types)
                with open(self.side_path, "rb") as f:
                    for part in _load_all(f):
                        tree.extend({k: part[k] for k in types if k in part and k not in as_counter})
        finally:
            self.file.close()
            self._drop_side()
            self.side_path = ""


def _dump(f, data: dict[str, Any]) -> None:
    """One chunk of branches (numpy or jagged awkward) to the side file."""
    import pickle

    import awkward as ak

    out = {}
    for k, v in data.items():
        if isinstance(v, ak.Array):
            out[k] = ("list", ak.num(v, axis=1).to_numpy(), ak.flatten(v, axis=1).to_numpy())
        else:
            out[k] = ("np", np.asarray(v), None)
    pickle.dump(out, f, protocol=5)


def _load_all(f):
    import pickle

    import awkward as ak

    while True:
        try:
            raw = pickle.load(f)  # our own side file, written by _dump above
        except EOFError:
            return
        yield {k: (ak.unflatten(flat, counts) if kind == "list" else counts)
               for k, (kind, counts, flat) in raw.items()}


def tree_counters(tree) -> set[str]:
    """Names that a writable uproot tree fills itself (counters of its list branches)."""
    cascading = getattr(tree, "_cascading", None)
    data = getattr(cascading, "_branch_data", [])
    return {d["fName"] if "fName" in d else d.get("name") for d in data if d.get("kind") == "counter"}
