"""Mutated bounded payloads (examples/fuzz_bounded.py's oracle, seeded): refused with a
FormatError or decoded to values an honest payload under the file's configuration could hold,
never a crash, never NaN, inf or an off-grid value, and a chunk of a file with other bounds is
always refused."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from jetzip.errors import FormatError

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "fuzz_bounded.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_bounded", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_bounded"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_mutated_payloads_are_refused_or_decode_to_honest_values(fuzz):
    results = fuzz.run(400, seed=11)
    counts = {what: sum(c.values()) for what, c in results.items()}
    assert sum(counts.values()) == 400
    assert counts.get("crash", 0) == 0, dict(results["crash"])
    assert counts.get("violation", 0) == 0, dict(results["violation"])
    assert not [w for w in counts if "not refused" in w], counts
    assert counts["refused"] > 200  # most mutations are caught by the decoder itself


def test_the_oracle_sees_an_off_grid_value(fuzz):
    """The oracle is not blind: a decode with one pt moved off the grid is a violation, and
    NaN in a jet that was not verbatim is one."""
    case = fuzz.cases()[0]
    dec = {k: v.copy() for k, v in case.reference.items()}
    assert fuzz.grid_violations(case, dec) == 0
    dec["pt"][3] *= 1.0001
    assert fuzz.grid_violations(case, dec) == 1
    dec["phi"][4] = np.nan
    assert fuzz.grid_violations(case, dec) == 2
    case = next(c for c in fuzz.cases() if "constituents" in c.name)  # Cartesian columns
    dec = {k: v.copy() for k, v in case.reference.items()}
    assert fuzz.grid_violations(case, dec) == 0
    dec["px"][5] *= 1.0001
    assert fuzz.grid_violations(case, dec) == 1


def test_a_chunk_of_a_file_with_other_bounds_is_refused(fuzz):
    for case in fuzz.cases():
        if case.other and case.name.startswith("current"):
            with pytest.raises(FormatError, match="chunk"):
                case.codec.decode(case.other, case.n, case.counts)
