"""Reading ``.aez`` files of format 1.0 and 2.0 (jetzip 0.1 and the releases before 3.0).

These formats held one table with one jet collection: a ``CHNK`` record per chunk (a 20-byte
head ``u32 chunk_index, u32 n_events, u32 n_jets, u32 counts_nbytes, u32 payload_nbytes``,
zlib-compressed u32 per-event counts, then the codec's payload), an optional ``KEEP``
record after it (the chunk's kept branches: u32 manifest length, JSON manifest of
``{name, dtype, shape, nbytes, per}``, zlib-compressed arrays) and one ``XTRA`` record (the
rest of the source file). ``docs/FORMAT.md`` describes them with format 3.0; this module
turns their records into the chunks :mod:`jetzip.aez` hands out, so one decode loop serves
every version. Nothing here writes.
"""
from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np

from . import container
from .errors import FormatError

CHUNK_HEAD = struct.Struct("<IIIII")
MAX_JETS_PER_CHUNK = 1 << 22
MAX_EVENTS_PER_CHUNK = 1 << 22
MAX_KEEP_BYTES = 1 << 28  # decoded kept branches of one chunk
# A codec cannot store a jet in much less than a bit; a chunk claiming far more jets than its
# payload can hold is refused before it is decoded (a 17 kB file expanding to 1.7 GB).
MAX_JETS_PER_BYTE = 1024


def max_jets_per_byte() -> float:
    """:data:`MAX_JETS_PER_BYTE`, or the environment variable ``JETZIP_MAX_JETS_PER_BYTE``."""
    import os

    try:
        return float(os.environ.get("JETZIP_MAX_JETS_PER_BYTE", MAX_JETS_PER_BYTE))
    except ValueError:
        return float(MAX_JETS_PER_BYTE)


def decode_chunk(record: bytes, index: int, jagged: bool, where: str) -> tuple[int, np.ndarray | None, memoryview]:
    """(n_jets, counts, codec payload) of one CHNK record; sizes checked before allocating."""
    _, n_events, n_jets, n_cnt, n_payload = container.chunk_head(CHUNK_HEAD, record, index, where)
    if CHUNK_HEAD.size + n_cnt + n_payload != len(record):
        raise FormatError(f"{where}: chunk sizes are inconsistent")
    if n_jets > MAX_JETS_PER_CHUNK or n_events > MAX_EVENTS_PER_CHUNK:
        raise FormatError(f"{where}: chunk claims {n_jets} jets in {n_events} events, more than a "
                          f"chunk may hold ({MAX_JETS_PER_CHUNK}); the file is corrupted")
    limit = max_jets_per_byte()
    if n_jets > limit * max(n_payload, 1):
        raise FormatError(f"{where}: chunk claims {n_jets} jets in {n_payload} bytes, more than {limit:g} jets "
                          "per byte (set JETZIP_MAX_JETS_PER_BYTE to read such a file)")
    counts = None
    if jagged:
        counts = decode_counts(record[CHUNK_HEAD.size:CHUNK_HEAD.size + n_cnt], n_events, n_jets, where)
    elif n_events or n_cnt:
        raise FormatError(f"{where}: flat table chunk carries event counts")
    return n_jets, counts, memoryview(record)[CHUNK_HEAD.size + n_cnt:]


def decode_counts(blob: bytes | memoryview, n_events: int, n_jets: int, where: str) -> np.ndarray:
    """zlib-compressed u32 per-event counts that must add up to `n_jets`."""
    raw = container.inflate_exact(blob, 4 * n_events, f"{where}: event counts are corrupted")
    counts = np.frombuffer(raw, "<u4").astype(np.uint32)
    if int(counts.sum(dtype=np.uint64)) != n_jets:
        raise FormatError(f"{where}: event counts do not add up to the chunk's {n_jets} jets")
    return counts


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


def codec_of_header(h: dict, representation: str, units: str) -> dict:
    """The codec configuration of a format 1.0 header (the latent codec's fields at the top)."""
    return {"id": "latent", "model": h["model"], "normalization": h["normalization"],
            "latent": h["latent"], "representation": representation, "units": units, "exact": False}
