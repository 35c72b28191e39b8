"""ROOT TTrees in and out, with uproot: flat trees and jagged per-event jet collections.

Reading streams ``uproot.iterate`` steps, so memory is bounded by the step, not the file.
Writing creates a TTree (never an RNTuple) with ``mktree`` + ``extend``; jagged collections
get their counter branch back (uproot writes counters as int32).
"""
from __future__ import annotations

import fnmatch
import os
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..features import infer_units
from .base import JetChunk, TableInfo
from .layouts import PRESETS, Preset, candidates, choose_collection



def _open(path: str):
    import uproot

    try:
        return uproot.open(path)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except Exception as exc:  # uproot raises many types for non-ROOT or damaged files
        raise InputError(f"{path}: cannot read as a ROOT file ({type(exc).__name__}: {exc})") from None


def _trees(file) -> dict[str, str]:
    """Tree name -> key of its newest cycle (what ROOT's TFile::Get returns), plus 'name;N' keys."""
    newest: dict[str, tuple[int, str]] = {}
    out: dict[str, str] = {}
    for key, cls in file.classnames(recursive=True).items():
        if cls == "TTree":
            name, _, cycle = key.rpartition(";")
            if not name:
                name, cycle = key, "0"
            number = int(cycle) if cycle.isdigit() else 0
            out[key] = key  # an explicit cycle, e.g. --tree 'Events;1'
            if name not in newest or number > newest[name][0]:
                newest[name] = (number, key)
    return {**{n: k for n, (_, k) in newest.items()}, **{k: v for k, v in out.items() if k not in newest}}


def _is_jagged(branch) -> bool:
    import uproot

    interp = branch.interpretation
    return isinstance(interp, (uproot.AsJagged, uproot.AsObjects)) or \
        "[]" in branch.typename or "vector" in branch.typename


class RootSource:
    """A jet collection in a ROOT file, read chunk by chunk."""

    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = ()) -> None:
        self.path = path
        self.file = _open(path)
        try:
            self._setup(tree, columns, preset, collection, units, keep)
        except BaseException:
            self.file.close()
            raise

    def _setup(self, tree_name, columns, preset_name, collection, units, keep) -> None:
        trees = _trees(self.file)
        where = self.path
        if not trees:
            raise InputError(f"{where}: no TTree in this ROOT file (RNTuple is not supported yet)")
        names_only = sorted(t for t in trees if ";" not in t)  # what error messages list
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
            with_jets = [t for t in names_only if candidates(self.file[trees[t]].keys())]
            if len(with_jets) != 1:
                raise InputError(f"{where}: several trees ({', '.join(names_only)})"
                                 f"{' hold jets' if with_jets else ''}; choose one with --tree")
            tree_name = with_jets[0]
        self.tree = self.file[trees[tree_name]]
        # the output gets the name, not the cycle; the header keeps an explicit cycle for evaluate
        cycle = {"tree_cycle": tree_name} if ";" in tree_name else {}
        tree_name = tree_name.rpartition(";")[0] if ";" in tree_name else tree_name
        # leaf branches only (split objects show up as parent/child; we want the leaves)
        names = [n for n in self.tree.keys() if not self.tree[n].branches]
        if preset is None and columns is None and collection is None:
            preset = detect_preset(tree_name, names)
        where = f"{self.path}:{tree_name}"
        coll = choose_collection(names, where=where, columns=columns, collection=collection,
                                 preset=preset if preset and preset.collection else None)
        used = coll.used_columns(names)
        jagged_flags = {role: _is_jagged(self.tree[n]) for role, n in used.items()}
        if len(set(jagged_flags.values())) != 1:
            raise InputError(f"{where}: columns {', '.join(used.values())} mix per-event "
                             "collections and per-row values")
        self.jagged = next(iter(jagged_flags.values()))
        counter = None
        if self.jagged:
            first = self.tree[next(iter(used.values()))]
            cb = getattr(first, "count_branch", None)
            counter = cb.name if cb is not None else self._counter_by_name(coll.name, names)
        # The jet columns and the counter are restored anyway: a pattern like 'n*' skips them.
        kept = [k for k in _match_keep(names, keep, where) if k not in {*used.values(), counter}]
        for name in kept:
            if _is_jagged(self.tree[name]):
                raise InputError(f"{where}: --keep-branches: {name} is not one value per event")
            kind = np.dtype(self.tree[name].interpretation.to_dtype).kind \
                if hasattr(self.tree[name].interpretation, "to_dtype") else "O"
            if kind not in "biuf":
                raise InputError(f"{where}: --keep-branches: {name} is not numeric")
        dtypes = {n: _dtype_name(self.tree[n]) for n in [*used.values(), *kept]}
        if counter:
            dtypes[counter] = _dtype_name(self.tree[counter])
        rep = coll.representation
        assert rep is not None
        units_inferred, reason = False, ""
        if units is None and preset is not None and preset.units is not None:
            units, reason = preset.units, f"the {preset.name} layout is in {preset.units}"
        if units is None:
            sample = self.tree.arrays(list(used.values()), entry_stop=min(self.tree.num_entries, 5000),
                                      library="ak")
            cols = {role: _flat(sample[n]) for role, n in used.items()}
            units, reason = infer_units(cols)
            units_inferred = True
        skip = {*used.values(), *kept, counter}
        self.info = TableInfo(
            file=os.path.basename(self.path), format="root", tree=tree_name,
            layout=preset.name if preset else ("jagged" if self.jagged else "flat"),
            collection=coll.name, jagged=self.jagged, counter=counter, columns=used,
            representation=rep, units=units, units_inferred=units_inferred, units_reason=reason,
            dtypes=dtypes, kept_branches=kept,
            other_branches=[n for n in names if n not in skip],
            extra={"typenames": {n: self.tree[n].typename for n in used.values()}, **cycle})
        self.n_entries = self.tree.num_entries

    def chunks(self, jets_per_chunk: int = 1 << 18) -> Iterator[JetChunk]:
        import awkward as ak

        info = self.info
        branches = list(info.columns.values()) + info.kept_branches
        if info.counter:
            branches.append(info.counter)
        step = max(1, int(jets_per_chunk / max(self._jets_per_entry(), 1e-3)))
        first_jet = first_entry = 0
        where = f"{self.path}:{info.tree}"
        try:
            iterator = self.tree.iterate(branches, step_size=step, library="ak")
            for arrays in iterator:
                n_entries = len(arrays)
                counts = None
                if info.jagged:
                    nums = {role: ak.num(arrays[n], axis=1).to_numpy() for role, n in info.columns.items()}
                    ref = next(iter(nums.values()))
                    for role, num in nums.items():
                        if not np.array_equal(num, ref):
                            bad = int(np.argmax(num != ref)) + first_entry
                            raise InputError(f"{where}: jet columns have different lengths in event {bad} "
                                             f"({', '.join(f'{info.columns[r]}={int(v[bad - first_entry])}' for r, v in nums.items())})")
                    if info.counter:
                        cnt = arrays[info.counter].to_numpy()
                        if not np.array_equal(cnt, ref):
                            bad = int(np.argmax(cnt != ref)) + first_entry
                            raise InputError(f"{where}: counter {info.counter} disagrees with the jet "
                                             f"columns in event {bad}")
                    counts = ref.astype(np.uint32)
                cols = {role: _flat(arrays[n]) for role, n in info.columns.items()}
                kept = {n: arrays[n].to_numpy() for n in info.kept_branches}
                chunk = JetChunk(cols, counts, kept, first_jet, first_entry)
                yield chunk
                first_jet += chunk.n_jets
                first_entry += n_entries
        except InputError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AssertionError, RuntimeError) as exc:
            raise InputError(f"{where}: cannot read entries after {first_entry} "
                             f"({type(exc).__name__}: {exc})") from None

    def _counter_by_name(self, collection: str, names: list[str]) -> str | None:
        """std::vector collections have no ROOT counter; ntuples often carry one anyway (jet_n)."""
        for name in (f"n{collection}", f"{collection}_n", f"n{collection}s", f"n_{collection}"):
            if name in names and not _is_jagged(self.tree[name]) \
                    and _dtype_name(self.tree[name]).startswith(("int", "uint")):
                return name
        return None

    def _jets_per_entry(self) -> float:
        """Mean jets per event over the first entries: turns a jet budget into an entry step."""
        if not self.info.jagged or self.n_entries == 0:
            return 1.0
        import awkward as ak

        name = next(iter(self.info.columns.values()))
        sample = self.tree[name].array(entry_stop=min(self.n_entries, 2000), library="ak")
        return max(float(ak.mean(ak.num(sample, axis=1))) if len(sample) else 1.0, 1.0)

    def close(self) -> None:
        self.file.close()


def _flat(array) -> np.ndarray:
    import awkward as ak

    if array.ndim > 1:
        array = ak.flatten(array, axis=1)
    return np.asarray(ak.to_numpy(array))


def _dtype_name(branch) -> str:
    interp = branch.interpretation
    for attr in ("to_dtype", "content"):
        obj = getattr(interp, attr, None)
        if obj is None:
            continue
        if attr == "content":
            obj = getattr(obj, "to_dtype", None)
            if obj is None:
                continue
        return np.dtype(obj).newbyteorder("=").name
    return branch.typename


def _match_keep(names: list[str], patterns: Sequence[str], where: str) -> list[str]:
    kept: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise InputError(f"{where}: --keep-branches {pattern!r} matches no branch")
        kept.extend(h for h in hits if h not in kept)
    return kept


def detect_preset(tree: str, names: list[str]) -> Preset | None:
    """The preset whose tree and collection this file has, if exactly one fits."""
    cands = candidates(names)
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


class RootWriter:
    """Write a TTree chunk by chunk, in the layout described by a TableInfo."""

    def __init__(self, path: str, info: TableInfo, names: dict[str, str],
                 kept_dtypes: dict[str, str], root_compression: str = "zstd") -> None:
        import uproot

        self.info = info
        self.file = uproot.recreate(path, compression=compression(root_compression))
        counter = info.counter or f"n{info.collection or 'Jet'}"
        self.counter = counter
        types: dict[str, object] = {}
        if info.jagged:
            types.update({name: "var * float32" for name in names.values()})
        else:
            types.update({name: np.float32 for name in names.values()})
        for name, dt in kept_dtypes.items():
            types[name] = np.dtype(dt)
        self.tree = self.file.mktree(info.tree or "jets", types, counter_name=lambda _: counter)
        self.names = names

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray]) -> None:
        import awkward as ak

        data: dict[str, object] = {}
        if self.info.jagged:
            assert counts is not None
            c = counts.astype(np.int64)
            for role, name in self.names.items():
                data[name] = ak.unflatten(columns[role].astype(np.float32), c)
        else:
            for role, name in self.names.items():
                data[name] = columns[role].astype(np.float32)
        data.update(kept)
        if data and len(next(iter(data.values()))) == 0:
            return
        self.tree.extend(data)

    def close(self) -> None:
        self.file.close()
