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
