"""Carried branches: every value that no codec codes, stored losslessly and compactly.

Each chunk of a table (entries ``[a, b)``) stores the branches it carries in one or more
*groups* (:func:`group_of`: one per collection prefix such as ``Muon_``, so that a reader
asking for one collection decompresses only its group). A group is one compressed block::

    u8  method                1 = LZMA2 (raw stream, Python's lzma), 2 = zstd
    u8  level                 the method's preset or level (informative)
    u32 raw_nbytes            size of the block once decompressed (checked before allocating)
    ... compressed block      u32 manifest_nbytes | manifest (UTF-8 JSON) | buffers

The manifest is a JSON list, one entry per branch, in the order given::

    {"name": str, "per": "entry" | "jet", "coll": int (per == "jet": the collection),
     "length": int, "form": awkward form JSON, "buffers": [[key, dtype, count, transform, ref], ...]}

A branch is any array with one entry per event (or row): plain numpy arrays (with a
fixed inner shape) as well as awkward arrays of any type (lists, nested lists, strings,
records), by :func:`awkward.to_buffers`. ``per == "jet"`` branches hold one value per jet of
a coded collection of the same chunk (NanoAOD ``Jet_btagDeepFlavB``); their offsets are the
collection's counts and are not stored again.

Typed transforms before the compressor (as ROOT's RNTuple and Blosc do), chosen by
measurement on the files in ``../shared`` (``examples/measure_carried.py``):

- ``counts``: an offsets buffer (int64, monotonic) stored as per-entry counts
  ``diff(offsets)`` in the narrowest unsigned type; offsets are rebuilt by a cumulative
  sum, so they are monotonic by construction;
- ``shuffle``: the bytes of a numeric buffer regrouped by byte plane (for zstd; LZMA's
  own literal coding gains nothing from it and it is not applied there);
- ``raw``: as is (bytes, booleans);
- ``ref``: an identical earlier buffer of the same group is not stored again (NanoAOD's
  ``Muon_*`` branches share one offsets array).

Reading validates everything before use: the method, ``raw_nbytes`` against a ceiling
(:data:`MAX_GROUP_BYTES`), the manifest's names, dtypes (an allow-list), counts and
lengths against the stream and the chunk, and the awkward form (an allow-list of node
types); the arrays built are checked with :func:`awkward.validity_error`.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import re
import struct
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import FormatError

METHOD_LZMA, METHOD_ZSTD = 1, 2
METHODS = {"lzma": METHOD_LZMA, "zstd": METHOD_ZSTD}
DEFAULT_LEVEL = {METHOD_LZMA: 6, METHOD_ZSTD: 9}
GROUP_HEAD = struct.Struct("<BBI")
MAX_GROUP_BYTES = 1 << 28  # one group of one chunk, decompressed
ALLOWED_DTYPES = {"bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                  "float16", "float32", "float64"}
ALLOWED_FORMS = {"NumpyArray", "ListOffsetArray", "ListArray", "RegularArray", "RecordArray",
                 "IndexedOptionArray", "IndexedArray", "ByteMaskedArray", "BitMaskedArray",
                 "UnmaskedArray", "EmptyArray"}
_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9]*)[_.]")


def group_of(name: str) -> str:
    """The group a branch is stored in: its collection prefix (``Muon_pt`` -> ``Muon``,
    ``Jet.PT`` -> ``Jet``), or ``""`` for branches without one."""
    m = _PREFIX.match(name)
    return m.group(1) if m else ""


def lzma_filters(level: int, raw_nbytes: int) -> list[dict[str, Any]]:
    """The LZMA2 filter of a block of `raw_nbytes`: the preset's settings with a dictionary no
    larger than the data (the decoder allocates the whole dictionary: 64 MiB at preset 9)."""
    dict_size = 1 << 12
    while dict_size < raw_nbytes and dict_size < (1 << 26):
        dict_size <<= 1
    return [{"id": lzma.FILTER_LZMA2, "preset": min(max(int(level), 0), 9), "dict_size": dict_size}]


def compress(raw: bytes, method: int, level: int | None = None) -> bytes:
    """One group block: head + compressed `raw` (see the module doc)."""
    level = DEFAULT_LEVEL[method] if level is None else int(level)
    if method == METHOD_LZMA:
        body = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=lzma_filters(level, len(raw)))
    elif method == METHOD_ZSTD:
        import zstandard

        body = zstandard.ZstdCompressor(level=level, write_content_size=False, write_checksum=False).compress(raw)
    else:
        raise ValueError(f"unknown carried-data method {method}")
    return GROUP_HEAD.pack(method, level, len(raw)) + body


def decompress(block: bytes | memoryview, where: str, limit: int = MAX_GROUP_BYTES) -> bytes:
    """The raw bytes of one group block, its size checked before anything is allocated.

    Raises:
        FormatError: unknown method, a size beyond `limit`, or a damaged stream.
    """
    if len(block) < GROUP_HEAD.size:
        raise FormatError(f"{where}: carried branches are truncated")
    method, level, n = GROUP_HEAD.unpack_from(block)
    if n > limit:
        raise FormatError(f"{where}: carried branches claim {n} bytes, more than a chunk may hold ({limit})")
    body = bytes(block[GROUP_HEAD.size:])
    try:
        if method == METHOD_LZMA:
            d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=lzma_filters(level, n))
            raw = d.decompress(body, max_length=n + 1)
            ok = len(raw) == n and (d.eof or not d.unused_data)
        elif method == METHOD_ZSTD:
            raw = _bounded_zstd(body, n)
            ok = len(raw) == n
        else:
            raise FormatError(f"{where}: unknown carried-data method {method}")
    except (lzma.LZMAError, ValueError, MemoryError) as exc:
        raise FormatError(f"{where}: carried branches are corrupted ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - zstandard.ZstdError and friends
        if type(exc).__name__.startswith("Zstd"):
            raise FormatError(f"{where}: carried branches are corrupted ({exc})") from None
        raise
    if not ok:
        raise FormatError(f"{where}: carried branches do not have their stated size")
    return raw


def _bounded_zstd(body: bytes, n: int) -> bytes:
    """zstd decompression that stops one byte after `n` (a stream claiming less than it
    holds cannot make us allocate more)."""
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(body)
    parts, got = [], 0
    while got <= n:
        piece = reader.read(min(1 << 20, n + 1 - got))
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


def type_name(array: Any) -> str:
    """The type of one entry of a branch, as headers record it: a numpy dtype name
    (``float32``; ``(3,)float64`` for a fixed inner shape) or an awkward type string
    (``var * float32``, ``string``)."""
    if isinstance(array, np.ndarray):
        return array.dtype.name if array.ndim == 1 else f"{array.shape[1:]}{array.dtype.name}".replace(" ", "")
    return str(array.type.content)


def type_matches(array: Any, declared: str) -> bool:
    """Whether a branch's values have the type its header declares (a dtype name for plain
    numbers; for lists, the type string or the dtype of their values)."""
    name = type_name(array)
    want = canonical_type(str(declared))
    return name == want or name == f"var * {want}" or (want == "string" and name == "string")


def canonical_type(declared: str) -> str:
    """A recorded type in the form :func:`type_name` gives (``<f4`` -> ``float32``)."""
    try:
        dt = np.dtype(declared)
    except TypeError:
        return declared
    return dt.name if dt.shape == () else declared


# ---------------------------------------------------------------------------------------------
# packing

def _narrow_counts(offsets: np.ndarray) -> np.ndarray:
    counts = np.diff(np.asarray(offsets, np.int64))
    top = int(counts.max()) if len(counts) else 0
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return counts.astype(dt)
    return counts.astype(np.uint64)


def _shuffle(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    size = a.dtype.itemsize
    if size == 1 or a.size == 0:
        return a.tobytes()
    return np.frombuffer(a.tobytes(), np.uint8).reshape(-1, size).T.tobytes()


def _unshuffle(raw: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    size = dtype.itemsize
    if size == 1 or count == 0:
        return np.frombuffer(raw, dtype, count)
    return np.frombuffer(np.frombuffer(raw, np.uint8).reshape(size, count).T.tobytes(), dtype, count)


def _to_buffers(array: Any) -> tuple[dict, int, dict[str, np.ndarray]]:
    import awkward as ak

    if isinstance(array, np.ndarray):
        array = ak.Array(ak.contents.NumpyArray(np.ascontiguousarray(array)))
    form, length, container = ak.to_buffers(array)
    return form.to_dict(), int(length), {k: np.asarray(v) for k, v in container.items()}


def pack_group(branches: Mapping[str, Any], per_jet: Mapping[str, int], method: int,
               level: int | None = None) -> bytes:
    """One compressed group block of carried branches.

    Args:
        branches: name -> numpy array (entries first) or awkward array, in the order to keep.
        per_jet: name -> collection index, for branches holding one value per jet of that
            collection (a flat 1-D numpy array over the chunk's jets of it).
        method: :data:`METHOD_LZMA` or :data:`METHOD_ZSTD`.
        level: the method's preset or level (None: :data:`DEFAULT_LEVEL`).
    """
    manifest: list[dict[str, Any]] = []
    parts: list[bytes] = []
    seen: dict[str, int] = {}
    index = 0
    shuffle = method == METHOD_ZSTD
    for name, array in branches.items():
        form, length, container = _to_buffers(array)
        entry: dict[str, Any] = {"name": name, "per": "jet" if name in per_jet else "entry",
                                 "length": length, "form": form, "buffers": []}
        if name in per_jet:
            entry["coll"] = int(per_jet[name])
        for key, buf in container.items():
            if key.endswith("-offsets") and buf.dtype.kind in "iu" and len(buf) and int(buf[0]) == 0:
                data, transform = _narrow_counts(buf), "counts"
            elif shuffle and buf.dtype.kind in "iuf":
                data, transform = buf, "shuffle"
            else:
                data, transform = buf, "raw"
            blob = _shuffle(data) if transform == "shuffle" else np.ascontiguousarray(data).tobytes()
            digest = hashlib.blake2b(blob + data.dtype.str.encode() + transform.encode(), digest_size=16).hexdigest()
            ref = seen.get(digest, -1)
            if ref < 0:
                seen[digest] = index
                parts.append(blob)
            entry["buffers"].append([key, data.dtype.newbyteorder("<").name if data.dtype.kind != "b" else "bool",
                                     int(data.size), transform, ref])
            index += 1
        manifest.append(entry)
    head = json.dumps(manifest, separators=(",", ":")).encode()
    raw = struct.pack("<I", len(head)) + head + b"".join(parts)
    return compress(raw, method, level)


def _check_form(form: Any, where: str, depth: int = 0) -> None:
    if depth > 32 or not isinstance(form, dict) or form.get("class") not in ALLOWED_FORMS:
        raise FormatError(f"{where}: unsupported array type in carried branches")
    for key in ("content",):
        if key in form:
            _check_form(form[key], where, depth + 1)
    contents = form.get("contents")
    if contents is not None:
        if not isinstance(contents, list) or len(contents) > 10_000:
            raise FormatError(f"{where}: unsupported array type in carried branches")
        for c in contents:
            _check_form(c, where, depth + 1)


def unpack_group(block: bytes | memoryview, n_entries: int, n_jets: Mapping[int, int], where: str,
                 names: Iterable[str] | None = None) -> dict[str, Any]:
    """The branches of one group block (name -> numpy array for plain numeric arrays, else an
    awkward array), every size and type checked first.

    Args:
        n_entries: entries of the chunk (every ``per == "entry"`` branch has this length).
        n_jets: collection index -> jets of that collection in the chunk.
        names: only these branches (None: all); the others are not built.

    Raises:
        FormatError: a damaged or inconsistent block.
    """
    import awkward as ak

    raw = decompress(block, where)
    try:
        (n,) = struct.unpack_from("<I", raw)
        manifest = json.loads(raw[4:4 + n])
        if not isinstance(manifest, list):
            raise ValueError("manifest is not a list")
        offset = 4 + n
        buffers: list[np.ndarray] = []
        wanted = None if names is None else set(names)
        out: dict[str, Any] = {}
        for entry in manifest:
            name = entry["name"]
            if not isinstance(name, str) or not name or "\x00" in name:
                raise ValueError("a branch without a usable name")
            if name in out:
                raise ValueError(f"branch {name} stored twice")
            per = entry["per"]
            length = int(entry["length"])
            expected = n_entries if per == "entry" else n_jets.get(int(entry.get("coll", -1)), -1)
            if per not in ("entry", "jet") or length != expected:
                raise ValueError(f"branch {name} has {length} entries, the chunk {expected}")
            container: dict[str, np.ndarray] = {}
            for key, dtype_name, count, transform, ref in entry["buffers"]:
                if str(dtype_name) not in ALLOWED_DTYPES or transform not in ("counts", "shuffle", "raw"):
                    raise ValueError(f"branch {name}: unsupported buffer {dtype_name}/{transform}")
                dtype = np.dtype(str(dtype_name)).newbyteorder("<")
                count = int(count)
                if count < 0:
                    raise ValueError("negative count")
                if int(ref) >= 0:
                    if int(ref) >= len(buffers):
                        raise ValueError("reference to a later buffer")
                    data = buffers[int(ref)]
                    if data.dtype != dtype or data.size != count:
                        raise ValueError("referenced buffer differs")
                else:
                    nbytes = count * dtype.itemsize
                    if offset + nbytes > len(raw):
                        raise ValueError("buffers run past the block")
                    chunk = raw[offset:offset + nbytes]
                    if transform == "shuffle":
                        data = _unshuffle(chunk, dtype, count)
                    else:
                        data = np.frombuffer(chunk, dtype, count)
                    offset += nbytes
                buffers.append(data)
                if transform == "counts":
                    offsets = np.zeros(count + 1, np.int64)
                    np.cumsum(data, out=offsets[1:])
                    container[str(key)] = offsets
                else:
                    container[str(key)] = data
            if wanted is not None and name not in wanted:
                continue
            _check_form(entry["form"], where)
            form = ak.forms.from_dict(entry["form"])
            array = ak.from_buffers(form, length, container, highlevel=True)
            problem = ak.validity_error(array)
            if problem:
                raise ValueError(f"branch {name}: {problem}")
            if isinstance(form, ak.forms.NumpyForm) and not form.parameters:
                out[name] = np.asarray(ak.to_numpy(array))
            else:
                out[name] = array
        if offset != len(raw):
            raise ValueError("trailing bytes")
        return out
    except FormatError:
        raise
    except (struct.error, ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError,
            AttributeError, MemoryError) as exc:
        raise FormatError(f"{where}: carried branches are corrupted ({exc})") from None
