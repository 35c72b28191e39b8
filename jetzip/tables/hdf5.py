"""HDF5 tables with h5py: one dataset per column, or one compound (structured) dataset.

A table is a group (the file root unless ``--tree`` names one) whose 1-D datasets of equal
length are the columns, or a compound dataset whose fields are. Per-event jet counts may sit
beside flat jet columns in a dataset named like ``nJet``/``counts``/``n_jets``; their sum must
equal the number of jets, and the table is then jagged, zero-jet events included.
"""
from __future__ import annotations

import fnmatch
import os
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..features import infer_units
from .base import JetChunk, TableInfo
from .layouts import PRESETS, candidates, choose_collection

COUNTER_NAMES = ("counts", "n_jets", "njets", "njet", "nJet", "jet_n", "n_jet")  # any case


def _is_counter(ds, n_jets: int) -> bool:
    """Whole non-negative numbers (integers, or floats from pandas) that add up to the jets."""
    if ds.dtype.kind not in "iuf":
        return False
    values = np.asarray(ds[...])
    if ds.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
        return False
    return bool((values >= 0).all()) and int(values.astype(np.int64).sum()) == n_jets


def _open(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read as an HDF5 file ({exc})") from None


def _plain_columns(group, h5py) -> list[str]:
    """Names of a group's 1-D plain (non-compound) datasets: its columns."""
    return [k for k, v in group.items()
            if isinstance(v, h5py.Dataset) and v.dtype.names is None and v.ndim == 1]


def _attr_text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _only_table_group(file, path: str, h5py) -> str | None:
    """With no --tree: the file root if its columns hold jets, else the one table that does.

    A table is a group of column datasets or a compound dataset, anywhere in the file. jetzip
    writes jagged tables into a group named after the source tree (``/Events``), so its own
    output must be found without ``--tree``.
    """
    if candidates(_plain_columns(file, h5py)):
        return None
    found: list[str] = []

    def visit(name, obj) -> None:
        if isinstance(obj, h5py.Group):
            if candidates(_plain_columns(obj, h5py)):
                found.append(name)
        elif isinstance(obj, h5py.Dataset) and obj.dtype.names and candidates(obj.dtype.names):
            found.append(name)

    file.visititems(visit)
    if len(found) > 1:
        raise InputError(f"{path}: jets in several tables ({', '.join(found[:10])}); choose one with --tree")
    return found[0] if found else None


class Hdf5Source:
    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = ()) -> None:
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
            self._setup(node, tree, columns, preset, collection, units, keep, h5py)
        except BaseException:
            self.file.close()
            raise

    def _setup(self, node, tree, columns, preset_name, collection, units, keep, h5py) -> None:
        where = f"{self.path}:{tree}" if tree else self.path
        self.compound = None
        if isinstance(node, h5py.Dataset):
            if node.dtype.names is None:
                raise InputError(f"{where} is a plain dataset, not a table (compound dataset or group)")
            self.compound = node
        else:
            compounds = [k for k, v in node.items() if isinstance(v, h5py.Dataset) and v.dtype.names]
            plain = [k for k, v in node.items() if isinstance(v, h5py.Dataset) and v.dtype.names is None
                     and v.ndim == 1]
            if not plain and len(compounds) == 1:
                self.compound = node[compounds[0]]
                tree = f"{tree or ''}/{compounds[0]}".lstrip("/")
        if self.compound is not None:
            self.datasets = {n: None for n in self.compound.dtype.names}
            names = list(self.compound.dtype.names)
            lengths = {len(self.compound)}
        else:
            self.datasets = {k: v for k, v in node.items() if isinstance(v, h5py.Dataset) and v.ndim == 1}
            names = list(self.datasets)
        preset = PRESETS[preset_name] if preset_name else None
        coll = choose_collection(names, where=where, columns=columns, collection=collection,
                                 preset=preset if preset and preset.collection else None)
        used = coll.used_columns(names)
        if self.compound is None:
            lengths = {len(self.datasets[n]) for n in used.values()}
            if len(lengths) != 1:
                raise InputError(f"{where}: jet columns have different lengths "
                                 f"({', '.join(f'{n}={len(self.datasets[n])}' for n in used.values())})")
        self.n_jets = lengths.pop()
        for n in used.values():
            kind = (self.compound.dtype[n] if self.compound is not None else self.datasets[n].dtype).kind
            if kind not in "biuf":
                raise InputError(f"{where}: column {n} is not numeric")
        counter = None
        if self.compound is None:
            counter_names = {c.lower() for c in COUNTER_NAMES}
            if coll.name:
                counter_names |= {f"n{coll.name}".lower(), f"{coll.name}_n".lower()}
            for n in names:
                if n.lower() in counter_names and n not in used.values() and _is_counter(self.datasets[n], self.n_jets):
                    counter = n
                    break
        self.jagged = counter is not None
        self.n_entries = len(self.datasets[counter]) if counter else self.n_jets
        kept: list[str] = []
        for pattern in keep:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise InputError(f"{where}: --keep-branches {pattern!r} matches no column")
            # the jet columns and the counter are restored anyway
            kept += [h for h in hits if h not in kept and h not in {*used.values(), counter}]
        for n in kept:
            length = len(self.compound) if self.compound is not None else len(self.datasets[n])
            if length != self.n_entries:
                raise InputError(f"{where}: --keep-branches: {n} has {length} rows, "
                                 f"not one per {'event' if self.jagged else 'row'} ({self.n_entries})")
        dtype_of = (lambda n: self.compound.dtype[n].name) if self.compound is not None \
            else (lambda n: self.datasets[n].dtype.name)
        units_inferred, reason = False, ""
        declared = _attr_text(node.attrs.get("units")) if self.compound is None else \
            _attr_text(self.compound.attrs.get("units"))
        if units is None and declared in ("GeV", "MeV"):
            units, reason = declared, f"the file declares {declared} (units attribute)"
        if units is None and preset is not None and preset.units:
            units, reason = preset.units, f"the {preset.name} layout is in {preset.units}"
        self.used = used
        if units is None:
            sample = self._read(0, min(self.n_jets, 5000))
            units, reason = infer_units(sample)
            units_inferred = True
        skip = {*used.values(), *kept, counter}
        self.info = TableInfo(
            file=os.path.basename(self.path), format="hdf5", tree=tree, layout="jagged" if self.jagged else "flat",
            collection=coll.name, jagged=self.jagged, counter=counter, columns=used,
            representation=coll.representation or "", units=units, units_inferred=units_inferred,
            units_reason=reason, dtypes={n: dtype_of(n) for n in [*used.values(), *kept, *([counter] if counter else [])]},
            kept_branches=kept, other_branches=[n for n in names if n not in skip],
            extra={"hdf5_layout": "compound" if self.compound is not None else "columns"})

    def _read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        if self.compound is not None:
            block = self.compound[start:stop]
            return {role: np.asarray(block[n]) for role, n in self.used.items()}
        return {role: np.asarray(self.datasets[n][start:stop]) for role, n in self.used.items()}

    def _read_kept(self, start: int, stop: int) -> dict[str, np.ndarray]:
        if self.compound is not None:
            block = self.compound[start:stop]
            return {n: np.asarray(block[n]) for n in self.info.kept_branches}
        return {n: np.asarray(self.datasets[n][start:stop]) for n in self.info.kept_branches}

    def chunks(self, jets_per_chunk: int = 1 << 18) -> Iterator[JetChunk]:
        try:
            if not self.jagged:
                for start in range(0, self.n_jets, jets_per_chunk):
                    stop = min(start + jets_per_chunk, self.n_jets)
                    yield JetChunk(self._read(start, stop), None, self._read_kept(start, stop), start, start)
                return
            counts_ds = self.datasets[self.info.counter]
            first_jet = 0
            events_per_step = max(1, jets_per_chunk // 8)
            for ev_start in range(0, self.n_entries, events_per_step):
                ev_stop = min(ev_start + events_per_step, self.n_entries)
                counts = np.asarray(counts_ds[ev_start:ev_stop]).astype(np.uint32)
                n = int(counts.sum(dtype=np.int64))
                yield JetChunk(self._read(first_jet, first_jet + n), counts,
                               self._read_kept(ev_start, ev_stop), first_jet, ev_start)
                first_jet += n
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read ({exc})") from None

    def close(self) -> None:
        self.file.close()


class Hdf5Writer:
    """Write columns (and the counter for jagged tables) as resizable datasets, or a compound table."""

    def __init__(self, path: str, info: TableInfo, names: dict[str, str], kept_dtypes: dict[str, str]) -> None:
        import h5py

        self.file = h5py.File(path, "w")
        self.info = info
        self.names = names
        group = self.file
        self.compound = info.extra.get("hdf5_layout") == "compound" and not info.jagged
        tree = info.tree or ""
        if self.compound:
            parent, _, dname = tree.rpartition("/")
            group = self.file.require_group(parent) if parent else self.file
            fields = [(n, "<f4") for n in names.values()] + [(k, dt) for k, dt in kept_dtypes.items()]
            self.table = group.create_dataset(dname or "jets", shape=(0,), maxshape=(None,),
                                              dtype=np.dtype(fields), chunks=True)
            self.table.attrs["units"] = info.units  # read back by Hdf5Source: no guessing
            return
        if tree:
            group = self.file.require_group(tree)
        group.attrs["units"] = info.units  # read back by Hdf5Source: no guessing
        self.datasets = {}
        for name in names.values():
            self.datasets[name] = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype="<f4",
                                                       chunks=(1 << 16,))
        if info.jagged:
            counter = info.counter or f"n{info.collection or 'Jet'}"
            self.datasets[counter] = group.create_dataset(counter, shape=(0,), maxshape=(None,),
                                                          dtype="<u4", chunks=(1 << 16,))
            self.counter = counter
        for k, dt in kept_dtypes.items():
            self.datasets[k] = group.create_dataset(k, shape=(0,), maxshape=(None,), dtype=dt,
                                                    chunks=(1 << 16,))

    @staticmethod
    def _append(ds, values: np.ndarray) -> None:
        n = len(ds)
        ds.resize((n + len(values),))
        ds[n:] = values

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray]) -> None:
        if self.compound:
            block = np.empty(len(next(iter(columns.values()))), dtype=self.table.dtype)
            for role, name in self.names.items():
                block[name] = columns[role]
            for k, v in kept.items():
                block[k] = v
            self._append(self.table, block)
            return
        for role, name in self.names.items():
            self._append(self.datasets[name], columns[role].astype("<f4"))
        if self.info.jagged:
            assert counts is not None
            self._append(self.datasets[self.counter], counts.astype("<u4"))
        for k, v in kept.items():
            self._append(self.datasets[k], v)

    def close(self) -> None:
        self.file.close()
