"""Real files come back whole with no options, and the .aez says how big it is against its input.

The comparison is ``examples/whole_file.py``'s (every tree and object, every readable branch by
name, its entries and values bit for bit, the coded columns against their bound), run here on a
few files of ``../shared`` that cover the layouts: a real CMS NanoAOD with its other trees, a
Delphes-like TClonesArray file, a NanoAOD with per-jet counters and a Runs tree. The script runs
the same check on every file of ``../shared``.
"""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

import jetzip
from conftest import REPO, SHARED, invoke, shared_file

_spec = importlib.util.spec_from_file_location("whole_file", REPO / "examples" / "whole_file.py")
assert _spec is not None and _spec.loader is not None
whole_file = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(whole_file)


@pytest.mark.parametrize("name, codec", [("data/nano_dy.root", "bounded"),
                                         ("cases/delphes_like.root", "bounded"),
                                         ("cases/nano_runs_perjet_counters.root", "latent")])
def test_a_real_file_comes_back_whole_with_no_options(name, codec, tmp_path):
    path = shared_file(SHARED / name)
    row = whole_file.check_file(path, codec, tmp_path)
    assert "error" not in row, row.get("error")
    assert row["problems"] == [], row["problems"]
    assert row["trees_restored"] == row["trees"] and row["objects_restored"] == row["objects"]
    assert row["carried"] == row["readable"] > 10 and row["identical"] == row["carried"]
    assert row["ratio"] < 1.0  # smaller than the input
    if codec == "bounded":
        assert row["within_bound"] is True


def test_the_comparison_sees_a_changed_value(tmp_path):
    """whole_file.same_values is what the test above relies on: it must tell values apart."""
    a = np.array([1.0, np.nan, 3.0], np.float32)
    assert whole_file.same_values(a, a.copy())
    b = a.copy()
    b[2] = np.nextafter(np.float32(3.0), np.float32(4.0))
    assert not whole_file.same_values(a, b)
    assert not whole_file.same_values(a, a.astype(np.float64))  # a type change is a change


def test_the_summary_gives_the_share_of_the_input_and_warns_when_larger(tmp_path):
    """A 3-jet CSV cannot shrink below the container's header: compress says so."""
    src = tmp_path / "tiny.csv"
    src.write_text("pt,eta,phi,m\n50.5,0.1,1.2,5.5\n30.25,-1.5,-2.0,4.0\n20.0,2.0,0.5,3.0\n")
    warnings: list[str] = []
    rep = jetzip.compress(src, tmp_path / "tiny.aez", error_bound="1e-3", warn=warnings.append)
    size = os.path.getsize(tmp_path / "tiny.aez")
    assert rep["input_bytes"] == src.stat().st_size
    assert rep["ratio_to_input"] == pytest.approx(size / src.stat().st_size)
    assert size > src.stat().st_size
    assert any("larger than its input" in w for w in warnings), warnings
    r = invoke("compress", src, "-o", tmp_path / "t2.aez", "--error-bound", "1e-3", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert b"larger than its input" in r.stderr and b"% of the input" in r.stderr


def test_inspect_bytes_by_part_add_up_to_the_file(tmp_path, nano_dy):
    aez = tmp_path / "nano.aez"
    jetzip.compress(nano_dy, aez, error_bound="nanoaod")
    r = invoke("inspect", aez, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    parts = info["bytes_by_part"]
    assert sum(parts.values()) == os.path.getsize(aez)
    assert parts["jets"] > 0 and parts["carried"] > parts["jets"]  # NanoAOD: most of the file is not jets
    assert parts["header"] > 0 and all(v >= 0 for v in parts.values())
