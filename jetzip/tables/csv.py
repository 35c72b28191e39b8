"""CSV tables: a header row, then one jet per row. Read in blocks of rows, written column-wise.

**Separator.** ``,`` unless the header and the first rows say otherwise: of ``,``, ``;``, tab
and ``|``, the separator that splits the header into two or more names and every sampled row
into as many cells is used (the most cells when several do; ``info.extra["csv_separator"]``
names it and ``info.extra["csv_separator_note"]`` says when the choice was ambiguous). Output
written from a CSV uses the input's separator.

Reading follows the usual CSV rules (Python's ``csv`` module, Excel dialect): cells may be
quoted (``"100"``), a UTF-8 byte-order mark before the header is ignored, blank lines are
skipped, and an empty cell in a jet column reads as NaN. A quoted cell may not span lines.
Errors name the 1-based line of the file (the header is line 1); every chunk carries the
line of each of its rows (:attr:`CsvChunk.lines`).

**Jagged tables.** A jagged table written as CSV gets an ``event`` column (the event index)
before the jet columns, one row per jet, its per-jet branches, and its kept (event-level)
branches repeated on every jet row of their event. Events without jets cannot be represented
in CSV and are lost there (use ROOT or HDF5 to keep them). When the original table has a
column called ``event`` of its own (NanoAOD's event number), the index column is called
``jetzip_event`` instead, so that the two are never confused.

Reading, a CSV with an integer ``jetzip_event`` column, else ``event`` (``event_index``, the
name older versions wrote, when both exist) whose values never decrease in its first rows is
read as a jagged table: consecutive rows with the same value form one event, and chunks always
hold whole events. A value that decreases later is an error naming the line (``--preset flat``
reads such a file as one jet per row). A ``--keep-branches`` column must then hold one value
per event: the first row of each event gives it, and a different value on another row of the
same event is an error.

**Carried columns.** Every other column whose first rows are numbers is carried losslessly by
default (``drop`` patterns leave columns out): per row in a flat table (``kept_branches``), per
jet in a jagged one (``jet_branches``), per row in a table of several jets per row. Columns
with text in their first rows are not carried (``other_branches``): each is named in
``info.extra["not_carried"]``, which compress reports before writing (``--strict`` refuses).

**Several jets per row** (``pxj1, pyj1, pzj1, mj1, pxj2, ...``): read as events of jets and
written back into the same columns, see :mod:`jetzip.tables.wide`.

**Types.** Jet columns are read as float64. A kept column whose first rows all hold integers
is read as int64 (uint64 when its values need it), exactly, so 64-bit event numbers survive;
a later non-integer cell in it is an error. Written values: float32 columns with 9 significant
digits, float64 ones with the shortest repr that round-trips, integers exactly.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import fnmatch
import io
import itertools
import os
import sys
from typing import IO, Any, Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..features import infer_units
from .base import JetChunk, TableInfo
from .layouts import PRESETS, choose_collection
from .wide import Wide, check_drop_keeps_slots, choose_wide, pad_of, representation_of_slots, stack, unstack, wide_of

EVENT_COLUMN = "event"
# The event index's name when the original table has an `event` column of its own.
EVENT_COLUMN_OWN = "jetzip_event"
# What older versions wrote instead (still read back).
EVENT_COLUMN_ALT = "event_index"
SEPARATORS = (",", ";", "\t", "|")
SNIFF_LINES = 20
SAMPLE_ROWS = 5000  # rows read up front: units, integer columns, whether `event` groups the jets
BLOCK_ROWS = 1 << 14  # rows parsed at a time
BLOCK_BYTES = 16 << 20  # ... and at most about this many bytes of them (a header of 70,000 names)
WRITE_ROWS = 1 << 15  # rows formatted at a time
MAX_CHUNK_JETS = 1 << 18
MAX_EVENT_JETS = 1 << 20  # jets in one event: more means `event` is not an event number
_INT64_MAX = np.iinfo(np.int64).max
JET_FORMAT = "%#.9g"  # jet values: 9 significant digits, a decimal point (never read back as integers)


@dataclasses.dataclass
class CsvChunk(JetChunk):
    """A chunk read from CSV, with the 1-based file line of each of its jet rows."""

    lines: np.ndarray | None = None


@dataclasses.dataclass
class CsvWideChunk(CsvChunk):
    """A chunk of a CSV of several jets per row: dropping keeps every jet in its own columns
    (:func:`jetzip.tables.wide.check_drop_keeps_slots`)."""

    def without(self, bad: np.ndarray) -> "JetChunk":
        check_drop_keeps_slots(self, bad)
        return super().without(bad)


class CsvSource:
    n_entries: int | None = None  # unknown until the file has been read

    def __init__(self, path: str, *, tree: str | None = None, columns: dict[str, str] | None = None,
                 preset: str | None = None, collection: str | None = None,
                 units: str | None = None, keep: Sequence[str] = (), drop: Sequence[str] = ()) -> None:
        if tree:
            raise InputError(f"{path}: --tree does not apply to CSV files")
        self.drop = tuple(drop)
        self.path = path
        try:
            # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first name
            self.f = open(path, "r", newline="", encoding="utf-8-sig")
        except FileNotFoundError:
            raise InputError(f"{path} does not exist") from None
        except OSError as exc:
            raise InputError(f"cannot open {path}: {exc.strerror}") from None
        try:
            self._setup(columns, preset, collection, units, keep)
        except BaseException:
            self.f.close()
            raise

    # --- setup ------------------------------------------------------------------------------

    def _setup(self, columns, preset_name, collection, units, keep) -> None:
        try:
            header = self.f.readline()
        except UnicodeDecodeError:
            raise self._undecodable() from None
        if not header.strip():
            raise InputError(f"{self.path} is empty (no header row)")
        self.data_start = self.f.tell()
        try:
            sniff = [line for line in itertools.islice(self.f, SNIFF_LINES) if line.strip()]
        except UnicodeDecodeError:
            raise self._undecodable() from None
        self.f.seek(self.data_start)
        self.sep, note = _sniff(header, sniff)
        try:
            self.names = [h.strip() for h in next(csv.reader([header], delimiter=self.sep))]
        except (csv.Error, StopIteration) as exc:
            raise InputError(f"{self.path}: line 1: cannot read the header ({exc})") from None
        dup = sorted(n for n, k in collections.Counter(self.names).items() if k > 1)  # linear, not quadratic
        if dup:
            raise InputError(f"{self.path}: duplicate column names in the header ({', '.join(map(repr, dup[:10]))}"
                             f"{f' and {len(dup) - 10} more' if len(dup) > 10 else ''})")
        where = self.path if self.sep == "," else f"{self.path} (separator {_sep_name(self.sep)})"
        preset = PRESETS[preset_name] if preset_name else None
        self.wide: Wide | None = choose_wide(self.names, where=where, collection=collection, columns=columns)
        slot_extras: list[str] = []
        if self.wide is not None:
            coll_name = self.wide.pattern
            used = dict(self.wide.jets[0])
            representation = representation_of_slots(self.wide.jets)
            jet_names = [n for slot in self.wide.jets for n in slot.values()]
            slot_extras = [c for cols in self.wide.extras.values() for c in cols]
        else:
            coll = choose_collection(self.names, where=where, columns=columns, collection=collection,
                                     preset=preset if preset and preset.collection else None)
            used = coll.used_columns(self.names)
            coll_name, representation = coll.name, coll.representation or ""
            jet_names = list(used.values())
        kept: list[str] = []
        for pattern in keep:
            hits = [n for n in self.names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise InputError(f"{self.path}: --keep-branches {pattern!r} matches no column")
            # The jet columns are restored anyway: a pattern like '*' skips them.
            kept += hits
        for pattern in self.drop:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in self.names):
                raise InputError(f"{self.path}: --drop-branches {pattern!r} matches no column")
        not_kept = set(jet_names) | {c for cols in (self.wide.extras.values() if self.wide else []) for c in cols}
        kept = [h for h in dict.fromkeys(kept)
                if h not in not_kept and not any(fnmatch.fnmatchcase(h, p) for p in self.drop)]
        self.keep_patterns = tuple(keep)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.used = used
        self._line = 1  # physical lines consumed so far (the header is line 1)

        # The first rows decide the types of the other columns and whether `event` groups the jets.
        if self.wide is not None or (preset is not None and not preset.jagged):
            candidates = []  # --preset flat: one jet per row, whatever the columns are called
        elif EVENT_COLUMN_OWN in self.index:
            candidates = [EVENT_COLUMN_OWN]
        elif EVENT_COLUMN_ALT in self.index and EVENT_COLUMN in self.index:
            candidates = [EVENT_COLUMN_ALT, EVENT_COLUMN]
        else:
            candidates = [EVENT_COLUMN] if EVENT_COLUMN in self.index else []
        try:
            raw, lines = self._read_lines(SAMPLE_ROWS)
        except UnicodeDecodeError:
            raise self._undecodable() from None
        rows, row_lines = self._split(raw, lines)
        self.kinds = {n: "f8" for n in self.names}
        jet_set = set(jet_names)
        for name in slot_extras:  # per-slot variables: read as numbers of their own kind
            kind = _cell_kind([r[self.index[name]] for r in rows])
            if kind is None:
                raise InputError(f"{where}: column {name} (a per-jet variable of {coll_name}) holds text")
            self.kinds[name] = kind
        jet_set |= set(slot_extras)
        cells_of = list(zip(*rows)) if rows else [()] * len(self.names)
        numeric: dict[str, bool] = {}
        for name in self.names:
            if name in jet_set:
                continue
            kind = _cell_kind(cells_of[self.index[name]])
            numeric[name] = kind is not None
            if kind is not None and kind != "f8":
                self.kinds[name] = kind
        for name in kept:
            if not numeric[name]:
                raise InputError(f"{where}: --keep-branches column {name} holds text, not numbers")
        self.event_column = None
        for name in candidates:
            if self.kinds[name] == "f8" or not numeric.get(name):
                continue
            ev = self._convert([r[self.index[name]] for r in rows], name, row_lines)
            if not (ev[1:] < ev[:-1]).any():
                self.event_column = name
                break
        self.jagged = self.event_column is not None or self.wide is not None
        jet_branches: list[str] = []
        explicit = set(kept)  # sets, not lists: a header may hold 70,000 names
        for name in self.names:  # every other numeric column is carried, unless dropped
            if keep or name in jet_set or name in explicit or name == self.event_column or not numeric.get(name) \
                    or any(fnmatch.fnmatchcase(name, p) for p in self.drop):
                continue  # with --keep-branches, only what it names
            if self.event_column is not None:
                jet_branches.append(name)
            else:
                kept.append(name)
        carried_set = {*kept, *jet_branches}
        for name in self.names:
            if name not in carried_set and name != self.event_column:
                if name not in slot_extras:
                    self.kinds[name] = "f8" if name in jet_set or numeric.get(name) else self.kinds[name]
        self.kept = kept
        self.jet_branches = jet_branches
        self.needed = list(dict.fromkeys([*jet_names, *slot_extras, *kept, *jet_branches,
                                          *([self.event_column] if self.event_column else [])]))

        if self.wide is not None:  # per-slot variables, by pattern name
            match = lambda n, ps: any(fnmatch.fnmatchcase(n, p) for p in ps)
            jet_branches = [pn for pn, cs in self.wide.extras.items()
                            if not match(pn, self.drop) and not any(match(x, self.drop) for x in cs)
                            and (not keep or match(pn, keep) or any(match(x, keep) for x in cs))]
            self.wide.extras = {pn: self.wide.extras[pn] for pn in jet_branches}
            slot_extras = [c for cs in self.wide.extras.values() for c in cs]
            self.needed = list(dict.fromkeys([*jet_names, *slot_extras, *kept,
                                              *([self.event_column] if self.event_column else [])]))
            self.jet_branches = jet_branches
        units_inferred, reason = False, ""
        if units is None and preset is not None and preset.units:
            units, reason = preset.units, f"the {preset.name} layout is in {preset.units}"
        if units is None or self.wide is not None:
            sample = {n: self._convert([r[self.index[n]] for r in rows], n, row_lines)
                      for n in [*jet_names, *slot_extras]}
            if self.wide is not None:
                self.wide.pad = pad_of(sample, self.wide)
        if units is None:
            if self.wide is not None:
                roles = stack(sample, self.wide)[0]
            else:
                roles = {role: sample[n] for role, n in used.items()}
            units, reason = infer_units(roles)
            units_inferred = True
        self._rewind()
        dtypes = {n: "float64" for n in jet_names}
        kind_name = {k: np.dtype(k).name for k in ("f8", "i8", "u8")}
        if self.wide is not None:
            dtypes.update({n: kind_name[self.kinds[n]] for n in [*kept, *slot_extras]})
            dtypes.update({pn: kind_name[self.kinds[cols[0]]] for pn, cols in self.wide.extras.items()})
        else:
            dtypes.update({n: kind_name[self.kinds[n]] for n in [*kept, *jet_branches]})
        carried = {*jet_names, *slot_extras, *kept, *jet_branches, self.event_column}
        extra: dict = {}
        text = [n for n in self.names if n not in carried and not numeric.get(n, True)
                and not any(fnmatch.fnmatchcase(n, p) for p in self.drop)]
        if text:  # named before anything is written (compress warns; --strict refuses)
            extra["not_carried"] = [f"column {n} of the CSV (text: CSV columns are carried when they hold "
                                    "numbers; convert the file to Parquet or HDF5 to keep text)" for n in text]
        if self.event_column:
            extra["csv_event_column"] = self.event_column
        if self.sep != ",":
            extra["csv_separator"] = self.sep
        if note:
            extra["csv_separator_note"] = note
        if self.wide is not None:
            extra.update(self.wide.to_extra())
        self.info = TableInfo(
            file=os.path.basename(self.path), format="csv", tree=None,
            layout="jets-per-row" if self.wide else ("jagged" if self.jagged else "flat"), collection=coll_name,
            jagged=self.jagged, counter=None, columns=self.wide.columns if self.wide else used,
            representation=representation, units=units,
            units_inferred=units_inferred, units_reason=reason, dtypes=dtypes, kept_branches=kept,
            jet_branches=jet_branches, branch_order=[n for n in self.names if n != self.event_column],
            other_branches=[n for n in self.names if n not in carried], extra=extra)
        # One record type for numpy's fast parser: every column, in file order (a one-character
        # string for the columns not read, which then need not be numbers).
        needed = set(self.needed)
        self._record = np.dtype([(f"c{i}", self.kinds[n] if n in needed else "U1")
                                 for i, n in enumerate(self.names)])

    def _rewind(self) -> None:
        self.f.seek(self.data_start)
        self._line = 1

    # --- parsing ----------------------------------------------------------------------------

    def _read_lines(self, n: int) -> tuple[list[str], np.ndarray]:
        """Up to `n` physical lines (fewer once they hold ``BLOCK_BYTES``), without the blank
        ones, and their 1-based line numbers."""
        raw: list[str] = []
        size = 0
        piece = 256  # lines read at a time: more once their length is known
        while len(raw) < n and size < BLOCK_BYTES:
            part = list(itertools.islice(self.f, min(n - len(raw), piece)))
            if not part:
                break
            raw += part
            size += sum(map(len, part))
            piece = max(256, (BLOCK_BYTES - size) * len(raw) // max(size, 1) // 2)
        lines = np.arange(self._line + 1, self._line + 1 + len(raw), dtype=np.int64)
        self._line += len(raw)
        blank = np.fromiter(map(str.isspace, raw), bool, len(raw))
        if blank.any():
            raw = list(itertools.compress(raw, ~blank))
            lines = lines[~blank]
        return raw, lines

    def _split(self, raw: list[str], lines: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
        """CSV rows of `raw` (quotes removed), checked to have one cell per header name."""
        ncol = len(self.names)
        reader = csv.reader(raw, delimiter=self.sep)
        rows: list[list[str]] = []
        row_lines: list[int] = []
        try:
            seen = 0
            for row in reader:
                if reader.line_num != seen + 1:  # csv joined lines: an open quote swallowed rows
                    raise InputError(f"{self.path}: line {int(lines[seen])}: a quoted cell runs past the "
                                     "end of its line (an unclosed quote?)")
                seen = reader.line_num
                no = int(lines[reader.line_num - 1])
                if len(row) != ncol:
                    raise InputError(f"{self.path}: line {no} has {len(row)} cells, the header has {ncol}")
                rows.append(row)
                row_lines.append(no)
        except csv.Error as exc:
            no = int(lines[min(reader.line_num, len(lines)) - 1])
            raise InputError(f"{self.path}: line {no}: {exc}") from None
        return rows, np.asarray(row_lines, dtype=np.int64)

    def _convert(self, cells: Sequence[str], name: str, lines: np.ndarray) -> np.ndarray:
        """One column's cells as numbers of its kind; an error names the first bad cell's line."""
        kind = self.kinds[name]
        n = len(cells)
        try:
            if kind == "f8":
                return np.fromiter(map(float, cells), np.float64, n)
            return np.fromiter(map(int, cells), np.dtype(kind), n)
        except (ValueError, OverflowError):
            pass
        if kind == "f8":  # empty cells are NaN; anything else must be a number
            out = np.empty(n, np.float64)
            for i, c in enumerate(cells):
                if not c.strip():
                    out[i] = np.nan
                    continue
                try:
                    out[i] = float(c)
                except ValueError:
                    raise InputError(f"{self.path}: line {lines[i]}: non-numeric cell {c.strip()!r} "
                                     f"in column {name}") from None
            return out
        out = np.empty(n, np.dtype(kind))
        for i, c in enumerate(cells):
            try:
                out[i] = int(c)
            except (ValueError, OverflowError):
                what = "the event index" if name == self.event_column else "read as integers"
                raise InputError(
                    f"{self.path}: line {lines[i]}: column {name} ({what}: its first rows hold "
                    f"integers) has {c.strip()!r}, not an integer of {np.dtype(kind).name}") from None
        return out

    def _parse(self, raw: list[str], lines: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The needed columns of these rows, and the rows' line numbers."""
        try:
            # numpy's C parser: fast, and it follows the same quoting rules.
            table = np.loadtxt(raw, delimiter=self.sep, quotechar='"', comments=None, dtype=self._record,
                               ndmin=1)
            if len(table) == len(raw):
                return {n: np.ascontiguousarray(table[f"c{self.index[n]}"]) for n in self.needed}, lines
        except ValueError:
            pass
        # Slow path, cell by cell: empty cells, non-numeric cells in unused columns, and errors.
        rows, row_lines = self._split(raw, lines)
        columns = list(zip(*rows)) if rows else [()] * len(self.names)
        return {n: self._convert(columns[self.index[n]], n, row_lines) for n in self.needed}, row_lines

    def _blocks(self) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        while True:
            before = self._line
            raw, lines = self._read_lines(BLOCK_ROWS)
            if self._line == before:
                return
            if raw:
                yield self._parse(raw, lines)

    # --- chunks -----------------------------------------------------------------------------

    def chunks(self, jets_per_chunk: int = MAX_CHUNK_JETS, entry_start: int = 0,
               entry_stop: int | None = None) -> Iterator[CsvChunk]:
        """Chunks of whole events with about `jets_per_chunk` jets, covering entries
        ``[entry_start, entry_stop)`` (see :class:`~jetzip.tables.JetSource`).

        A CSV file cannot seek to a row: the lines before `entry_start` are scanned but not
        decoded (a jagged table's event column alone is, to find where its events start)."""
        return self._chunks(jets_per_chunk, max(int(entry_start), 0), entry_stop)

    def _chunks(self, jets_per_chunk: int, start: int, stop: int | None) -> Iterator[CsvChunk]:
        """Chunks of about `jets_per_chunk` rows; for jagged tables, whole events only."""
        target = max(1, min(int(jets_per_chunk), MAX_CHUNK_JETS))
        if self.wide is not None:
            target = max(1, target // len(self.wide.jets))
        if stop is not None and stop <= start:
            return
        self._rewind()
        buf: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
        n_buf = 0
        state = {"jet": 0, "entry": 0}
        try:
            # (event value, line) of the previous row; the rows of the block where `start` falls
            last, rest = self._skip(start, state) if start else (None, None)
            for cols, lines in itertools.chain([rest] if rest else [], self._blocks()):
                if not len(lines):
                    continue
                if self.event_column is not None:
                    last = self._check_order(cols[self.event_column], lines, last)
                buf.append((cols, lines))
                n_buf += len(lines)
                if stop is not None:
                    end = self._rows_until(buf, stop - state["entry"])
                    if end is not None:  # the rest of the window is in the buffer: no more reading
                        cols_all, lines_all = _concat(buf)
                        a = 0
                        while a < end:
                            part = {k: v[a:end] for k, v in cols_all.items()}
                            cut = end - a if end - a <= target else (self._cut(part, target) or end - a)
                            yield self._chunk({k: v[:cut] for k, v in part.items()}, lines_all[a:a + cut], state)
                            a += cut
                        return
                while n_buf >= target:
                    cols_all, lines_all = _concat(buf)
                    cut = self._cut(cols_all, target)
                    if cut == 0:  # one event longer than a chunk, still going on
                        if n_buf > MAX_EVENT_JETS:
                            raise self._giant_event(cols_all, lines_all, 0)
                        buf = [(cols_all, lines_all)]
                        break
                    chunk = self._chunk({k: v[:cut] for k, v in cols_all.items()}, lines_all[:cut], state)
                    if stop is not None and state["entry"] >= stop:
                        yield chunk.entries(0, stop - chunk.first_entry)  # type: ignore[misc]
                        return
                    yield chunk
                    buf = [({k: v[cut:] for k, v in cols_all.items()}, lines_all[cut:])]
                    n_buf -= cut
            if n_buf:
                cols_all, lines_all = _concat(buf)
                chunk = self._chunk(cols_all, lines_all, state)
                yield chunk if stop is None or state["entry"] <= stop else \
                    chunk.entries(0, stop - chunk.first_entry)  # type: ignore[misc]
        except UnicodeDecodeError:
            raise self._undecodable() from None

    def _skip(self, start: int, state: dict[str, int]
              ) -> tuple[tuple[int, int] | None, tuple[dict[str, np.ndarray], np.ndarray] | None]:
        """Pass the rows of the entries before `start` (counted in `state`): the last row's
        (event value, line) and the parsed rest of the block that holds entry `start`."""
        last: tuple[int, int] | None = None
        while True:
            before = self._line
            raw, lines = self._read_lines(BLOCK_ROWS)
            if self._line == before:
                return last, None  # the file ends before entry `start`
            if not raw:
                continue
            if self.event_column is None:  # an entry is a row
                take = min(start - state["entry"], len(raw))
                state["entry"] += take
                state["jet"] += take if self.wide is None else 0  # jets per row: counted from start
            else:  # an entry is a run of equal event values: the event column alone is decoded
                ev = self._event_values(raw, lines)
                before_block = last
                self._check_order(ev, lines, last)
                new = np.empty(len(ev), bool)
                new[0] = last is None or ev[0] != last[0]
                new[1:] = ev[1:] != ev[:-1]
                begun = state["entry"] + np.cumsum(new)  # events begun up to each row
                take = int(np.searchsorted(begun, start + 1, side="left"))  # the first row of event `start`
                state["jet"] += take
                if take < len(ev):
                    state["entry"] = start
                    last = (int(ev[take - 1]), int(lines[take - 1])) if take else before_block
                else:
                    state["entry"] = int(begun[-1])
                    last = (int(ev[-1]), int(lines[-1]))
            if take < len(raw):
                return last, self._parse(raw[take:], lines[take:])

    def _rows_until(self, buf: list[tuple[dict[str, np.ndarray], np.ndarray]], entries: int) -> int | None:
        """The buffered rows of the next `entries` entries, when the buffer holds them all (an
        event is whole once a later one has begun), else None."""
        if self.event_column is None:
            n = sum(len(lines) for _, lines in buf)
            return entries if n >= entries else None
        ev = np.concatenate([cols[self.event_column] for cols, _ in buf])
        starts = np.flatnonzero(np.concatenate([[True], ev[1:] != ev[:-1]]))
        return int(starts[entries]) if len(starts) > entries else None

    def _event_values(self, raw: list[str], lines: np.ndarray) -> np.ndarray:
        """The event column of these rows, the others not decoded."""
        name = self.event_column
        assert name is not None
        try:
            values = np.loadtxt(raw, delimiter=self.sep, quotechar='"', comments=None, ndmin=1,
                                usecols=[self.index[name]], dtype=np.dtype(self.kinds[name]))
            if len(values) == len(raw):
                return values
        except ValueError:
            pass
        return self._parse(raw, lines)[0][name]  # the slow path says which line is wrong

    def _undecodable(self) -> InputError:
        """The error for bytes that are not UTF-8, naming the first line that holds some."""
        where = ""
        try:
            with open(self.path, "rb") as f:
                for no, line in enumerate(f, 1):
                    try:
                        line.decode("utf-8-sig" if no == 1 else "utf-8")
                    except UnicodeDecodeError:
                        where = f" on line {no}"
                        break
        except OSError:
            pass
        return InputError(f"{self.path}: not a text CSV file (bytes that are not UTF-8{where})")

    def _check_order(self, ev: np.ndarray, lines: np.ndarray,
                     last: tuple[int, int] | None) -> tuple[int, int]:
        prev = np.empty_like(ev)
        prev[1:] = ev[:-1]
        prev[0] = ev[0] if last is None else last[0]
        bad = ev < prev
        if bad.any():
            i = int(np.argmax(bad))
            prev_line = int(lines[i - 1]) if i else last[1]  # type: ignore[index]
            name = self.event_column
            raise InputError(
                f"{self.path}: line {lines[i]}: {name} {int(ev[i])} comes after {name} {int(prev[i])} "
                f"(line {prev_line}); a CSV with an integer {name!r} column is read as one event per "
                f"run of equal values, so its rows must be grouped by event in increasing order "
                f"(sort the file, or read it as one jet per row with --preset flat)")
        return int(ev[-1]), int(lines[-1])

    def _cut(self, cols: dict[str, np.ndarray], target: int) -> int:
        """How many leading rows make the next chunk (0: wait for more rows)."""
        if self.event_column is None:
            return target
        ev = cols[self.event_column]
        n = len(ev)
        at = min(target, n - 1)
        cut = int(np.searchsorted(ev, ev[at], side="left"))
        if cut == 0:  # the first event reaches past the target: take it whole, if it has ended
            cut = int(np.searchsorted(ev, ev[0], side="right"))
            if cut == n:
                return 0
        return cut

    def _chunk(self, cols: dict[str, np.ndarray], lines: np.ndarray, state: dict[str, int]) -> CsvChunk:
        jets = {role: cols[n] for role, n in self.used.items()}
        n = len(lines)
        counts = None
        if self.event_column is not None:
            ev = cols[self.event_column]
            starts = np.flatnonzero(np.concatenate([[True], ev[1:] != ev[:-1]]))
            counts = np.diff(np.append(starts, n)).astype(np.uint32)
            if counts.max(initial=0) > MAX_EVENT_JETS:
                raise self._giant_event(cols, lines, int(starts[np.argmax(counts)]))
            kept = {k: self._per_event(k, cols[k], ev, starts, counts, lines) for k in self.kept}
        else:
            kept = {k: cols[k] for k in self.kept}
        entries = len(counts) if counts is not None else n
        kind = CsvChunk
        if self.wide is not None:
            jets, counts, jet_kept = stack(cols, self.wide)
            lines = np.repeat(lines, counts.astype(np.int64))
            n = len(lines)
            kind = CsvWideChunk
        else:
            jet_kept = {k: cols[k] for k in self.jet_branches}
        chunk = kind(jets, counts, kept, state["jet"], state["entry"], jet_kept, lines=lines)
        state["jet"] += n
        state["entry"] += entries
        return chunk

    def _giant_event(self, cols: dict[str, np.ndarray], lines: np.ndarray, i: int) -> InputError:
        """Memory stays bounded: an `event` value shared by too many rows is not an event."""
        name = self.event_column
        assert name is not None  # only rows grouped into events make one
        return InputError(f"{self.path}: more than {MAX_EVENT_JETS} rows share the {name} value "
                          f"{_show(cols[name][i])} (from line {int(lines[i])}); if it is not an "
                          "event number, read the file as one jet per row with --preset flat")

    def _per_event(self, name: str, values: np.ndarray, ev: np.ndarray, starts: np.ndarray,
                   counts: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """One value per event (its first row's); the other rows of the event must agree."""
        first = values[starts]
        again = np.repeat(first, counts.astype(np.int64))
        differ = values != again
        if values.dtype.kind == "f":
            differ &= ~(np.isnan(values) & np.isnan(again))
        if differ.any():
            i = int(np.argmax(differ))
            j = int(starts[np.searchsorted(starts, i, side="right") - 1])
            raise InputError(
                f"{self.path}: line {lines[i]}: --keep-branches column {name} is {_show(values[i])} "
                f"here but {_show(values[j])} on line {lines[j]}, in the same event "
                f"({self.event_column} {int(ev[i])}); a kept branch needs one value per event")
        return first

    def extras(self) -> bytes | None:
        return None  # a CSV file holds one table

    def close(self) -> None:
        self.f.close()


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}.get(sep, repr(sep))


def _sniff(header: str, lines: Sequence[str]) -> tuple[str, str]:
    """The separator (see the module docstring) and a note when the choice was ambiguous."""
    fits: list[tuple[int, str]] = []
    for sep in SEPARATORS:
        if sep not in header:
            continue
        try:
            n = len(next(csv.reader([header], delimiter=sep)))
            if n < 2 or any(len(r) != n for r in csv.reader(lines, delimiter=sep)):
                continue
        except (csv.Error, StopIteration):
            continue
        fits.append((n, sep))
    if not fits:
        return ",", ""
    fits.sort(key=lambda f: (-f[0], SEPARATORS.index(f[1])))
    n, sep = fits[0]
    note = ""
    if len(fits) > 1:
        note = (f"separator: {' and '.join(_sep_name(s) for _, s in fits)} all split every row alike; "
                f"used {_sep_name(sep)} ({n} columns)")
    return sep, note


def _cell_kind(cells: Sequence[str]) -> str | None:
    """'i8'/'u8' for integers, 'f8' for numbers (empty cells too), None for text."""
    kind = _int_kind(cells)
    if kind != "f8":
        return kind
    for c in cells:
        c = c.strip()
        if not c:
            continue
        try:
            float(c)
        except ValueError:
            return None
    return "f8"


def _int_kind(cells: Sequence[str]) -> str:
    """'i8' or 'u8' when every cell is an integer that fits one of them, else 'f8'."""
    if not cells:
        return "i8"
    try:
        values = list(map(int, cells))
    except ValueError:
        return "f8"
    lo, hi = min(values), max(values)
    if lo >= -_INT64_MAX - 1 and hi <= _INT64_MAX:
        return "i8"
    if lo >= 0 and hi < 2 ** 64:
        return "u8"
    return "f8"


def _concat(buf: list[tuple[dict[str, np.ndarray], np.ndarray]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    if len(buf) == 1:
        return buf[0]
    return ({k: np.concatenate([b[0][k] for b in buf]) for k in buf[0][0]},
            np.concatenate([b[1] for b in buf]))


def _show(value) -> str:
    return repr(value.item() if hasattr(value, "item") else value)


def _jet_values(values: np.ndarray) -> np.ndarray:
    """Jet values as floats of their own width (float32 for anything else). They are written
    with ``JET_FORMAT``: 9 significant digits hold a float32 exactly, and a float64 value
    beyond float32's range or precision (pt 1e39, a mass of 1e-320, eta 9999.1235) within
    5e-9 of itself, so that it still meets its bound (issue 23) instead of becoming inf or 0."""
    v = np.asarray(values)
    return v if v.dtype.kind == "f" and v.dtype.itemsize in (4, 8) else v.astype(np.float32)


def _format_of(dtype: np.dtype) -> str:
    """printf format that writes a value of `dtype` so that it reads back exactly."""
    if dtype.kind in "iub":
        return "%d"
    if dtype.kind == "f":
        # repr: the shortest exact float64; '#': float32 1.0 is '1.00000000', not '1', so a
        # float column is not read back as integers
        return "%r" if dtype.itemsize > 4 else "%#.9g"
    return "%s"


class CsvWriter:
    """Write CSV to a path or to stdout (``-``).

    Columns come in the original's order (``info.branch_order``) where it is known; a jagged
    table gets its event index first (``event``, or ``jetzip_event`` when the original has an
    ``event`` column), a table of several jets per row its wide columns again.
    """

    def __init__(self, path: str, info: TableInfo, names: dict[str, str], kept_dtypes: dict[str, str]) -> None:
        self.info = info
        self.names = names
        self.kept_names = list(kept_dtypes)
        self.wide = wide_of(info)
        self.jet_names_kept = [n for n in info.jet_branches if n not in kept_dtypes] if self.wide is None else []
        self.sep = info.extra.get("csv_separator", ",") if info.format == "csv" else ","
        if self.sep not in SEPARATORS:
            self.sep = ","
        self.event = 0
        self.event_column = None
        jet_cols = self.wide.names() if self.wide else list(names.values())
        if info.jagged and not self.wide:
            original = {*info.branch_order, *info.other_branches, *info.kept_branches, *info.jet_branches,
                        *names.values()}
            taken = {*names.values(), *self.kept_names, *self.jet_names_kept}
            if EVENT_COLUMN not in original and EVENT_COLUMN not in taken:
                self.event_column = EVENT_COLUMN
            elif EVENT_COLUMN_OWN not in taken:
                self.event_column = EVENT_COLUMN_OWN
            else:
                raise InputError(f"CSV output: the table has columns {EVENT_COLUMN!r} and {EVENT_COLUMN_OWN!r}, "
                                 "which leaves no name for the event index; write .root or .h5 instead")
        order = {n: i for i, n in enumerate(info.branch_order)}
        body = [*jet_cols, *self.jet_names_kept, *self.kept_names]
        if order:
            body = sorted(body, key=lambda n: order.get(n, len(order)))
        seen = set()
        for n in body:
            if n in seen:
                raise InputError(f"CSV output: two columns named {n!r}")
            seen.add(n)
        self.columns = body
        four = [n for slot in self.wide.jets for n in slot.values()] if self.wide else list(names.values())
        self.jet_cols = set(four)  # written with JET_FORMAT
        header = ([self.event_column] if self.event_column else []) + body
        line = io.StringIO()
        csv.writer(line, delimiter=self.sep, lineterminator="\n").writerow(header)  # quotes only where needed
        self.stream: IO[str] = sys.stdout if path == "-" else open(path, "w", newline="", encoding="utf-8")
        self.own = path != "-"
        self.missing: list[str] = []  # carried branches CSV cannot hold, one line each
        self.stream.write(line.getvalue())

    def write(self, columns: dict[str, np.ndarray], counts: np.ndarray | None,
              kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None,
              carried: dict[str, Any] | None = None) -> None:
        """One chunk. `carried` branches (awkward arrays: other collections, strings) are not
        columns a CSV table holds: they are named in :attr:`missing`, once each."""
        for name in carried or {}:
            line = f"{name} (CSV holds one table of numbers; decompress to .parquet, .root or .h5 to keep it)"
            if line not in self.missing:
                self.missing.append(line)
        jet_kept = jet_kept or {}
        parts: list[np.ndarray] = []
        columns = {role: _jet_values(v) for role, v in columns.items()}
        if self.wide:
            assert counts is not None
            wide_dtype = np.result_type(*columns.values()) if columns else np.float32
            values = {k: np.asarray(v) for k, v in unstack(columns, counts, self.wide, jet_kept,
                                                             dtype=wide_dtype).items()}
            n = len(counts)
            c = None
        else:
            values = {name: columns[role] for role, name in self.names.items()}
            n = len(next(iter(columns.values())))
            c = counts.astype(np.int64) if self.info.jagged and counts is not None else None
            if self.event_column:
                assert c is not None
                parts.append(np.repeat(np.arange(self.event, self.event + len(c), dtype=np.int64), c))
                self.event += len(c)
        for k in self.jet_names_kept:
            values[k] = np.asarray(jet_kept[k])
        for k in self.kept_names:
            v = np.asarray(kept[k])
            if v.ndim != 1:
                raise InputError(f"CSV output cannot hold the kept branch {k}, which has "
                                 f"{int(np.prod(v.shape[1:]))} values per event; write .root or .h5 instead")
            values[k] = np.repeat(v, c) if c is not None else v
        formats = ["%d"] * len(parts)  # the event index
        parts += [values[name] for name in self.columns]
        formats += [JET_FORMAT if name in self.jet_cols else _format_of(values[name].dtype) for name in self.columns]
        if n == 0:
            return
        row = self.sep.join(formats)
        for start in range(0, n, WRITE_ROWS):
            # Python ints and floats: integers stay exact, %-formatting runs in C
            cells = [p[start:start + WRITE_ROWS].tolist() for p in parts]
            self.stream.write("\n".join(map(row.__mod__, zip(*cells))) + "\n")

    def close(self) -> None:
        if self.own:
            self.stream.close()
        else:
            self.stream.flush()
