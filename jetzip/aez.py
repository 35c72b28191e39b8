"""The ``.aez`` container: chunks of jets stored by a codec, plus everything needed to decode them.

Format version 2.0
==================

All integers are little-endian. The file is the common record framing of
:mod:`jetzip.container` (magic ``\\x89AEZ\\r\\n\\x1a\\n``, u16 major = 2, u16 minor = 0, then
records ``tag | u64 length | payload | crc32``). Records, in order:

``HEAD`` (exactly one, first)
    UTF-8 JSON object (the :class:`Header`): ``jetzip_version``, ``format_version``, ``codec``
    (the codec's configuration: ``id`` plus its parameters, see :mod:`jetzip.codecs`),
    ``source`` (``file`` base name, ``format``, ``tree``, ``layout``, ``collection``,
    ``jagged``, ``counter``, ``columns`` role -> original name, ``representation``, ``units``,
    ``units_inferred``, ``dtypes``, ``kept_branches``, ``jet_branches``, ``branch_order``,
    ``other_branches``, ``extra``), ``chunking`` (``max_jets_per_chunk``, ``counts_codec``).
    No timestamps and no absolute paths, so identical inputs give identical files.
Codec side records (zero or more, right after ``HEAD``)
    Whatever the codec stores once per file: the latent codec's embedded decoder ``DECW``
    (packed as in :func:`jetzip.model.pack_tensors`, SHA-256 in the config).
``CHNK`` (zero or more)
    One chunk of whole events: a 20-byte head ``u32 chunk_index (0, 1, 2, ... in file order),
    u32 n_events, u32 n_jets, u32 counts_nbytes, u32 payload_nbytes``, then the
    zlib-compressed per-event jet counts as u32 (empty for flat tables, where n_events = 0),
    then the codec's payload for the chunk's jets.
``KEEP`` (zero or one after each ``CHNK``, when the source has kept or per-jet branches)
    Branches carried losslessly for the preceding chunk: a u32 length, a JSON list of
    ``{name, dtype, shape, nbytes, per}`` (``per``: ``event`` — one row per event, or per row
    of a flat table — or ``jet``), then each array's zlib-compressed raw bytes.
``XTRA`` (zero or one, before ``TAIL``)
    The rest of the source file (other trees, histograms, ...) as the table reader packed it
    (an opaque blob its writer restores); see :meth:`jetzip.tables.JetSource.extras`.
``TAIL`` (exactly one, last)
    JSON: ``n_jets``, ``n_events``, ``n_chunks``. A file without it is truncated.

Reading rules: every record's CRC-32 is checked before use; a count or length is checked
against the bytes that hold it and against hard ceilings (:data:`MAX_JETS_PER_CHUNK`,
:data:`MAX_EVENTS_PER_CHUNK`, :data:`MAX_KEEP_BYTES`) before memory is allocated; an unknown
record whose tag starts with an upper-case letter makes the reader refuse the file, one
starting with a lower-case letter is skipped.

Versioning: a new minor version may only add ancillary (lower-case) records or optional JSON
keys; anything a 2.x reader would misread bumps the major version, which 2.x readers refuse
with a message naming the version needed. Format 1.0 (jetzip 0.1: the latent codec only,
model/normalization/latent in the header) is still read; its golden files are tested.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from . import __version__, container
from .errors import FormatError, InputError, UnsupportedVersionError, open_input
from .tables.base import TableInfo

FORMAT_MAJOR = 2
FORMAT_MINOR = 0
READABLE_MAJORS = (1, 2)
CHUNK_HEAD = struct.Struct("<IIIII")
KNOWN_TAGS = {"HEAD", "DECW", "CHNK", "KEEP", "XTRA", "TAIL"}
SIDE_TAGS = ("DECW",)
# Ceilings a reader enforces before allocating; compress never writes beyond them.
MAX_JETS_PER_CHUNK = 1 << 22
MAX_EVENTS_PER_CHUNK = 1 << 22
MAX_KEEP_BYTES = 1 << 28  # decoded kept branches of one chunk


@dataclasses.dataclass
class Header:
    """The ``HEAD`` record as a typed object: what is stored and how to decode it."""

    codec: dict[str, Any]
    source: TableInfo
    max_jets_per_chunk: int
    format_version: str = f"{FORMAT_MAJOR}.{FORMAT_MINOR}"
    jetzip_version: str = __version__
    counts_codec: str = "zlib-u32"

    def to_json(self) -> dict[str, Any]:
        return {"jetzip_version": self.jetzip_version, "format_version": self.format_version,
                "codec": self.codec, "source": self.source.to_json(),
                "chunking": {"max_jets_per_chunk": self.max_jets_per_chunk,
                             "counts_codec": self.counts_codec}}

    @classmethod
    def from_json(cls, h: dict[str, Any], major: int, minor: int, where: str) -> "Header":
        """Parse and validate a stored header of format `major`.`minor` (1.0 is converted).

        Raises:
            FormatError: missing or malformed fields, or a version that disagrees with the
                preamble's.
        """
        # The version in the preamble is outside every CRC; the header's copy is inside one.
        if h.get("format_version") != f"{major}.{minor}":
            raise FormatError(f"{where} is corrupted: its preamble says format version "
                              f"{major}.{minor}, its header {h.get('format_version')!r}")
        try:
            source = table_info_from_header(h["source"])
            if major == 1:
                codec = {"id": "latent", "model": h["model"], "normalization": h["normalization"],
                         "latent": h["latent"], "representation": source.representation,
                         "units": source.units, "exact": False}
            else:
                codec = h["codec"]
            chunking = h.get("chunking", {})
            max_jets = int(chunking.get("max_jets_per_chunk", 0))
            if not isinstance(codec, dict) or not isinstance(codec.get("id"), str):
                raise ValueError("codec")
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise FormatError(f"{where}: header is missing or has malformed fields ({exc})") from None
        return cls(codec, source, max_jets, str(h["format_version"]), str(h.get("jetzip_version", "")))


@dataclasses.dataclass
class Chunk:
    """One stored chunk: the codec's payload for `n_jets` jets and what surrounds it."""

    index: int
    n_jets: int
    counts: np.ndarray | None  # (n_events,) uint32; None for flat tables
    payload: bytes | memoryview
    kept: dict[str, np.ndarray]  # per event (or row)
    jet_kept: dict[str, np.ndarray]  # per jet

    @property
    def n_events(self) -> int:
        return len(self.counts) if self.counts is not None else self.n_jets


def encode_chunk(index: int, payload: bytes, n_jets: int, counts: np.ndarray | None) -> bytes:
    if counts is None:
        cnt, n_events = b"", 0
    else:
        cnt, n_events = zlib.compress(np.ascontiguousarray(counts, "<u4").tobytes(), 6), len(counts)
    return CHUNK_HEAD.pack(index, n_events, n_jets, len(cnt), len(payload)) + cnt + payload


def decode_chunk(record: bytes, index: int, jagged: bool, where: str) -> tuple[int, np.ndarray | None, memoryview]:
    """(n_jets, counts, codec payload) of one CHNK record; sizes checked before allocating."""
    if len(record) < CHUNK_HEAD.size:
        raise FormatError(f"{where}: chunk record too short")
    stored_index, n_events, n_jets, n_cnt, n_payload = CHUNK_HEAD.unpack_from(record)
    if stored_index != index:
        raise FormatError(f"{where}: chunk number {stored_index} found where chunk {index} belongs "
                          "(chunks reordered, duplicated or missing)")
    if CHUNK_HEAD.size + n_cnt + n_payload != len(record):
        raise FormatError(f"{where}: chunk sizes are inconsistent")
    if n_jets > MAX_JETS_PER_CHUNK or n_events > MAX_EVENTS_PER_CHUNK:
        raise FormatError(f"{where}: chunk claims {n_jets} jets in {n_events} events, more than a "
                          f"chunk may hold ({MAX_JETS_PER_CHUNK}); the file is corrupted")
    counts = None
    if jagged:
        d = zlib.decompressobj()
        try:
            raw = d.decompress(record[CHUNK_HEAD.size:CHUNK_HEAD.size + n_cnt], 4 * n_events + 1)
        except zlib.error:
            raise FormatError(f"{where}: event counts are corrupted") from None
        if len(raw) != 4 * n_events or not d.eof:
            raise FormatError(f"{where}: event counts are corrupted")
        counts = np.frombuffer(raw, "<u4").astype(np.uint32)
        if int(counts.sum(dtype=np.uint64)) != n_jets:
            raise FormatError(f"{where}: event counts do not add up to the chunk's {n_jets} jets")
    elif n_events or n_cnt:
        raise FormatError(f"{where}: flat table chunk carries event counts")
    return n_jets, counts, memoryview(record)[CHUNK_HEAD.size + n_cnt:]


def encode_kept(kept: dict[str, np.ndarray], jet_kept: dict[str, np.ndarray] | None = None) -> bytes:
    """The KEEP payload for one chunk: per-event (or row) and per-jet arrays."""
    manifest, blobs = [], []
    for per, arrays in (("event", kept), ("jet", jet_kept or {})):
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            little = arr.dtype.newbyteorder("<")
            blob = zlib.compress(arr.astype(little).tobytes(), 6)
            manifest.append({"name": name, "dtype": little.str, "shape": list(arr.shape),
                             "nbytes": len(blob), "per": per})
            blobs.append(blob)
    head = json.dumps(manifest, separators=(",", ":")).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def decode_kept(payload: bytes, n_rows: int, n_jets: int, where: str,
                dtypes: dict[str, str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(per-event arrays, per-jet arrays) of one KEEP record, every size checked first.

    `dtypes` (the header's source dtypes): each array must have the dtype the header says."""
    try:
        (n,) = struct.unpack_from("<I", payload)
        manifest = json.loads(payload[4:4 + n])
        if not isinstance(manifest, list):
            raise ValueError("manifest is not a list")
        offset = 4 + n
        out: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
        total = 0
        for m in manifest:
            dtype = np.dtype(str(m["dtype"]))
            if dtype.kind not in "biuf" or dtype.itemsize > 8:
                raise ValueError(f"unsupported dtype {dtype}")
            per = str(m.get("per", "event"))
            if per not in ("event", "jet"):
                raise ValueError(f"unknown per {per!r}")
            rows = n_rows if per == "event" else n_jets
            shape = tuple(int(s) for s in m["shape"])
            if shape != (rows,):  # one value per event (or row, or jet): what writers restore
                raise ValueError(f"shape {list(shape)} does not fit {rows} rows")
            size = math.prod(shape) * dtype.itemsize  # Python ints: np.prod would wrap around
            total += size
            if total > MAX_KEEP_BYTES:
                raise ValueError(f"more than {MAX_KEEP_BYTES >> 20} MiB of kept branches in one chunk")
            nbytes = int(m["nbytes"])
            if nbytes < 0 or offset + nbytes > len(payload):
                raise ValueError("record too short")
            d = zlib.decompressobj()
            raw = d.decompress(payload[offset:offset + nbytes], size + 1)
            if len(raw) != size or not d.eof:
                raise ValueError("size mismatch")
            name = str(m["name"])
            if dtypes is not None and name in dtypes and np.dtype(str(dtypes[name])).newbyteorder("<") != dtype:
                raise ValueError(f"branch {name} is {dtype}, the header says {dtypes[name]}")
            target = out[0] if per == "event" else out[1]
            if name in out[0] or name in out[1]:
                raise ValueError(f"branch {name} stored twice")
            target[name] = np.frombuffer(raw, dtype).reshape(shape)
            offset += nbytes
        if offset != len(payload):
            raise ValueError("trailing bytes")
        return out
    except (struct.error, ValueError, TypeError, KeyError, zlib.error, RecursionError,
            OverflowError, AttributeError) as exc:  # int(1e999), or a size beyond what zlib can be asked for
        raise FormatError(f"{where}: kept branches are corrupted ({exc})") from None


class AezWriter:
    """Stream chunks into an open binary file; call :meth:`close` to write the TAIL."""

    def __init__(self, f: BinaryIO, header: Header, side_records: dict[str, bytes] | None = None) -> None:
        self.f = f
        self.jagged = bool(header.source.jagged)
        self.n_jets = self.n_events = self.n_chunks = 0
        self.bytes_written = container.PREAMBLE.size
        self.payload_bytes = 0  # codec payloads only: the size of the jets themselves
        container.write_preamble(f, container.AEZ_MAGIC, FORMAT_MAJOR, FORMAT_MINOR)
        self.bytes_written += container.write_record(f, "HEAD", dumps(header.to_json()))
        for tag, payload in (side_records or {}).items():
            if tag not in SIDE_TAGS:
                raise ValueError(f"unknown side record {tag}")
            self.bytes_written += container.write_record(f, tag, payload)

    def write_chunk(self, payload: bytes, n_jets: int, counts: np.ndarray | None,
                    kept: dict[str, np.ndarray] | None = None,
                    jet_kept: dict[str, np.ndarray] | None = None) -> None:
        if self.jagged != (counts is not None):
            raise ValueError("counts must be given exactly for jagged tables")
        if n_jets > MAX_JETS_PER_CHUNK or (counts is not None and len(counts) > MAX_EVENTS_PER_CHUNK):
            raise ValueError("chunk larger than a reader accepts")
        self.bytes_written += container.write_record(self.f, "CHNK",
                                                     encode_chunk(self.n_chunks, payload, n_jets, counts))
        self.payload_bytes += len(payload)
        if kept or jet_kept:
            self.bytes_written += container.write_record(self.f, "KEEP", encode_kept(kept or {}, jet_kept))
        self.n_jets += n_jets
        self.n_events += len(counts) if counts is not None else n_jets
        self.n_chunks += 1

    def write_extras(self, blob: bytes) -> None:
        self.bytes_written += container.write_record(self.f, "XTRA", blob)

    def close(self) -> dict:
        tail = {"n_jets": self.n_jets, "n_events": self.n_events, "n_chunks": self.n_chunks}
        self.bytes_written += container.write_record(self.f, "TAIL", dumps(tail))
        return tail


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class AezFile:
    """A .aez opened for reading: header and side records on open, chunks streamed on demand.

    Use as a context manager, or call :meth:`close`. Attributes: ``header`` (:class:`Header`),
    ``header_json`` (the stored JSON), ``table`` (:class:`TableInfo`), ``side`` (tag ->
    payload), ``major``/``minor``, ``size``; after :meth:`chunks` has run to the end,
    ``extras`` (bytes or None) and the trailer totals.
    """

    what = ".aez file"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.f: BinaryIO = open_input(self.path)
        try:
            self._open()
            self._open_rest()
        except BaseException:
            self.f.close()
            raise

    def _open(self) -> None:
        where = f"{self.what} {self.path}"
        try:
            self.major, self.minor = container.read_preamble(self.f, container.AEZ_MAGIC, ".aez file",
                                                             FORMAT_MAJOR, str(self.path))
        except UnsupportedVersionError:
            self._check_version_bytes(where)
            raise

    def _check_version_bytes(self, where: str) -> None:
        """A preamble naming a newer version: if the checksummed header says a version this
        jetzip reads, the version bytes are damaged, not new (the preamble has no checksum)."""
        from .model import parse_json

        try:
            self.f.seek(container.PREAMBLE.size)
            head = container.read_record(self.f, 0, container.file_size(self.f), where)
            stated = parse_json(head.payload, where).get("format_version") if head is not None else None
        except FormatError:
            return  # nothing verifiable beyond the preamble: keep the version error
        major = stated.split(".")[0] if isinstance(stated, str) else ""
        if major.isdigit() and int(major) in READABLE_MAJORS:
            raise FormatError(f"{where} is corrupted: its version bytes are damaged (the checksummed header "
                              f"says format {stated})")

    def _open_rest(self) -> None:
        where = f"{self.what} {self.path}"
        if self.major not in READABLE_MAJORS:
            raise FormatError(f"{where}: format version {self.major}.{self.minor} is not readable")
        self.size = container.file_size(self.f)
        head = container.read_record(self.f, 0, self.size, where)
        if head is None or head.tag != "HEAD":
            raise FormatError(f"{where} is truncated or corrupted: no header record")
        from .model import parse_json

        self.header_json = parse_json(head.payload, where)
        self.header = Header.from_json(self.header_json, self.major, self.minor, where)
        self.table = self.header.source
        self.jagged = self.table.jagged
        from .codecs import codec_class

        codec_class(self.header.codec["id"]).check_config(self.header.codec, where)
        self.side: dict[str, bytes] = {}
        index = 1
        embedded = self.major == 1 and bool(self.header.codec["model"].get("embedded"))
        self._data_start = self.f.tell()
        while True:  # side records sit between HEAD and the first chunk
            rec = container.read_record(self.f, index, self.size, where)
            if rec is None or rec.tag not in SIDE_TAGS:
                break
            if rec.tag in self.side:
                raise FormatError(f"{where}: side record {rec.tag} appears twice")
            self.side[rec.tag] = rec.payload
            index += 1
            self._data_start = self.f.tell()
        if self.major == 1 and embedded and "DECW" not in self.side:
            raise FormatError(f"{where} is truncated or corrupted: embedded decoder missing")
        if self.major >= 2 and codec_class(self.header.codec["id"]).side_tags(self.header.codec) != set(self.side):
            raise FormatError(f"{where} is truncated or corrupted: embedded decoder missing or unexpected")
        self._first_index = index
        self._tail: dict | None = None
        self.extras: bytes | None = None

    @property
    def codec_config(self) -> dict[str, Any]:
        return self.header.codec

    def codec(self, **runtime: Any):
        """The codec that decodes this file (see :meth:`jetzip.codecs.Codec.from_config`)."""
        from .codecs import get_codec

        return get_codec(self.header.codec, side_records=self.side, path=str(self.path), **runtime)

    def __enter__(self) -> "AezFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.f.close()

    def chunks(self) -> Iterator[Chunk]:
        """Yield every chunk, verifying each record; checks the TAIL totals at the end."""
        where = f"{self.what} {self.path}"
        self.f.seek(self._data_start)
        n_jets = n_events = n_chunks = 0
        pending: Chunk | None = None
        kept_layout: dict[str, tuple] | None = None  # dtype and row shape, as in the first chunk
        extras_seen = False  # per pass: callers may read the chunks more than once
        expected_event = set(self.table.kept_branches)
        expected_jet = set(self.table.jet_branches)
        for rec in container.iter_records(self.f, where, self._first_index):
            if rec.tag == "CHNK":
                if pending is not None:
                    yield self._complete(pending, where)
                cwhere = f"{where}: chunk {n_chunks} (record {rec.index}, byte {rec.offset})"
                nj, counts, payload = decode_chunk(rec.payload, n_chunks, self.jagged, cwhere)
                pending = Chunk(n_chunks, nj, counts, payload, {}, {})
                n_chunks += 1
                n_jets += nj
                n_events += pending.n_events
            elif rec.tag == "KEEP":
                if pending is None or pending.kept or pending.jet_kept:
                    raise FormatError(f"{where}: misplaced KEEP record {rec.index}")
                pending.kept, pending.jet_kept = decode_kept(
                    rec.payload, pending.n_events, pending.n_jets,
                    f"{where}: chunk {pending.index} (record {rec.index})", self.table.dtypes)
                if set(pending.kept) != expected_event or set(pending.jet_kept) != expected_jet:
                    raise FormatError(f"{where}: chunk {pending.index} kept branches differ from header")
                # Every chunk must hold the same arrays, or they cannot be joined or written.
                layout = {k: (v.dtype.str, v.shape[1:]) for k, v in {**pending.kept, **pending.jet_kept}.items()}
                if kept_layout is not None and layout != kept_layout:
                    raise FormatError(f"{where}: chunk {pending.index} kept branches change dtype "
                                      f"or shape (record {rec.index})")
                kept_layout = layout
            elif rec.tag == "XTRA" and self.major >= 2:
                if pending is not None:
                    yield self._complete(pending, where)
                    pending = None
                if extras_seen:
                    raise FormatError(f"{where}: more than one XTRA record")
                extras_seen = True
                self.extras = rec.payload
            elif rec.tag == "TAIL":
                if pending is not None:
                    yield self._complete(pending, where)
                    pending = None
                from .model import parse_json

                tail = parse_json(rec.payload, where)
                if tail.get("n_jets") != n_jets or tail.get("n_events") != n_events \
                        or tail.get("n_chunks") != n_chunks:
                    raise FormatError(f"{where}: totals in the trailer do not match the chunks")
                if self.f.read(1):
                    raise FormatError(f"{where}: unexpected bytes after the trailer")
                self._tail = tail
                return
            elif rec.tag in KNOWN_TAGS or container.is_critical(rec.tag):
                raise FormatError(f"{where}: unexpected record {rec.tag} at byte {rec.offset}"
                                  + ("" if rec.tag in KNOWN_TAGS else
                                     " (written by a newer jetzip? upgrade to read it)"))
        raise FormatError(f"{where} is truncated: it ends after {n_chunks} chunks without a trailer")

    def chunk_offsets(self) -> list[int]:
        """Byte offset of every CHNK record, found by hopping over record heads (no payload is
        read, so this is fast on any file); the basis of :meth:`read_chunk`."""
        where = f"{self.what} {self.path}"
        offsets = []
        pos = self._data_start
        size = self.size if self.size is not None else container.file_size(self.f)
        head = container.RECORD_HEAD
        while size is not None and pos + head.size <= size:
            self.f.seek(pos)
            raw_tag, length = head.unpack(self.f.read(head.size))
            if length > container.MAX_RECORD_BYTES or pos + head.size + length + container.CRC.size > size:
                raise FormatError(f"{where} is truncated or corrupted at byte {pos}")
            if raw_tag == b"CHNK":
                offsets.append(pos)
            pos += head.size + length + container.CRC.size
        return offsets

    def read_chunk(self, index: int, offsets: list[int] | None = None) -> Chunk:
        """Chunk `index` alone (CRC-checked, with its kept branches), by seeking to it."""
        where = f"{self.what} {self.path}"
        offsets = self.chunk_offsets() if offsets is None else offsets
        if not 0 <= index < len(offsets):
            raise InputError(f"{self.path} has {len(offsets)} chunks; there is no chunk {index}")
        self.f.seek(offsets[index])
        rec = container.read_record(self.f, index, self.size, where)
        assert rec is not None and rec.tag == "CHNK"
        cwhere = f"{where}: chunk {index} (byte {offsets[index]})"
        nj, counts, payload = decode_chunk(rec.payload, index, self.jagged, cwhere)
        chunk = Chunk(index, nj, counts, payload, {}, {})
        nxt = container.read_record(self.f, index + 1, self.size, where)
        if nxt is not None and nxt.tag == "KEEP":
            chunk.kept, chunk.jet_kept = decode_kept(nxt.payload, chunk.n_events, chunk.n_jets, cwhere,
                                                     self.table.dtypes)
        return self._complete(chunk, where)

    def _complete(self, chunk: Chunk, where: str) -> Chunk:
        if (self.table.kept_branches or self.table.jet_branches) and not (chunk.kept or chunk.jet_kept):
            raise FormatError(f"{where}: chunk {chunk.index} lacks its kept branches")
        return chunk

    def verify(self) -> dict:
        """Read and check every record (and the embedded decoder's hash) without decoding;
        returns the trailer totals."""
        from .codecs import codec_class

        codec_class(self.header.codec["id"]).verify_side_records(self.header.codec, self.side,
                                                                 f"{self.what} {self.path}")
        for _ in self.chunks():
            pass
        assert self._tail is not None
        return dict(self._tail)

    @property
    def tail(self) -> dict | None:
        return None if self._tail is None else dict(self._tail)


def table_info_from_header(source: dict) -> TableInfo:
    """Rebuild and validate the source table description stored in a header."""
    from .features import REPRESENTATIONS, UNIT_SCALE
    from .tables import FORMATS

    info = TableInfo.from_json(source)
    if not isinstance(info.jagged, bool) or info.format not in FORMATS:
        raise ValueError("source.jagged/format")
    if info.representation not in REPRESENTATIONS or \
            set(info.columns) != set(REPRESENTATIONS[info.representation]):
        raise ValueError("source.representation/columns")
    if info.units not in UNIT_SCALE:
        raise ValueError("source.units")
    names = [*info.columns.values(), *info.kept_branches, *info.jet_branches, info.tree or "",
             info.counter or "", info.collection, *info.branch_order]
    if not all(isinstance(n, str) for n in names) or not isinstance(info.dtypes, dict) \
            or not isinstance(info.other_branches, list) or not isinstance(info.extra, dict):
        raise ValueError("source names")
    stored = [*info.columns.values(), *info.kept_branches, *info.jet_branches]
    if info.counter:
        stored.append(info.counter)
    if len(set(stored)) != len(stored):
        raise ValueError("a column name appears twice (jet columns, counter, kept branches)")
    for k in [*info.kept_branches, *info.jet_branches]:
        if np.dtype(str(info.dtypes.get(k, "float64"))).kind not in "biuf":
            raise ValueError(f"kept branch {k} dtype")
    return info


def open_aez(path: str | os.PathLike) -> AezFile:
    """Open a .aez file for reading (header parsed and checked, data streamed later).

    Raises:
        InputError: `path` is not a path, does not exist or cannot be opened.
        FormatError: not a .aez file, or its header is damaged.
        UnsupportedVersionError: written by a newer jetzip.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path, not {path!r}")
    return AezFile(path)


def read_aez(path: str | os.PathLike) -> dict[str, Any]:
    """Load a whole .aez into memory, without decoding jets.

    Returns:
        ``header`` (the stored JSON), ``tail`` (totals), ``counts`` (per-event jet counts, or
        None for flat tables), ``kept`` and ``jet_kept`` (branch -> array), ``payloads`` (the
        codec payload of each chunk), and for latent files ``latents`` (n_jets, dim).
    """
    with open_aez(path) as aez:
        chunks = list(aez.chunks())
        counts = (np.concatenate([c.counts for c in chunks]) if aez.jagged and chunks
                  else (np.zeros(0, np.uint32) if aez.jagged else None))
        out: dict[str, Any] = {
            "header": aez.header_json, "tail": aez.tail, "counts": counts,
            "kept": {k: np.concatenate([c.kept[k] for c in chunks]) for k in aez.table.kept_branches} if chunks else {},
            "jet_kept": ({k: np.concatenate([c.jet_kept[k] for c in chunks]) for k in aez.table.jet_branches}
                         if chunks else {}),
            "payloads": [bytes(c.payload) for c in chunks],
        }
        from .codecs import codec_class

        out.update(codec_class(aez.header.codec["id"]).payload_arrays(aez.header.codec, chunks))
        return out
