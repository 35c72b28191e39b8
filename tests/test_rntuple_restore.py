"""A NanoAOD RNTuple comes back as it was (issues 19, 20): every field uproot reads, with the
input's names, order and structure (the ``_collectionN`` records and the projected fields
``Jet_pt``, ``nJet`` that point into them), values bit-identical except the coded jets (within
the bound), and a restored file close to the input's size."""
from __future__ import annotations

import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import shared_file

import jetzip
from jetzip.tables import root_fastwrite

NANO_RNTUPLE = "public/nano_dimuon_rntuple.root"
BOUND = 1e-3
# restored bytes / input bytes measured with uproot 5.7.7 (the pages are compressed as the
# input's, ZSTD 5; deterministic for the same library versions): 87,418 / 74,946 = 1.166
MAX_RATIO = 1.2


@pytest.fixture(scope="module")
def restored(tmp_path_factory) -> tuple[Path, Path, set[str]]:
    src = shared_file(NANO_RNTUPLE)
    work = tmp_path_factory.mktemp("rntuple")
    aez, out = work / "n.aez", work / "n.root"
    jetzip.compress(src, aez, error_bound=str(BOUND), force=True, warn=lambda _: None)
    jetzip.decompress(aez, out, force=True, warn=lambda _: None)
    from jetzip.aez import open_aez

    with open_aez(aez) as f:
        coded = {n for t in f.tables for c in t.all_collections() for n in c.columns.values()}
    return src, out, coded


def _within(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per value: restored `b` within the bound of original `a` (relative for pt and mass, a
    zero staying zero; absolute for eta; absolute and wrapped for phi)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    slack = BOUND * 1.001  # the float32 rounding of the restored value
    err = np.abs(b - a)
    if name.endswith(("_pt", "_mass")):
        return np.where(a == 0, b == 0, err <= slack * np.abs(a))
    if name.endswith("_phi"):
        err = np.minimum(err, 2 * np.pi - err)
    return err <= slack


def _same(a, b) -> bool:
    return str(a.type) == str(b.type) and bool(ak.array_equal(a, b, equal_nan=True, dtype_exact=True))


def test_every_field_restored_with_its_values(restored):
    src, out, coded = restored
    with uproot.open(src) as fi, uproot.open(out) as fo:
        a, b = fi["Events"].arrays(), fo["Events"].arrays()
    assert a.fields == b.fields, f"missing: {[f for f in a.fields if f not in b.fields][:5]}"
    assert len(a) == len(b) == 40
    for field in a.fields:
        x, y = a[field], b[field]
        if field in coded:  # Jet_pt, FatJet_eta, ...: within the bound, same counts
            assert ak.to_list(ak.num(x)) == ak.to_list(ak.num(y)), field
            ok = _within(field, ak.to_numpy(ak.flatten(x)), ak.to_numpy(ak.flatten(y)))
            assert ok.all(), f"{field}: {int((~ok).sum())} values outside the bound"
        elif x.fields and set(x.fields) & coded:  # the collection holding coded jets
            assert str(x.type) == str(y.type), field
            for sub in x.fields:
                # coded members: the same values as their projection (checked above)
                assert _same(x[sub], y[sub]) or (sub in coded and _same(y[sub], b[sub])), f"{field}.{sub}"
        else:
            assert _same(x, y), f"{field} differs: {x.type} / {y.type}"


def test_structure_is_the_inputs(restored):
    """The same fields, columns and projections as the input: ``Jet_pt`` an ``RVec`` projected
    on ``_collectionN._0.Jet_pt``, ``nJet`` a cardinality projected on ``_collectionN``, not
    columns of their own (the restore had 2,259 columns against the input's 1,601)."""
    src, out, _ = restored
    root_fastwrite.install()
    assert root_fastwrite._STATE.get("ntuple_projections"), root_fastwrite._STATE.get("ntuple_projections_why")
    with uproot.open(src) as fi, uproot.open(out) as fo:
        ni, no = fi["Events"], fo["Events"]
        assert len(no.column_records) == len(ni.column_records) == 1601
        assert len(no.alias_column_records) == len(ni.alias_column_records)
        names_i = [(r.field_name, r.type_name, int(r.flags)) for r in ni.field_records]
        names_o = [(r.field_name, r.type_name, int(r.flags)) for r in no.field_records]
        assert [n for n, _, _ in names_o] == [n for n, _, _ in names_i]
        projected = {n: t for n, t, flags in names_o if flags & 2}
        assert projected["nJet"] == "ROOT::RNTupleCardinality<std::uint32_t>"
        assert projected["Jet_pt"] == "ROOT::VecOps::RVec<float>"
        sources_i = [r.source_field_id for r in ni.field_records]
        sources_o = [r.source_field_id for r in no.field_records]
        assert sources_o == sources_i


def test_restored_size(restored):
    src, out, _ = restored
    ratio = os.path.getsize(out) / os.path.getsize(src)
    assert ratio <= MAX_RATIO, (f"restored {os.path.getsize(out)} B = {ratio:.3f}x the input's "
                                f"{os.path.getsize(src)} B")
