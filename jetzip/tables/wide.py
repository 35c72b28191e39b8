"""Several jets per row as separate columns ("wide" tables), shared by the HDF5, CSV and Parquet readers.

ML data sets often store the leading k jets of an event side by side in one row: the LHC
Olympics 2020 features have ``pxj1, pyj1, pzj1, mj1, ..., pxj2, ...``, other tables
``pT_h1_j1``, ``jet1_pt``, ``eta_jet2``. A column is a *wide jet column* when its name holds a
jet index ``j<k>`` / ``jet<k>`` and the rest of the name, split at ``_`` or ``.``, holds a role
spelling (``px``, ``pt``, ``m``, ...) and optionally a collection (``h1`` in ``pT_h1_j1``).
A collection whose indices 1..k each form the same 4-vector representation is a wide
candidate; it is used only when the table has no ordinary jet columns.

Such a table is read as a jagged table: each row is an event of (up to) k jets, jet 1 first,
and the other columns of the row are event-level (kept) branches. A jet whose four values
are all NaN (or empty CSV cells) is absent; absent jets must be the trailing ones of a row,
otherwise they stay as NaN jets (compress then refuses them, or --drop-invalid drops them).

How it is described in :class:`TableInfo` (what a writer needs to restore the same columns):

- ``layout = "wide"``, ``jagged = True``, ``counter = None``;
- ``columns``: role -> the column of jet 1 (so that the four roles are named as for any table);
- ``extra["wide"] = {"collection": NAME, "jets": [{role: column}, ...]}``: one mapping per jet
  slot, in slot order;
- chunks carry ``counts`` (jets present per row, at most k) and the jets row-major (row 0 jet 1,
  row 0 jet 2, row 1 jet 1, ...). Writers put jet i of an event in slot i and fill the slots
  of absent (or dropped) jets with NaN.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping

import numpy as np

from ..features import REPRESENTATIONS
from .layouts import ROLE_SPELLINGS

_SPELLING_TO_ROLE = {s: role for role, spellings in ROLE_SPELLINGS.items() for s in spellings}
# jet index: 'j1', 'jet2', 'Jet_3' (the index must not be followed by another digit)
_INDEX = re.compile(r"(?:^|(?<=[_.])|(?<=[a-z]))(?:jet|j)[_]?(\d{1,2})(?!\d)", re.IGNORECASE)


def parse_wide_name(name: str) -> tuple[str, str, int] | None:
    """'pxj1' -> ('', 'px', 1); 'pT_h1_j1' -> ('h1', 'pt', 1); 'jet2_eta' -> ('', 'eta', 2)."""
    for m in _INDEX.finditer(name):
        k = int(m.group(1))
        if k < 1:
            continue
        rest = (name[:m.start()] + "_" + name[m.end():]).strip("_.")
        tokens = [t for t in re.split(r"[_.]", rest) if t]
        roles = [(i, _SPELLING_TO_ROLE[t.lower()]) for i, t in enumerate(tokens) if t.lower() in _SPELLING_TO_ROLE]
        if len(roles) != 1:
            continue
        i, role = roles[0]
        if role == "E" and tokens[i] not in ("E", "e", "energy", "Energy"):
            continue
        collection = "_".join(t for j, t in enumerate(tokens) if j != i)
        return collection, role, k
    return None


def find_wide(names: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    """Wide collections: collection -> one {role: column} per jet slot (slots 1..k, complete)."""
    slots: dict[str, dict[int, dict[str, str]]] = {}
    for name in names:
        parsed = parse_wide_name(name)
        if parsed is None:
            continue
        coll, role, k = parsed
        slot = slots.setdefault(coll, {}).setdefault(k, {})
        if role not in slot or name == role:
            slot[role] = name
    found: dict[str, list[dict[str, str]]] = {}
    for coll, by_k in slots.items():
        for rep, roles in REPRESENTATIONS.items():
            jets = []
            k = 1
            while k in by_k and set(roles) <= set(by_k[k]):
                jets.append({r: by_k[k][r] for r in roles})
                k += 1
            if len(jets) >= 2:
                found[coll] = jets
                break
    return found


def representation_of_slots(jets: list[Mapping[str, str]]) -> str:
    roles = set(jets[0])
    for rep, needed in REPRESENTATIONS.items():
        if set(needed) == roles:
            return rep
    raise ValueError(f"wide jets with roles {sorted(roles)}")


def stack(rows: Mapping[str, np.ndarray], jets: list[Mapping[str, str]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Row-wise wide columns -> (role -> jets row-major, jets per row), trailing all-NaN jets left out."""
    roles = list(jets[0])
    n = len(rows[jets[0][roles[0]]])
    k = len(jets)
    grid = {r: np.empty((n, k), dtype=np.float64) for r in roles}
    for s, slot in enumerate(jets):
        for r in roles:
            grid[r][:, s] = rows[slot[r]]
    absent = np.ones((n, k), dtype=bool)
    for r in roles:
        absent &= np.isnan(grid[r])
    # only trailing absent slots are left out: present = slots before the last non-absent one
    present_count = k - np.argmax(~absent[:, ::-1], axis=1)
    present_count[absent.all(axis=1)] = 0
    keep = np.arange(k)[None, :] < present_count[:, None]
    return {r: grid[r][keep] for r in roles}, present_count.astype(np.uint32)


def unstack(columns: Mapping[str, np.ndarray], counts: np.ndarray, jets: list[Mapping[str, str]],
            dtype=np.float32) -> dict[str, np.ndarray]:
    """Inverse of :func:`stack`: role -> jets (row-major), jets per row -> column -> one value per row."""
    counts = np.asarray(counts, dtype=np.int64)
    k = len(jets)
    if len(counts) and int(counts.max()) > k:
        raise ValueError(f"an event has {int(counts.max())} jets; the wide layout holds {k} per row")
    n = len(counts)
    keep = np.arange(k)[None, :] < counts[:, None]
    out: dict[str, np.ndarray] = {}
    for role in jets[0]:
        grid = np.full((n, k), np.nan, dtype=dtype)
        grid[keep] = np.asarray(columns[role])
        for s, slot in enumerate(jets):
            out[slot[role]] = grid[:, s]
    return out


def wide_names(info_extra: Mapping) -> list[str]:
    """Every wide jet column of a TableInfo.extra, slot by slot."""
    wide = info_extra.get("wide") or {}
    return [name for slot in wide.get("jets", []) for name in slot.values()]
