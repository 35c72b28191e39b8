"""The objects of a ROOT file other than its trees (histograms, text, ...), as one blob: the
bytes of a small ROOT file that :func:`jetzip.tables.root_writer.write_objects` copies back.
(Blobs of ``.aez`` files of format 2.0 also hold the other trees and the jet tree's other
collections; the tree copy here serves them.)

Objects uproot writes (histograms, ``TObjString``, ...) are read and written again by uproot.
Objects it cannot write (``TParameter<int>``, ``TProcessID``, classes uproot cannot even read)
travel as their key's payload, byte for byte as stored (compressed or not), under the same
class name, object name, title and cycle, together with the input's ``TStreamerInfo`` records
for their class and every class it depends on (the records ``TFile::ReadStreamerInfo`` needs
to read them; uproot's own ``WritableDirectory.copy_from`` does the same for whole
directories). An object whose class has no streamer in the input is named, never silently
dropped.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Any

import numpy as np

from .root_layout import Leaf, _objects, classify_ttree, expand, get_member
from .root_writer import _jagged, ordered_types

TREE_STEP = "32 MB"  # what one copy step reads; bounds the memory of a copy


def carryable(file, key: str, cls: str) -> tuple[bool, str]:
    """Can this object be written back? (Trees: always, branch by branch; others: by uproot,
    or else as their raw key with their streamers, when the input has streamers for `cls`.)
    Returns (True, "") or (False, why)."""
    if cls in ("TTree", "ROOT::RNTuple", "TObjString"):
        return True, ""
    why = _uproot_refuses(file, key)
    if why is None:
        return True, ""
    if class_streamers(file, cls):
        return True, ""
    return False, f"uproot cannot write it: {why}; the file has no streamer for {cls} to copy it raw"


def _uproot_refuses(file, key: str) -> str | None:
    """None when uproot reads and writes the object `key` of `file`; else why not (one word)."""
    import uproot

    try:
        obj = file[key]
        with uproot.recreate(io.BytesIO()) as scratch:
            scratch["x"] = obj
        return None
    except Exception as exc:  # noqa: BLE001 - uproot refuses many classes, each its own way
        return type(exc).__name__


def class_streamers(file, cls: str) -> list[Any]:
    """The ``TStreamerInfo`` records (uproot models) of class `cls` and of every class its
    members and bases use, from an open uproot file (its directory); [] when the file has no
    streamer for `cls`. Built-in types (``TString``, basic types) have none and need none."""
    f = file.file
    try:
        own = f.streamers_named(cls)
    except Exception:  # noqa: BLE001 - a file whose streamers uproot cannot read
        return []
    pairs: list[tuple[str, int]] = []
    for streamer in own:
        streamer._dependencies(f.streamers, pairs)
    out = []
    for name, version in dict.fromkeys(pairs):
        try:
            streamer = f.streamer_named(name, version)
        except Exception:  # noqa: BLE001 - a dependency the file does not describe
            streamer = None
        if streamer is not None:
            out.append(streamer)
    return out


def copy_raw(src, key: str, dst, name: str) -> None:
    """Copy the object `key` of `src` (an open uproot file) into `dst` (a writable uproot
    directory) as `name` (``dir/obj`` makes the directory): the key's payload as stored, with
    its class, title and cycle, and the streamers of its class. Raises ValueError when the
    input has no streamer for the class (ROOT could not read the copy)."""
    import uproot

    k = src.key(key)
    cls = k.fClassName
    streamers = class_streamers(src, cls)
    if not streamers:
        raise ValueError(f"the file has no streamer for {cls}")
    start, stop = k.data_cursor.index, k.data_cursor.index + k.data_compressed_bytes
    chunk = src.file.chunk(start, stop)  # may be a larger cached chunk (the file's first bytes)
    raw = bytes(chunk.get(start, stop, uproot.source.cursor.Cursor(start), {}))
    *parents, leaf = name.split("/")
    directory = dst
    for part in parents:
        try:
            directory = directory[part]
        except KeyError:
            directory = directory.mkdir(part)
    writable = directory._file
    writable._cascading.streamers.update_streamers(writable.sink, streamers)
    cascading = directory._cascading
    cycle = int(k.fCycle)
    cascading._data.next_cycle = lambda _name: cycle  # the input's cycle (uproot numbers from 1)
    try:
        cascading.add_object(writable.sink, cls, leaf, k.fTitle, raw, k.data_uncompressed_bytes)
    finally:
        del cascading._data.next_cycle


def _tree_types(leaves: list[Leaf]) -> tuple[dict[str, Any], dict[str, str], dict[str, str], list[Leaf]]:
    types: dict[str, Any] = {}
    counters: dict[str, str] = {}
    scalar_counters: dict[str, str] = {}
    skipped = []
    names = {lf.name for lf in leaves}
    for lf in leaves:
        if lf.kind == "scalar":
            types[lf.name] = np.dtype((lf.dtype, lf.shape)) if lf.shape else np.dtype(lf.dtype)
        elif lf.kind == "string":
            types[lf.name] = "string"
        elif lf.kind == "jagged":
            types[lf.name] = _jagged(lf.dtype)
            counters[lf.name] = lf.counter if lf.counter in names else f"n{lf.name}"
            if lf.counter in names:
                scalar_counters[lf.counter] = next(x.dtype for x in leaves if x.name == lf.counter)
        else:
            skipped.append(lf)
    return types, counters, scalar_counters, skipped


def copy_tree(tree, dst, name: str, only: list[str] | None = None, not_carried: list[str] | None = None,
              counters_override: dict[str, str] | None = None, leaves: list[Leaf] | None = None) -> None:
    """Copy the numeric branches (and numeric members of object branches) of a TTree into
    `dst` as `name`, step by step."""
    if leaves is None:
        leaves = expand(tree, classify_ttree(tree))
    if only is not None:
        wanted = set(only)
        leaves = [lf for lf in leaves if lf.name in wanted]
    types, counters, scalar_counters, skipped = _tree_types(leaves)
    if counters_override:
        counters.update({k: v for k, v in counters_override.items() if k in counters})
    for lf in skipped:
        if not_carried is not None:
            not_carried.append(f"branch {lf.name} of {name} ({lf.typename})")
    order = [lf.name for lf in leaves]
    if only is not None:  # the rest of a jet tree: its counters are regenerated from the lists
        order = [*dict.fromkeys([counters[n] for n in order if n in counters] + order)]
    types, as_counter = ordered_types(order, types, counters, scalar_counters)
    from .root_fastwrite import counter_dtypes

    with counter_dtypes(scalar_counters):
        out = dst.mktree(name, types, counter_name=lambda b: counters.get(b, f"n{b}"))
    written = [lf for lf in leaves if lf.name in types and lf.name not in as_counter]
    keys = list(dict.fromkeys(lf.key for lf in written))
    if not keys or tree.num_entries == 0:
        return
    for part in tree.iterate(keys, step_size=TREE_STEP, library="ak", how=dict):
        data = {lf.name: get_member(part[lf.key], lf) for lf in written}
        if data and len(next(iter(data.values()))):
            out.extend(data)


def copy_rntuple(ntuple, dst, name: str, not_carried: list[str] | None = None) -> None:
    if ntuple.num_entries == 0:
        if not_carried is not None:
            not_carried.append(f"RNTuple {name} (empty; uproot writes non-empty RNTuples only)")
        return
    arr = ntuple.arrays()
    dst.mkrntuple(name, arr)


def copy_one(src, key: str, cls: str, dst, name: str, not_carried: list[str]) -> None:
    try:
        if cls == "TTree":
            copy_tree(src[key], dst, name, not_carried=not_carried)
        elif cls == "ROOT::RNTuple":
            copy_rntuple(src[key], dst, name, not_carried)
        elif cls == "TObjString":
            dst[name] = str(src[key])
        elif _uproot_refuses(src, key) is None:
            dst[name] = src[key]
        else:  # what uproot cannot write: the key as it is, with its class's streamers
            copy_raw(src, key, dst, name)
    except Exception as exc:  # noqa: BLE001 - name what could not be carried and go on
        not_carried.append(f"{cls} {name} ({type(exc).__name__}: {exc})")


def copy_objects(src, dst, skip: set[str]) -> list[str]:
    """Copy every newest-cycle object of `src` (an open uproot file) into `dst`."""
    not_carried: list[str] = []
    for name, (key, cls) in _objects(src).items():
        if ";" in name or name in skip or cls == "TDirectory":
            continue
        copy_one(src, key, cls, dst, name, not_carried)
    return not_carried


def build_extras(source, objects: list[tuple[str, str, str]]) -> bytes | None:
    """The file's other objects (name, key, class) as the bytes of a small ROOT file, or None
    when there are none. Trees are not among them: each is a table of the ``.aez``."""
    import uproot

    if not objects:
        return None
    not_carried = source.info.extra.setdefault("not_carried", [])
    fd, tmp = tempfile.mkstemp(prefix="jetzip-extras-", suffix=".root")
    os.close(fd)
    try:
        with uproot.recreate(tmp, compression=None) as out:  # the container compresses the blob
            for name, key, cls in objects:
                copy_one(source.file, key, cls, out, name, not_carried)
        with open(tmp, "rb") as f:
            return f.read()
    finally:
        os.unlink(tmp)
