"""Carried branches: every value that no codec codes, stored losslessly and compactly.

Each chunk of a table (entries ``[a, b)``) stores the branches it carries in *groups* (the
header lists each group's branches; compress makes one per table, see
:func:`jetzip.api.carried_groups`). A group is one compressed block::

    u8  method                1 = LZMA2 (raw stream, Python's lzma), 2 = zstd
    u8  level                 the method's preset or level (informative)
    u32 raw_nbytes            size of the block once decompressed (checked before allocating)
    ... compressed block      u32 manifest_nbytes | manifest (UTF-8 JSON) | buffers

The manifest is a JSON object; the names are not in it (the header lists each group's
branches, in order), nor the lengths (a branch has one value per entry of the chunk, or, for
the header's per-jet branches, one per jet of its collection)::

    {"forms": [awkward form JSON, ...],   each distinct type once
     "f": [form index of each branch],
     "n": [element count of each buffer],
     "t": "c1ssr...",                     each buffer's transform: c<width> counts, s shuffle, r raw
     "ref": {"7": 3}}                     buffer 7 is buffer 3 (stored once)

A branch's buffers are those its form expects (:meth:`awkward.forms.Form.expected_from_buffers`,
in that order, with those dtypes; counts in the width the code says), stored one after the other.

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
import struct
from typing import Any, Iterable, Iterator, Mapping

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


def _numpy_form(dtype: np.dtype, inner_shape: tuple[int, ...]) -> dict[str, Any]:
    """The awkward form of a plain numpy array (what ``ak.to_buffers`` gives, built directly:
    70,000 columns must not cost 70,000 awkward round trips)."""
    return {"class": "NumpyArray", "primitive": dtype.name, "inner_shape": list(inner_shape), "parameters": {},
            "form_key": "node0"}


def _to_buffers(array: Any) -> tuple[dict, int, dict[str, np.ndarray]]:
    import awkward as ak

    if isinstance(array, np.ndarray) and array.dtype.kind in "biuf" and array.ndim >= 1:
        data = np.ascontiguousarray(array)
        return _numpy_form(data.dtype, data.shape[1:]), len(data), {"node0-data": data.reshape(-1)}
    if isinstance(array, np.ndarray):
        array = ak.Array(ak.contents.NumpyArray(np.ascontiguousarray(array)))
    # packed: to_buffers keeps the whole content under a slice (a chunk of the entries read
    # at once would store all of them, once per chunk)
    form, length, container = ak.to_buffers(ak.to_packed(array))
    return form.to_dict(), int(length), {k: np.asarray(v) for k, v in container.items()}


_CODES = {"counts": "c", "shuffle": "s", "raw": "r"}
_TRANSFORMS = {v: k for k, v in _CODES.items()}
_WIDTHS = {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"}


def pack_group(branches: Mapping[str, Any], method: int, level: int | None = None) -> bytes:
    """One compressed group block of carried branches.

    Args:
        branches: name -> numpy array (entries first, or jets for a per-jet branch) or awkward
            array, in the group's order. The names themselves are not stored: the header's
            group lists them, in this order.
        method: :data:`METHOD_LZMA` or :data:`METHOD_ZSTD`.
        level: the method's preset or level (None: :data:`DEFAULT_LEVEL`).
    """
    forms: list[dict[str, Any]] = []
    form_index: dict[str, int] = {}
    which: list[int] = []
    counts: list[int] = []
    codes: list[str] = []
    refs: dict[str, int] = {}
    parts: list[bytes] = []
    seen: dict[str, int] = {}
    shuffle = method == METHOD_ZSTD
    k = 0
    for array in branches.values():
        form, _, container = _to_buffers(array)
        key = json.dumps(form, sort_keys=True)
        if key not in form_index:
            form_index[key] = len(forms)
            forms.append(form)
        which.append(form_index[key])
        for bkey, buf in container.items():
            if bkey.endswith("-offsets") and buf.dtype.kind in "iu" and len(buf) and int(buf[0]) == 0:
                data = _narrow_counts(buf)
                code = f"c{data.dtype.itemsize}"
            elif shuffle and buf.dtype.kind in "iuf":
                data, code = buf, "s"
            else:
                data, code = buf, "r"
            blob = _shuffle(data) if code == "s" else np.ascontiguousarray(data).tobytes()
            digest = hashlib.blake2b(blob + data.dtype.str.encode() + code.encode(), digest_size=16).hexdigest()
            if digest in seen:
                refs[str(k)] = seen[digest]
            else:
                seen[digest] = k
                parts.append(blob)
            counts.append(int(data.size))
            codes.append(code)
            k += 1
    manifest = {"forms": forms, "f": which, "n": counts, "t": "".join(codes), "ref": refs}
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


def unpack_group(block: bytes | memoryview, lengths: Mapping[str, int], where: str,
                 names: Iterable[str] | None = None) -> dict[str, Any]:
    """The branches of one group block (name -> numpy array for plain numeric arrays, else an
    awkward array), every size and type checked first.

    Args:
        lengths: the group's branches in order (the header's group), each with the length it
            must have (the chunk's entries, or the jets of its collection).
        names: only these branches (None: all); the others are not built.

    Raises:
        FormatError: a damaged or inconsistent block.
    """
    import awkward as ak

    raw = decompress(block, where)
    try:
        (n,) = struct.unpack_from("<I", raw)
        manifest = json.loads(raw[4:4 + n])
        if not isinstance(manifest, dict):
            raise ValueError("manifest is not an object")
        forms_json, which, counts, codes, refs = (manifest["forms"], manifest["f"], manifest["n"],
                                                  manifest["t"], manifest["ref"])
        if not (isinstance(forms_json, list) and isinstance(which, list) and isinstance(counts, list)
                and isinstance(codes, str) and isinstance(refs, dict)):
            raise ValueError("manifest fields have the wrong types")
        if len(which) != len(lengths):
            raise ValueError(f"{len(which)} branches stored, the header names {len(lengths)}")
        forms = []
        plain: list[tuple[np.dtype, tuple[int, ...]] | None] = []  # plain numbers: built without awkward
        for f in forms_json:
            _check_form(f, where)
            forms.append(ak.forms.from_dict(f))
            inner = f.get("inner_shape") or []
            simple = f.get("class") == "NumpyArray" and not f.get("parameters") and \
                isinstance(inner, list) and all(isinstance(x, int) and 0 < x < (1 << 20) for x in inner)
            plain.append((np.dtype(forms[-1].primitive if forms[-1].primitive != "bool" else "bool"),
                          tuple(inner)) if simple else None)
        spec = list(_buffer_specs(codes))
        if len(spec) != len(counts):
            raise ValueError("buffer counts and codes disagree")
        offset = 4 + n
        buffers: list[np.ndarray] = []
        wanted = None if names is None else set(names)
        out: dict[str, Any] = {}
        k = 0
        for (name, length), form_i in zip(lengths.items(), which):
            form = forms[int(form_i)] if isinstance(form_i, int) and 0 <= form_i < len(forms) else None
            if form is None:
                raise ValueError(f"branch {name}: no form {form_i}")
            container: dict[str, np.ndarray] = {}
            for key, expected in form.expected_from_buffers().items():
                if k >= len(spec):
                    raise ValueError("fewer buffers than the forms need")
                code, width = spec[k]
                count = int(counts[k])
                ref = refs.get(str(k))
                dtype = np.dtype(_WIDTHS[width] if code == "c" else expected).newbyteorder("<")
                if dtype.name not in ALLOWED_DTYPES or count < 0:
                    raise ValueError(f"branch {name}: unsupported buffer {dtype}/{count}")
                if ref is not None:
                    if not isinstance(ref, int) or not 0 <= ref < k:
                        raise ValueError("reference to a later buffer")
                    data = buffers[ref]
                    if data.dtype != dtype or data.size != count:
                        raise ValueError("referenced buffer differs")
                else:
                    nbytes = count * dtype.itemsize
                    if offset + nbytes > len(raw):
                        raise ValueError("buffers run past the block")
                    piece = raw[offset:offset + nbytes]
                    data = _unshuffle(piece, dtype, count) if code == "s" else np.frombuffer(piece, dtype, count)
                    offset += nbytes
                buffers.append(data)
                if code == "c":
                    offsets = np.zeros(count + 1, np.int64)
                    np.cumsum(data, out=offsets[1:])
                    # in the form's own index type: Arrow's lists and strings (Parquet) have int32
                    # offsets, and from_buffers reads a buffer's bytes as that type
                    want = np.dtype(expected)
                    if want != offsets.dtype:
                        if want.kind not in "iu" or (count and int(offsets[-1]) > np.iinfo(want).max):
                            raise ValueError(f"branch {name}: offsets do not fit {want}")
                        offsets = offsets.astype(want)
                    container[key] = offsets
                else:
                    container[key] = data
                k += 1
            if wanted is not None and name not in wanted:
                continue
            numpy_like = plain[int(form_i)]
            if numpy_like is not None:
                dtype, inner = numpy_like
                data = next(iter(container.values()))
                size = int(length) * int(np.prod(inner, dtype=np.int64)) if inner else int(length)
                if data.dtype != dtype.newbyteorder("<") and not (dtype.kind == "b" and data.dtype.kind == "b"):
                    raise ValueError(f"branch {name}: a buffer of another type")
                if data.size != size:
                    raise ValueError(f"branch {name} has {data.size} values, {size} expected")
                out[name] = data.astype(dtype, copy=False).reshape((int(length), *inner))
                continue
            array = ak.from_buffers(form, int(length), container, highlevel=True)
            problem = ak.validity_error(array)
            if problem:
                raise ValueError(f"branch {name}: {problem}")
            if isinstance(form, ak.forms.NumpyForm) and not form.parameters:
                out[name] = np.asarray(ak.to_numpy(array))
            else:
                out[name] = array
        if k != len(spec) or offset != len(raw):
            raise ValueError("trailing buffers or bytes")
        return out
    except FormatError:
        raise
    except (struct.error, ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError,
            AttributeError, MemoryError) as exc:
        raise FormatError(f"{where}: carried branches are corrupted ({exc})") from None


def _buffer_specs(codes: str) -> Iterator[tuple[str, int]]:
    """(transform code, counts width) of each buffer, from the manifest's ``t`` string."""
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == "c":
            width = int(codes[i + 1]) if i + 1 < len(codes) and codes[i + 1].isdigit() else 0
            if width not in _WIDTHS:
                raise ValueError("unknown counts width")
            yield code, width
            i += 2
        elif code in ("s", "r"):
            yield code, 0
            i += 1
        else:
            raise ValueError(f"unknown transform {code!r}")
