"""What readers and writers exchange: table descriptions and chunks of jets."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Iterator, Protocol

import numpy as np


@dataclasses.dataclass
class TableInfo:
    """Everything needed to write the table back in the layout it came in."""

    file: str
    format: str  # root | hdf5 | csv
    tree: str | None  # ROOT tree, HDF5 group/dataset path; None for CSV
    layout: str  # nanoaod | physlite | atlas-opendata | flat | jagged
    collection: str
    jagged: bool
    counter: str | None  # branch holding per-event jet counts (None: implicit, e.g. std::vector)
    columns: dict[str, str]  # role -> original name, for the representation's four roles
    representation: str
    units: str
    units_inferred: bool = False
    units_reason: str = ""
    dtypes: dict[str, str] = dataclasses.field(default_factory=dict)
    kept_branches: list[str] = dataclasses.field(default_factory=list)  # one value per event (or row)
    # Per-jet branches beside the 4-vector (NanoAOD Jet_btagDeepFlavB, Jet_jetId, ...), carried
    # losslessly: one value per jet, aligned with the jet columns (jagged like them).
    jet_branches: list[str] = dataclasses.field(default_factory=list)
    # Every branch of the jet tree in file order (jet columns, counter, kept ones), so that a
    # writer can restore the original order; empty when the reader does not know it.
    branch_order: list[str] = dataclasses.field(default_factory=list)
    other_branches: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # format-specific details

    def to_json(self) -> dict:
        # not dataclasses.asdict: it deep-copies, 2 s for a table of 70,000 columns
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["columns"] = [[role, name] for role, name in self.columns.items()]  # keeps file order
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TableInfo":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        if isinstance(kw.get("columns"), list):
            kw["columns"] = {str(role): str(name) for role, name in kw["columns"]}
        return cls(**kw)


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
    """

    columns: dict[str, np.ndarray]
    counts: np.ndarray | None
    kept: dict[str, np.ndarray]
    first_jet: int
    first_entry: int
    jet_kept: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    carried: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def n_jets(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def n_entries(self) -> int:
        """Events (jagged tables) or rows (flat tables) in the chunk."""
        return len(self.counts) if self.counts is not None else self.n_jets

    def _jet_ends(self) -> np.ndarray:
        """(n_entries + 1,) offset of each entry's first jet, int64."""
        if self.counts is None:
            return np.arange(self.n_jets + 1, dtype=np.int64)
        ends = np.zeros(len(self.counts) + 1, np.int64)
        np.cumsum(self.counts, dtype=np.int64, out=ends[1:])
        return ends

    def entries(self, a: int, b: int) -> "JetChunk":
        """Entries (events, or rows of a flat table) ``[a, b)`` as a chunk of their own.
        Subclasses keep their type and extra per-jet fields (``dataclasses.replace``)."""
        if (a, b) == (0, self.n_entries):
            return self
        ends = self._jet_ends()
        j0, j1 = int(ends[a]), int(ends[b])
        return dataclasses.replace(
            self, columns={k: v[j0:j1] for k, v in self.columns.items()},
            counts=None if self.counts is None else self.counts[a:b],
            kept={k: v[a:b] for k, v in self.kept.items()}, first_jet=self.first_jet + j0,
            first_entry=self.first_entry + a, jet_kept={k: v[j0:j1] for k, v in self.jet_kept.items()},
            carried={k: v[a:b] for k, v in self.carried.items()}, **self._jet_fields(slice(j0, j1)))

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
        entries each. An event with more than `max_jets` jets is one piece (the caller
        decides whether that is an error)."""
        n = self.n_entries
        if n <= max_events and self.n_jets <= max_jets:
            yield self
            return
        ends = self._jet_ends()
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
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None) -> None: ...

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
