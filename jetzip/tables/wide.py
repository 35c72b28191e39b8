"""Several jets per row as separate columns, shared by the HDF5, CSV and Parquet readers.

ML data sets often store the leading k jets of an event side by side in one row: the LHC
Olympics 2020 features have ``pxj1, pyj1, pzj1, mj1, ..., pxj2, ...``, other tables
``pT_h1_j1``, ``jet1_pt``, ``eta_jet2``. The slot layouts the ROOT reader recognises
(``root_layout.find_slot_layouts``: ``{var}{slot}`` like ``pxj1`` and ``{var}_{slot}`` like
``pT_h1_j1``, where the slot's digits make the pattern ``j*`` / ``h*_j*``) are found the same
way here, so that every format reads such columns alike; names with the jet index elsewhere
(``jet1_pt``, ``eta_jet2``) are found by :func:`parse_wide_name`. They are used only when the
table has no ordinary jet columns (or ``--collection`` names the pattern).

Such a table is read as a jagged table: each row is an event of (up to) k jets, slot 1 first.
Variables present in every slot beside the 4-vector (``tag_h1_j1``, ...) are per-jet branches
named by their pattern (``tag_h*_j*``); the other columns of the row are event-level (kept)
branches (``tau1j1`` is not a slot variable of ``pxj1``'s layout, so it stays a kept column).
A slot whose every column is NaN (empty CSV cells), or whose every column is exactly 0 (the
zero padding of constituent tables such as the top-tagging landscape's ``E_0 ... PZ_199``), is
padding, not a jet: the row's jet count says how many slots hold jets. Only trailing padding is
left out; a padded slot before a jet stays a jet (compress then refuses it, or --drop-invalid
drops it). Padding is written back as it was read: NaN, or zeros when the table's padding is
zeros (``Wide.pad``, decided from the first rows read). ``--drop-invalid`` keeps every jet in
its own columns: dropping a jet that a later jet of its row follows would move that jet into
the dropped one's columns, so it is refused by name (:class:`WideChunk`).

In :class:`TableInfo` (what a writer needs to restore the same columns):

- ``layout = "jets-per-row"``, ``jagged = True``, ``counter = None``, ``collection`` the pattern;
- ``columns``: role -> the pattern name (``pxj*``), or jet 1's column when the names follow no
  template; ``jet_branches``: the per-slot variables' pattern names;
- ``extra["slots"]`` (when the names follow a template): the ROOT reader's description
  ``{"pattern", "slots", "template", "vars": {pattern name: variable}}``, which the ROOT
  writer understands; ``extra["wide"] = {"collection", "jets": [{role: column}, ...],
  "extras": {pattern name: [column per slot]}}`` with every column spelled out;
- chunks carry ``counts`` (jets present per row, at most k) and the jets row-major (row 0
  slot 1, row 0 slot 2, row 1 slot 1, ...). Writers put jet i of an event in slot i and fill
  the slots of absent (or dropped) jets with NaN. :func:`wide_of` reads either description.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..features import REPRESENTATIONS
from .base import JetChunk, counts_without
from .layouts import ROLE_SPELLINGS

PADS = ("nan", "zero")  # what fills the slots of a row that hold no jet

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


@dataclasses.dataclass
class Wide:
    """One set of jets per row: the column of each (slot, role), and per-slot extras."""

    pattern: str  # collection name shown to users: 'j*' for pxj1.., 'h*_j*' for pT_h1_j1.., or a prefix
    jets: list[dict[str, str]]  # one {role: column} per slot, in slot order
    extras: dict[str, list[str]]  # per-jet variable (pattern name) -> its column in each slot
    slots: dict | None  # ROOT's description (pattern, slots, template, vars) when names follow one
    pad: str = "nan"  # what fills a slot without a jet: "nan", or "zero" (constituent tables)

    @property
    def columns(self) -> dict[str, str]:
        """role -> the name TableInfo.columns gives it: the pattern name, else jet 1's column."""
        if self.slots:
            var_of = {v: pn for pn, v in self.slots["vars"].items()}
            first = self.slots["slots"][0]
            out = {}
            for role, name in self.jets[0].items():
                var = next(v for v in var_of if self.slots["template"].format(var=v, slot=first) == name)
                out[role] = var_of[var]
            return out
        return dict(self.jets[0])

    def names(self) -> list[str]:
        return [n for slot in self.jets for n in slot.values()] + [n for v in self.extras.values() for n in v]

    def to_extra(self) -> dict:
        out: dict = {"wide": {"collection": self.pattern, "jets": self.jets, "extras": self.extras,
                              "pad": self.pad}}
        if self.slots:
            out["slots"] = self.slots
        return out


def find_wide(names: Iterable[str]) -> dict[str, Wide]:
    """Sets of several jets per row, keyed by collection (see the module docstring).

    The slot layouts the ROOT reader finds (``root_layout.find_slot_layouts``: ``pxj1``,
    ``pT_h1_j1``; per-slot extras like ``tag_h1_j1`` become per-jet branches) come first, so
    that every format reads such columns alike; then names with the jet index elsewhere
    (``jet1_pt``, ``eta_jet2``).
    """
    from .root_layout import find_slot_layouts

    names = list(names)
    found: dict[str, Wide] = {}
    covered: set[str] = set()
    for pattern, g in find_slot_layouts(names).items():
        jets = [{role: g.name(var, s) for role, var in g.roles.items()} for s in g.slots]
        extras = {g.pattern_name(v): [g.name(v, s) for s in g.slots] for v in g.extras}
        slots = {"pattern": g.pattern, "slots": list(g.slots), "template": g.template,
                 "vars": {g.pattern_name(v): v for v in [*g.roles.values(), *g.extras]}}
        w = Wide(pattern, jets, extras, slots)
        found[pattern] = w
        covered.update(w.names())
    for coll, jets in _find_by_index([n for n in names if n not in covered]).items():
        key = coll or "jet*"
        if key not in found:
            found[key] = Wide(key, jets, {}, None)
    jetty = {k: w for k, w in found.items() if "j" in k.lower()}
    return jetty or found


def _find_by_index(names: Iterable[str]) -> dict[str, list[dict[str, str]]]:
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
        for roles in REPRESENTATIONS.values():
            jets = []
            k = 1
            while k in by_k and set(roles) <= set(by_k[k]):
                jets.append({r: by_k[k][r] for r in roles})
                k += 1
            if len(jets) >= 2:
                found[coll] = jets
                break
    return found


def choose_wide(names: list[str], *, where: str, collection: str | None, columns) -> Wide | None:
    """The set of jets per row to read, when the table has no ordinary jet columns (else None)."""
    from .layouts import candidates

    if columns is not None:
        # the pattern names a .aez header gives (evaluate reads the original with them)
        if any("*" in str(v) for v in columns.values()):
            for w in find_wide(names).values():
                if w.columns == dict(columns):
                    return w
            raise InputError(f"{where}: no jets per row named {', '.join(columns.values())}")
        return None
    if collection is None and candidates(names):
        return None
    wide = find_wide(names)
    if collection is not None:
        return wide.get(collection)
    if not wide:
        return None
    if len(wide) > 1:
        raise InputError(f"{where}: several sets of jets per row found "
                         f"({'; '.join(f'{k} ({len(w.jets)} jets)' for k, w in sorted(wide.items()))}); "
                         "choose one with --collection NAME")
    return next(iter(wide.values()))


def wide_of(info) -> Wide | None:
    """The jets-per-row description of a TableInfo: this module's, or the ROOT reader's."""
    extra = info.extra or {}
    if extra.get("wide"):
        w = extra["wide"]
        pad = w.get("pad", "nan")
        return Wide(w.get("collection", ""), [dict(j) for j in w["jets"]],
                    {k: list(v) for k, v in (w.get("extras") or {}).items()}, extra.get("slots"),
                    pad if pad in PADS else "nan")
    s = extra.get("slots")
    if not s:
        return None
    jets = [{role: s["template"].format(var=s["vars"][pn], slot=slot) for role, pn in info.columns.items()}
            for slot in s["slots"]]
    extras = {pn: [s["template"].format(var=s["vars"][pn], slot=slot) for slot in s["slots"]]
              for pn in info.jet_branches if pn in s["vars"]}
    return Wide(s.get("pattern", ""), jets, extras, s)


def _slot_grids(rows: Mapping[str, np.ndarray], w: "Wide") -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(role -> (rows, k) float64 grid, (rows, k) all-NaN slots, (rows, k) all-zero slots)."""
    jets = w.jets
    roles = list(jets[0])
    grid = {r: np.stack([np.asarray(rows[slot[r]], dtype=np.float64) for slot in jets], axis=1) for r in roles}
    nan = np.ones(grid[roles[0]].shape, dtype=bool)
    zero = nan.copy()
    for r in roles:
        nan &= np.isnan(grid[r])
        zero &= grid[r] == 0
    for cols in w.extras.values():  # a slot is padding only when its every column is
        ex = np.stack([np.asarray(rows[c]) for c in cols], axis=1)
        nan &= np.isnan(ex) if ex.dtype.kind == "f" else np.zeros_like(nan)
        zero &= ex == 0
    return grid, nan, zero


def pad_of(rows: Mapping[str, np.ndarray], w: "Wide") -> str:
    """The padding of a table's empty slots, from some of its rows: "zero" when slots whose
    every value is 0 are found and no all-NaN one, else "nan"."""
    _, nan, zero = _slot_grids(rows, w)
    return "zero" if zero.any() and not nan.any() else "nan"


def stack(rows: Mapping[str, np.ndarray], w: "Wide") -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Row-wise wide columns -> (role -> jets row-major, jets per row, per-jet extras row-major).

    Trailing padded slots (every value NaN, or every value exactly 0) are not jets; the jets
    keep their dtype-independent float64 values (the readers' own columns may be float32)."""
    grid, nan, zero = _slot_grids(rows, w)
    absent = nan | zero
    k = len(w.jets)
    # only trailing absent slots are left out: present = slots up to the last one with a value
    present_count = k - np.argmax(~absent[:, ::-1], axis=1)
    present_count[absent.all(axis=1)] = 0
    keep = np.arange(k)[None, :] < present_count[:, None]
    extras = {pn: np.stack([np.asarray(rows[c]) for c in cols], axis=1)[keep] for pn, cols in w.extras.items()}
    return {r: g[keep] for r, g in grid.items()}, present_count.astype(np.uint32), extras


def unstack(columns: Mapping[str, np.ndarray], counts: np.ndarray, w: "Wide",
            jet_kept: Mapping[str, np.ndarray] | None = None, dtype=np.float32) -> dict[str, np.ndarray]:
    """Inverse of :func:`stack`: column name -> one value per row; slots without a jet hold the
    table's padding, NaN or 0 (``Wide.pad``; integer extras 0). `dtype` is that of the jet
    columns, or a mapping column name -> dtype."""
    counts = np.asarray(counts, dtype=np.int64)
    jets = w.jets
    k = len(jets)
    if len(counts) and int(counts.max()) > k:
        raise ValueError(f"an event has {int(counts.max())} jets; the table holds {k} per row")
    n = len(counts)
    keep = np.arange(k)[None, :] < counts[:, None]
    fill = 0.0 if w.pad == "zero" else np.nan
    out: dict[str, np.ndarray] = {}
    for role in jets[0]:
        dt = np.dtype(dtype.get(jets[0][role], np.float32) if isinstance(dtype, Mapping) else dtype)
        grid = np.full((n, k), fill, dtype=dt)
        grid[keep] = np.asarray(columns[role])
        for s, slot in enumerate(jets):
            out[slot[role]] = grid[:, s]
    for pn, cols in w.extras.items():
        if jet_kept is None or pn not in jet_kept:
            continue
        v = np.asarray(jet_kept[pn])
        grid = np.full((n, k), fill, dtype=v.dtype) if v.dtype.kind == "f" else np.zeros((n, k), dtype=v.dtype)
        grid[keep] = v
        for s, c in enumerate(cols):
            out[c] = grid[:, s]
    return out


def check_drop_keeps_slots(chunk: JetChunk, bad: np.ndarray, w: "Wide | None" = None) -> None:
    """Refuse to drop a jet that a kept jet of its row follows: in a table of several jets per
    row, jet i is written into the columns of slot i, so the later jet would move into the
    dropped one's columns (issue 23). Dropping the last jets of a row is fine: their slots are
    written as padding.

    Raises:
        InputError: naming the row, the jet dropped and the jet that would move.
    """
    bad = np.asarray(bad, bool)
    if not bad.any() or chunk.counts is None:
        return
    counts = chunk.counts.astype(np.int64)
    starts = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    row = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(len(bad)) - starts[row]
    kept_after = counts_without(chunk.counts, bad).astype(np.int64)
    # a kept jet whose position in its row is at or beyond the row's jets left after the drop
    moved = ~bad & (position >= kept_after[row])
    if not moved.any():
        return
    j = int(np.argmax(moved))
    r = int(row[j])
    first_bad = int(np.argmax(bad & (row == r)))
    to = int(position[first_bad])
    where = ""
    if w is not None and to < len(w.jets):
        where = f" ({', '.join(w.jets[to].values())})"
    raise InputError(
        f"row {chunk.first_entry + r}: --drop-invalid would drop jet {to + 1} and move jet "
        f"{int(position[j]) + 1} into its columns{where}; a table of several jets per row keeps "
        "each jet in its own columns, so only the last jets of a row can be dropped. Fix the "
        "input, or read one set of columns with --columns")


@dataclasses.dataclass
class WideChunk(JetChunk):
    """A chunk of a table of several jets per row: :meth:`without` keeps every jet in its slot
    (see :func:`check_drop_keeps_slots`)."""

    def without(self, bad: np.ndarray) -> "JetChunk":
        check_drop_keeps_slots(self, bad)
        return super().without(bad)


def representation_of_slots(jets: Sequence[Mapping[str, str]]) -> str:
    roles = set(jets[0])
    for rep, needed in REPRESENTATIONS.items():
        if set(needed) == roles:
            return rep
    raise ValueError(f"jets per row with roles {sorted(roles)}")


def find_jets(names: list[str], *, where: str, collection: str | None, columns,
              preset_name: str | None) -> tuple["Wide | None", str, dict[str, str], str]:
    """Which columns of a table are the jets: several jets per row (a :class:`Wide`), else one
    collection (``layouts.choose_collection``). Returns (wide or None, collection name,
    role -> column of the first (or only) jet, representation).

    Raises:
        InputError: no jets, or an ambiguous choice (the message lists the candidates).
    """
    from .layouts import PRESETS, choose_collection, find_collections

    preset = PRESETS[preset_name] if preset_name else None
    wide = choose_wide(names, where=where, collection=collection, columns=columns)
    if wide is not None:
        return wide, wide.pattern, dict(wide.jets[0]), representation_of_slots(wide.jets)
    if collection is not None and columns is None:
        # a collection named on purpose need not be named like jets (particle_transformer's
        # part_px ... part_energy): layouts.candidates keeps only jet-named ones when any exist
        named = find_collections(names).get(collection)
        if named is not None and named.representation:
            return None, named.name, named.used_columns(names), named.representation
    coll = choose_collection(names, where=where, columns=columns, collection=collection,
                             preset=preset if preset and preset.collection else None)
    return None, coll.name, coll.used_columns(names), coll.representation or ""


# --- shared by the HDF5, Parquet and CSV readers ------------------------------------------------

def match_any(name: str, patterns: Sequence[str]) -> bool:
    """Whether `name` matches any of the fnmatch `patterns` (--keep-branches, --drop-branches)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def entry_bounds(entry_start: int, entry_stop: int | None, n: int) -> tuple[int, int]:
    """``[entry_start, entry_stop)`` clipped to a table of `n` entries (None: to the end)."""
    start = min(max(int(entry_start), 0), n)
    stop = n if entry_stop is None else min(max(int(entry_stop), start), n)
    return start, stop
