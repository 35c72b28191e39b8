"""Two fixes to uproot's TTree writer: linear-time tree creation (a NanoAOD tree of 1,500
branches took minutes) and counters of the input's integer type (NanoAOD's ``nJet`` is uint32;
uproot writes every counter as int32, which C++ readers of ``UInt_t`` refuse).

uproot 5.7's ``Tree._build_out`` serializes a new TTree's metadata into a list ``out`` and, for
every branch, sums the lengths of *all* of ``out`` so far (three times): quadratic in the number
of branches. Measured on this project's 2-core machine: 250 branches 0.4 s, 1,000 branches 5.8 s,
1,500 branches 26-144 s (depending on load), which made restoring a whole NanoAOD file take
minutes. The same function with ``out`` a list that keeps those two totals as it grows is linear
(1,500 branches: 7 s under the same load) and produces the same bytes.

:func:`install` applies it only when (1) the source of ``_build_out`` has exactly the expected
expressions, and (2) the patched function gives byte-identical metadata and the same branch
offsets as the original on a check tree; otherwise uproot is left as it is. Set
``JETZIP_UPROOT_FIXES=0`` to leave uproot alone in any case. The fix belongs upstream
(scikit-hep/uproot5, ``uproot/writing/_cascadetree.py``); this goes once uproot has it.

Counters: uproot creates a jagged branch's counter as int32. Inside :func:`counter_dtypes`,
a new tree's counters named in the mapping get that integer type instead (dtype and leaf title
together; ``extend`` already casts the counts to the counter's dtype). :func:`install` checks
this too (a uint32 counter written and read back) before using it.

Compressed metadata (:func:`defer_metadata`, :func:`write_metadata`): uproot writes a TTree's
metadata (TTree, TBranches, TLeaves: ~575 B per branch of a NanoAOD) uncompressed, at
``mktree``, and patches it in place after every ``extend``; its list of streamers likewise. A
ROOT file of 654 NanoAOD branches and 200 events thus carries 372 kB of tree metadata where
ROOT's own file (LZMA-9) has 23 kB, and 20 kB of streamers where ROOT has 4 kB. ROOT and uproot
read any key whose payload is compressed (``fNbytes - fKeylen < fObjlen``), as ROOT writes
them. For a file given to :func:`defer_metadata` (right after ``uproot.recreate``):

- a new tree's key is written as an empty placeholder; ``extend`` writes the baskets where the
  free-segment allocator puts them (independent of the key) and keeps the metadata in Python
  only (uproot's ``write_updates`` and ``_relocate`` write nothing);
- the streamer list's space is handed back to the allocator (the first baskets fill it) and
  uproot's later rewrites of it write nothing;
- :func:`write_metadata` (before ``close``, after the last ``extend``) writes each tree's
  metadata once: uproot's ``write_anew`` bytes overlaid with its ``write_updates`` fields (run
  against a buffer), compressed with the file's compression, as ``add_object(raw_data=compressed,
  uncompressed_bytes=len(raw))``; then the streamer list, compressed likewise, and the file
  header pointing at it. Extending a tree after that raises ``RuntimeError``;
- an RNTuple's header and page-list envelopes are compressed likewise as uproot writes them
  (``NTuple.write``/``extend`` with those two ``add_rblob`` calls and their sizes changed, applied
  only when the source has exactly the expected expressions): uproot writes them uncompressed,
  226 kB of header for a NanoAOD RNTuple whose ROOT-written header is 24 kB compressed.

:func:`install` applies this only when a check file written so (every branch kind, enough
``extend`` calls to grow uproot's basket arrays, an empty tree) reads back as one written the
normal way: the same tree metadata bytes (basket positions aside: the baskets sit elsewhere),
the same streamer bytes, the same arrays, and fewer bytes; the RNTuple part, when an RNTuple
so written has the same header bytes and arrays as uproot's own, and fewer bytes. Without it, or
with ``JETZIP_UPROOT_FIXES=0``, :func:`defer_metadata` returns False and uproot writes as usual.
Checked by hand with ROOT 6.40 (``examples/root_reads.py``): every TTree of the files restored
from ``../shared`` reads in ROOT as in uproot, value for value, and so do restored RNTuples
whose field names ROOT accepts.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import re
import tempfile
import textwrap
import threading
from typing import Any

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"done": False, "active": False, "why": ""}

_TOTAL = re.compile(r"sum\(\s*len\(x\) for x in out if x is not None\s*\)")
_NONES = "sum(1 if x is None else 0 for x in out)"


class TrackedOut(list):
    """A list of bytes-or-None that knows the total length of its bytes and its number of Nones."""

    def __init__(self, items=()) -> None:
        super().__init__(items)
        self._recount()

    def _recount(self) -> None:
        self._total = sum(len(x) for x in self if x is not None)
        self._nones = sum(1 for x in self if x is None)

    def _add(self, x, sign: int) -> None:
        if x is None:
            self._nones += sign
        else:
            self._total += sign * len(x)

    def append(self, x) -> None:
        super().append(x)
        self._add(x, 1)

    def insert(self, i, x) -> None:
        super().insert(i, x)
        self._add(x, 1)

    def extend(self, xs) -> None:
        for x in xs:
            self.append(x)

    def __iadd__(self, xs):  # type: ignore[override,misc]
        self.extend(xs)
        return self

    def __setitem__(self, i, v) -> None:
        if isinstance(i, int):
            self._add(self[i], -1)
            super().__setitem__(i, v)
            self._add(v, 1)
        else:  # anything else: count again
            super().__setitem__(i, v)
            self._recount()

    def __delitem__(self, i) -> None:
        super().__delitem__(i)
        self._recount()

    def pop(self, *args):
        x = super().pop(*args)
        self._add(x, -1)
        return x

    def remove(self, x) -> None:
        super().remove(x)
        self._add(x, -1)


def _patched(original):
    src = textwrap.dedent(inspect.getsource(original))
    if src.count("out = [None]\n") != 1 or src.count(_NONES) != 3 or len(_TOTAL.findall(src)) != 3:
        return None
    src = src.replace("out = [None]\n", "out = _JetzipTrackedOut([None])\n")
    src = src.replace(_NONES, "out._nones")
    src = _TOTAL.sub("out._total", src)
    module = inspect.getmodule(original)
    namespace = dict(vars(module))
    namespace["_JetzipTrackedOut"] = TrackedOut
    exec(compile(src, f"<jetzip linear {original.__qualname__}>", "exec"), namespace)  # noqa: S102
    return namespace[original.__name__]


def _self_check(original, fast) -> bool:
    """Same metadata bytes and branch offsets as uproot's own on a tree of every branch kind."""
    import awkward as ak
    import numpy as np
    import uproot

    fd, path = tempfile.mkstemp(suffix=".root", prefix="jetzip-check-")
    os.close(fd)
    try:
        with uproot.recreate(path) as f:
            flt = ak.types.ListType(ak.types.NumpyType("float32"))
            types: dict[str, Any] = {}
            for i in range(24):
                types[f"s{i}"] = [np.float32, np.int64, np.dtype(("f8", (3,))), np.bool_][i % 4]
                if i % 3 == 0:
                    types[f"j{i}"] = flt
            tree = f.mktree("T", types,
                            counter_name=lambda b: "nJ" if b.startswith("j") and int(b[1:]) % 2 else f"n{b}")
            data = {k: ak.Array([[1.0, 2.0], [], [3.0]]) if k.startswith("j") else
                    np.zeros((3, *np.dtype(v).shape), dtype=np.dtype(v).base) for k, v in types.items()}
            tree.extend(data)
            cascading = tree._cascading

            def offsets():
                return [(d.get("metadata_start"), d.get("basket_metadata_start"), d.get("tleaf_reference_number"))
                        for d in cascading._branch_data]

            a = b"".join(original(cascading))
            oa = offsets()
            b = b"".join(fast(cascading))
            ob = offsets()
            b"".join(original(cascading))  # leave the offsets as uproot computed them
        return a == b and oa == ob
    finally:
        os.unlink(path)


_COUNTERS = threading.local()


@contextlib.contextmanager
def counter_dtypes(mapping: dict[str, str]):
    """Counters created while this is active get these integer types (name -> dtype name)."""
    previous = getattr(_COUNTERS, "map", None)
    _COUNTERS.map = {k: v for k, v in mapping.items() if v}
    try:
        yield
    finally:
        _COUNTERS.map = previous


def _wrap_init(original_init):
    import numpy as np

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        wanted = getattr(_COUNTERS, "map", None)
        if not wanted:
            return
        for datum in self._branch_data:
            name = datum.get("fName")
            if datum.get("kind") != "counter" or name not in wanted:
                continue
            dt = np.dtype(wanted[name])
            if dt.kind in "iu" and dt.itemsize <= 8:
                fresh = self._branch_np(name, dt, dt, kind="counter")
                datum["dtype"] = fresh["dtype"]
                datum["fTitle"] = fresh["fTitle"]

    __init__._jetzip_counters = True  # type: ignore[attr-defined]
    return __init__


def _counter_check() -> bool:
    """A uint32 counter written under counter_dtypes reads back as uint32 with the right counts."""
    import awkward as ak
    import numpy as np
    import uproot

    fd, path = tempfile.mkstemp(suffix=".root", prefix="jetzip-check-")
    os.close(fd)
    try:
        with uproot.recreate(path) as f, counter_dtypes({"nJet": "uint32"}):
            flt = ak.types.ListType(ak.types.NumpyType("float32"))
            t = f.mktree("T", {"nJet": np.uint32, "Jet_pt": flt, "Jet_eta": flt}, counter_name=lambda b: "nJet")
            arr = ak.Array([[1.0, 2.0], [], [3.0]])
            t.extend({"Jet_pt": arr, "Jet_eta": arr})
        t = uproot.open(path)["T"]
        return (t["nJet"].typename == "uint32_t" and t["nJet"].array(library="np").tolist() == [2, 0, 1]
                and t["Jet_eta"].array().tolist() == [[1.0, 2.0], [], [3.0]]
                and t["Jet_pt"].count_branch.name == "nJet")
    finally:
        os.unlink(path)


# ---------------------------------------------------------------- compressed metadata
_OPEN, _FINAL = "open", "final"
_ORIGINAL: dict[str, Any] = {}


class _Buffer:
    """A sink for uproot's ``write_updates``: its writes land in `data` at file position - `base`."""

    def __init__(self, data: bytearray, base: int) -> None:
        self.data = data
        self.base = base

    def write(self, position: int, chunk: bytes) -> None:
        i = position - self.base
        if i < 0 or i + len(chunk) > len(self.data):
            raise RuntimeError("uproot's write_updates wrote outside the tree's metadata")
        self.data[i:i + len(chunk)] = chunk

    def flush(self) -> None:
        pass


def _mode(tree) -> str | None:
    """None: uproot's own writing; "open": metadata kept for write_metadata; "final": written."""
    mode = getattr(tree, "_jetzip_defer", None)
    if mode is None and tree._key is None and getattr(tree._freesegments, "_jetzip_defer", False):
        mode = tree._jetzip_defer = _OPEN  # a new tree of a deferred file
    return mode


def _finished(tree) -> RuntimeError:
    return RuntimeError(f"TTree {tree._name!r}: its metadata is written (write_metadata); it cannot grow")


def _write_anew(self, sink) -> None:
    mode = _mode(self)
    if mode is None:
        return _ORIGINAL["write_anew"](self, sink)
    if mode == _FINAL:
        raise _finished(self)
    if self._key is None:  # the directory lists the tree from the start; its payload comes at the end
        self._key = self._directory.add_object(sink, "TTree", self._name, self._title, b"", 0, big=True)
    return None  # a relocation (uproot's basket arrays grew): nothing on disk to move


def _write_updates(self, sink) -> None:
    mode = _mode(self)
    if mode is None:
        return _ORIGINAL["write_updates"](self, sink)
    if mode == _FINAL:
        raise _finished(self)
    self._jetzip_updated = True
    return None


def _relocate(self, file, sink) -> None:
    mode = _mode(self)
    if mode is None:
        return _ORIGINAL["_relocate"](self, file, sink)
    if mode == _FINAL:
        raise _finished(self)
    return None


def _streamers_write(self, sink) -> None:
    if getattr(self, "_jetzip_detached", False):
        return None  # written once, compressed, by write_metadata
    return _ORIGINAL["streamers_write"](self, sink)


def _writable_file(file):
    """The ``uproot.WritableFile`` of what ``uproot.recreate`` returns (its root directory)."""
    return getattr(file, "_file", file)


def _flush(file) -> None:
    fs = file._cascading.freesegments
    fs.write(file.sink)
    file.sink.set_file_length(fs.fileheader.end)
    file.sink.flush()


def _defer(file) -> None:
    file = _writable_file(file)
    casc = file._cascading
    fs = casc.freesegments
    if getattr(fs, "_jetzip_defer", False):
        return
    fs._jetzip_defer = True
    s = casc.streamers
    start = s.key.location
    stop = start + s.key.allocation + s.allocation
    s._jetzip_detached = True
    fs.release(start, stop)  # the first baskets go there
    _flush(file)


def defer_metadata(file) -> bool:
    """Have `file` (an ``uproot.WritableFile``, just created) write its trees' metadata and its
    streamers compressed, once, at :func:`write_metadata`. True when in use; False (uproot
    writes as usual) when the fix is off or failed its check (``_STATE["metadata_why"]``).
    Until :func:`write_metadata` the file on disk is incomplete."""
    install()
    if not _STATE.get("metadata"):
        return False
    _defer(file)
    return True


def _write_tree(file, t, compression) -> None:
    import uproot

    raw = bytearray(b"".join(t._build_out()))  # what uproot's write_anew writes now
    if getattr(t, "_jetzip_updated", False):  # and what its write_updates then writes over it
        for datum in t._branch_data:
            if datum["kind"] != "record":
                datum["arrays_write_start"] = 0
        _ORIGINAL["write_updates"](t, _Buffer(raw, t._key.seek_location + t._key.num_bytes))
    packed = uproot.compression.compress(bytes(raw), compression)
    old = t._key
    start, stop = old.seek_location, old.seek_location + old.num_bytes + old.compressed_bytes
    t._key = t._directory.add_object(file.sink, "TTree", t._name, t._title, packed, len(raw),
                                     replaces=old, big=True)
    file._move_tree(start, t._key.seek_location)
    t._freesegments.release(start, stop)
    t._jetzip_defer = _FINAL


def _write_streamers(file, compression) -> None:
    import uproot

    casc = file._cascading
    s, fs = casc.streamers, casc.freesegments
    if not getattr(s, "_jetzip_detached", False):
        return
    n = len(s._rawstreamers)
    done = getattr(s, "_jetzip_written", None)
    if done is not None:
        if done[2] == n:
            return
        fs.release(done[0], done[1])
    # the payload as TListOfStreamers.write lays it out: TList header, then each TStreamerInfo
    s.header.num_entries = n
    s.header.data_bytes = s.num_bytes
    raw = s.header.serialize() + b"".join(x.serialize() for x in s._rawstreamers)
    packed = uproot.compression.compress(raw, compression)
    key = s.key
    key.uncompressed_bytes = len(raw)
    key.compressed_bytes = len(packed)
    need = key.num_bytes + len(packed)
    location = fs.allocate(need)
    key.location = key.seek_location = location
    if key.num_bytes + len(packed) > need:  # past 2 GB the key needs 8-byte pointers: more room
        fs.release(location, location + need)
        need = key.num_bytes + len(packed)
        location = fs.allocate(need)
        key.location = key.seek_location = location
    key.write(file.sink)
    file.sink.write(location + key.num_bytes, packed)
    fs.fileheader.info_location = location
    fs.fileheader.info_num_bytes = key.num_bytes + len(packed)
    s._jetzip_written = (location, location + need, n)


def write_metadata(file) -> None:
    """Write the metadata :func:`defer_metadata` held back: every tree of `file` not yet
    written, then the streamer list, each compressed with the file's compression. Call after
    the last ``extend`` and before ``close``; nothing happens for a file not deferred."""
    file = _writable_file(file)
    fs = file._cascading.freesegments
    if not getattr(fs, "_jetzip_defer", False):
        return
    compression = file.compression
    for tree in list(file._trees.values()):
        if _mode(tree._cascading) == _OPEN:
            _write_tree(file, tree._cascading, compression)
    _write_streamers(file, compression)
    _flush(file)


def _write_check_trees(f) -> None:
    """Every branch kind jetzip writes, 12 extends (uproot's basket arrays grow past 10), an
    empty tree."""
    import awkward as ak
    import numpy as np

    flt = ak.types.ListType(ak.types.NumpyType("float32"))
    types: dict[str, Any] = {"s_f4": np.float32, "s_i8": np.int64, "s_arr": np.dtype(("f8", (3,))),
                             "s_b": np.bool_, "txt": "string", "j_a": flt, "j_b": flt, "k": flt}
    with counter_dtypes({"nJ": "uint32"}):
        t = f.mktree("T", types, counter_name=lambda b: "nJ" if b.startswith("j_") else f"n{b}")
    rng = np.random.default_rng(7)
    for i in range(12):
        n = 2 + i
        counts = rng.integers(0, 4, n)
        other = rng.integers(0, 3, n)
        t.extend({"s_f4": rng.random(n, dtype=np.float32), "s_i8": rng.integers(-9, 9, n),
                  "s_arr": rng.random((n, 3)), "s_b": rng.random(n) < 0.5,
                  "txt": ak.Array([f"e{i}-{k}" * int(k % 3) for k in range(n)]),
                  "j_a": ak.unflatten(rng.random(counts.sum(), dtype=np.float32), counts),
                  "j_b": ak.unflatten(rng.random(counts.sum(), dtype=np.float32), counts),
                  "k": ak.unflatten(rng.random(other.sum(), dtype=np.float32), other)})
    f.mktree("E", {"x": np.float64, "y": flt})


def _payload(f, seek: int) -> bytes:
    """The uncompressed payload of the key at `seek` of an open uproot file."""
    import uproot

    chunk = f.file.chunk(seek, min(seek + uproot.reading._key_format_big.size, f.file.fEND))
    key = uproot.reading.ReadOnlyKey(chunk, uproot.source.cursor.Cursor(seek), {}, f.file, f.file)
    return bytes(key.get_uncompressed_chunk_cursor()[0].raw_data)


def _write_both_ways(paths: list[str], write, after_deferred=None) -> None:
    """Write the same check file twice, to two temporary files appended to `paths` (the caller
    removes them): the normal way, then with the metadata deferred and compressed
    (`after_deferred(f)` runs on that one before it closes)."""
    import uproot

    for deferred in (False, True):
        fd, path = tempfile.mkstemp(suffix=".root", prefix="jetzip-check-")
        os.close(fd)
        paths.append(path)
        with uproot.recreate(path, compression=uproot.ZLIB(1)) as f:
            if deferred:
                _defer(f)
            write(f)
            if deferred:
                write_metadata(f)
                if after_deferred is not None:
                    after_deferred(f)


def _metadata_check() -> bool:
    """The check file written deferred reads back as the one written the normal way."""
    import awkward as ak
    import uproot

    paths: list[str] = []
    try:
        seeks: dict[str, list[tuple[int, int]]] = {}

        def basket_seeks(f) -> None:  # where each branch's fBasketSeek lies in the deferred file
            for tree in _writable_file(f)._trees.values():
                seeks[tree._cascading._name] = [
                    (d["basket_metadata_start"] + 3 + d["fBasketBytes"].nbytes + d["fBasketEntry"].nbytes,
                     d["fBasketSeek"].nbytes) for d in tree._cascading._branch_data if d["kind"] != "record"]

        _write_both_ways(paths, _write_check_trees, basket_seeks)
        normal, small = (uproot.open(p) for p in paths)
        with normal, small:
            if normal.classnames() != small.classnames() or sorted(seeks) != ["E", "T"]:
                return False
            if _payload(normal, normal.file.fSeekInfo) != _payload(small, small.file.fSeekInfo):
                return False
            for name in ("T", "E"):
                a = bytearray(_payload(normal, normal.key(name).fSeekKey))
                k = small.key(name)
                if not k.is_compressed:
                    return False
                b = bytearray(_payload(small, k.fSeekKey))
                for start, size in seeks[name]:
                    a[start:start + size] = b[start:start + size] = bytes(size)
                if a != b:
                    return False
                ta, tb = normal[name], small[name]
                if ta.keys() != tb.keys() or ta.num_entries != tb.num_entries or \
                        [b.num_baskets for b in ta.values()] != [b.num_baskets for b in tb.values()]:
                    return False
                for branch in ta.keys():
                    if ak.to_list(ta[branch].array()) != ak.to_list(tb[branch].array()):
                        return False
        return os.path.getsize(paths[1]) < os.path.getsize(paths[0])
    finally:
        for path in paths:
            os.unlink(path)


# RNTuple envelopes: uproot writes an RNTuple's header and each page list uncompressed (the
# header of a NanoAOD RNTuple: 226 kB, ROOT's own 24 kB); for a deferred file, compress them.
_NT_REPLACE = [  # (pattern, replacement): each must match exactly once in NTuple.write/extend
    (r"^(\s*)self\._header_key = self\.add_rblob\(\s*sink, header_raw_data, len\(header_raw_data\)\s*\)",
     r"\1header_packed = _jetzip_pack(self, header_raw_data)"
     r"\1self._header_key = self.add_rblob(sink, header_packed, len(header_raw_data))"),
    (r"self\._anchor\.nbytes_header = len\(header_raw_data\)", "self._anchor.nbytes_header = len(header_packed)"),
    (r"^(\s*)pagelistenv_key = self\.add_rblob\(\s*sink, pagelistenv_rawdata, len\(pagelistenv_rawdata\)\s*\)",
     r"\1pagelistenv_packed = _jetzip_pack(self, pagelistenv_rawdata)"
     r"\1pagelistenv_key = self.add_rblob(sink, pagelistenv_packed, len(pagelistenv_rawdata))"),
    (r"NTuple_Locator\(\s*len\(pagelistenv_rawdata\),", "NTuple_Locator(len(pagelistenv_packed),"),
    # the pages of one cluster in one RBlob (as ROOT writes them), not one key (~60 B) per page
    (r"^(\s*)page_key = self\.add_rblob\(sink, raw_data, uncompressed_bytes\)\s*"
     r"page_locator = NTuple_Locator\(\s*len\(raw_data\), page_key\.location \+ page_key\.allocation\s*\)",
     r"\1page_locator = _jetzip_page(self, sink, raw_data, uncompressed_bytes)"),
    (r"^(\s*)page_data = \[", r"\1_jetzip_pages_done(self, sink)\1page_data = ["),
]
_NT_EXPECTED = {"write": 2, "extend": 4}  # replacements made in each
_BLOB_BYTES = 64 << 20  # pages gathered into one RBlob up to this size


ENVELOPE_LEVELS = {"ZSTD": 19, "ZLIB": 9, "LZMA": 9}  # the file's algorithm at its strongest level


def _pack_envelope(ntuple, raw: bytes) -> bytes:
    """An RNTuple envelope as written: in a deferred file compressed with the file's algorithm at
    its strongest level (:data:`ENVELOPE_LEVELS`; ROOT's compressed-block format, as uproot
    writes pages, whose reader takes any level), else as it is. The header is written once and
    read whole: nano_dimuon's 199,936 B header takes 26,439 B at ZSTD(5), the file's setting,
    21,387 at ZSTD(19) (its restore 1.07x -> 1.01x the input)."""
    import uproot

    fs = ntuple._freesegments
    if not getattr(fs, "_jetzip_defer", False):
        return raw
    setting = fs.fileheader.compression
    name = type(setting).__name__
    if setting is not None and name in ENVELOPE_LEVELS:
        setting = type(setting)(max(int(setting.level), ENVELOPE_LEVELS[name]))
    return uproot.compression.compress(raw, setting)


def _page(ntuple, sink, raw: bytes, uncompressed: int):
    """The locator of one page: in a deferred file, kept back to be written with the cluster's
    other pages in one RBlob (its offset set by :func:`_pages_done`); else in a key of its own."""
    from uproot.writing._cascadentuple import NTuple_Locator

    if not getattr(ntuple._freesegments, "_jetzip_defer", False):
        key = ntuple.add_rblob(sink, raw, uncompressed)
        return NTuple_Locator(len(raw), key.location + key.allocation)
    locator = NTuple_Locator(len(raw), 0)
    ntuple.__dict__.setdefault("_jetzip_pages", []).append((locator, bytes(raw)))
    return locator


def _pages_done(ntuple, sink) -> None:
    """Write the pages kept back by :func:`_page`, adjacent, in RBlobs of at most
    :data:`_BLOB_BYTES` (one page larger than that in its own), and set their offsets.

    Pages of identical bytes are written once and share its locator, as ROOT's same-page
    merging writes them (``RNTupleWriteOptions::SetEnableSamePageMerging``, on by default):
    NanoAOD's trigger bits and PHYSLITE's constant columns are mostly such pages (the PHYSLITE
    RNTuple restore carried 142 kB of copies)."""
    pending = ntuple.__dict__.pop("_jetzip_pages", [])
    first: dict[bytes, Any] = {}
    copies: list = []  # (locator, the locator of the first page with the same bytes)
    unique = []
    for locator, raw in pending:
        if raw in first:
            copies.append((locator, first[raw]))
        else:
            first[raw] = locator
            unique.append((locator, raw))
    _write_pages(ntuple, sink, unique)
    for locator, same in copies:
        locator.offset = same.offset


def _write_pages(ntuple, sink, pending: list) -> None:
    group: list = []
    size = 0
    for item in [*pending, None]:
        if group and (item is None or size + len(item[1]) > _BLOB_BYTES):
            blob = b"".join(raw for _, raw in group)
            key = ntuple.add_rblob(sink, blob, len(blob))
            at = key.location + key.allocation
            for locator, raw in group:
                locator.offset = at
                at += len(raw)
            group, size = [], 0
        if item is not None:
            group.append(item)
            size += len(item[1])


def _ntuple_patched(original):
    """NTuple.write or NTuple.extend with the envelopes passed through _pack_envelope (and, in
    extend, the pages of a cluster gathered by _page), or None when its source is not the one
    these replacements know."""
    import re

    src = textwrap.dedent(inspect.getsource(original))
    done = 0
    for pattern, replacement in _NT_REPLACE:
        src, n = re.subn(pattern, replacement.replace(r"\1", r"\n\1") if r"\1" in replacement else replacement,
                         src, flags=re.MULTILINE)
        if n > 1:
            return None
        done += n
    if done != _NT_EXPECTED.get(original.__name__):  # write: the header's two; extend: four more
        return None
    module = inspect.getmodule(original)
    namespace = dict(vars(module))
    namespace.update(_jetzip_pack=_pack_envelope, _jetzip_page=_page, _jetzip_pages_done=_pages_done)
    exec(compile(src, f"<jetzip packed {original.__qualname__}>", "exec"), namespace)  # noqa: S102
    return namespace[original.__name__]


# RNTuple projected fields: uproot's writer has none (its header's alias list is always empty);
# a NanoAOD RNTuple's Jet_pt and nJet are projections of _collection6 (root_layout.rntuple_projections).
_PROJECT = threading.local()
_NT_HEADER_REPLACE = (r"^(\s*)alias_records = \[\]", r"\1alias_records = _jetzip_project(self)")


@contextlib.contextmanager
def rntuple_projections(fields: list | None):
    """Inside this, a new RNTuple's header (``mkrntuple``) gets the projected fields `fields`
    (the ``"fields"`` of :func:`.root_layout.rntuple_projections`, sources named by their dotted
    paths among the fields written) and their alias columns, as ROOT writes them. Yields
    whether uproot's writer takes them (False: the caller writes the projected fields as
    fields of their own)."""
    active = bool(_STATE.get("ntuple_projections")) and bool(fields)
    before = getattr(_PROJECT, "fields", None)
    _PROJECT.fields = fields if active else None
    try:
        yield active
    finally:
        _PROJECT.fields = before


class _Bytes:
    """A record uproot's list-frame writer serializes as it is."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def serialize(self) -> bytes:
        return self.raw


def _project(header) -> list:
    """Append the projected fields of :func:`rntuple_projections` to `header`'s field records;
    return their alias column records (one per projected field whose source has a column:
    the source's first column)."""
    import struct

    from uproot.const import RNTupleFieldFlags, RNTupleFieldRole
    from uproot.writing._cascadentuple import NTuple_Field_Description

    fields = getattr(_PROJECT, "fields", None)
    if not fields:
        return []
    records = header._field_records
    paths: dict[int, str] = {}
    for i, r in enumerate(records):
        paths[i] = r.field_name if r.parent_field_id == i else f"{paths[r.parent_field_id]}.{r.field_name}"
    by_path = {p: i for i, p in paths.items()}
    principal: dict[int, int] = {}
    for c, col in enumerate(header._column_records):
        principal.setdefault(col.field_id, c)
    base, aliases = len(records), []
    for k, (name, type_name, role, parent, source) in enumerate(fields):
        if source not in by_path:
            raise ValueError(f"projected field {name}: its source {source} is not written")
        field = NTuple_Field_Description(base + k if parent < 0 else base + parent, RNTupleFieldRole(role),
                                         name, type_name, flags=RNTupleFieldFlags.PROJECTED)
        raw = field.serialize() + struct.pack("<I", by_path[source])
        records.append(_Bytes(raw))
        if by_path[source] in principal:
            aliases.append(_Bytes(struct.pack("<II", principal[by_path[source]], base + k)))
    return aliases


def _projection_check() -> bool:
    """An RNTuple written with projections reads back with them equal to their sources."""
    import awkward as ak
    import numpy as np
    import uproot

    fd, path = tempfile.mkstemp(suffix=".root", prefix="jetzip-check-")
    os.close(fd)
    try:
        data = ak.zip({"x": np.arange(3, dtype=np.float32),
                       "_c": ak.zip({"pt": ak.Array([[1.0, 2.0], [], [3.0]])})}, depth_limit=1)
        fields = [["pt", "ROOT::VecOps::RVec<double>", 1, -1, "_c"], ["_0", "double", 0, 0, "_c._0.pt"],
                  ["n", "ROOT::RNTupleCardinality<std::uint32_t>", 0, -1, "_c"]]
        with uproot.recreate(path) as f, rntuple_projections(fields) as active:
            if not active:
                return False
            f.mkrntuple("N", data)
        with uproot.open(path) as f:
            nt = f["N"]
            a = nt.arrays()
            return (len(nt.alias_column_records) == 3 and a.fields == ["x", "_c", "pt", "n"]
                    and ak.to_list(a["pt"]) == ak.to_list(a["_c"]["pt"]) and ak.to_list(a["n"]) == [2, 0, 1])
    finally:
        os.unlink(path)


def _install_projections() -> None:
    import re

    from uproot.writing import _cascadentuple

    header = _cascadentuple.NTuple_Header
    original = header.serialize
    src = textwrap.dedent(inspect.getsource(original))
    pattern, replacement = _NT_HEADER_REPLACE
    src, n = re.subn(pattern, replacement.replace(r"\1", r"\n\1"), src, flags=re.MULTILINE)
    if n != 1:
        _STATE["ntuple_projections_why"] = "uproot's NTuple_Header.serialize is not the one this fix knows"
        return
    namespace = dict(vars(inspect.getmodule(original)))
    namespace["_jetzip_project"] = _project
    exec(compile(src, "<jetzip projected NTuple_Header.serialize>", "exec"), namespace)  # noqa: S102
    _ORIGINAL["ntuple_header_serialize"] = original
    header.serialize = namespace["serialize"]
    _STATE["ntuple_projections"] = True

    def revert() -> None:
        header.serialize = _ORIGINAL["ntuple_header_serialize"]

    _keep_if_checked("ntuple_projections", _projection_check, revert,
                     "an RNTuple written with projected fields did not read them back")


def _write_check_ntuple(f) -> None:
    import awkward as ak
    import numpy as np

    rng = np.random.default_rng(11)

    def data(n):
        counts = rng.integers(0, 4, n)
        return ak.zip({"x": rng.random(n, dtype=np.float32), "i": rng.integers(0, 9, n),
                       "jets": ak.zip({"pt": ak.unflatten(rng.random(counts.sum(), dtype=np.float32), counts),
                                       "eta": ak.unflatten(rng.random(counts.sum()), counts)})}, depth_limit=1)
    nt = f.mkrntuple("N", data(5))
    nt.extend(data(7))


def _envelope(f, seek: int, nbytes: int, length: int) -> bytes:
    import uproot

    chunk = f.file.chunk(seek, seek + nbytes)
    if nbytes == length:
        return bytes(chunk.raw_data)
    cursor = uproot.source.cursor.Cursor(seek)
    return bytes(uproot.compression.decompress(chunk, cursor, {}, nbytes, length).raw_data)


def _ntuple_check() -> bool:
    """An RNTuple written with packed envelopes reads back as one written the normal way: same
    arrays, the same header bytes (compressed in the file), a smaller file."""
    import awkward as ak
    import uproot

    paths: list[str] = []
    try:
        _write_both_ways(paths, _write_check_ntuple)
        with uproot.open(paths[0]) as a, uproot.open(paths[1]) as b:
            na, nb = a["N"], b["N"]
            ma = {k: na.member(k) for k in ("fSeekHeader", "fNBytesHeader", "fLenHeader")}
            mb = {k: nb.member(k) for k in ("fSeekHeader", "fNBytesHeader", "fLenHeader")}
            if not (mb["fNBytesHeader"] < mb["fLenHeader"] == ma["fLenHeader"] == ma["fNBytesHeader"]):
                return False
            if _envelope(a, *ma.values()) != _envelope(b, *mb.values()):
                return False
            if na.num_entries != nb.num_entries or ak.to_list(na.arrays()) != ak.to_list(nb.arrays()):
                return False
        return os.path.getsize(paths[1]) < os.path.getsize(paths[0])
    finally:
        for path in paths:
            os.unlink(path)


def _keep_if_checked(fix: str, check, revert, failed: str) -> bool:
    """Keep an installed fix only if `check()` (on the patched uproot) returns True; otherwise
    `revert()` and record why in ``_STATE[fix + "_why"]`` (`failed`, or the exception). Sets
    ``_STATE[fix]``; returns it."""
    ok = False
    try:
        ok = bool(check())
        if not ok:
            _STATE[f"{fix}_why"] = failed
    except Exception as exc:  # noqa: BLE001 - any surprise: leave uproot as it is
        _STATE[f"{fix}_why"] = f"{type(exc).__name__}: {exc}"
    if not ok:
        revert()
    _STATE[fix] = ok
    return ok


def _install_ntuple() -> None:
    from uproot.writing import _cascadentuple

    nt = _cascadentuple.NTuple
    write, extend = _ntuple_patched(nt.write), _ntuple_patched(nt.extend)
    if write is None or extend is None:
        _STATE["ntuple_why"] = "uproot's NTuple.write/extend are not the ones this fix knows"
        return
    _ORIGINAL.update(ntuple_write=nt.write, ntuple_extend=nt.extend)
    nt.write, nt.extend = write, extend

    def revert() -> None:
        nt.write, nt.extend = _ORIGINAL["ntuple_write"], _ORIGINAL["ntuple_extend"]

    _keep_if_checked("ntuple", _ntuple_check, revert,
                     "an RNTuple written with compressed envelopes did not read back as uproot's own")
    try:
        _install_projections()
    except Exception as exc:  # noqa: BLE001 - any surprise: leave uproot as it is
        _STATE["ntuple_projections"] = False
        _STATE["ntuple_projections_why"] = f"{type(exc).__name__}: {exc}"


def _install_metadata() -> None:
    from uproot.writing import _cascade, _cascadetree

    tree, streamers = _cascadetree.Tree, _cascade.TListOfStreamers
    _ORIGINAL.update(write_anew=tree.write_anew, write_updates=tree.write_updates,
                     _relocate=tree._relocate, streamers_write=streamers.write)
    tree.write_anew, tree.write_updates, tree._relocate = _write_anew, _write_updates, _relocate
    streamers.write = _streamers_write

    def revert() -> None:
        tree.write_anew, tree.write_updates = _ORIGINAL["write_anew"], _ORIGINAL["write_updates"]
        tree._relocate, streamers.write = _ORIGINAL["_relocate"], _ORIGINAL["streamers_write"]

    # RNTuple envelopes ride on the same deferred files
    if _keep_if_checked("metadata", _metadata_check, revert,
                        "a tree written with compressed metadata did not read back as uproot's own"):
        try:
            _install_ntuple()
        except Exception as exc:  # noqa: BLE001 - any surprise: leave uproot as it is
            _STATE["ntuple_why"] = f"{type(exc).__name__}: {exc}"


def install() -> bool:
    """Use the linear ``_build_out`` if it is safe here (once per process); True when active.
    Also installs, each after its own check, the counter types and the compressed metadata."""
    with _LOCK:
        if _STATE["done"]:
            return bool(_STATE["active"])
        _STATE["done"] = True
        if os.environ.get("JETZIP_UPROOT_FIXES", "1") == "0":
            _STATE["why"] = _STATE["metadata_why"] = "disabled by JETZIP_UPROOT_FIXES=0"
            return False
        _install_linear()
        try:
            _install_metadata()
        except Exception as exc:  # noqa: BLE001 - any surprise: leave uproot as it is
            _STATE["metadata_why"] = f"{type(exc).__name__}: {exc}"
        return bool(_STATE["active"])


def _install_linear() -> None:
    try:
        from uproot.writing import _cascadetree

        original = _cascadetree.Tree._build_out
        fast = _patched(original)
        if fast is None:
            _STATE["why"] = "uproot's _build_out is not the one this fix knows"
            return
        if not _self_check(original, fast):
            _STATE["why"] = "the linear _build_out did not reproduce uproot's bytes"
            return
        _cascadetree.Tree._build_out = fast
        _STATE["active"] = True
        original_init = _cascadetree.Tree.__init__
        _cascadetree.Tree.__init__ = _wrap_init(original_init)
        if _counter_check():
            _STATE["counters"] = True
        else:
            _cascadetree.Tree.__init__ = original_init
    except Exception as exc:  # noqa: BLE001 - any surprise: leave uproot as it is
        _STATE["why"] = f"{type(exc).__name__}: {exc}"
