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
    kept_branches: list[str] = dataclasses.field(default_factory=list)
    other_branches: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # format-specific details

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
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

    @property
    def n_jets(self) -> int:
        return len(next(iter(self.columns.values())))


class JetSource(Protocol):
    info: TableInfo

    def chunks(self, jets_per_chunk: int) -> Iterator[JetChunk]: ...

    def close(self) -> None: ...


class TableWriter(Protocol):
    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray]) -> None: ...

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
