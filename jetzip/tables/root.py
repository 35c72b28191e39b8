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

import fnmatch
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InputError
from ..features import infer_units
from .base import JetChunk, TableInfo, entry_window
from .layouts import PRESETS, Preset, candidates, choose_collection, split_name
from .root_layout import (
    TLV_MEMBERS,
    Leaf,
    classify_rntuple,
    classify_ttree,
    expand,
    get_member,
)
from .root_writer import RootWriter  # re-exported: open_writer imports it from here
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
        return uproot.open(path, decompression_executor=pool, interpretation_executor=pool)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - uproot raises many types for non-ROOT or damaged files
        raise InputError(f"{path}: cannot read as a ROOT file ({type(exc).__name__}: {exc})") from None


TREE_CLASSES = ("TTree", "ROOT::RNTuple")


def _objects(file) -> dict[str, tuple[str, str]]:
    """Name -> (key of its newest cycle, class), plus 'name;N' keys for explicit cycles."""
    newest: dict[str, tuple[int, str, str]] = {}
    cycles: dict[str, tuple[str, str]] = {}
    for key, cls in file.classnames(recursive=True).items():
        name, _, cycle = key.rpartition(";")
        if not name:
            name, cycle = key, "0"
        number = int(cycle) if cycle.isdigit() else 0
        cycles[key] = (key, cls)
        if name not in newest or number > newest[name][0]:
            newest[name] = (number, key, cls)
    out = {n: (k, c) for n, (_, k, c) in newest.items()}
    out.update({k: v for k, v in cycles.items() if k not in out})
    return out


def _trees(file) -> dict[str, str]:
    """Tree name -> key of its newest cycle (what ROOT's TFile::Get returns), plus 'name;N' keys."""
    return {n: k for n, (k, c) in _objects(file).items() if c in TREE_CLASSES}


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


NOT_NUMERIC = "not a number or a list of numbers per event"


class RootSource:
    """A jet collection in a ROOT file, read chunk by chunk, with the rest of the file."""

    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = (), drop: Sequence[str] = (),
                 threads: int | None = None) -> None:
        self.path = path
        self.threads = threads
        self.file = _open(path, threads)
        try:
            self._setup(tree, columns, preset, collection, units, tuple(keep), tuple(drop))
        except BaseException:
            self.file.close()
            raise

    # ------------------------------------------------------------------ opening
    def _setup(self, tree_name, columns, preset_name, collection, units, keep, drop) -> None:
        objects = _objects(self.file)
        trees = {n: k for n, (k, c) in objects.items() if c in TREE_CLASSES}
        where = self.path
        if not trees:
            raise InputError(f"{where}: no TTree or RNTuple in this ROOT file")
        names_only = sorted(t for t in trees if ";" not in t)
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
        else:
            with_jets = [t for t in names_only if self._has_jets(self.file[trees[t]])]
            if len(with_jets) != 1:
                raise InputError(f"{where}: several trees ({', '.join(names_only)})"
                                 f"{' hold jets' if with_jets else ''}; choose one with --tree")
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
        if preset is None and columns is None:
            preset = detect_preset(tree_name, names, collection)
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
            coll = choose_collection(names, where=where, columns=columns, collection=collection,
                                     preset=preset if preset and preset.collection else None)
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
        # What else the tree holds, and where it goes.
        if keep:
            _check_patterns(self.leaves, keep, "--keep-branches", where)
        if drop:
            _check_patterns(self.leaves, drop, "--drop-branches", where)
        carried = [lf for lf in self.leaves if lf.name not in jet_keys and lf.name != counter
                   and (not keep or _matches(lf.name, keep)) and not _matches(lf.name, drop)]
        jet_counter = self.by_name[next(iter(used.values()))].counter if not self.p4_leaf else None
        kept, jet_branches, rest, not_carried = [], [], [], []
        for lf in carried:
            if lf.kind == "jagged" and self.jagged and self._per_jet(lf, coll.name, jet_counter):
                jet_branches.append(lf.name)
            elif lf.kind == "jagged" or (lf.kind == "string" and not self.rntuple):
                rest.append(lf.name)  # other collections, and text, come back via the extras
            elif lf.kind == "scalar" and len(lf.shape) <= 2:
                kept.append(lf.name)
            else:
                if keep and _matches(lf.name, keep):
                    raise InputError(f"{where}: --keep-branches: {lf.name} is not numeric "
                                     f"({lf.typename}); jetzip carries numbers and lists of numbers")
                not_carried.append(lf)
        # Counters of the jagged branches we carry come back from the lists themselves.
        counters: dict[str, str] = {}
        for n in [*used.values(), *jet_branches]:
            lf = self.by_name.get(n)
            c = lf.counter if lf is not None and lf.counter in self.by_name else None
            counters[n] = c or out_counter or ""
        for n in rest:
            lf = self.by_name[n]
            if lf.kind == "string":
                continue
            prefix = split_name(n)[0] or n
            own = lf.counter if lf.counter in self.by_name and self._scalar_int(lf.counter) else None
            if lf.member:
                prefix = lf.parent
            counters[n] = own or self._counter_named(prefix) or f"n{prefix}"
        regenerated = set(counters.values()) - {counter}
        kept = [k for k in kept if k not in regenerated]
        not_carried_msgs = [f"branch {lf.name} of {tree_name} ({lf.typename})" for lf in not_carried]
        dtypes = {n: self.by_name[n].dtype for n in [*kept, *jet_branches, *rest]}
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
        for c in regenerated:
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
        restored = {*used.values(), counter, *kept, *shaped_names, *jet_branches, *rest, *regenerated}
        objects_extra, objects_not = self._other_objects(objects)
        extra = {"typenames": {n: (self.by_name[n].typename if n in self.by_name else "TLorentzVector")
                               for n in used.values()}, **cycle,
                 "counters": {k: v for k, v in counters.items() if v != out_counter or k in rest},
                 "not_carried": [*not_carried_msgs, *objects_not]}
        if rest:
            extra["rest_branches"] = rest
        if shapes:
            extra["shapes"] = shapes
        if self.rntuple:
            extra["rntuple"] = True
        if self.p4_leaf is not None:
            extra["p4_branch"] = self.p4_leaf.name
        extra["restored_as"] = self._restored_as(used, counter, out_counter, [*kept, *jet_branches, *rest])
        self.other_objects = objects_extra
        self.info = TableInfo(
            file=os.path.basename(self.path), format="root", tree=tree_name,
            layout=preset.name if preset else ("jagged" if self.jagged else "flat"),
            collection=coll.name, jagged=self.jagged, counter=counter,
            columns=used, representation=(coll.representation or "") if not self.p4_leaf else "PxPyPzE",
            units=units, units_inferred=units_inferred, units_reason=reason,
            dtypes=dtypes, kept_branches=kept, jet_branches=jet_branches, branch_order=order,
            other_branches=[n for n in order if n not in restored], extra=extra)
        if counter is None and self.jagged:
            self.info.extra["counter_added"] = out_counter
        self.counter_in_file = counter
        self.n_entries = self.tree.num_entries

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
        objects_extra, objects_not = self._other_objects(_objects(self.file))
        self.other_objects = objects_extra
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

    def _units(self, units, preset, used):
        if units is not None:
            return units, False, ""
        if preset is not None and preset.units is not None:
            return preset.units, False, f"the {preset.name} layout is in {preset.units}"
        sample = next(self._raw_chunks(1 << 16), None)
        cols = sample.columns if sample is not None else {"pt": np.zeros(0)}
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
            if key == self.tree_key or name == jet_name or cls == "TDirectory":
                continue
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
        chunks = self._chunks_from_start(jets_per_chunk)
        if entry_start == 0 and entry_stop is None:
            return chunks
        return entry_window(chunks, entry_start, entry_stop)  # type: ignore[return-value]

    def _chunks_from_start(self, jets_per_chunk: int = 1 << 18) -> Iterator[JetChunk]:
        return self._raw_chunks(jets_per_chunk)

    def _keys(self) -> list[str]:
        if self.slots is not None:
            keys = [self.by_name[n].key for n in self.slots.names()]
            if hasattr(self, "info"):
                elements = getattr(self, "_elements", {})
                keys += [self.by_name[elements[n][0] if n in elements else n].key for n in self.info.kept_branches]
            return list(dict.fromkeys(keys))
        if self.p4_leaf is not None:
            keys = [self.p4_leaf.key]
        else:
            keys = [self.by_name[n].key for n in self.info.columns.values()]
        if hasattr(self, "info"):
            elements = getattr(self, "_elements", {})
            keys += [self.by_name[elements[n][0] if n in elements else n].key
                     for n in self.info.kept_branches + self.info.jet_branches]
            if self.counter_in_file:
                keys.append(self.by_name[self.counter_in_file].key)
        return list(dict.fromkeys(keys))

    def _ranges(self, jets_per_chunk: int) -> Iterator[tuple[int, int]]:
        """Entry ranges aligned on the jet branch's baskets (RNTuple: clusters), each with about
        `jets_per_chunk` jets or one basket more; a read is split further in memory."""
        n = self.n_entries
        if n == 0:
            return
        if self.rntuple:
            starts = sorted({int(c.num_first_entry) for c in self.tree.cluster_summaries} | {n})
            bounds = [s for s in starts if s <= n]
            if bounds[0] != 0:
                bounds.insert(0, 0)
            est = None
        else:
            if self.slots is not None:
                ref = self.tree[self.by_name[next(iter(self.slots.jets[0].values()))].key]
            elif self.p4_leaf is not None:
                ref = self.tree[self.p4_leaf.key]
            else:
                ref = self.tree[self.by_name[next(iter(self.info.columns.values()))].key]
            bounds = [int(x) for x in ref.entry_offsets]
            if not bounds or bounds[0] != 0:
                bounds.insert(0, 0)
            if bounds[-1] < n:
                bounds.append(n)
            itemsize = 8 if self.p4_leaf is not None else 4
            if self.jagged and self.slots is None:
                def est(i: int) -> float:
                    try:
                        return ref.basket_uncompressed_bytes(i) / (itemsize * (4 if self.p4_leaf else 1))
                    except Exception:  # noqa: BLE001 - an embedded basket: count its entries
                        return float(bounds[i + 1] - bounds[i]) * 8
            else:
                k = len(self.slots.jets) if self.slots is not None else 1

                def est(i: int) -> float:
                    return float(bounds[i + 1] - bounds[i]) * k
        start, acc = 0, 0.0
        for i in range(len(bounds) - 1):
            acc += est(i) if est is not None else jets_per_chunk
            if acc >= jets_per_chunk or bounds[i + 1] >= n:
                yield start, min(bounds[i + 1], n)
                start, acc = min(bounds[i + 1], n), 0.0
        if start < n:
            yield start, n

    def _read(self, keys: list[str], a: int, b: int):
        if self.rntuple:
            fields = list(dict.fromkeys(k.partition(".")[0] for k in keys))
            arr = self.tree.arrays(fields, entry_start=a, entry_stop=b)
            return {k: _rntuple_get(arr, k) for k in keys}
        return self.tree.arrays(keys, entry_start=a, entry_stop=b, library="ak", how=dict)

    def _raw_chunks(self, jets_per_chunk: int) -> Iterator[JetChunk]:
        jets_per_chunk = max(1, int(jets_per_chunk))
        where = self.where
        first_jet = 0
        has_info = hasattr(self, "info")
        keys = self._keys() if has_info else self._sample_keys()
        a = 0
        try:
            for a, b in self._ranges(jets_per_chunk) if has_info else [(0, min(self.n_entries, 5000))]:
                arrays = self._read(keys, a, b)
                cols, counts, jet_kept, kept = self._columns(arrays, a, has_info)
                if not has_info:
                    yield JetChunk(cols, counts, {}, 0, 0)
                    return
                n_ev = b - a
                if counts is None:
                    offsets = np.arange(n_ev + 1, dtype=np.int64)
                else:
                    offsets = np.zeros(n_ev + 1, dtype=np.int64)
                    np.cumsum(counts, out=offsets[1:])
                s = 0
                while s < n_ev:
                    e = int(np.searchsorted(offsets, offsets[s] + jets_per_chunk, side="right")) - 1
                    e = min(max(e, s + 1), n_ev)
                    j0, j1 = int(offsets[s]), int(offsets[e])
                    chunk = JetChunk({r: c[j0:j1] for r, c in cols.items()},
                                     None if counts is None else counts[s:e],
                                     {k: v[s:e] for k, v in kept.items()}, first_jet, a + s,
                                     jet_kept={k: v[j0:j1] for k, v in jet_kept.items()})
                    yield chunk
                    first_jet += j1 - j0
                    s = e
                del arrays, cols, jet_kept, kept
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
        if self.jagged:
            nums = {role: ak.num(a, axis=1).to_numpy() for role, a in raw.items()}
            ref = next(iter(nums.values()))
            for num in nums.values():
                if not np.array_equal(num, ref):
                    bad = int(np.argmax(num != ref))
                    raise InputError(f"{where}: jet columns have different lengths in event {bad + first_entry} "
                                     f"({', '.join(f'{names[r]}={int(v[bad])}' for r, v in nums.items())})")
            counts = ref.astype(np.uint32)
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
        """The file's other trees and objects and the jet tree's other collections, as the bytes
        of a ROOT file that :meth:`RootWriter.write_extras` copies from."""
        from .root_extras import build_extras

        return build_extras(self)

    def extras_file(self, directory: str | None = None) -> str | None:
        """The same as a temporary file (the caller removes it), for streaming large extras."""
        from .root_extras import build_extras_file

        return build_extras_file(self, directory)

    def close(self) -> None:
        self.file.close()


def _only_slots(cands, wides) -> bool:
    """No ordinary jet collections besides the jets per row (jet1_pt, jet2_pt look like
    collections jet1, jet2 of their own)."""
    covered = {n for w in wides.values() for n in w.names()}
    return all(set(c.columns.values()) <= covered for c in cands.values())


def _reps():
    from ..features import REPRESENTATIONS

    return REPRESENTATIONS


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


COMPRESSIONS = ("zstd", "zlib", "lz4", "lzma", "none")


def compression(name: str):
    """uproot compression object for `name` (level 1: fast; these files are already lossy)."""
    import uproot

    if name not in COMPRESSIONS:
        raise InputError(f"unknown ROOT compression {name!r}; use {', '.join(COMPRESSIONS)}")
    return {"zstd": uproot.ZSTD(1), "zlib": uproot.ZLIB(1), "lz4": uproot.LZ4(1),
            "lzma": uproot.LZMA(1), "none": None}[name]


__all__ = ["COMPRESSIONS", "RootSource", "RootWriter", "compression", "detect_preset", "executor"]
