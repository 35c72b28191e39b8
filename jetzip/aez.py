"""The ``.aez`` container: 3-float latents per jet, plus everything needed to decode them.

Format version 1.0
==================

All integers are little-endian. The file is the common record framing of
:mod:`jetzip.container` (magic ``\\x89AEZ\\r\\n\\x1a\\n``, u16 major = 1, u16 minor = 0, then
records ``tag | u64 length | payload | crc32``). Records, in order:

``HEAD`` (exactly one, first)
    UTF-8 JSON object: ``jetzip_version``, ``format_version``, ``model`` (``name``, ``arch``,
    ``weights_sha256`` of the full model, ``decoder_sha256``, ``embedded``,
    ``training_ranges``), ``normalization`` (``kind``, ``shift``, ``scale``), ``latent``
    (``dim``, ``dtype`` float32|float16), ``source`` (``file`` base name, ``format``, ``tree``,
    ``layout``, ``collection``, ``jagged``, ``counter``, ``columns`` role -> original name,
    ``representation``, ``units``, ``units_inferred``, ``dtypes``, ``kept_branches``,
    ``other_branches``), ``chunking`` (``max_jets_per_chunk``, ``counts_codec``).
    No timestamps and no absolute paths, so identical inputs give identical files.
``DECW`` (one, only when ``model.embedded``)
    The decoder weights, packed as in :func:`jetzip.model.pack_tensors`; their SHA-256 is
    ``model.decoder_sha256``.
``CHNK`` (zero or more)
    One chunk of whole events: a 20-byte head ``u32 chunk_index (0, 1, 2, ... in file order),
    u32 n_events, u32 n_jets, u32 counts_nbytes, u32 latents_nbytes``, then the zlib-compressed per-event jet counts as u32 (empty for flat
    tables, where n_events = 0), then ``n_jets x dim`` latents of ``latent.dtype`` in C order.
``KEEP`` (zero or one after each ``CHNK``, only when ``source.kept_branches`` is non-empty)
    Event-level branches carried losslessly for the preceding chunk: a u32 length, a JSON list
    of ``{name, dtype, shape, nbytes}``, then each array's zlib-compressed raw bytes.
``TAIL`` (exactly one, last)
    JSON: ``n_jets``, ``n_events``, ``n_chunks``. A file without it is truncated.

Reading rules: every record's CRC-32 is checked before use; a count or length is checked
against the bytes that hold it before memory is allocated; an unknown record whose tag starts
with an upper-case letter makes a version-1 reader refuse the file, one starting with a
lower-case letter is skipped.

Versioning: a new minor version may only add ancillary (lower-case) records or optional JSON
keys; anything a 1.x reader would misread bumps the major version, which 1.x readers refuse
with a message naming the version needed.
"""
from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from . import container
from .errors import FormatError, InputError, ModelMismatchError
from .features import Normalization
from .model import Architecture, Model, load_model, parse_json, unpack_tensors
from .tables.base import TableInfo

FORMAT_MAJOR = 1
FORMAT_MINOR = 0
LATENT_DTYPES = {"float32": "<f4", "float16": "<f2"}
CHUNK_HEAD = struct.Struct("<IIIII")
KNOWN_TAGS = {"HEAD", "DECW", "CHNK", "KEEP", "TAIL"}


@dataclass
class Chunk:
    """One chunk of decoded-to-latent jets: per-event counts (None for flat tables)."""

    latents: np.ndarray  # (n_jets, dim)
    counts: np.ndarray | None  # (n_events,) uint32
    kept: dict[str, np.ndarray]
    index: int


def encode_chunk(index: int, latents: np.ndarray, counts: np.ndarray | None, dtype: str) -> bytes:
    lat = np.ascontiguousarray(latents, dtype=LATENT_DTYPES[dtype]).tobytes()
    if counts is None:
        cnt, n_events = b"", 0
    else:
        cnt, n_events = zlib.compress(np.ascontiguousarray(counts, "<u4").tobytes(), 6), len(counts)
    return CHUNK_HEAD.pack(index, n_events, len(latents), len(cnt), len(lat)) + cnt + lat


def decode_chunk(payload: bytes, index: int, dim: int, dtype: str, jagged: bool,
                 where: str) -> tuple[np.ndarray, np.ndarray | None]:
    if len(payload) < CHUNK_HEAD.size:
        raise FormatError(f"{where}: chunk record too short")
    stored_index, n_events, n_jets, n_cnt, n_lat = CHUNK_HEAD.unpack_from(payload)
    if stored_index != index:
        raise FormatError(f"{where}: chunk number {stored_index} found where chunk {index} belongs "
                          "(chunks reordered, duplicated or missing)")
    itemsize = np.dtype(LATENT_DTYPES[dtype]).itemsize
    if CHUNK_HEAD.size + n_cnt + n_lat != len(payload) or n_lat != n_jets * dim * itemsize:
        raise FormatError(f"{where}: chunk sizes are inconsistent")
    counts = None
    if jagged:
        d = zlib.decompressobj()
        try:
            raw = d.decompress(payload[CHUNK_HEAD.size:CHUNK_HEAD.size + n_cnt], 4 * n_events + 1)
        except zlib.error:
            raise FormatError(f"{where}: event counts are corrupted") from None
        if len(raw) != 4 * n_events or not d.eof:
            raise FormatError(f"{where}: event counts are corrupted")
        counts = np.frombuffer(raw, "<u4").astype(np.uint32)
        if int(counts.sum(dtype=np.uint64)) != n_jets:
            raise FormatError(f"{where}: event counts do not add up to the chunk's {n_jets} jets")
    elif n_events or n_cnt:
        raise FormatError(f"{where}: flat table chunk carries event counts")
    lat = np.frombuffer(payload, LATENT_DTYPES[dtype], count=n_jets * dim,
                        offset=CHUNK_HEAD.size + n_cnt).reshape(n_jets, dim)
    return lat, counts


def encode_kept(arrays: dict[str, np.ndarray]) -> bytes:
    manifest, blobs = [], []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        blob = zlib.compress(arr.astype(arr.dtype.newbyteorder("<")).tobytes(), 6)
        manifest.append({"name": name, "dtype": arr.dtype.newbyteorder("<").str,
                         "shape": list(arr.shape), "nbytes": len(blob)})
        blobs.append(blob)
    head = json.dumps(manifest, separators=(",", ":")).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def decode_kept(payload: bytes, n_rows: int, where: str) -> dict[str, np.ndarray]:
    try:
        (n,) = struct.unpack_from("<I", payload)
        manifest = json.loads(payload[4:4 + n])
        offset = 4 + n
        out = {}
        for m in manifest:
            dtype = np.dtype(str(m["dtype"]))
            if dtype.kind not in "biuf" or dtype.itemsize > 8:
                raise ValueError(f"unsupported dtype {dtype}")
            shape = tuple(int(s) for s in m["shape"])
            if not shape or shape[0] != n_rows or len(shape) > 3 or min(shape) < 0:
                raise ValueError(f"shape {list(shape)} does not fit {n_rows} rows")
            size = math.prod(shape) * dtype.itemsize  # Python ints: np.prod would wrap around
            nbytes = int(m["nbytes"])
            if nbytes < 0 or offset + nbytes > len(payload):
                raise ValueError("record too short")
            d = zlib.decompressobj()
            raw = d.decompress(payload[offset:offset + nbytes], size + 1)
            if len(raw) != size or not d.eof:
                raise ValueError("size mismatch")
            out[str(m["name"])] = np.frombuffer(raw, dtype).reshape(shape)
            offset += nbytes
        if offset != len(payload):
            raise ValueError("trailing bytes")
        return out
    except (struct.error, ValueError, TypeError, KeyError, zlib.error, RecursionError,
            OverflowError) as exc:  # int(1e999), or a size beyond what zlib can be asked for
        raise FormatError(f"{where}: kept branches are corrupted ({exc})") from None


class AezWriter:
    """Stream chunks into an open binary file; call :meth:`close` to write the TAIL."""

    def __init__(self, f: BinaryIO, header: dict, decoder_payload: bytes | None) -> None:
        self.f = f
        self.dtype = header["latent"]["dtype"]
        self.jagged = bool(header["source"]["jagged"])
        self.n_jets = self.n_events = self.n_chunks = 0
        self.bytes_written = container.PREAMBLE.size
        container.write_preamble(f, container.AEZ_MAGIC, FORMAT_MAJOR, FORMAT_MINOR)
        self.bytes_written += container.write_record(f, "HEAD", dumps(header))
        if decoder_payload is not None:
            self.bytes_written += container.write_record(f, "DECW", decoder_payload)

    def write_chunk(self, latents: np.ndarray, counts: np.ndarray | None,
                    kept: dict[str, np.ndarray] | None = None) -> None:
        if self.jagged != (counts is not None):
            raise ValueError("counts must be given exactly for jagged tables")
        self.bytes_written += container.write_record(self.f, "CHNK",
                                                     encode_chunk(self.n_chunks, latents, counts, self.dtype))
        if kept:
            self.bytes_written += container.write_record(self.f, "KEEP", encode_kept(kept))
        self.n_jets += len(latents)
        self.n_events += len(counts) if counts is not None else len(latents)
        self.n_chunks += 1

    def close(self) -> dict:
        tail = {"n_jets": self.n_jets, "n_events": self.n_events, "n_chunks": self.n_chunks}
        self.bytes_written += container.write_record(self.f, "TAIL", dumps(tail))
        return tail


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class AezFile:
    """A .aez opened for reading: header on open, chunks streamed and verified on demand.

    Use as a context manager, or call :meth:`close`.
    """

    what = ".aez file"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.f: BinaryIO = open(self.path, "rb")
        except FileNotFoundError:
            raise InputError(f"{self.path} does not exist") from None
        except IsADirectoryError:
            raise InputError(f"{self.path} is a directory") from None
        except OSError as exc:
            raise InputError(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            self._open()
        except BaseException:
            self.f.close()
            raise

    def _open(self) -> None:
        where = f"{self.what} {self.path}"
        self.major, self.minor = container.read_preamble(self.f, container.AEZ_MAGIC, ".aez file",
                                                         FORMAT_MAJOR, str(self.path))
        self.size = container.file_size(self.f)
        head = container.read_record(self.f, 0, self.size, where)
        if head is None or head.tag != "HEAD":
            raise FormatError(f"{where} is truncated or corrupted: no header record")
        self.header = parse_json(head.payload, where)
        self._validate_header(where)
        self.decoder_payload: bytes | None = None
        self._data_start = self.f.tell()
        if self.header["model"].get("embedded"):
            rec = container.read_record(self.f, 1, self.size, where)
            if rec is None or rec.tag != "DECW":
                raise FormatError(f"{where} is truncated or corrupted: embedded decoder missing")
            self.decoder_payload = rec.payload
            self._data_start = self.f.tell()
        self._first_index = 2 if self.decoder_payload is not None else 1
        self._tail: dict | None = None

    def _validate_header(self, where: str) -> None:
        h = self.header
        try:
            self.arch = Architecture.from_json(h["model"]["arch"])
            self.normalization = Normalization.from_json(h["normalization"])
            self.latent_dtype = str(h["latent"]["dtype"])
            self.latent_dim = int(h["latent"]["dim"])
            self.table = table_info_from_header(h["source"])
            self.jagged = self.table.jagged
            self.source = h["source"]
            self.kept_branches = list(self.table.kept_branches)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise FormatError(f"{where}: header is missing or has malformed fields ({exc})") from None
        # The version in the preamble is outside every CRC; the header's copy is inside one.
        if h.get("format_version") != f"{self.major}.{self.minor}":
            raise FormatError(f"{where} is corrupted: its preamble says format version "
                              f"{self.major}.{self.minor}, its header {h.get('format_version')!r}")
        if self.latent_dtype not in LATENT_DTYPES:
            raise FormatError(f"{where}: unsupported latent dtype {self.latent_dtype!r}")
        if self.latent_dim != self.arch.latent:
            raise FormatError(f"{where}: latent size {self.latent_dim} does not match the architecture")

    def __enter__(self) -> "AezFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.f.close()

    @property
    def model_sha256(self) -> str:
        return str(self.header["model"].get("weights_sha256", ""))

    def decoder_model(self, model: Model | str | os.PathLike | None = None) -> Model:
        """The model to decode with: the embedded decoder, or `model` if its hash matches."""
        if model is not None:
            if not isinstance(model, Model):
                model = load_model(model)
            if model.weights_sha256 != self.model_sha256 and \
                    model.decoder_sha256 != self.header["model"].get("decoder_sha256"):
                raise ModelMismatchError(
                    f"model {model.name} (sha256 {model.weights_sha256[:12]}...) is not the one "
                    f"{self.path} was compressed with (sha256 {self.model_sha256[:12]}...)")
            return Model(model.arch, model.weights, self.normalization, name=model.name)
        if self.decoder_payload is None:
            from .model import default_model_path  # the shipped model, or $JETZIP_MODEL

            default = default_model_path()
            if os.path.isfile(default):
                candidate = load_model(default)
                if candidate.weights_sha256 == self.model_sha256:
                    return Model(candidate.arch, candidate.weights, self.normalization, name=candidate.name)
            raise ModelMismatchError(
                f"{self.path} does not embed its decoder (compressed with --no-embed-model); "
                f"pass --model with the model whose sha256 is {self.model_sha256}")
        weights = unpack_tensors(self.decoder_payload, self.arch.tensor_shapes("decoder"))
        from .model import sha256
        if sha256(self.decoder_payload) != self.header["model"].get("decoder_sha256"):
            raise FormatError(f"{self.what} {self.path}: embedded decoder does not match its SHA-256")
        return Model(self.arch, weights, self.normalization, name=str(self.header["model"].get("name")))

    def chunks(self) -> Iterator[Chunk]:
        """Yield every chunk, verifying each record; checks the TAIL totals at the end."""
        where = f"{self.what} {self.path}"
        self.f.seek(self._data_start)
        n_jets = n_events = n_chunks = 0
        pending: Chunk | None = None
        kept_layout: dict[str, tuple] | None = None  # dtype and row shape, as in the first chunk
        for rec in container.iter_records(self.f, where, self._first_index):
            if rec.tag == "CHNK":
                if pending is not None:
                    yield self._complete(pending, where)
                cwhere = f"{where}: chunk {n_chunks} (record {rec.index}, byte {rec.offset})"
                lat, counts = decode_chunk(rec.payload, n_chunks, self.latent_dim, self.latent_dtype,
                                           self.jagged, cwhere)
                pending = Chunk(lat, counts, {}, n_chunks)
                n_chunks += 1
                n_jets += len(lat)
                n_events += len(counts) if counts is not None else len(lat)
            elif rec.tag == "KEEP":
                if pending is None or pending.kept:
                    raise FormatError(f"{where}: misplaced KEEP record {rec.index}")
                rows = len(pending.counts) if pending.counts is not None else len(pending.latents)
                pending.kept = decode_kept(rec.payload, rows,
                                           f"{where}: chunk {pending.index} (record {rec.index})")
                if set(pending.kept) != set(self.kept_branches):
                    raise FormatError(f"{where}: chunk {pending.index} kept branches differ from header")
                # Every chunk must hold the same arrays, or they cannot be joined or written.
                layout = {k: (v.dtype.str, v.shape[1:]) for k, v in pending.kept.items()}
                if kept_layout is not None and layout != kept_layout:
                    raise FormatError(f"{where}: chunk {pending.index} kept branches change dtype "
                                      f"or shape (record {rec.index})")
                kept_layout = layout
            elif rec.tag == "TAIL":
                if pending is not None:
                    yield self._complete(pending, where)
                    pending = None
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

    def _complete(self, chunk: Chunk, where: str) -> Chunk:
        if self.kept_branches and not chunk.kept:
            raise FormatError(f"{where}: chunk {chunk.index} lacks its kept branches")
        return chunk

    def verify(self) -> dict:
        """Read and check every record without decoding; returns the trailer totals."""
        for _ in self.chunks():
            pass
        assert self._tail is not None
        return dict(self._tail)


def table_info_from_header(source: dict) -> TableInfo:
    """Rebuild and validate the source table description stored in a header."""
    from .features import REPRESENTATIONS, UNIT_SCALE

    info = TableInfo.from_json(source)
    if not isinstance(info.jagged, bool) or info.format not in ("root", "hdf5", "csv"):
        raise ValueError("source.jagged/format")
    if info.representation not in REPRESENTATIONS or \
            set(info.columns) != set(REPRESENTATIONS[info.representation]):
        raise ValueError("source.representation/columns")
    if info.units not in UNIT_SCALE:
        raise ValueError("source.units")
    names = [*info.columns.values(), *info.kept_branches, info.tree or "", info.counter or "",
             info.collection]
    if not all(isinstance(n, str) for n in names) or not isinstance(info.dtypes, dict) \
            or not isinstance(info.other_branches, list) or not isinstance(info.extra, dict):
        raise ValueError("source names")
    for k in info.kept_branches:
        if np.dtype(str(info.dtypes.get(k, "float64"))).kind not in "biuf":
            raise ValueError(f"kept branch {k} dtype")
    return info


def open_aez(path: str | os.PathLike) -> AezFile:
    """Open a .aez file for reading (header parsed and checked, data streamed later)."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path, not {path!r}")
    return AezFile(path)


def read_aez(path: str | os.PathLike) -> dict[str, Any]:
    """Load a whole .aez into memory: header, totals, latents and per-event counts."""
    with open_aez(path) as aez:
        chunks = list(aez.chunks())
        lat = (np.concatenate([c.latents for c in chunks]) if chunks
               else np.zeros((0, aez.latent_dim), LATENT_DTYPES[aez.latent_dtype]))
        counts = (np.concatenate([c.counts for c in chunks]) if aez.jagged and chunks
                  else (np.zeros(0, np.uint32) if aez.jagged else None))
        kept = {k: np.concatenate([c.kept[k] for c in chunks]) for k in aez.kept_branches} if chunks else {}
        return {"header": aez.header, "tail": aez._tail, "latents": lat, "counts": counts,
                "kept": kept}
