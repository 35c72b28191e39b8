"""ROOT files in and out, with uproot: TTrees (flat, jagged NanoAOD-like, Delphes TClonesArray
splits, ``std::vector``, ``TLorentzVector``, several jets per row) and RNTuples.

Reading is planned on the jet branch's baskets (RNTuple: clusters) and each read is split in
memory into chunks of at most ``jets_per_chunk`` jets (whole events), so memory is bounded by
the jets actually read, whatever the first events look like. By default every other branch of
the jet tree is carried: per-event ones as kept branches, per-jet ones (``Jet_btagDeepFlavB``)
as jet branches, other collections (``Muon_pt``) and the file's other objects (NanoAOD ``Runs``,
histograms) in the extras blob (:mod:`.root_extras`). What cannot be carried is named in
``info.extra["not_carried"]``.
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InputError, damage_message, damaged_input
from ..features import infer_units
from .base import CollectionChunk, CollectionInfo, JetChunk, TableInfo
from .root_extras import build_extras
from .layouts import (PRESETS, Preset, candidates, choose_collection, choose_collections, every_but, find_collections,
                      split_name)
from .root_layout import (
    TLV_MEMBERS,
    TREE_CLASSES,
    _objects,
    Leaf,
    classify_rntuple,
    rntuple_projections,
    classify_ttree,
    expand,
    get_member,
)
from .root_writer import COMPRESSIONS, RootWriter, compression  # re-exported
from .wide import Wide, find_wide, representation_of_slots, stack


class _SharedPool(ThreadPoolExecutor):
    """A pool shared by every open file: uproot shuts its executors down when a file closes,
    which must not end the pool for the next file (it is reused for the life of the process)."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def executor(threads: int | None = None) -> ThreadPoolExecutor:
    """One shared pool per size for uproot's decompression and interpretation (issue 15)."""
    n = max(1, int(threads or os.cpu_count() or 1))
    with _POOLS_LOCK:
        pool = _POOLS.get(n)
        if pool is None:
            pool = _POOLS[n] = _SharedPool(n, thread_name_prefix="jetzip-root")
        return pool


def _open(path: str, threads: int | None = None):
    import uproot

    pool = executor(threads)
    try:
        f = uproot.open(path, decompression_executor=pool, interpretation_executor=pool)
        end, size = int(f.file.fEND), os.path.getsize(path)
        if size < end:  # the header says where the data ends: a truncated copy or download
            f.close()
            raise InputError(f"{path}: cannot read as a ROOT file (the file is truncated: {size} bytes; "
                             f"its header says {end})")
        return f
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - uproot raises many types for non-ROOT or damaged files
        raise InputError(f"{path}: cannot read as a ROOT file ({_why_not_root(path, exc)})") from None


def _header_end(path: str) -> int | None:
    """``fEND`` of a ROOT file's header (where its data ends: 32-bit after the version, 64-bit
    for version >= 1000000, ROOT's TFile::Init), or None when the header is too short."""
    import struct

    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 16:
        return None
    version = struct.unpack(">i", head[4:8])[0]
    if version >= 1000000:
        return struct.unpack(">q", head[12:20])[0] if len(head) >= 20 else None
    return struct.unpack(">i", head[12:16])[0]


def _why_not_root(path: str, exc: BaseException) -> str:
    """What is wrong with a file uproot cannot open, in a user's words where the bytes say it
    (empty, not starting with ROOT's magic ``root``), else uproot's own first line."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)  # ROOT's magic
    except OSError as err:
        return err.strerror or str(err)
    if not head:
        return "the file is empty"
    if not head.startswith(b"root"):
        return "it does not start with ROOT's magic bytes: not a ROOT file"
    end = _header_end(path)
    if end is not None and os.path.getsize(path) < end:
        return f"the file is truncated: {os.path.getsize(path)} bytes; its header says {end}"
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}"


def _trees(file) -> dict[str, str]:
    """Tree name -> key of its newest cycle (what ROOT's TFile::Get returns), plus 'name;N' keys."""
    return {n: k for n, (k, c) in _objects(file).items() if c in TREE_CLASSES}


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


NOT_NUMERIC = "not a number or a list of numbers per event"
SAMPLE_ENTRIES = 2000  # entries whose list lengths --collection all checks per further collection
PROBE_BYTES = 1 << 30  # memory a one-entry read of an unclassified branch may take (capped_memory)
READ_BYTES = 64 << 20  # uncompressed bytes of every branch read at once (bounds the memory of a read)


@contextlib.contextmanager
def capped_memory(extra: int) -> Iterator[None]:
    """Within the block, this process's address space may grow by at most `extra` bytes
    (``RLIMIT_AS``, Linux, main thread only: elsewhere the block runs uncapped); growing beyond
    raises MemoryError.

    uproot reads the objects of a class it misreads with the lengths it finds in the bytes: the
    ``_Generation_Parameters`` branch (``IOVMetaDataContainer_p1``) of the PHYSLITE RNTuple
    file's ``MetaData`` tree, one entry of a few kB, asked for a 1,742,481,381-element array:
    13 GiB, 14 GB resident and 20 s before uproot gave up. Capped, the read fails at once."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        yield  # other threads of this process would share the cap
        return
    try:
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = size + extra
        if soft != resource.RLIM_INFINITY:
            cap = min(cap, soft)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (OSError, ValueError):  # no /proc, or a limit that cannot be set
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class RootSource:
    """One tree (TTree or RNTuple) of a ROOT file, read chunk by chunk: its jet collections
    (coded) and every other branch (carried). With `jets` False, a tree of other branches only
    (NanoAOD's ``Runs``), every branch carried. :meth:`file_source` gives every tree of the
    file and its other objects, for compress."""

    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = (), drop: Sequence[str] = (),
                 threads: int | None = None, jets: bool = True, file=None) -> None:
        self.path = path
        self.threads = threads
        self.options = {"columns": columns, "preset": preset, "collection": collection, "units": units,
                        "keep": tuple(keep), "drop": tuple(drop)}
        self.owns_file = file is None
        self.file = _open(path, threads) if file is None else file
        try:
            if jets:
                self._setup(tree, columns, preset, collection, units, tuple(keep), tuple(drop))
            else:
                assert tree is not None
                self._setup_plain(tree, tuple(keep), tuple(drop))
        except BaseException:
            if self.owns_file:
                self.file.close()
            raise

    @property
    def compression(self) -> str:
        """The input's compression setting, as uproot names it (``LZMA(9)``, ``ZLIB(1)``; ""
        when unknown or none): see :func:`input_compression`."""
        cached = getattr(self, "_compression", None)
        if cached is None:
            cached = self._compression = input_compression(self.file, self.tree if self.rntuple else None)
        return cached

    def file_source(self):
        """Every tree of the file (this one with its jets, the others as they are: their own
        jets too unless ``--tree`` chose this one) and the file's other objects."""
        from . import FileSource

        objects = _objects(self.file)
        names = [n for n, (k, c) in objects.items() if c in TREE_CLASSES and ";" not in n]
        mine = self.tree_key.rpartition(";")[0] or self.tree_key
        tables: list[Any] = []
        chosen = self.info.extra.get("tree_cycle") or self.options_tree
        for name in names:
            if name == mine:
                tables.append(self)
                continue
            key = objects[name][0]
            if chosen is None and self._has_jets(self.file[key]):
                try:
                    tables.append(RootSource(self.path, tree=name, threads=self.threads, file=self.file,
                                             **{k: v for k, v in self.options.items()
                                                if k not in ("columns", "keep", "drop")}))
                    continue
                except InputError:
                    pass  # a collection it does not have (--collection): carried as it is
            tables.append(RootSource(self.path, tree=name, threads=self.threads, jets=False, file=self.file,
                                     drop=self.options["drop"]))
        for t in tables:
            t.other_objects = []
        source = FileSource(self.path, "root", tables, extras=lambda: build_extras(self, self.file_objects))
        source.notes = {k: list(dict.fromkeys(x for t in tables for x in t.info.extra.get(k, [])))
                        for k in ("not_carried", "restored_as")}  # the file's objects: named once
        source.compression = self.compression  # type: ignore[attr-defined]
        return source

    # ------------------------------------------------------------------ opening
    def _setup(self, tree_name, columns, preset_name, collection, units, keep, drop) -> None:
        self.options_tree = tree_name
        objects = _objects(self.file)
        trees = {n: k for n, (k, c) in objects.items() if c in TREE_CLASSES}
        where = self.path
        if not trees:
            raise InputError(f"{where}: no TTree or RNTuple in this ROOT file")
        names_only = [t for t in trees if ";" not in t]  # file order
        preset: Preset | None = PRESETS[preset_name] if preset_name else None
        if tree_name is not None:
            if tree_name not in trees:
                raise InputError(f"{where}: no tree {tree_name!r}; trees: {', '.join(names_only)}")
        elif preset is not None and any(t in trees for t in preset.trees):
            tree_name = next(t for t in preset.trees if t in trees)
        elif preset is not None and preset.trees:
            raise InputError(f"{where}: --preset {preset.name} reads tree "
                             f"{' or '.join(preset.trees)}, which this file does not have (trees: "
                             f"{', '.join(names_only)}); drop --preset or pass --tree")
        elif len(names_only) == 1:
            tree_name = names_only[0]
        else:  # the first tree that holds jets; the others' jets are coded too (file_source)
            with_jets = [t for t in names_only if self._has_jets(self.file[trees[t]])]
            if not with_jets:
                raise InputError(f"{where}: no tree holds jets (pt, eta, phi with mass or E, or px, py, pz, E "
                                 f"branches); trees: {', '.join(names_only)}; name them with --tree and --columns")
            tree_name = with_jets[0]
        self.tree_key = trees[tree_name]
        self.tree = self.file[self.tree_key]
        self.rntuple = objects[tree_name][1] == "ROOT::RNTuple"
        cycle = {"tree_cycle": tree_name} if ";" in tree_name else {}
        tree_name = tree_name.rpartition(";")[0] if ";" in tree_name else tree_name
        self.leaves = classify_rntuple(self.tree) if self.rntuple else classify_ttree(self.tree)
        self.by_name = {lf.name: lf for lf in self.leaves}
        self.n_entries = self.tree.num_entries
        where = f"{self.path}:{tree_name}"
        self.where = where
        numeric = [lf.name for lf in self.leaves if lf.kind in ("scalar", "jagged")]
        p4 = {lf.name: lf for lf in self.leaves if lf.kind in ("p4", "p4-jagged")}
        pseudo = [f"{n}_{role}" for n in p4 for role in TLV_MEMBERS]  # jetp4 -> jetp4_px, ...
        names = [*numeric, *pseudo]
        self.every = every_but(collection)[0] and columns is None
        if self.every and not any(c.representation for c in find_collections(names).values()):
            collection, self.every = None, False  # no four-vector collection: the default layouts (jets per row)
        if preset is None and columns is None:
            preset = detect_preset(tree_name, names, None if self.every else collection)
        self.slots: Wide | None = None
        slot_layouts = find_wide([lf.name for lf in self.leaves if lf.kind == "scalar"])
        by_columns = [w for w in slot_layouts.values() if columns and w.columns == dict(columns)]
        if by_columns:  # the pattern names a header records (pT_h*_j*), e.g. for evaluate
            self.slots = by_columns[0]
        elif collection is not None and collection in slot_layouts and columns is None:
            self.slots = slot_layouts[collection]
        elif columns is None and collection is None and slot_layouts and _only_slots(candidates(names), slot_layouts):
            if len(slot_layouts) > 1:
                raise InputError(f"{where}: several groups of jets per row: "
                                 + "; ".join(f"{k} ({len(g.jets)} jets)" for k, g in slot_layouts.items())
                                 + "; choose one with --collection PATTERN")
            self.slots = next(iter(slot_layouts.values()))
        if self.slots is not None:
            self._setup_slots(tree_name, preset, units, keep, drop, cycle)
            return
        try:
            chosen = choose_collections(names, where=where, columns=columns, collection=collection,
                                        preset=preset if preset and preset.collection else None)
            coll = chosen[0]
        except InputError as exc:
            self._explain_non_numeric(names, columns, collection, where)
            if slot_layouts and collection is None and columns is None:
                raise
            if slot_layouts and "no jet collection" in str(exc):
                raise InputError(f"{exc}; jets per row: {', '.join(slot_layouts)}") from None
            raise
        used = coll.used_columns(names)
        self.p4_leaf: Leaf | None = None
        p4_used = {n.rpartition("_")[0] for n in used.values() if n in pseudo}
        if p4_used:
            if len(p4_used) != 1 or not set(used.values()) <= set(pseudo):
                raise InputError(f"{where}: a TLorentzVector branch holds the whole 4-vector; "
                                 "do not mix it with other columns")
            self.p4_leaf = p4[p4_used.pop()]
            used = {role: f"{self.p4_leaf.name}_{role}" for role in ("px", "py", "pz", "E")}
        if not self.rntuple:  # other object branches travel as their members (MET.fX, ...)
            self.leaves = expand(self.tree, self.leaves, self.p4_leaf.name if self.p4_leaf else None)
            self.by_name = {lf.name: lf for lf in self.leaves}
        for role, n in used.items():
            lf = self.by_name.get(n)
            if lf is not None and lf.kind in ("other", "string"):
                raise InputError(f"{where}: jet column {n} ({role}) holds {lf.typename}, not numbers; "
                                 "it cannot be read as jets (fix the file or name other columns "
                                 "with --columns)")
        kinds = {("p4-jagged" if self.p4_leaf.kind == "p4-jagged" else "p4")} if self.p4_leaf else \
            {self.by_name[n].kind for n in used.values()}
        if len(kinds) != 1:
            raise InputError(f"{where}: columns {', '.join(used.values())} mix per-event "
                             "collections and per-row values")
        self.jagged = kinds.pop() in ("jagged", "p4-jagged")
        jet_keys = {self.p4_leaf.name} if self.p4_leaf else set(used.values())
        counter = self._find_counter(coll.name, used) if self.jagged else None
        out_counter = counter or (f"n{coll.name or 'Jet'}" if self.jagged else None)
        # further collections (jagged, numeric, of the same tree): coded too
        others = self._other_collections(chosen[1:], names, where) if self.jagged and not self.p4_leaf else []
        if self.every:  # --collection all: what --keep-branches / --drop-branches leave in
            others = [oc for oc in others if all((not keep or _matches(n, keep)) and not _matches(n, drop)
                                                 for n in oc.columns.values())]
        for oc in others:
            jet_keys |= set(oc.columns.values())
        # What else the tree holds, and where it goes.
        if keep:
            _check_patterns(self.leaves, keep, "--keep-branches", where)
        if drop:
            _check_patterns(self.leaves, drop, "--drop-branches", where)
        other_counters = {oc.counter for oc in others if oc.counter}  # written from the counts
        carried = [lf for lf in self.leaves if lf.name not in jet_keys and lf.name != counter
                   and lf.name not in other_counters
                   and (not keep or _matches(lf.name, keep)) and not _matches(lf.name, drop)]
        jet_counter = self.by_name[next(iter(used.values()))].counter if not self.p4_leaf else None
        kept, jet_branches, rest, not_carried = [], [], [], []
        unreadable = self._unreadable(carried)
        not_carried = [lf for lf in carried if lf.name in unreadable]
        carried = [lf for lf in carried if lf.name not in unreadable]
        for lf in carried:
            owner = next((oc for oc in others if lf.kind == "jagged" and self._per_jet(
                lf, oc.name, self.by_name[next(iter(oc.columns.values()))].counter)), None)
            if owner is not None:
                owner.jet_branches.append(lf.name)
            elif lf.kind == "jagged" and self.jagged and self._per_jet(lf, coll.name, jet_counter):
                jet_branches.append(lf.name)
            elif lf.kind in ("jagged", "string") or (lf.kind in ("other", "p4", "p4-jagged")
                                                     and self._readable(lf)):
                rest.append(lf.name)  # other collections, text, objects: carried as they are
            elif lf.kind == "scalar" and len(lf.shape) <= 2:
                kept.append(lf.name)
            else:
                if keep and _matches(lf.name, keep):
                    raise InputError(f"{where}: --keep-branches: {lf.name} ({lf.typename}) cannot be "
                                     "read by uproot; jetzip carries what uproot reads")
                not_carried.append(lf)
        if self.every:
            others, moved = self._consistent(others)
            rest.extend(moved)
            jet_keys -= set(moved)
        for oc in others:
            oc.dtypes.update({n: self.by_name[n].dtype for n in [*oc.columns.values(), *oc.jet_branches]})
        # Counters of the jagged branches we carry come back from the lists themselves.
        counters: dict[str, str] = {}
        for n in [*used.values(), *jet_branches]:
            lf = self.by_name.get(n)
            c = lf.counter if lf is not None and lf.counter in self.by_name else None
            counters[n] = c or out_counter or ""
        for oc in others:
            for n in [*oc.columns.values(), *oc.jet_branches]:
                lf = self.by_name[n]
                counters[n] = lf.counter if lf.counter in self.by_name else (oc.counter or f"n{oc.name}")
        shared = self._collection_counters(rest)
        for n in rest:
            lf = self.by_name[n]
            if lf.kind != "jagged" and n not in shared:  # a member such as float[][10]: its collection's
                continue
            own = lf.counter if lf.counter in self.by_name and self._scalar_int(lf.counter) else None
            # a list without a counter of its own gets its collection's or its own
            counters[n] = own or shared.get(n) or f"n{n}"
        regenerated = set(counters.values()) - {counter}
        kept = [k for k in kept if k not in regenerated]
        not_carried_msgs = [f"branch {lf.name} of {tree_name} ({lf.typename}: uproot cannot read it)"
                            for lf in not_carried]
        dtypes = {n: self.by_name[n].dtype for n in [*kept, *jet_branches] if n in self.by_name}
        dtypes.update({n: self.by_name[n].dtype for n in rest if self.by_name[n].kind == "jagged"})
        # fixed-size arrays per event (a covariance matrix) travel element by element, cov[0],
        # cov[1], ... (kept branches are one number per event); the writer puts them together
        shapes = {n: list(self.by_name[n].shape) for n in kept if self.by_name[n].shape}
        self._elements: dict[str, tuple[str, int]] = {}
        flat_kept = []
        for n in kept:
            if n in shapes:
                for k in range(int(np.prod(shapes[n]))):
                    self._elements[f"{n}[{k}]"] = (n, k)
                    flat_kept.append(f"{n}[{k}]")
                    dtypes[f"{n}[{k}]"] = dtypes[n]
                del dtypes[n]
            else:
                flat_kept.append(n)
        shaped_names = list(shapes)
        kept = flat_kept
        for n in used.values():
            dtypes[n] = self.p4_leaf.dtype if self.p4_leaf else self.by_name[n].dtype
        if counter:
            dtypes[counter] = self.by_name[counter].dtype
        for c in sorted({*regenerated, *other_counters}):  # sorted: a set's order changes per process
            if c in self.by_name:
                dtypes.setdefault(c, self.by_name[c].dtype)
        order: list[str] = []
        for lf in self.leaves:
            if self.p4_leaf is not None and lf.name == self.p4_leaf.name:
                order.extend(used.values())
            else:
                order.append(lf.name)
        self._pending_cols, self._pending_used = used, list(used.values())
        units, units_inferred, reason = self._units(units, preset, used)
        for oc in others:  # a layout without a known unit: the first collection's, for every one
            oc.units, oc.units_inferred, oc.units_reason = (units, units_inferred, reason) if units_inferred else \
                self._units(self.options.get("units"), preset, oc.columns, oc.name)
        restored = {*used.values(), counter, *kept, *shaped_names, *jet_branches, *rest, *regenerated,
                    *[n for oc in others for n in [*oc.columns.values(), *oc.jet_branches, oc.counter or ""]]}
        extra = {"typenames": {n: (self.by_name[n].typename if n in self.by_name else "TLorentzVector")
                               for n in used.values()}, **cycle,
                 "counters": {k: v for k, v in counters.items() if v != out_counter or k in rest},
                 "not_carried": not_carried_msgs}
        if shapes:
            extra["shapes"] = shapes
        if self.rntuple:
            extra["rntuple"] = True
            _projections(self.tree, extra)
        if self.p4_leaf is not None:
            extra["p4_branch"] = self.p4_leaf.name
        extra["restored_as"] = self._restored_as(used, counter, out_counter, [*kept, *jet_branches, *rest])
        self._carry_file_objects(objects)
        extra["not_carried"] = [*not_carried_msgs, *self.objects_not_carried, *_friends(self.tree, tree_name)]
        self.info = TableInfo(
            file=os.path.basename(self.path), format="root", tree=tree_name,
            layout=preset.name if preset else ("jagged" if self.jagged else "flat"),
            collection=coll.name, jagged=self.jagged, counter=counter,
            columns=used, representation=(coll.representation or "") if not self.p4_leaf else "PxPyPzE",
            units=units, units_inferred=units_inferred, units_reason=reason,
            dtypes=dtypes, kept_branches=kept, jet_branches=jet_branches, branch_order=order,
            other_branches=[n for n in order if n not in restored], extra=extra,
            collections=others, carried_branches=rest)
        if counter is None and self.jagged:
            self.info.extra["counter_added"] = out_counter
        self.counter_in_file = counter
        self.n_entries = self.tree.num_entries

    def _setup_plain(self, tree_name: str, keep: tuple[str, ...], drop: tuple[str, ...]) -> None:
        """A tree whose branches are all carried (no jets coded): numbers per entry as kept
        branches, everything else uproot reads as carried arrays."""
        objects = _objects(self.file)
        self.options_tree = tree_name
        self.tree_key = objects[tree_name][0]
        self.tree = self.file[self.tree_key]
        self.rntuple = objects[tree_name][1] == "ROOT::RNTuple"
        self.leaves = classify_rntuple(self.tree) if self.rntuple else expand(self.tree, classify_ttree(self.tree))
        self.by_name = {lf.name: lf for lf in self.leaves}
        self.where = f"{self.path}:{tree_name}"
        self.slots = None
        self.p4_leaf = None
        self.jagged = True
        self.counter_in_file = None
        self._elements = {}
        kept, rest, not_carried = [], [], []
        unreadable = self._unreadable(self.leaves)
        for lf in self.leaves:
            if _matches(lf.name, drop):
                continue
            if lf.name in unreadable:
                not_carried.append(f"branch {lf.name} of {tree_name} ({lf.typename}: uproot cannot read it)")
            elif lf.kind == "scalar" and lf.shape == ():
                kept.append(lf.name)
            elif lf.kind in ("scalar", "jagged", "string") or self._readable(lf):
                rest.append(lf.name)
            else:
                not_carried.append(f"branch {lf.name} of {tree_name} ({lf.typename}: uproot cannot read it)")
        shared = self._collection_counters(rest)
        counters = {n: (self.by_name[n].counter if self.by_name[n].counter in self.by_name else
                        shared.get(n) or f"n{n}")
                    for n in rest if self.by_name[n].kind == "jagged" or n in shared}
        regenerated = set(counters.values())
        kept = [k for k in kept if k not in regenerated]
        dtypes = {n: self.by_name[n].dtype for n in kept}
        dtypes.update({n: self.by_name[n].dtype for n in rest if self.by_name[n].kind == "jagged"})
        for c in sorted(c for c in regenerated if c):  # sorted: a set's order changes from process to process
            if c in self.by_name:
                dtypes.setdefault(c, self.by_name[c].dtype)
        order = [lf.name for lf in self.leaves]
        restored = {*kept, *rest, *regenerated}
        extra: dict[str, Any] = {"counters": counters, "not_carried": [*not_carried, *_friends(self.tree, tree_name)]}
        if self.rntuple:
            extra["rntuple"] = True
            _projections(self.tree, extra)
        self.other_objects = []
        self.info = TableInfo(
            file=os.path.basename(self.path), format="root", tree=tree_name, layout="plain", collection="",
            jagged=True, counter=None, columns={}, representation="", units="GeV", dtypes=dtypes,
            kept_branches=kept, branch_order=order, other_branches=[n for n in order if n not in restored],
            extra=extra, carried_branches=rest)
        self.n_entries = self.tree.num_entries

    def _unreadable(self, leaves: list[Leaf]) -> set[str]:
        """Names of the leaves uproot cannot read (their first entry, read together; one by one
        when that fails). A file's streamers can mislead uproot about a branch's type."""
        if self.tree.num_entries == 0 or not leaves:
            return set()
        try:
            self._read(list(dict.fromkeys(lf.key for lf in leaves if lf.kind in ("scalar", "jagged", "string"))), 0, 1)
        except Exception:  # noqa: BLE001 - find the culprits
            return {lf.name for lf in leaves if lf.kind in ("scalar", "jagged", "string") and not self._readable(lf)}
        return set()

    def _readable(self, lf: Leaf) -> bool:
        """Whether uproot reads a branch of a type jetzip does not classify (tried on one entry,
        with at most :data:`PROBE_BYTES` more memory: :func:`capped_memory`)."""
        if self.tree.num_entries == 0:
            return False
        try:
            with capped_memory(PROBE_BYTES):
                if self.rntuple:
                    self.tree.arrays([lf.key.partition(".")[0]], entry_stop=1)
                else:
                    (lf.branch if lf.branch is not None else self.tree[lf.key]).array(entry_stop=1, library="ak")
            return True
        except Exception as exc:  # noqa: BLE001 - uproot's many ways of not reading a type
            if damaged_input(exc):
                raise InputError(damage_message(exc, f"{self.path} (branch {lf.name})")) from None
            return False

    def _other_collections(self, chosen: list, names: list[str], where: str) -> list[CollectionInfo]:
        """The further collections to code, each jagged and numeric with its own counter."""
        out = []
        for c in chosen:
            used = c.used_columns(names)
            leaves = [self.by_name.get(n) for n in used.values()]
            if any(lf is None or lf.kind != "jagged" for lf in leaves):
                continue  # not a jagged numeric collection of this tree: carried as it is
            counter = self._find_counter(c.name, used)
            out.append(CollectionInfo(c.name, used, c.representation or "", "GeV", counter=counter))
        return out

    file_objects: list[tuple[str, str, str]] = []
    other_objects: list[tuple[str, str, str]] = []
    objects_not_carried: list[str] = []

    def _carry_file_objects(self, objects) -> None:
        """What else the file holds (histograms, ...) besides its trees, for the extras blob."""
        objects_extra, objects_not = self._other_objects(objects)
        self.file_objects = objects_extra
        self.other_objects = objects_extra
        self.objects_not_carried = objects_not

    def _setup_slots(self, tree_name, preset, units, keep, drop, cycle) -> None:
        """Several jets per row (tables.wide): each row an event of up to k jets."""
        w = self.slots
        assert w is not None
        where = self.where
        if not self.rntuple:
            self.leaves = expand(self.tree, self.leaves)
            self.by_name = {lf.name: lf for lf in self.leaves}
        if keep:
            _check_patterns(self.leaves, keep, "--keep-branches", where)
        if drop:
            _check_patterns(self.leaves, drop, "--drop-branches", where)

        def wanted(pattern: str, cols: list[str]) -> bool:
            names = [pattern, *cols]
            return (not keep or any(_matches(n, keep) for n in names)) and \
                not any(_matches(n, drop) for n in names)

        all_slot_names = set(w.names())
        extras = {pn: cols for pn, cols in w.extras.items() if wanted(pn, cols)}
        for pn, cols in extras.items():
            if any(self.by_name[c].kind != "scalar" or self.by_name[c].shape for c in cols):
                extras = {k: v for k, v in extras.items() if k != pn}
        self.slots = w = Wide(w.pattern, w.jets, extras, w.slots)
        in_slots = set(w.names())
        kept, not_carried = [], []
        for lf in self.leaves:
            if lf.name in in_slots or lf.name in all_slot_names or (keep and not _matches(lf.name, keep)) \
                    or _matches(lf.name, drop):
                continue
            if lf.kind == "scalar" and len(lf.shape) <= 2:
                kept.append(lf.name)
            else:
                not_carried.append(f"branch {lf.name} of {tree_name} ({lf.typename})")
        dtypes = {n: self.by_name[n].dtype for n in kept}
        used = w.columns
        for role, pn in used.items():
            dtypes[pn] = self.by_name[w.jets[0][role]].dtype
        for pn, cols in extras.items():
            dtypes[pn] = self.by_name[cols[0]].dtype
        rep = representation_of_slots(list(w.jets))
        self.jagged = True
        self.p4_leaf = None
        self.counter_in_file = None
        self._pending_cols, self._pending_used = used, []
        units, units_inferred, reason = self._units(units, preset, None)
        self._carry_file_objects(_objects(self.file))
        objects_not = self.objects_not_carried
        order = [lf.name for lf in self.leaves]
        restored = {*kept, *in_slots}
        self.info = TableInfo(
            file=os.path.basename(self.path), format="root", tree=tree_name, layout="jets-per-row",
            collection=w.pattern, jagged=True, counter=None, columns=used, representation=rep,
            units=units, units_inferred=units_inferred, units_reason=reason, dtypes=dtypes,
            kept_branches=kept, jet_branches=list(extras), branch_order=order,
            other_branches=[n for n in order if n not in restored],
            extra={**w.to_extra(), "not_carried": [*not_carried, *objects_not], **cycle})
        self.n_entries = self.tree.num_entries

    def _restored_as(self, used, counter, out_counter, carried_lists) -> list[str]:
        """One line per thing that comes back in another form than it was (what uproot can write)."""
        notes = []
        if self.p4_leaf is not None:
            notes.append(f"{self.p4_leaf.name} ({self.p4_leaf.typename}) comes back as "
                         f"{', '.join(used.values())} (float32) counted by {out_counter}: uproot "
                         "cannot write TLorentzVector")
        carried = set(carried_lists)
        objects: dict[str, list[str]] = {}
        for lf in self.leaves:
            if lf.member and (lf.name in carried or self._elements_of(lf.name) & carried):
                objects.setdefault(lf.parent, []).append(lf.name)
        if objects:
            first, members = next(iter(objects.items()))
            more = f" and {len(objects) - 6} more" if len(objects) > 6 else ""
            notes.append(f"object branches ({', '.join(list(objects)[:6])}{more}) come back as their numeric "
                         f"members ({first} -> {', '.join(members)}): uproot cannot write ROOT objects")
        split = sorted({lf.key.rpartition("/")[0] for lf in self.leaves
                        if "/" in lf.key and lf.kind in ("scalar", "jagged") and not lf.member})
        if split:
            notes.append(f"split branches ({', '.join(split[:6])}{' ...' if len(split) > 6 else ''}) come "
                         "back as plain branches under their leaf names (Jet/Jet.PT -> Jet.PT): uproot "
                         "cannot write TClonesArray or split classes")
        vectors = [n for n in [*used.values(), *carried_lists]
                   if n in self.by_name and "vector" in self.by_name[n].typename and not self.by_name[n].member]
        if vectors:
            notes.append(f"std::vector branches ({', '.join(vectors[:6])}{' ...' if len(vectors) > 6 else ''}) "
                         "come back as arrays with a counter branch: uproot writes no std::vector")
        if counter is None and self.jagged and self.p4_leaf is None and not self.rntuple:  # an RNTuple
            notes.append(f"the jets get a counter branch {out_counter} the input did not have")
        return notes

    def _elements_of(self, name: str) -> set[str]:
        return {e for e, (n, _) in getattr(self, "_elements", {}).items() if n == name}

    def _explain_non_numeric(self, names, columns, collection, where) -> None:
        """A jet collection that would be complete but for branches that are not numbers
        (a flat tree whose pt holds strings): say so in one line."""
        others = {lf.name: lf for lf in self.leaves if lf.kind in ("other", "string")}
        if not others:
            return
        every = [*names, *others]
        try:
            coll = choose_collection(every, where=where, columns=columns, collection=collection)
        except InputError:
            return
        bad = [n for n in coll.used_columns(every).values() if n in others]
        if bad:
            raise InputError(f"{where}: jet column(s) {', '.join(f'{n} ({others[n].typename})' for n in bad)} "
                             "hold text or objects, not numbers; jetzip reads numeric jet columns "
                             "(convert them, or name numeric ones with --columns)")

    def _has_jets(self, tree) -> bool:
        try:
            leaves = classify_rntuple(tree) if "RNTuple" in type(tree).__name__ else classify_ttree(tree)
        except Exception:  # noqa: BLE001 - a tree we cannot classify holds no jets for us
            return False
        names = [lf.name for lf in leaves if lf.kind in ("scalar", "jagged")]
        names += [f"{lf.name}_{r}" for lf in leaves if lf.kind.startswith("p4") for r in TLV_MEMBERS]
        return bool(candidates(names)) or bool(find_wide(
            [lf.name for lf in leaves if lf.kind == "scalar"]))

    def _scalar_int(self, n: str | None) -> bool:
        lf = self.by_name.get(n) if n else None
        return lf is not None and lf.kind == "scalar" and lf.shape == () and np.dtype(lf.dtype).kind in "iu"

    def _collection_counters(self, names: list[str]) -> dict[str, str]:
        """One counter per split collection for its members among `names` (carried leaves
        without a counter branch of their own, lists or arrays of lists such as ``float[][10]``):
        ``{"GenParticle.pt": "nGenParticle", ...}``.

        A member of a split ``TClonesArray`` (branch ``fType`` 31 under a 3) or of a split
        ``std::vector`` of classes (41 under a 4) has, in every entry, as many values as its
        collection has elements, so its members share one counter (uproot's writer otherwise
        invents one per member: 362 extra branches of ~130 B each on mc10events). The name is
        ``n<collection>``; a collection whose ``n<collection>`` is a branch of the tree, or
        that has one member here, keeps one counter per member. RNTuples: ``{}``."""
        if self.rntuple:
            return {}
        groups: dict[str, list[str]] = {}
        for n in names:
            lf = self.by_name[n]
            if lf.counter in self.by_name or "/" not in lf.key:
                continue
            try:
                branch = self.tree[lf.key]
                parent = branch.parent
                kinds = (int(branch.member("fType")), int(parent.member("fType")))
            except Exception:  # noqa: BLE001 - not a TBranchElement of a split collection
                continue
            if kinds in ((31, 3), (41, 4)):
                groups.setdefault(parent.name, []).append(n)
        taken = {lf.name for lf in self.leaves}
        shared: dict[str, str] = {}
        for coll, members in groups.items():
            members = self._same_lengths(members)
            if len(members) > 1 and f"n{coll}" not in taken:
                shared.update({n: f"n{coll}" for n in members})
        self._shared: dict[str, list[str]] = {}  # counter -> its members: every chunk read checks they agree
        for n, c in shared.items():
            self._shared.setdefault(c, []).append(n)
        return shared

    def _same_lengths(self, members: list[str]) -> list[str]:
        """The members of a collection whose lists hold as many values as most of the others in
        the first entries (:data:`SAMPLE_ENTRIES`). uproot reads a Delphes ``Track.fBits``, the
        TObject bits of each element, with other lengths than ``Track.PT``: such a member keeps
        a counter of its own."""
        entries = int(self.tree.num_entries)
        if len(members) < 2 or entries == 0:
            return members
        try:
            arrays = self._read([self.by_name[n].key for n in members], 0, min(entries, SAMPLE_ENTRIES))
        except Exception:  # noqa: BLE001 - unreadable together: one counter each
            return []
        nums = {n: _num(arrays[self.by_name[n].key]).tobytes() for n in members}
        common = max(set(nums.values()), key=list(nums.values()).count)
        return [n for n in members if nums[n] == common]

    def _check_shared(self, arrays, first_entry: int) -> None:
        """Members that share a counter hold as many values each in every entry of this read."""
        for counter, members in getattr(self, "_shared", {}).items():
            ref = _num(self._get(arrays, members[0]))
            for n in members[1:]:
                num = _num(self._get(arrays, n))
                if not np.array_equal(num, ref):
                    bad = int(np.argmax(num != ref))
                    raise InputError(f"{self.where}: branch {n} has {int(num[bad])} values in entry "
                                     f"{bad + first_entry}, {members[0]} {int(ref[bad])}, though both are members "
                                     f"of the collection counted by {counter}; leave it out with "
                                     f"--drop-branches {n}")

    def _counter_named(self, coll: str) -> str | None:
        for n in (f"n{coll}", f"{coll}_size", f"{coll}_n", f"n{coll}s", f"n_{coll}"):
            if self._scalar_int(n):
                return n
        return None

    def _find_counter(self, coll: str, used: dict[str, str]) -> str | None:
        """The file's own per-event jet count: nJet, Jet_size, jet_n, ... or the ROOT counter."""
        found = self._counter_named(coll) if coll else None
        if found:
            return found
        if self.p4_leaf is None:
            c = self.by_name[next(iter(used.values()))].counter
            if c is not None and self._scalar_int(c):
                return c
        return None

    def _consistent(self, others: list[CollectionInfo]) -> tuple[list[CollectionInfo], list[str]]:
        """``--collection all``: the further collections whose lists hold as many values per entry
        as their four-vector columns in the first entries (a Delphes ``Track.fBits`` may not),
        and the branches left to carry as they are: per-member branches that disagree, and every
        list of a collection whose four columns disagree."""
        stop = min(self.n_entries, SAMPLE_ENTRIES)
        kept, moved = [], []
        for oc in others:
            names = [*oc.columns.values(), *oc.jet_branches]
            arrays = self._read([self.by_name[n].key for n in names], 0, stop)
            nums = {n: _num(arrays[self.by_name[n].key]) for n in names}
            ref = nums[names[0]]
            if any(not np.array_equal(nums[n], ref) for n in oc.columns.values()):
                moved += names
                continue
            bad = [n for n in oc.jet_branches if not np.array_equal(nums[n], ref)]
            oc.jet_branches = [n for n in oc.jet_branches if n not in bad]
            moved += bad
            kept.append(oc)
        return kept, moved

    def _per_jet(self, lf: Leaf, coll: str, jet_counter: str | None) -> bool:
        """Does a list branch hold one value per jet of the chosen collection?"""
        if jet_counter is not None and lf.counter == jet_counter:
            return True
        prefix = split_name(lf.name)[0]
        if coll and prefix == coll:
            return True
        if self.p4_leaf is not None:  # std::vector<TLorentzVector> jetp4: jetbtag, jetid
            stem = self.p4_leaf.name[:-2] if self.p4_leaf.name.lower().endswith("p4") else self.p4_leaf.name
            return bool(stem) and lf.name.lower().startswith(stem.lower())
        return False

    def _units(self, units, preset, used, name: str | None = None):
        """(units, inferred, reason) of the jets, or of collection `name` (columns `used`)."""
        if units is not None:
            return units, False, ""
        if preset is not None and preset.units is not None:
            return preset.units, False, f"the {preset.name} layout is in {preset.units}"
        if name is None:
            sample = next(self._raw_chunks(1 << 16), None)
            cols = sample.columns if sample is not None else {"pt": np.zeros(0)}
        else:
            stop = min(self.n_entries if hasattr(self, "n_entries") else self.tree.num_entries, 5000)
            keys = {role: self.by_name[n].key for role, n in used.items()}
            arrays = self._read(list(keys.values()), 0, stop)
            cols = {role: _flat(arrays[k]) for role, k in keys.items()}
        u, reason = infer_units(cols)
        return u, True, reason

    def _other_objects(self, objects) -> tuple[list[tuple[str, str, str]], list[str]]:
        """(name, key, class) of what else the file holds, and what of it cannot be carried."""
        from .root_extras import carryable

        out, not_carried = [], []
        jet_name = self.tree_key.rpartition(";")[0]
        for name, (key, cls) in objects.items():
            if ";" in name:  # an explicit older cycle: ROOT reads the newest
                base = name.rpartition(";")[0]
                # a TTree's older cycles are its own AutoSave snapshots (a prefix of the newest)
                if objects.get(base, (None,))[0] != key and cls not in TREE_CLASSES:
                    not_carried.append(f"{cls} {name} (an older cycle of {base})")
                continue
            if key == self.tree_key or name == jet_name or cls == "TDirectory" or cls in TREE_CLASSES:
                continue  # trees are tables of their own (file_source)
            ok, why = carryable(self.file, key, cls)
            if ok:
                out.append((name, key, cls))
            else:
                not_carried.append(f"{cls} {name} ({why})")
        return out, not_carried

    # ------------------------------------------------------------------ reading
    def chunks(self, jets_per_chunk: int = 1 << 18, entry_start: int = 0,
               entry_stop: int | None = None) -> Iterator[JetChunk]:
        """Chunks of whole events with about `jets_per_chunk` jets, covering entries
        ``[entry_start, entry_stop)`` (see :class:`~jetzip.tables.JetSource`)."""
        return self._raw_chunks(jets_per_chunk, entry_start, entry_stop)

    def _keys(self) -> list[str]:
        """What uproot reads for a chunk: the jets, then every branch carried."""
        info = getattr(self, "info", None)
        elements = getattr(self, "_elements", {})
        keys: list[str] = []
        if self.slots is not None:
            keys = [self.by_name[n].key for n in self.slots.names()]
            if info is not None:
                keys += [self.by_name[elements[n][0] if n in elements else n].key for n in info.kept_branches]
            return list(dict.fromkeys(keys))
        if self.p4_leaf is not None:
            keys = [self.p4_leaf.key]
        elif info is not None:
            keys = [self.by_name[n].key for n in info.columns.values()]
        if info is not None:
            for oc in info.collections:
                keys += [self.by_name[n].key for n in [*oc.columns.values(), *oc.jet_branches]]
            keys += [self.by_name[elements[n][0] if n in elements else n].key
                     for n in info.kept_branches + info.jet_branches + info.carried_branches]
            if self.counter_in_file:
                keys.append(self.by_name[self.counter_in_file].key)
        return list(dict.fromkeys(keys))

    def _ranges(self, jets_per_chunk: int, entry_start: int = 0,
                entry_stop: int | None = None) -> Iterator[tuple[int, int]]:
        """Entry ranges of ``[entry_start, entry_stop)`` aligned on the jet branch's baskets
        (RNTuple: clusters), each with about `jets_per_chunk` jets or one basket more, and at most
        :data:`READ_BYTES` of every branch read (uncompressed, estimated from the baskets); a
        read is split further in memory. The first range starts at the basket that holds
        `entry_start`: nothing before it is read."""
        n = self.n_entries if entry_stop is None else min(entry_stop, self.n_entries)
        first = max(0, entry_start)
        if n <= first:
            return
        est = None
        if self.rntuple:
            starts = sorted({int(c.num_first_entry) for c in self.tree.cluster_summaries} | {self.n_entries})
            bounds = [b for b in starts if b <= self.n_entries]
            if bounds[0] != 0:
                bounds.insert(0, 0)
        else:
            if self.slots is not None:
                ref = self.tree[self.by_name[next(iter(self.slots.jets[0].values()))].key]
            elif self.p4_leaf is not None:
                ref = self.tree[self.p4_leaf.key]
            elif self.info.columns:
                ref = self.tree[self.by_name[next(iter(self.info.columns.values()))].key]
            else:  # a table without jets: ranges of its first branch's baskets
                ref = self.tree[self.leaves[0].key] if self.leaves else None
            bounds = [int(x) for x in ref.entry_offsets] if ref is not None else [0, self.n_entries]
            if not bounds or bounds[0] != 0:
                bounds.insert(0, 0)
            if bounds[-1] < self.n_entries:
                bounds.append(self.n_entries)
            itemsize = 8 if self.p4_leaf is not None else 4
            if not self.info.columns and self.slots is None:
                def est(i: int) -> float:
                    return 0.0
            elif self.jagged and self.slots is None:
                def est(i: int) -> float:
                    try:
                        return ref.basket_uncompressed_bytes(i) / (itemsize * (4 if self.p4_leaf else 1))
                    except Exception:  # noqa: BLE001 - an embedded basket: count its entries
                        return float(bounds[i + 1] - bounds[i]) * 8
            else:
                k = len(self.slots.jets) if self.slots is not None else 1

                def est(i: int) -> float:
                    return float(bounds[i + 1] - bounds[i]) * k
        per_entry = self._bytes_per_entry()
        max_entries = max(1, int(READ_BYTES / per_entry)) if per_entry > 0 else None
        # the basket holding `first`, and everything from there on
        i0 = max(0, int(np.searchsorted(bounds, first, side="right")) - 1)
        start, acc = first, 0.0
        for i in range(i0, len(bounds) - 1):
            end = min(bounds[i + 1], n)
            acc += est(i) if est is not None else jets_per_chunk
            while max_entries is not None and end - start > max_entries:
                yield start, start + max_entries
                start, acc = start + max_entries, 0.0
            if acc >= jets_per_chunk or end >= n:
                if end > start:
                    yield start, end
                start, acc = end, 0.0
            if end >= n:
                return
        if start < n:
            yield start, n

    def _bytes_per_entry(self) -> float:
        """Uncompressed bytes per entry of every branch a chunk reads (TTree metadata)."""
        if self.rntuple:
            return 0.0
        total = 0.0
        by_key = {lf.key: lf for lf in self.leaves}
        for key in self._keys():
            try:
                lf = by_key.get(key)
                total += float((lf.branch if lf is not None and lf.branch is not None else self.tree[key])
                               .uncompressed_bytes)
            except Exception:  # noqa: BLE001 - a branch whose sizes uproot cannot tell
                continue
        return total / max(self.n_entries, 1)

    def _read(self, keys: list[str], a: int, b: int):
        if self.rntuple:
            fields = list(dict.fromkeys(k.partition(".")[0] for k in keys))
            arr = self.tree.arrays(fields, entry_start=a, entry_stop=b)
            return {k: _rntuple_get(arr, k) for k in keys}
        plain = [k for k in keys if "#" not in k]
        out = self.tree.arrays(plain, entry_start=a, entry_stop=b, library="ak", how=dict) if plain else {}
        by_key = {lf.key: lf for lf in self.leaves}
        for k in keys:
            if "#" in k:  # a branch only its object reaches (a second branch of the same name)
                out[k] = by_key[k].branch.array(entry_start=a, entry_stop=b, library="ak")
        return out

    def _raw_chunks(self, jets_per_chunk: int, entry_start: int = 0,
                    entry_stop: int | None = None) -> Iterator[JetChunk]:
        jets_per_chunk = max(1, int(jets_per_chunk))
        where = self.where
        first_jet = 0
        has_info = hasattr(self, "info")
        keys = self._keys() if has_info else self._sample_keys()
        a = 0
        ranges = self._ranges(jets_per_chunk, entry_start, entry_stop) if has_info else \
            [(0, min(self.n_entries, 5000))]
        try:
            for a, b in ranges:
                arrays = self._read(keys, a, b)
                cols, counts, jet_kept, kept = self._columns(arrays, a, has_info)
                if not has_info:
                    yield JetChunk(cols, counts, {}, 0, 0)
                    return
                others = self._other_columns(arrays, a) if self.info.collections else {}
                self._check_shared(arrays, a)
                carried = {name: self._carried_value(arrays, name) for name in self.info.carried_branches}
                chunk = JetChunk(cols, counts, kept, first_jet, a, jet_kept, carried, others)
                if counts is None and not cols:  # a table without jets: zero jets per entry
                    chunk.counts = np.zeros(b - a, np.uint32)
                for piece in chunk.split(jets_per_chunk, b - a):
                    first_jet += piece.n_jets
                    yield piece
                del arrays, cols, jet_kept, kept, carried, others, chunk
        except InputError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AssertionError, RuntimeError,
                IndexError) as exc:
            raise InputError(f"{where}: cannot read entries after {a} "
                             f"({type(exc).__name__}: {exc})") from None

    def _sample_keys(self) -> list[str]:
        """Before `info` exists (unit inference): only the jet columns."""
        if self.slots is not None:
            return [self.by_name[n].key for jet in self.slots.jets for n in jet.values()]
        if self.p4_leaf is not None:
            return [self.p4_leaf.key]
        return [self.by_name[n].key for n in self._pending_used]

    def _columns(self, arrays, first_entry: int, has_info: bool):
        """Flat jet columns, counts, per-jet and per-event branches of one read."""
        import awkward as ak

        where = self.where
        if self.slots is not None:
            w = self.slots if has_info else Wide(self.slots.pattern, self.slots.jets, {}, self.slots.slots)
            rows = {n: _np(self._get(arrays, n)) for n in w.names()}
            cols, per_row, jet_kept = stack(rows, w)
            kept = {name: self._kept_value(arrays, name) for name in self.info.kept_branches} if has_info else {}
            return cols, per_row, (jet_kept if has_info else {}), kept
        if self.p4_leaf is not None:
            arr = arrays[self.p4_leaf.key]
            comp = {"px": arr["fP"]["fX"], "py": arr["fP"]["fY"], "pz": arr["fP"]["fZ"], "E": arr["fE"]}
            names = self.info.columns if has_info else {r: f"{self.p4_leaf.name}_{r}" for r in comp}
            raw = {role: comp[role] for role in names}
        else:
            names = self.info.columns if has_info else dict(self._pending_cols)
            raw = {role: arrays[self.by_name[n].key] for role, n in names.items()}
        counts: np.ndarray | None = None
        if self.jagged and raw:
            counts = _same_counts({names[r]: ak.num(a, axis=1).to_numpy() for r, a in raw.items()}, where, first_entry)
        cols = {role: _flat(a) for role, a in raw.items()}
        jet_kept, kept = {}, {}
        if has_info:
            if self.counter_in_file and counts is not None:
                cnt = _np(arrays[self.by_name[self.counter_in_file].key])
                if not np.array_equal(cnt, counts):
                    bad = int(np.argmax(cnt != counts))
                    raise InputError(f"{where}: counter {self.counter_in_file} disagrees with the jet "
                                     f"columns in event {bad + first_entry}")
            for name in self.info.jet_branches:
                a = self._get(arrays, name)
                num = ak.num(a, axis=1).to_numpy()
                if counts is not None and not np.array_equal(num, counts):
                    bad = int(np.argmax(num != counts))
                    raise InputError(f"{where}: per-jet branch {name} has {int(num[bad])} values in event "
                                     f"{bad + first_entry}, the jets {int(counts[bad])}; leave it out with "
                                     f"--drop-branches {name}")
                jet_kept[name] = _flat(a)
            kept = {name: self._kept_value(arrays, name) for name in self.info.kept_branches}
        return cols, counts, jet_kept, kept

    def _other_columns(self, arrays, first_entry: int) -> dict[str, CollectionChunk]:
        """The further collections of one read: columns, counts, per-member branches."""
        import awkward as ak

        out = {}
        for oc in self.info.collections:
            raw = {role: self._get(arrays, n) for role, n in oc.columns.items()}
            counts = _same_counts({oc.columns[r]: ak.num(a, axis=1).to_numpy() for r, a in raw.items()},
                                  self.where, first_entry)
            jet_kept = {}
            for name in oc.jet_branches:
                a = self._get(arrays, name)
                _same_counts({oc.columns[next(iter(raw))]: counts, name: ak.num(a, axis=1).to_numpy()},
                             self.where, first_entry)
                jet_kept[name] = _flat(a)
            out[oc.name] = CollectionChunk({r: _flat(a) for r, a in raw.items()}, counts, jet_kept)
        return out

    def _carried_value(self, arrays, name: str):
        """A carried branch of one read: numpy for numbers per entry, awkward otherwise."""
        import awkward as ak

        value = self._get(arrays, name)
        if isinstance(value, ak.Array) and isinstance(value.layout, ak.contents.NumpyArray) \
                and not value.layout.parameters:
            return np.asarray(ak.to_numpy(value))
        return value

    def _kept_value(self, arrays, name: str) -> np.ndarray:
        element = getattr(self, "_elements", {}).get(name)
        if element is None:
            return _np(self._get(arrays, name))
        whole = _np(self._get(arrays, element[0]))
        return np.ascontiguousarray(whole.reshape(len(whole), -1)[:, element[1]])

    def _get(self, arrays, name: str):
        lf = self.by_name[name]
        return get_member(arrays[lf.key], lf)

    def extras(self) -> bytes | None:
        """The file's objects other than its trees (histograms, text, ...), as the bytes of a
        ROOT file that :meth:`RootWriter.write_extras` copies from; None when there are none."""
        return build_extras(self, getattr(self, "file_objects", []))

    def close(self) -> None:
        if self.owns_file:
            self.file.close()


_ALGORITHMS = {b"ZL": "ZLIB", b"XZ": "LZMA", b"L4": "LZ4", b"ZS": "ZSTD"}  # ROOT's compressed-block tags


def input_compression(file: Any, ntuple: Any = None) -> str:
    """The compression a ROOT file's data was written with, as uproot names it (``ZLIB(1)``,
    ``LZMA(9)``, ``LZ4(4)``, ``ZSTD(5)``), or "" when unknown or uncompressed.

    * An RNTuple (`ntuple`): its pages' own setting (page lists record one per column; ROOT
      writes RNTuple pages with ZSTD-5 by default, whatever the file's ``fCompress`` says).
    * Otherwise the file's ``fCompress`` (algorithm * 100 + level) as uproot reads it.
    * Old ROOT's codes 1-99 (``fCompress`` < 100, which uproot names None): the level is
      ``fCompress % 100`` and the algorithm is the one the data really used, read from the
      first compressed basket's block header (``ZL`` zlib, ``XZ`` lzma, ``L4`` lz4, ``ZS``
      zstd; ROOT's ``R__zipMultipleAlgorithm`` tags), else from the streamer list's key; zlib
      when nothing in the file is compressed (old ROOT's default algorithm).
    """
    import uproot

    if ntuple is not None:
        try:
            codes = [int(col.compression_settings) for col in ntuple.page_link_list[0]]
        except Exception:  # noqa: BLE001 - an RNTuple without clusters, or one uproot cannot list
            codes = []
        codes = [c for c in codes if c > 0]
        if codes:
            try:
                return str(uproot.compression.Compression.from_code(max(set(codes), key=codes.count)) or "")
            except ValueError:
                pass
    f = file.file
    try:
        known = f.compression
    except ValueError:  # an algorithm code uproot does not know
        return ""
    if known is not None:
        return str(known)
    code = int(getattr(f, "fCompress", 0) or 0)
    if not 0 < code < 100:
        return ""
    algorithm = _block_algorithm(file) or "ZLIB"
    return f"{algorithm}({code % 100})"


def _block_algorithm(file: Any, max_branches: int = 64) -> str | None:
    """The algorithm tag of the first compressed basket of the file's TTrees (at most
    `max_branches` branches looked at), else of the streamer list's key; None if neither is
    compressed."""
    for seek in _basket_seeks(file, max_branches):
        tag = _block_tag(file.file, seek)
        if tag is not None:
            return _ALGORITHMS.get(tag)
    tag = _block_tag(file.file, int(file.file.fSeekInfo))
    return _ALGORITHMS.get(tag) if tag is not None else None


def _basket_seeks(file: Any, limit: int) -> Iterator[int]:
    """Where the first basket of each branch of the file's TTrees lies (at most `limit`)."""
    n = 0
    try:
        for key, cls in file.classnames(recursive=True).items():
            if cls != "TTree":
                continue
            for branch in file[key].itervalues(recursive=True):
                if branch.num_baskets:
                    yield int(branch.member("fBasketSeek")[0])
                    n += 1
                    if n >= limit:
                        return
    except Exception:  # noqa: BLE001 - trees uproot cannot list: the streamer key instead
        return


def _block_tag(f: Any, seek: int) -> bytes | None:
    """The 2-byte algorithm tag of the compressed key at `seek` of a ReadOnlyFile; None when
    that key is stored uncompressed or cannot be read."""
    import uproot

    try:
        head = f.chunk(seek, min(seek + uproot.reading._key_format_big.size, f.fEND))
        key = uproot.reading.ReadOnlyKey(head, uproot.source.cursor.Cursor(seek), {}, f, f, read_strings=False)
        if key.fNbytes - key.fKeylen >= key.fObjlen:
            return None  # stored uncompressed
        start = seek + key.fKeylen
        return bytes(f.chunk(start, start + 2).get(start, start + 2, uproot.source.cursor.Cursor(start), {}))
    except Exception:  # noqa: BLE001 - a key that cannot be read
        return None


def _friends(tree: Any, name: str) -> list[str]:
    """One line naming a TTree's friend links, which uproot cannot write back (none: [])."""
    try:
        friends = tree.member("fFriends", none_if_missing=True)
    except Exception:  # noqa: BLE001 - an RNTuple, or a tree uproot cannot tell
        return []
    if not friends:
        return []
    names = []
    for f in friends:
        try:
            names.append(str(f.member("fTreeName")))
        except Exception:  # noqa: BLE001 - a friend element of another version
            names.append("?")
    return [f"friend link(s) of tree {name} ({', '.join(names)}): uproot writes no TTree friends; "
            "restore them with TTree::AddFriend"]


def _same_counts(nums: dict[str, np.ndarray], where: str, first_entry: int) -> np.ndarray:
    """The common per-entry counts of several list branches, or an InputError naming the event."""
    ref = next(iter(nums.values()))
    for num in nums.values():
        if not np.array_equal(num, ref):
            bad = int(np.argmax(num != ref))
            raise InputError(f"{where}: list branches of one collection have different lengths in event "
                             f"{bad + first_entry} ({', '.join(f'{n}={int(v[bad])}' for n, v in nums.items())})")
    return ref.astype(np.uint32)


def _only_slots(cands, wides) -> bool:
    """No ordinary jet collections besides the jets per row (jet1_pt, jet2_pt look like
    collections jet1, jet2 of their own)."""
    covered = {n for w in wides.values() for n in w.names()}
    return all(set(c.columns.values()) <= covered for c in cands.values())


def _reps():
    from ..features import REPRESENTATIONS

    return REPRESENTATIONS


def _projections(ntuple, extra: dict[str, Any]) -> None:
    """Record an RNTuple's projected fields (``Jet_pt`` of ``_collection6``, ``nJet``) in
    ``extra["rntuple_projected"]`` for the writer (:func:`.root_layout.rntuple_projections`)."""
    spec = rntuple_projections(ntuple)
    if spec is not None:
        extra["rntuple_projected"] = spec


def _rntuple_get(arr, key: str):
    a = arr
    for part in key.split("."):
        a = a[part]
    return a


def _check_patterns(leaves: list[Leaf], patterns: Sequence[str], option: str, where: str) -> None:
    names = [lf.name for lf in leaves]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise InputError(f"{where}: {option} {pattern!r} matches no branch")


def _np(array) -> np.ndarray:
    import awkward as ak

    if isinstance(array, np.ndarray):
        return array
    return np.asarray(ak.to_numpy(array))


def _num(array) -> np.ndarray:
    """Values per entry of a list branch (0 for a number per entry)."""
    import awkward as ak

    return np.asarray(ak.num(array, axis=1)) if array.ndim > 1 else np.zeros(len(array), np.int64)


def _flat(array) -> np.ndarray:
    import awkward as ak

    if array.ndim > 1:
        array = ak.flatten(array, axis=1)
    return np.asarray(ak.to_numpy(array))


def detect_preset(tree: str, names: list[str], collection: str | None = None) -> Preset | None:
    """The layout this tree follows, from its name and branches; it fixes the units of every
    collection (NanoAOD's FatJet is in GeV like its Jet), not only of the default one."""
    cands = candidates(names)
    if tree == "Delphes" and any(n.endswith("_size") for n in names):
        return PRESETS["delphes"]
    if tree == "Events":
        colls = [c for c in ([collection] if collection else []) + ["Jet"] if c]
        if any(f"n{c}" in names and f"{c}_pt" in names for c in colls):
            return PRESETS["nanoaod"]
    if collection is not None:
        fits = [p for p in PRESETS.values() if p.collection and tree in p.trees and p.units]
        return fits[0] if len(fits) == 1 and fits[0].name != "atlas-opendata" else None
    fits = [p for p in PRESETS.values() if p.collection and tree in p.trees and p.collection in cands]
    return fits[0] if len(fits) == 1 else None


__all__ = ["COMPRESSIONS", "RootSource", "RootWriter", "compression", "detect_preset", "executor"]

