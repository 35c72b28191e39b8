"""Read a ``.aez`` file the way uproot reads ROOT: :func:`arrays`.

::

    import jetzip
    events = jetzip.arrays("nano.aez")                           # every branch, one entry per event
    jets = jetzip.arrays("nano.aez", ["Jet_pt", "Jet_eta", "nJet"])  # only the Jet collection decoded
    met = jetzip.arrays("nano.aez", "MET_*", library="pd")        # no codec runs at all

What comes back is the table :func:`jetzip.decompress` restores, branch for branch, without
writing it: the input's own branch names (NanoAOD ``Jet_pt``, ``nJet``, ``run``,
``Muon_pt``...), in the input's order, with the input's types. The coded four-vector columns
come back in the dtype the restored file holds (the input's floating type, else float32)
and jagged by their counts; counters (``nJet``, ``nMuon``) from the stored counts or the
lengths of their lists; carried branches exactly as stored. Branches uproot's TTree writer
cannot hold as they were (records, lists of lists: ``restored_as`` notes) come back here as
the input had them, not as the restored ROOT file spells them; counters that the ROOT writer
invents for lists without one (``n<branch>``) are not added.

What is decoded: a collection's codec payload only when one of its four-vector columns is
asked for; a chunk's carried groups only when they hold an asked branch
(:meth:`~jetzip.aez.Chunk.carried_arrays`); counters from the counts stored beside the
payloads. Nothing else is read beyond the records' checksums.

The stored chunks go through the one decode loop, :meth:`jetzip.aez.AezFile.decoded` (as
``decompress`` does): chunks of parallel codecs (the bounded one) decode `workers` at a time
(on threads: their compiled loops release the GIL), in order, so the result is identical
whatever `workers`. A window of entries
(``entry_start``/``entry_stop``) reads only the chunks that hold it, by seeking: reading the
last chunk costs what reading the first does (:func:`jetzip.dask.read` uses that).
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
import re
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .aez import CHUNK_HEAD, AezFile, Chunk, StoredCollection
from .container import RECORD_HEAD
from .defaults import available_cores
from .errors import FormatError, InputError, JetzipError, positive_int
from .tables.base import TableInfo

LIBRARIES = ("ak", "np", "pd")
KINDS = ("jets", "counter", "member", "entry", "array", "count_of", "slot")
_REGEX = re.compile(r"^/(.*)/([iLmsux]*)$")  # uproot's "/regex/flags" filter


def jet_dtype(declared: str | None) -> np.dtype:
    """The dtype a coded four-vector column is restored in: the input's floating type (4 or 8
    bytes), else float32 (as the writers do: ``tables.hdf5_writer.jet_dtype``)."""
    try:
        dt = np.dtype(declared or "float32")
    except TypeError:
        return np.dtype(np.float32)
    return dt if dt.kind == "f" and dt.itemsize in (4, 8) else np.dtype(np.float32)


@dataclasses.dataclass(frozen=True)
class Branch:
    """One branch of a restored table and where its values come from.

    ``kind``:

    - ``jets``: four-vector column `role` of collection `collection` (index into
      :meth:`TableInfo.all_collections`), decoded by its codec, in `dtype`;
    - ``counter``: the collection's members per entry (``nJet``), stored beside the payload;
    - ``member``: a per-member branch of the collection (``Jet_btagDeepFlavB``), carried;
    - ``entry``: a per-entry branch (numbers, or any awkward type), carried;
    - ``array``: a fixed-size array per entry, rebuilt from its carried elements (`source`,
      ``name[0]``, ``name[1]``...) in `shape`;
    - ``count_of``: a list's counter (``nMuon``): the lengths of the carried list `source`;
    - ``slot``: one column of a jets-per-row table (``pxj2``): slot `slot` of `role` (a
      four-vector role, or the per-jet branch `source`).
    """

    name: str
    kind: str
    collection: int = 0
    role: str = ""
    source: tuple[str, ...] = ()
    dtype: str | None = None
    slot: int = -1
    shape: tuple[int, ...] = ()


class Layout:
    """The branches of one stored table, as the restored table holds them, in its order.

    Attributes:
        info: the table's :class:`TableInfo`.
        branches: name -> :class:`Branch`, in the input's branch order (what the reader knew
            of it; branches it did not place come after, collections first).
        wide: the jets-per-row description (:func:`jetzip.tables.wide.wide_of`) or None.
    """

    def __init__(self, info: TableInfo) -> None:
        from .tables.wide import wide_of

        self.info = info
        self.collections = info.all_collections()
        extra = info.extra or {}
        self.wide = wide_of(info) if info.has_jets and (info.layout == "jets-per-row" or extra.get("slots")
                                                        or extra.get("wide")) else None
        found: dict[str, Branch] = {}

        def add(b: Branch) -> None:
            found.setdefault(b.name, b)

        if self.wide is not None:
            for s, slot in enumerate(self.wide.jets):
                for role, col in slot.items():
                    add(Branch(col, "slot", 0, role, (), jet_dtype(info.dtypes.get(col)).name, s))
            for pn, cols in self.wide.extras.items():
                if pn in info.jet_branches:
                    for s, col in enumerate(cols):
                        add(Branch(col, "slot", 0, pn, (pn,), None, s))
            others = self.collections[1:]
            first = 1
        else:
            others = self.collections
            first = 0
        for ci, coll in enumerate(others, start=first):
            for role, name in coll.columns.items():
                add(Branch(name, "jets", ci, role, (), jet_dtype(coll.dtypes.get(name, info.dtypes.get(name))).name))
            if info.jagged and coll.counter:
                add(Branch(coll.counter, "counter", ci, dtype=str(info.dtypes.get(coll.counter, "int32"))))
            for name in coll.jet_branches:
                add(Branch(name, "member", ci, source=(name,)))
        shapes = {str(k): tuple(int(x) for x in v) for k, v in dict(extra.get("shapes") or {}).items()}
        kept = set(info.kept_branches)
        elements = {}
        for name, shape in shapes.items():
            parts = tuple(f"{name}[{k}]" for k in range(int(np.prod(shape))))
            if parts and all(p in kept for p in parts):
                elements.update({p: name for p in parts})
        for name in info.kept_branches:
            if name in elements:
                array = elements[name]
                parts = tuple(f"{array}[{k}]" for k in range(int(np.prod(shapes[array]))))
                add(Branch(array, "array", source=parts, shape=shapes[array]))
            else:
                add(Branch(name, "entry", source=(name,)))
        for name in info.carried_branches:
            add(Branch(name, "entry", source=(name,)))
        # Counters of lists (recorded by the reader: NanoAOD's nMuon, uproot-style nJet_pt for
        # each list), from the collection's stored counts or the carried list's lengths.
        stored = {*kept, *info.carried_branches}
        order = set(info.branch_order)
        member = {n: b.collection for n, b in found.items() if b.kind in ("jets", "member")}
        for lst, counter in dict(extra.get("counters") or {}).items():
            if order and counter not in order:
                continue
            dtype = str(info.dtypes.get(counter, "int32"))
            if lst in member and info.jagged:
                add(Branch(str(counter), "counter", member[lst], dtype=dtype))
            elif lst in stored:
                add(Branch(str(counter), "count_of", source=(lst,), dtype=dtype))
        ranked = {n: i for i, n in enumerate(info.branch_order)}
        names = sorted(found, key=lambda n: ranked.get(n, len(ranked)))
        self.branches = {n: found[n] for n in names}
        # An RNTuple's record fields: the reader spells 'Jet' as 'Jet.pt', 'Jet.eta'... and the
        # writer puts them back together (RootWriter._write_rntuple); they read back as 'Jet'.
        self.fields: dict[str, dict[str, str]] = {}
        if extra.get("rntuple") and info.jagged:
            for n, b in self.branches.items():
                if "." in n and b.kind in ("jets", "member"):
                    group, _, sub = n.partition(".")
                    self.fields.setdefault(group, {})[n] = sub

    @property
    def names(self) -> list[str]:
        return list(self.branches)

    def select(self, expressions: str | Sequence[str] | None, where: str) -> list[Branch]:
        """The branches `expressions` name, in the table's order: names, glob patterns
        (``Jet_*``) or ``/regex/flags``, as uproot's ``filter_name``; None: all.

        Raises:
            InputError: a name or pattern that matches no branch (one line, close matches).
        """
        if expressions is None:
            return list(self.branches.values())
        if isinstance(expressions, str):
            expressions = [expressions]
        try:
            wanted = list(expressions)
        except TypeError:
            raise InputError(f"expressions must be a branch name, a pattern or a list of them, "
                             f"not {expressions!r}") from None
        chosen: set[str] = set()
        unknown: list[str] = []
        for e in wanted:
            if not isinstance(e, str):
                raise InputError(f"expressions must be branch names or patterns (strings), not {e!r}")
            hits = [n for n in self.branches if _matches(e, n)]
            hits += [n for g, members in self.fields.items() if _matches(e, g) for n in members]
            if not hits:
                unknown.append(e)
            chosen.update(hits)
        if unknown:
            raise InputError(self._unknown_text(unknown, where))
        return [b for n, b in self.branches.items() if n in chosen]

    def _unknown_text(self, unknown: list[str], where: str) -> str:
        info = self.info
        dropped = set(info.other_branches) | set(str(x) for x in (info.extra or {}).get("not_carried") or [])
        said = []
        for e in unknown:
            if e in dropped:
                said.append(f"{e!r} (left out when the file was compressed)")
                continue
            close = difflib.get_close_matches(e, list(self.branches), n=4, cutoff=0.6)
            said.append(f"{e!r}" + (f" (close matches: {', '.join(close)})" if close else ""))
        table = f"table {info.tree!r}" if info.tree else "the table"
        first = ", ".join(list(self.branches)[:4])
        more = ", ..." if len(self.branches) > 4 else ""
        return (f"{where}: {table} has no branch " + "; no branch ".join(said)
                + f" (it has {len(self.branches)}: {first}{more})")

    def decodes(self, selected: Iterable[Branch]) -> set[int]:
        """The collections whose codec must run for `selected`."""
        return {b.collection for b in selected if b.kind == "jets" or (b.kind == "slot" and not b.source)}

    def carried(self, selected: Iterable[Branch]) -> list[str]:
        """The carried branches `selected` are built from, in order, each once."""
        return list(dict.fromkeys(s for b in selected for s in b.source))


def _matches(expression: str, name: str) -> bool:
    m = _REGEX.match(expression)
    if m is not None:
        from uproot._util import _regularize_filter_regex_flags as flags  # uproot's own flag letters

        try:
            return re.compile(m.group(1), flags(m.group(2))).match(name) is not None
        except re.error:
            raise InputError(f"expression {expression!r} is not a valid regular expression") from None
    if expression == name:
        return True
    return any(c in expression for c in "*?[") and fnmatch.fnmatchcase(name, expression)


# ------------------------------------------------------------------------------ which chunks
@dataclasses.dataclass(frozen=True)
class ChunkHead:
    """Where one stored chunk is (its number in the file and the byte offset of its record;
    -1 in formats before 3.0) and which entries of its table it holds (``first_entry`` counted
    from the table's first entry in this file, a dataset part's too)."""

    index: int
    table: int
    first_entry: int
    n_entries: int
    offset: int = -1


def chunk_heads(aez: AezFile) -> list[ChunkHead]:
    """Every chunk's :class:`ChunkHead`, from the chunks' heads only (format 3.0: a seek and a
    few bytes per chunk, checked again when the chunk is read); older formats by one pass over
    the chunks (no jet decoded).

    Raises:
        FormatError: heads out of order, or of a table the header does not have.
    """
    where = f"{aez.what} {aez.path}"
    if aez.major < 3:
        return [ChunkHead(c.index, c.table, c.first_entry, c.n_entries) for c in aez.chunks()]
    heads: list[ChunkHead] = []
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for i, offset in enumerate(aez.chunk_offsets()):
        aez.f.seek(offset + RECORD_HEAD.size)
        raw = aez.f.read(CHUNK_HEAD.size)
        if len(raw) < CHUNK_HEAD.size:
            raise FormatError(f"{where}: chunk {i} is truncated")
        seq, table, first, n, _ = CHUNK_HEAD.unpack(raw)
        if seq != i or table >= len(aez.header.tables):
            raise FormatError(f"{where}: chunk {i} (byte {offset}) is out of place")
        start = starts.setdefault(table, first)
        if first != ends.get(table, first):
            raise FormatError(f"{where}: chunk {i} starts at entry {first}, the previous one ended at {ends[table]}")
        ends[table] = first + n
        heads.append(ChunkHead(i, table, first - start, n, offset))
    return heads


def table_index(aez: AezFile, table: str | int | None) -> int:
    """The index of `table` (a tree name or an index; None: the first table with jets, as
    ``decompress`` calls the main one).

    Raises:
        InputError: no such table (one line naming those there are).
    """
    tables = aez.tables
    if table is None:
        return next((i for i, t in enumerate(tables) if t.has_jets), 0)
    if isinstance(table, (int, np.integer)) and not isinstance(table, bool):
        if 0 <= int(table) < len(tables):
            return int(table)
    else:
        for i, t in enumerate(tables):
            if t.tree == table or (t.tree or "").rstrip(";1") == table:
                return i
    names = ", ".join(repr(t.tree) for t in tables)
    raise InputError(f"{aez.path} has no table {table!r}; its tables: {names}")


def window(n_entries: int, entry_start: int | None, entry_stop: int | None) -> tuple[int, int]:
    """``[start, stop)`` of a table of `n_entries` as uproot reads ``entry_start`` and
    ``entry_stop``: None is the start or end, negative counts from the end, both clipped to
    the table; a stop before the start reads nothing."""
    def one(x: int | None, default: int, what: str) -> int:
        if x is None:
            return default
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
            raise InputError(f"{what} must be an integer or None, not {x!r}")
        x = int(x)
        if x < 0:
            x += n_entries
        return min(max(x, 0), n_entries)

    start = one(entry_start, 0, "entry_start")
    stop = one(entry_stop, n_entries, "entry_stop")
    return start, max(start, stop)


# ------------------------------------------------------------------------------ decoding
class _Selective(AezFile):
    """An :class:`AezFile` whose decode loop (:meth:`AezFile.decoded`) runs over given stored
    chunks and decodes only given collections: the others reach it as holding no members
    (so their codec never runs); the chunks as stored stay in :attr:`stored` until taken."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        self.source: Iterable[Chunk] | None = None
        self.decode: frozenset[int] = frozenset()
        self.stored: dict[int, Chunk] = {}

    def chunks(self, tables: Sequence[int] | None = None) -> Iterator[Chunk]:
        for chunk in super().chunks(tables) if self.source is None else self.source:
            self.stored[chunk.index] = chunk
            yield dataclasses.replace(chunk, collections=[
                s if i in self.decode else StoredCollection(0, s.counts, b"") for i, s in enumerate(chunk.collections)])


class _NoCodec:
    """Stands for the codecs when no collection is decoded: the decode loop never calls it."""

    parallel = False


@dataclasses.dataclass
class _Pieces:
    """What a read gathered, chunk by chunk, trimmed to the window."""

    counts: list[list[np.ndarray]]  # per collection
    columns: dict[tuple[int, str], list[np.ndarray]]  # (collection, role) -> values in the output dtype
    carried: dict[str, list[Any]]
    n_entries: int = 0


def read_pieces(aez: "_Selective", t: int, layout: Layout, selected: Sequence[Branch], start: int, stop: int,
                heads: Sequence[ChunkHead] | None, *, workers: int = 1, codec_options: dict[str, Any] | None = None,
                decode: bool = True) -> _Pieces:
    """Entries ``[start, stop)`` of table `t`: the stored chunks that hold them, decoded as far
    as `selected` needs. `heads`: the table's chunks (None: read every chunk of the file in
    order, checking its totals at the end). `decode` False: types only, no codec runs
    (four-vector columns come as zeros), and an empty window still reads the first chunk's
    carried branches for their types. `codec_options`: what :meth:`AezFile.codecs` takes
    (``model``, ``device``, ``threads``).
    """
    wanted = layout.decodes(selected) if decode else set()
    names = layout.carried(selected)
    dtypes = {(b.collection, b.role): np.dtype(b.dtype or "float32") for b in selected
              if b.kind == "jets" or (b.kind == "slot" and not b.source)}
    pieces = _Pieces([[] for _ in layout.collections], {k: [] for k in dtypes}, {n: [] for n in names})
    base: dict[int, int] = {}
    aez.source = None
    if heads is not None:
        chosen = [h for h in heads if h.first_entry < stop and h.first_entry + h.n_entries > start]
        if not chosen and not decode and heads:
            chosen = [heads[0]]
        base = {h.index: h.first_entry for h in chosen}
        if aez.major >= 3:
            offsets = [0] * (max(base, default=-1) + 1)  # what read_chunk looks up: these chunks' records
            for h in chosen:
                offsets[h.index] = h.offset
            aez.source = (_checked(aez.read_chunk(h.index, offsets), h, aez) for h in chosen)
        else:
            aez.source = (c for c in AezFile.chunks(aez) if c.index in base)
    aez.decode = frozenset(wanted)
    codecs: list[Any] = aez.codecs(**(codec_options or {})) if wanted else [_NoCodec() for _ in aez.header.codecs]
    table_start: int | None = None
    done = 0
    for stored, jc in aez.decoded(codecs, workers if wanted else 1, tables=[t], carried=False):
        chunk = aez.stored.pop(stored.index)
        if heads is None:  # every chunk in order: count the entries
            if table_start is None:
                table_start = chunk.first_entry
            first = done if aez.major < 3 else chunk.first_entry - table_start
            done += chunk.n_entries
        else:
            first = base[chunk.index]
        a = min(max(start - first, 0), chunk.n_entries)
        b = max(min(stop - first, chunk.n_entries), a)
        if b > a or base:
            _gather(pieces, layout, chunk, jc, a, b, wanted, dtypes, names)
    return pieces


def _checked(chunk: Chunk, head: ChunkHead, aez: AezFile) -> Chunk:
    if chunk.table != head.table or chunk.n_entries != head.n_entries:
        raise FormatError(f"{aez.what} {aez.path}: chunk {head.index} is not what its head said")
    return chunk


def _gather(pieces: _Pieces, layout: Layout, chunk: Chunk, jc: Any, a: int, b: int, wanted: set[int],
            dtypes: dict[tuple[int, str], np.dtype], names: list[str]) -> None:
    """Entries ``[a, b)`` of one decoded chunk into `pieces`."""
    colls = layout.collections
    member_range: list[tuple[int, int]] = []
    for ci, stored in enumerate(chunk.collections):
        counts = stored.counts
        if counts is None:  # flat table: one member per row
            j0, j1 = a, b
            pieces.counts[ci].append(np.ones(b - a, np.uint32))
        else:
            ends = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
            j0, j1 = int(ends[a]), int(ends[b])
            pieces.counts[ci].append(np.asarray(counts[a:b]))
        member_range.append((j0, j1))
    for (ci, role), out in pieces.columns.items():
        j0, j1 = member_range[ci]
        if ci in wanted:
            cols = jc.columns if ci == 0 else jc.others[colls[ci].name].columns
            out.append(np.asarray(cols[role][j0:j1]).astype(dtypes[(ci, role)]))
        else:
            out.append(np.zeros(j1 - j0, dtypes[(ci, role)]))
    if names:
        # Files before 3.0 hold their kept branches uncompressed, not in groups: all of them
        # (Chunk.carried_arrays(names) finds no group holding the names there).
        arrays = chunk.carried_arrays(names if chunk.groups else None)
        per_member = {n: ci for ci, c in enumerate(colls) for n in c.jet_branches}
        for n in names:
            v = arrays[n]
            if n in per_member:
                j0, j1 = member_range[per_member[n]]
                pieces.carried[n].append(v[j0:j1])
            else:
                pieces.carried[n].append(v[a:b])
    pieces.n_entries += b - a


# ------------------------------------------------------------------------------ building
@dataclasses.dataclass
class Jagged:
    """A list per entry: ``values[offsets[i]:offsets[i+1]]`` (numpy, or awkward for lists of
    anything else)."""

    offsets: np.ndarray
    values: Any

    def __len__(self) -> int:
        return len(self.offsets) - 1


def _join(parts: list[Any], empty: Any) -> Any:
    if not parts:
        return empty
    if all(isinstance(p, np.ndarray) for p in parts):
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    import awkward as ak

    return parts[0] if len(parts) == 1 else ak.concatenate(parts)


def build(layout: Layout, selected: Sequence[Branch], pieces: _Pieces) -> dict[str, Any]:
    """Branch name -> numpy array (one value, or a fixed-size array, per entry), awkward array
    (any other carried type) or :class:`Jagged`, for `selected`, in their order."""
    info = layout.info
    counts = [np.concatenate(c).astype(np.int64) if c else np.zeros(0, np.int64) for c in pieces.counts]
    offsets = [np.concatenate([[0], np.cumsum(c)]).astype(np.int64) for c in counts]
    columns = {k: _join(v, np.zeros(0, np.float32)) for k, v in pieces.columns.items()}
    carried = {k: _join(v, _declared_empty(info.dtypes.get(k))) for k, v in pieces.carried.items()}

    def jagged(ci: int, values: Any) -> Any:
        if not info.jagged:
            return values
        return Jagged(offsets[ci], values)

    out: dict[str, Any] = {}
    slots: dict[str, np.ndarray] | None = None
    for b in selected:
        if b.kind == "jets":
            out[b.name] = jagged(b.collection, columns[(b.collection, b.role)])
        elif b.kind == "counter":
            out[b.name] = counts[b.collection].astype(np.dtype(b.dtype or "int32"))
        elif b.kind == "member":
            out[b.name] = jagged(b.collection, carried[b.source[0]])
        elif b.kind == "entry":
            out[b.name] = carried[b.source[0]]
        elif b.kind == "array":
            out[b.name] = np.stack([np.asarray(carried[s]) for s in b.source], axis=1).reshape(
                pieces.n_entries, *b.shape)
        elif b.kind == "count_of":
            out[b.name] = _lengths(carried[b.source[0]]).astype(np.dtype(b.dtype or "int32"))
        elif b.kind == "slot":
            if slots is None:
                slots = _unstack(layout, selected, counts[0], columns, carried)
            out[b.name] = slots[b.name]
    return out


def _unstack(layout: Layout, selected: Sequence[Branch], counts: np.ndarray, columns: dict, carried: dict):
    from .tables.wide import unstack

    w = layout.wide
    assert w is not None
    n = int(counts.sum())
    roles = {r: columns.get((0, r), np.zeros(n, np.float32)) for r in w.jets[0]}
    dtypes = {b.name: np.dtype(b.dtype) for b in layout.branches.values() if b.kind == "slot" and b.dtype}
    jet_kept = {pn: np.asarray(carried[pn]) for pn in w.extras if pn in carried}
    return unstack(roles, counts, w, jet_kept, dtype=dtypes)


def _lengths(array: Any) -> np.ndarray:
    import awkward as ak

    if isinstance(array, np.ndarray):
        return np.full(len(array), array.shape[1] if array.ndim > 1 else 1, np.int64)
    return np.asarray(ak.num(array, axis=1))


def _declared_empty(declared: Any) -> Any:
    """A zero-length branch of a declared type (a table or window without entries)."""
    text = str(declared or "float64")
    try:
        return np.zeros(0, np.dtype(text))
    except TypeError:
        pass
    m = re.fullmatch(r"\(([\d, ]+)\)(\w+)", text)
    if m:
        shape = tuple(int(x) for x in m.group(1).split(",") if x.strip())
        return np.zeros((0, *shape), np.dtype(m.group(2)))
    import awkward as ak

    try:
        form = ak.forms.from_type(ak.types.from_datashape(text, highlevel=False))
        return ak.Array(form.length_zero_array())
    except Exception:  # noqa: BLE001 - a type awkward cannot spell back: no values, no type
        return ak.Array([])


# ------------------------------------------------------------------------------ libraries
def record_groups(layout: Layout, records: bool = False) -> dict[str, dict[str, str]]:
    """Field -> {branch: its name inside the field}: the branches :func:`to_awkward` puts
    together as one list of records per entry. An RNTuple's record fields as it had them
    (``Jet.pt`` back into ``Jet``, as uproot reads it and as the restored RNTuple holds it);
    with `records` also each coded collection's columns and per-member branches (``Jet_pt``
    as ``Jet.pt``; the collection's prefix ``Jet_``, ``Jet.`` or ``JetAuxDyn.`` left out), as
    coffea's NanoEvents shows them."""
    groups = {g: dict(m) for g, m in layout.fields.items()}
    if not records:
        return groups
    grouped = {n for m in groups.values() for n in m}
    for ci, coll in enumerate(layout.collections):
        members = [n for n, b in layout.branches.items() if b.collection == ci and b.kind in ("jets", "member")
                   and n not in grouped]
        name = coll.name or "Jet"
        if not members or name in layout.branches or name in groups:
            continue
        prefix = next((p for p in (f"{coll.name}_", f"{coll.name}.", f"{coll.name}AuxDyn.")
                       if coll.name and all(n.startswith(p) for n in members)), "")
        groups[name] = {n: n[len(prefix):] for n in members}
    return groups


def to_awkward(values: dict[str, Any], n_entries: int, groups: dict[str, dict[str, str]] | None = None):
    """The branches as one awkward record array of `n_entries` entries, a field per branch in
    order; the branches of each of `groups` (:func:`record_groups`) as one field, a list of
    records per entry, where they share their lists' lengths."""
    import awkward as ak

    member_of: dict[str, str] = {}
    for g, members in (groups or {}).items():
        present = [values[n] for n in members if n in values]
        if present and all(isinstance(v, Jagged) and np.array_equal(v.offsets, present[0].offsets) for v in present):
            member_of.update({n: g for n in members if n in values})
    fields: list[str] = []
    contents: list[Any] = []
    for name, v in values.items():
        group = member_of.get(name)
        if group is None:
            fields.append(name)
            contents.append(_layout(v))
        elif group not in fields:
            subs = {sub: values[n] for n, sub in (groups or {})[group].items() if n in values}
            first = next(iter(subs.values()))
            inner = ak.contents.RecordArray([_layout(x.values) for x in subs.values()], list(subs),
                                            length=len(first.values))
            fields.append(group)
            contents.append(ak.contents.ListOffsetArray(ak.index.Index64(first.offsets), inner))
    return ak.Array(ak.contents.RecordArray(contents, fields, length=n_entries))


def _layout(v: Any):
    import awkward as ak

    if isinstance(v, Jagged):
        return ak.contents.ListOffsetArray(ak.index.Index64(v.offsets), _layout(v.values))
    return ak.to_layout(v)


def to_numpy(values: dict[str, Any]) -> dict[str, np.ndarray]:
    """The branches as numpy arrays, as uproot's ``library="np"`` gives them: numbers as
    numeric arrays (fixed-size arrays with their inner shape); a list per entry (``Jet_pt``)
    as an object array holding one numpy array per entry; anything else (strings, records,
    lists of lists) as an object array of the entries' Python values."""
    return {k: _numpy(v) for k, v in values.items()}


def _numpy(v: Any) -> np.ndarray:
    import awkward as ak

    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, Jagged) and isinstance(v.values, np.ndarray):
        return _objects(np.split(v.values, v.offsets[1:-1]) if len(v) else [])
    if isinstance(v, Jagged):
        v = ak.Array(_layout(v))
    layout = ak.to_layout(v)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray) \
            and not layout.parameters:
        off = np.asarray(layout.offsets)
        values = np.asarray(layout.content.data)[off[0]:off[-1]]
        return _objects(np.split(values, off[1:-1] - off[0]) if len(off) > 1 else [])
    try:
        return np.asarray(ak.to_numpy(v))
    except (ValueError, TypeError):
        return _objects(ak.to_list(v))


def _objects(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        out[i] = x
    return out


def to_pandas(values: dict[str, Any], n_entries: int):
    """The branches as a pandas DataFrame of one row per entry: numbers as columns of their
    dtype; fixed-size arrays, lists and other types as object columns holding what
    :func:`to_numpy` gives per entry (uproot needs the ``awkward-pandas`` package for those)."""
    import pandas as pd

    columns = {}
    for k, v in to_numpy(values).items():
        columns[k] = v if v.ndim == 1 else _objects(list(v))
    return pd.DataFrame(columns, index=pd.RangeIndex(n_entries), copy=False)


# ------------------------------------------------------------------------------ the API
def arrays(path: str | os.PathLike, expressions: str | Sequence[str] | None = None, library: str = "ak", *,
           table: str | int | None = None, entry_start: int | None = None, entry_stop: int | None = None,
           model: Any = None, workers: int | None = None) -> Any:
    """The restored table of a ``.aez`` file, decoding only what is asked, as uproot's
    ``TTree.arrays`` reads a ROOT file.

    Args:
        path: the ``.aez`` file (any format version jetzip reads).
        expressions: branch names, glob patterns (``"Jet_*"``) or ``"/regex/flags"``, as
            uproot's ``filter_name``: one string or a list; None: every branch. Branches come
            in the table's order.
        library: ``"ak"``: an awkward record array of one entry per event (row of a flat
            table), a field per branch; ``"np"``: dict name -> numpy array (lists per entry as
            object arrays of numpy arrays, like uproot's; see :func:`to_numpy`); ``"pd"``: a
            pandas DataFrame of one row per entry (see :func:`to_pandas`).
        table: the table to read, by tree name or index (default: the first with jets, the
            one ``decompress`` reports).
        entry_start, entry_stop: only entries ``[entry_start, entry_stop)`` (negative: from
            the end, as uproot); only the chunks holding them are read.
        model: the decoder or entropy model a file needs that does not hold or name one
            (latent ``--no-embed-model`` files, bounded files coded with a ``.jzc`` that is not
            shipped), as in :func:`jetzip.decompress`.
        workers: threads decoding chunks side by side (codecs whose chunks are independent:
            the bounded one; worker processes for its payload versions 1 and 2); default all
            the cores this process may use. The result is the
            same whatever it is.

    Returns:
        As `library` says. Four-vector columns are in the restored file's dtype (float32 for
        NanoAOD); every other branch has the input's type and values.

    Raises:
        InputError: no such file, table or branch (one line, with close matches), or a bad
            option. FormatError: a damaged file (only the records read are checked).
        ModelMismatchError: `model` is not the one the file was made with.
    """
    if library not in LIBRARIES:
        raise JetzipError(f"unknown library {library!r}; use one of {', '.join(LIBRARIES)}")
    workers = available_cores() if workers is None else positive_int("workers", workers)
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path, not {path!r}")
    aez = _Selective(path)
    with aez:
        layout, values, n = read_table(aez, expressions, table=table, entry_start=entry_start,
                                       entry_stop=entry_stop, workers=workers, codec_options={"model": model})
    return convert(layout, values, n, library)


def convert(layout: Layout, values: dict[str, Any], n_entries: int, library: str) -> Any:
    """:func:`build`'s branches as `library` gives them (``ak``, ``np`` or ``pd``)."""
    if library == "ak":
        return convert_groups(layout, values, n_entries)
    if library == "np":
        return to_numpy(values)
    return to_pandas(values, n_entries)


def convert_groups(layout: Layout, values: dict[str, Any], n_entries: int, records: bool = False):
    """:func:`build`'s branches as an awkward array, with the groups of :func:`record_groups`."""
    return to_awkward(values, n_entries, record_groups(layout, records))


def read_table(aez: "_Selective", expressions: str | Sequence[str] | None, *, table: str | int | None = None,
               entry_start: int | None = None, entry_stop: int | None = None, workers: int = 1,
               codec_options: dict[str, Any] | None = None, decode: bool = True,
               chunks: Sequence[ChunkHead] | None = None) -> tuple[Layout, dict[str, Any], int]:
    """(the table's :class:`Layout`, :func:`build`'s branches, entries) of one table of an open
    file: the work of :func:`arrays`, shared with :mod:`jetzip.dask`.

    `chunks`: read exactly these chunks of the table, whole (a Dask partition's, planned with
    :func:`chunk_heads`); otherwise the entries ``[entry_start, entry_stop)``: a whole table is
    read in file order with the file's totals checked, a window by seeking to its chunks.
    """
    t = table_index(aez, table)
    v2_heads = None
    if aez.major < 3 and (aez.tables[t].extra or {}).get("rest_branches"):
        # ROOT files of format 2.0 name the other collections they carry only once their
        # chunks are read (AezFile._chunks_v2): a pass over the chunks first, no jet decoded.
        v2_heads = chunk_heads(aez)
    layout = Layout(aez.tables[t])
    selected = layout.select(expressions, str(aez.path))
    options = dict(codec_options or {})
    options.setdefault("threads", workers)
    if chunks is not None:
        mine = [h for h in chunks if h.table == t]
        start = min((h.first_entry for h in mine), default=0)
        stop = max((h.first_entry + h.n_entries for h in mine), default=0)
        pieces = read_pieces(aez, t, layout, selected, start, stop, mine, workers=max(min(workers, len(mine)), 1),
                             codec_options=options, decode=decode)
        return layout, build(layout, selected, pieces), pieces.n_entries
    heads = [h for h in chunk_heads(aez) if h.table == t] if aez.major >= 3 else None  # a seek per chunk
    if entry_start is None and entry_stop is None:  # every chunk in order, the totals checked at the end
        n_chunks = len(heads) if heads is not None else workers
        pieces = read_pieces(aez, t, layout, selected, 0, 1 << 62, None, workers=max(min(workers, n_chunks), 1),
                             codec_options=options, decode=decode)
    else:
        if heads is None:
            heads = [h for h in (v2_heads or chunk_heads(aez)) if h.table == t]
        start, stop = window(sum(h.n_entries for h in heads), entry_start, entry_stop)
        n_chunks = sum(h.first_entry < stop and h.first_entry + h.n_entries > start for h in heads)
        pieces = read_pieces(aez, t, layout, selected, start, stop, heads, workers=max(min(workers, n_chunks), 1),
                             codec_options=options, decode=decode)
    return layout, build(layout, selected, pieces), pieces.n_entries
