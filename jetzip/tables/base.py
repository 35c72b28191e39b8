"""What readers and writers exchange: table descriptions and chunks of jets."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Protocol

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
    """Consecutive whole events: raw columns in file units, per-event counts, kept branches."""

    columns: dict[str, np.ndarray]  # role -> 1-D array over jets
    counts: np.ndarray | None  # per-event jet counts (jagged tables) or None (one jet per row)
    kept: dict[str, np.ndarray]  # kept branch -> one value per event (or row)
    first_jet: int  # global index of this chunk's first jet, for error messages
    first_entry: int  # global index of the first event (or row)
    # per-jet branch -> 1-D array over jets, aligned with `columns` (TableInfo.jet_branches)
    jet_kept: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def n_jets(self) -> int:
        return len(next(iter(self.columns.values())))


class JetSource(Protocol):
    """A reader: `info` on open, then chunks of whole events in file order."""

    info: TableInfo

    def chunks(self, jets_per_chunk: int) -> Iterator[JetChunk]: ...

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
