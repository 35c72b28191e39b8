"""Which collections ``--collection all`` codes: those whose coding pays for itself.

A collection beyond the first (NanoAOD ``GenPart``, ``Muon``, ``GenJetAK8``...) is either
coded under the bound or carried losslessly with the other branches; either way every value is
within its bound. NanoAOD already rounds many collections' floats to 8-10 mantissa bits, and a
collection of a few members per file pays the codec's tables and the header's description of it
for little: measured on ``../shared`` files (issue 21), coding ``GenPart`` at the ``nanoaod``
bound costs 65.5 kB where carrying it costs 58.2 kB, and each small collection of a 40-event
NanoAOD costs about 200 B more coded than carried. So with ``all`` the encoder measures both on
the first entries of the table and codes a collection only where that is smaller.

The estimate, for a sample of the table's first entries (at most :data:`SAMPLE_JETS` jets of
its first collection), scaled to the whole table by its share of the entries:

- coded: the codec's payload for the sample's members, plus :data:`FRAMING` bytes per chunk,
  plus the collection's description in the header (zlib-compressed JSON, as the header is);
- carried: the carried-data block of the four columns (:func:`jetzip.carry.pack_group`, the
  method the carried branches use) less the block of the same columns empty (its fixed cost).

The decision is written in the header's notes (``coded_or_carried``), one line per collection.
"""
from __future__ import annotations

import json
import math
import zlib
from typing import Any, Callable

import numpy as np

SAMPLE_JETS = 1 << 16  # jets of the table's first collection in the sample
FRAMING = 32  # bytes per chunk a coded collection adds (its payload's length and checksum)


def coded_or_carried(table: Any, new_codec: Callable[[Any], Any], method: int, chunk_jets: int
                     ) -> tuple[list[str], list[str]]:
    """(names of the collections beyond the first to carry instead, one note line each).

    Args:
        table: a reader (:class:`jetzip.tables.JetSource`) opened with every collection.
        new_codec: makes the codec of a :class:`~jetzip.tables.CollectionInfo`.
        method: the carried branches' compression (:data:`jetzip.carry.METHOD_LZMA`, ...).
        chunk_jets: jets per chunk of the compress run.
    """
    from . import carry

    colls = table.info.all_collections()[1:]
    if not colls:
        return [], []
    chunk = next(iter(table.chunks(SAMPLE_JETS, 0, None)), None)
    total = getattr(table, "n_entries", None)
    if chunk is None or not chunk.n_entries or not total:
        return [], []
    scale = total / chunk.n_entries
    main_jets = len(next(iter(chunk.columns.values()))) * scale
    n_chunks = max(1, math.ceil(main_jets / chunk_jets))
    carried, notes = [], []
    for coll in colls:
        part = chunk.others[coll.name]
        n = len(next(iter(part.columns.values())))
        if n == 0:
            carried.append(coll.name)
            notes.append(f"{coll.name}: carried losslessly (no members in the first {chunk.n_entries} entries)")
            continue
        codec = new_codec(coll)
        bad, _ = codec.invalid(part.columns)
        if bad.any():
            carried.append(coll.name)
            notes.append(f"{coll.name}: carried losslessly ({int(bad.sum())} members with NaN or inf in the first "
                         f"{chunk.n_entries} entries)")
            continue
        names = {coll.columns[r]: np.asarray(v).astype(coll.dtypes.get(coll.columns[r], "float32"))
                 for r, v in part.columns.items()}
        empty = {k: v[:0] for k, v in names.items()}
        as_carried = (len(carry.pack_group(names, method)) - len(carry.pack_group(empty, method))) * scale
        described = len(zlib.compress(json.dumps(coll.to_json()).encode(), 9))
        as_coded = len(codec.encode(part.columns, part.counts)) * scale + FRAMING * n_chunks + described
        if as_coded < as_carried:
            continue
        carried.append(coll.name)
        notes.append(f"{coll.name}: carried losslessly; coded it was estimated at {as_coded:,.0f} B against "
                     f"{as_carried:,.0f} B carried (from the first {chunk.n_entries} entries)")
    return carried, notes
