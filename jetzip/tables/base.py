"""What readers and writers exchange: table descriptions and chunks of jets.

A file holds one or more *tables* (ROOT trees and RNTuples, an HDF5 group or dataset, a
Parquet or CSV table). A table has entries (events, or rows of a flat table) and branches;
some groups of its branches are four-vector *collections* that a codec stores (NanoAOD
``Jet_pt, Jet_eta, Jet_phi, Jet_mass``); every other branch is *carried* losslessly.

:class:`TableInfo` describes one table: its first collection (the fields ``collection``,
``columns``, ``representation``, ``units``, ``counter``, ``jet_branches``), any further
collections (``collections``, :class:`CollectionInfo`), the branches carried per entry
(``kept_branches``: numbers, and ``carried_branches``: anything else) and what the writer
needs to restore the layout. :class:`JetChunk` is a run of whole entries of one table.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Iterator, Protocol

import numpy as np


@dataclasses.dataclass
class CollectionInfo:
    """A four-vector collection of a table beyond its first (NanoAOD ``FatJet``, ``Muon``...).

    Attributes:
        name: the collection's name (``FatJet``; ``""`` for flat tables).
        columns: role -> branch name for the representation's four roles, in file order.
        representation: ``PtEtaPhiM``, ``EPtEtaPhi``, ``PxPyPzE``, ... (features.REPRESENTATIONS).
        units: ``GeV`` or ``MeV``; units_inferred / units_reason: how they were found.
        counter: the scalar branch counting its members per entry, if the file has one.
        jet_branches: per-member branches beside the four-vector (``FatJet_msoftdrop``),
            carried losslessly and aligned with the members.
        dtypes: branch -> numpy dtype name of its values (four-vector columns, jet branches).
    """

    name: str
    columns: dict[str, str]
    representation: str
    units: str
    units_inferred: bool = False
    units_reason: str = ""
    counter: str | None = None
    jet_branches: list[str] = dataclasses.field(default_factory=list)
    dtypes: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["columns"] = [[role, name] for role, name in self.columns.items()]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CollectionInfo":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        if isinstance(kw.get("columns"), list):
            kw["columns"] = {str(role): str(name) for role, name in kw["columns"]}
        return cls(**kw)


@dataclasses.dataclass
class TableInfo:
    """Everything needed to write the table back in the layout it came in."""

    file: str
    format: str  # root | hdf5 | csv | parquet
    tree: str | None  # ROOT tree, HDF5 group/dataset path; None for CSV
    layout: str  # nanoaod | physlite | atlas-opendata | flat | jagged | ...
    collection: str
    jagged: bool
    counter: str | None  # branch holding per-event jet counts (None: implicit, e.g. std::vector)
    columns: dict[str, str]  # role -> original name, for the representation's four roles ({}: no jets)
    representation: str
    units: str
    units_inferred: bool = False
    units_reason: str = ""
    dtypes: dict[str, str] = dataclasses.field(default_factory=dict)
    kept_branches: list[str] = dataclasses.field(default_factory=list)  # one number per event (or row)
    # Per-jet branches beside the 4-vector (NanoAOD Jet_btagDeepFlavB, Jet_jetId, ...), carried
    # losslessly: one value per jet, aligned with the jet columns (jagged like them).
    jet_branches: list[str] = dataclasses.field(default_factory=list)
    # Every branch of the jet tree in file order (jet columns, counter, kept ones), so that a
    # writer can restore the original order; empty when the reader does not know it.
    branch_order: list[str] = dataclasses.field(default_factory=list)
    other_branches: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # format-specific details
    # Further four-vector collections of the same table, each coded by its own codec.
    collections: list[CollectionInfo] = dataclasses.field(default_factory=list)
    # Branches of any other type carried per entry (awkward arrays: other collections' lists,
    # strings, nested lists, records), in the order the writer needs them.
    carried_branches: list[str] = dataclasses.field(default_factory=list)

    @property
    def has_jets(self) -> bool:
        """Whether the table has a coded collection (a table of other branches only has not)."""
        return bool(self.columns)

    def first_collection(self) -> CollectionInfo:
        """The table's first collection as a :class:`CollectionInfo`."""
        return CollectionInfo(self.collection, dict(self.columns), self.representation, self.units,
                              self.units_inferred, self.units_reason, self.counter, list(self.jet_branches),
                              {n: self.dtypes[n] for n in [*self.columns.values(), *self.jet_branches]
                               if n in self.dtypes})

    def all_collections(self) -> list[CollectionInfo]:
        """Every coded collection: the first, then :attr:`collections` (none for a table
        without jets)."""
        return ([self.first_collection()] if self.has_jets else []) + list(self.collections)

    def to_json(self) -> dict:
        # not dataclasses.asdict: it deep-copies, 2 s for a table of 70,000 columns
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["columns"] = [[role, name] for role, name in self.columns.items()]  # keeps file order
        d["collections"] = [c.to_json() for c in self.collections]
        if not d["collections"]:
            del d["collections"]  # written by jetzip 0.1 readers as absent: keep headers stable
        if not d["carried_branches"]:
            del d["carried_branches"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TableInfo":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        if isinstance(kw.get("columns"), list):
            kw["columns"] = {str(role): str(name) for role, name in kw["columns"]}
        if isinstance(kw.get("collections"), list):
            kw["collections"] = [CollectionInfo.from_json(c) for c in kw["collections"]]
        return cls(**kw)


@dataclasses.dataclass
class CollectionChunk:
    """The members of one further collection (:attr:`TableInfo.collections`) in a chunk:
    ``columns`` role -> 1-D array over its members, ``counts`` per entry (None for a flat
    table), ``jet_kept`` per-member branches."""

    columns: dict[str, np.ndarray]
    counts: np.ndarray | None
    jet_kept: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def n_jets(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclasses.dataclass
class JetChunk:
    """Consecutive whole events (or rows of a flat table), as a reader yields them.

    Attributes:
        columns: role -> 1-D array over jets (the four jet columns, file units and dtype).
        counts: (n_events,) jets per event (jagged tables), or None (one jet per row).
        kept: branch -> one value per event (or row), shape (n_events, ...).
        first_jet: global index of this chunk's first jet (error messages).
        first_entry: global index of the first event (or row).
        jet_kept: per-jet branch -> 1-D array over jets, aligned with `columns`
            (:attr:`TableInfo.jet_branches`).
        carried: any other branch of the table, one entry per event (or row), as an
            awkward array of any type (other collections, strings, nested lists); stored
            losslessly by the container and handed back to the writer unchanged.
        others: the table's further collections (:attr:`TableInfo.collections`), by name.

    A chunk of a table without jets has no columns and ``counts`` of zeros, one per entry.
    """

    columns: dict[str, np.ndarray]
    counts: np.ndarray | None
    kept: dict[str, np.ndarray]
    first_jet: int
    first_entry: int
    jet_kept: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    carried: dict[str, Any] = dataclasses.field(default_factory=dict)
    others: dict[str, CollectionChunk] = dataclasses.field(default_factory=dict)

    @property
    def n_jets(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def n_entries(self) -> int:
        """Events (jagged tables) or rows (flat tables) in the chunk."""
        return len(self.counts) if self.counts is not None else self.n_jets

    def _jet_ends(self) -> np.ndarray:
        """(n_entries + 1,) offset of each entry's first jet, int64."""
        return _ends(self.counts, self.n_jets)

    def _member_ends(self) -> np.ndarray:
        """(n_entries + 1,) offset of each entry's first member, all collections together."""
        ends = self._jet_ends()
        for other in self.others.values():
            ends = ends + _ends(other.counts, other.n_jets)
        return ends

    def entries(self, a: int, b: int) -> "JetChunk":
        """Entries (events, or rows of a flat table) ``[a, b)`` as a chunk of their own.
        Subclasses keep their type and extra per-jet fields (``dataclasses.replace``)."""
        if (a, b) == (0, self.n_entries):
            return self
        ends = self._jet_ends()
        j0, j1 = int(ends[a]), int(ends[b])
        others = {}
        for name, other in self.others.items():
            oe = _ends(other.counts, other.n_jets)
            k0, k1 = int(oe[a]), int(oe[b])
            others[name] = CollectionChunk({k: v[k0:k1] for k, v in other.columns.items()},
                                           None if other.counts is None else other.counts[a:b],
                                           {k: v[k0:k1] for k, v in other.jet_kept.items()})
        return dataclasses.replace(
            self, columns={k: v[j0:j1] for k, v in self.columns.items()},
            counts=None if self.counts is None else self.counts[a:b],
            kept={k: v[a:b] for k, v in self.kept.items()}, first_jet=self.first_jet + j0,
            first_entry=self.first_entry + a, jet_kept={k: v[j0:j1] for k, v in self.jet_kept.items()},
            carried={k: v[a:b] for k, v in self.carried.items()}, others=others,
            **self._jet_fields(slice(j0, j1)))

    def without(self, bad: np.ndarray) -> "JetChunk":
        """The chunk less the jets flagged in `bad` (shape (n_jets,) bool): in jagged tables
        their events stay (maybe empty); in flat tables a row is a jet and goes with it."""
        keep = ~np.asarray(bad, bool)
        counts, kept, carried = self.counts, self.kept, self.carried
        if counts is not None:
            counts = counts_without(counts, bad)
        else:
            kept = {k: v[keep] for k, v in kept.items()}
            carried = {k: v[keep] for k, v in carried.items()}
        return dataclasses.replace(
            self, columns={k: np.asarray(v)[keep] for k, v in self.columns.items()}, counts=counts,
            kept=kept, jet_kept={k: np.asarray(v)[keep] for k, v in self.jet_kept.items()},
            carried=carried, **self._jet_fields(keep))

    def head(self, max_jets: int) -> "JetChunk | None":
        """The first whole entries holding at most `max_jets` jets (None when not even the
        first fits)."""
        if self.n_jets <= max_jets:
            return self
        b = int(np.searchsorted(self._jet_ends()[1:], max_jets, side="right"))
        return self.entries(0, b) if b else None

    def split(self, max_jets: int, max_events: int) -> "Iterator[JetChunk]":
        """Consecutive pieces of whole entries with at most `max_jets` jets and `max_events`
        entries each (jets: the members of all collections together). An event with more
        than `max_jets` jets is one piece (the caller decides whether that is an error)."""
        n = self.n_entries
        ends = self._member_ends()
        if n <= max_events and int(ends[-1]) <= max_jets:
            yield self
            return
        a = 0
        while a < n:
            b = int(np.searchsorted(ends, ends[a] + max_jets, side="right")) - 1
            b = max(a + 1, min(b, a + max_events, n))
            yield self.entries(a, b)
            a = b

    def _jet_fields(self, index: Any) -> dict[str, Any]:
        """Extra per-jet array fields of a subclass (CSV line numbers), indexed the same way."""
        base = {f.name for f in dataclasses.fields(JetChunk)}
        return {f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[index])
                for f in dataclasses.fields(self) if f.name not in base}


def _ends(counts: np.ndarray | None, n_jets: int) -> np.ndarray:
    if counts is None:
        return np.arange(n_jets + 1, dtype=np.int64)
    ends = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, dtype=np.int64, out=ends[1:])
    return ends


def entry_window(chunks: Iterable[JetChunk], entry_start: int = 0,
                 entry_stop: int | None = None) -> Iterator[JetChunk]:
    """Only the entries ``[entry_start, entry_stop)`` of a stream of chunks that starts at
    entry 0; stops reading after `entry_stop`. For readers that cannot seek (CSV)."""
    for chunk in chunks:
        rows = chunk.n_entries
        a = max(entry_start - chunk.first_entry, 0)
        b = rows if entry_stop is None else min(entry_stop - chunk.first_entry, rows)
        if a < b:
            yield chunk.entries(a, b)
        if entry_stop is not None and chunk.first_entry + rows >= entry_stop:
            return


class JetSource(Protocol):
    """A reader: `info` and `n_entries` on open, then chunks of whole events in file order.

    Readers start at the entry they are asked for: ``chunks(n, entry_start=a)`` reads from
    the basket, cluster, row group or dataset slice that holds entry `a` (it does not read
    and discard the entries before it), so a part at the end of a file costs what a part at
    its start costs.
    """

    info: TableInfo

    @property
    def n_entries(self) -> int | None:
        """Events (jagged tables) or rows (flat tables); None: unknown before reading (CSV)."""
        ...

    def chunks(self, jets_per_chunk: int, entry_start: int = 0,
               entry_stop: int | None = None) -> Iterator[JetChunk]:
        """Chunks of whole events with about `jets_per_chunk` jets each (an event with more
        jets is one chunk), covering entries ``[entry_start, entry_stop)`` (None: to the end)."""
        ...

    def extras(self) -> bytes | None:
        """Everything else in the file that the restored file must hold (other trees,
        histograms, ...), as one opaque blob that the same format's writer understands
        (its ``write_extras``); None when there is nothing else. The container
        stores it verbatim."""
        ...

    def close(self) -> None: ...


class TableWriter(Protocol):
    """A writer: chunks in order, then close. The writers of formats that can hold the rest of
    the original file (ROOT, HDF5) also have ``write_extras(blob: bytes)``, called between the
    two with the source's extras blob; callers look for it with ``hasattr``."""

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None,
              carried: dict[str, Any] | None = None) -> None: ...

    def close(self) -> None: ...


def counts_without(counts: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """Jets per event after removing the jets flagged in `dropped` (events stay, maybe empty)."""
    event_of_jet = np.repeat(np.arange(len(counts)), counts.astype(np.int64))
    return (counts - np.bincount(event_of_jet[dropped], minlength=len(counts))).astype(np.uint32)


def describe_jet(info: TableInfo, chunk: JetChunk, i: int) -> str:
    """Where jet `i` of `chunk` sits in its file, with its values (for error messages)."""
    values = ", ".join(f"{name}={float(chunk.columns[role][i]):.6g}" for role, name in info.columns.items())
    lines = getattr(chunk, "lines", None)  # CSV chunks: the 1-based file line of each jet
    if lines is not None:
        return f"line {int(lines[i])} ({values})"
    if chunk.counts is not None:
        ev = int(np.searchsorted(np.cumsum(chunk.counts.astype(np.int64)), i, side="right"))
        return f"jet {chunk.first_jet + i} in event {chunk.first_entry + ev} ({values})"
    return f"row {chunk.first_entry + i} ({values})"


def _join(parts: list[Any]) -> Any:
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    import awkward as ak

    return ak.concatenate(parts)


def concat_chunks(chunks: list[JetChunk]) -> JetChunk:
    """Consecutive chunks of one table as one (for writers that want large writes)."""
    if len(chunks) == 1:
        return chunks[0]
    first = chunks[0]

    def join(dicts: list[dict[str, Any]]) -> dict[str, Any]:
        return {k: _join([d[k] for d in dicts]) for k in dicts[0]}

    counts = None if first.counts is None else np.concatenate([c.counts for c in chunks])  # type: ignore[misc]
    others = {}
    for name, o in first.others.items():
        parts = [c.others[name] for c in chunks]
        others[name] = CollectionChunk(join([p.columns for p in parts]),
                                       None if o.counts is None else np.concatenate([p.counts for p in parts]),
                                       join([p.jet_kept for p in parts]))
    return dataclasses.replace(first, columns=join([c.columns for c in chunks]), counts=counts,
                               kept=join([c.kept for c in chunks]), jet_kept=join([c.jet_kept for c in chunks]),
                               carried=join([c.carried for c in chunks]), others=others)
