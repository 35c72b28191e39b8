"""Every golden file of every format version decodes to the values stored beside it.

Glob-driven (as c-blosc2's compatibility test is): a ``tests/golden/*.aez`` without its
``.npz`` fails, so a new golden file cannot be forgotten here. Files of format 3.0 store every
table, collection and carried branch (``make_golden_v3.py``); those of 1.0 and 2.0 the first
collection's counts and decoded values (``dec_<role>``). Values a network decodes (the latent
codec) may differ in the last float32 bits between CPUs: they are compared at 1e-5, a mass
derived from them (which amplifies those bits) as its four-vector's invariant
(``tolerances.py``); the
bounded codec's values come from integers through exp and cosh: 1e-12 relative. The
version-specific details (bounds, verbatim jets, commands) are in ``test_golden.py`` and
``test_golden_v2.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import jetzip
from jetzip.codecs import codec_class

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.aez"))
NETWORK = {"network": True}  # a network decoded the values: tolerances.assert_decoded_close

sys.path.insert(0, str(Path(__file__).parent))
from tolerances import assert_decoded_close  # noqa: E402


def test_there_are_golden_files_of_every_major_version():
    majors = {p.name.split(".")[0] for p in FILES}
    assert {"v1", "v2", "v3"} <= majors, majors


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_golden_file_decodes_to_its_values(path):
    npz = path.with_suffix(".npz")
    assert npz.exists(), f"{path.name} has no {npz.name}: every golden file needs its values"
    ref = np.load(npz)
    with jetzip.open_aez(path) as f:
        network = any(codec_class(c["id"]).summary(c).get("model") for c in f.header.codecs)
        tolerance = NETWORK if network else {"rtol": 1e-12, "atol": 0}
        if f.major >= 3:
            _check_v3(f, ref, tolerance)
        else:
            _check_v1_v2(f, ref, tolerance)


def _check_v1_v2(f, ref, tolerance) -> None:
    parts = [chunk for _, chunk in f.decoded(f.codecs(device="cpu"))]
    info = f.tables[0]
    if "counts" in ref.files and info.jagged:
        np.testing.assert_array_equal(np.concatenate([p.counts for p in parts]), ref["counts"])
    checked = 0
    for role in info.columns:
        key = next((k for k in (f"dec_{role}", "dec_mass" if role == "m" else "") if k in ref.files), None)
        if key is None:
            continue
        got = np.concatenate([p.columns[role] for p in parts])
        if tolerance is NETWORK:
            assert_decoded_close(role, got, ref[key], ref["dec_pt"], ref["dec_eta"])
        else:
            np.testing.assert_allclose(got, ref[key], err_msg=role, **tolerance)
        checked += 1
    assert checked >= 3, f"{f.path.name}: its .npz has no decoded columns to compare"


def _check_v3(f, ref, tolerance) -> None:
    import awkward as ak

    got: dict[str, list] = {}
    for stored, chunk in f.decoded(f.codecs(device="cpu"), workers=2):  # bounded: threads or processes
        t = stored.table
        for c, coll in enumerate(f.tables[t].all_collections()):
            part = chunk if c == 0 else chunk.others[coll.name]
            got.setdefault(f"t{t}/c{c}/counts", []).append(np.asarray(part.counts))
            for role in coll.columns:
                got.setdefault(f"t{t}/c{c}/{role}", []).append(np.asarray(part.columns[role]))
        carried = {**chunk.kept, **chunk.jet_kept, **chunk.carried}
        for other in chunk.others.values():
            carried.update(other.jet_kept)
        for name, value in carried.items():
            if isinstance(value, np.ndarray):
                got.setdefault(f"t{t}/carried/{name}", []).append(value)
            else:
                got.setdefault(f"t{t}/carried/{name}/values", []).append(np.asarray(ak.flatten(value, axis=None)))
                got.setdefault(f"t{t}/carried/{name}/counts", []).append(np.asarray(ak.num(value, axis=1)))
    assert set(got) == set(ref.files), set(got) ^ set(ref.files)
    for key in ref.files:
        value = np.concatenate(got[key])
        if "/carried/" in key or key.endswith("/counts"):
            assert value.dtype == ref[key].dtype and value.tobytes() == ref[key].tobytes(), key  # lossless
        elif tolerance is NETWORK:
            base = key.rpartition("/")[0]
            assert_decoded_close(key.rpartition("/")[2], value, ref[key], ref[f"{base}/pt"], ref[f"{base}/eta"], key)
        else:
            np.testing.assert_allclose(value, ref[key], err_msg=key, **tolerance)
