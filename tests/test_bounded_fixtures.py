"""Every bounded codec payload fixture (tests/golden/codecs/bounded/<version>/<case>/, written once
by tests/golden/codecs/make_bounded_fixtures.py) decodes forever to the values it decoded to
when it was written, and those are within the configuration's bounds of the original jets.

Decoded floats go through exp and cosh, which may differ by an ulp between machines: they are
compared at 1e-12 relative (far inside every bound), and checked against the bounds themselves."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jetzip.codecs import get_codec
from jetzip.codecs.bounded import BoundedCodec
from jetzip.codecs.bounded.spec import VERSION

FIXTURES = Path(__file__).parent / "golden" / "codecs" / "bounded"
CASES = sorted(p for p in FIXTURES.glob("*/*") if (p / "config.json").exists())


def test_every_payload_version_written_today_has_fixtures():
    assert {int(p.parent.name) for p in CASES} >= {VERSION}
    assert len([p for p in CASES if p.parent.name == str(VERSION)]) >= 4


def fixture_chunks(case: Path):
    """(chunk number, encoded file, its decoded.npz, its counts or None) of every chunk of a
    fixture case, in order; at least one."""
    chunks = sorted(case.glob("encoded.*.bin"))
    assert chunks
    for enc in chunks:
        nn = enc.name.split(".")[1]
        counts = np.load(case / f"counts.{nn}.npy") if (case / f"counts.{nn}.npy").exists() else None
        yield nn, enc, np.load(case / f"decoded.{nn}.npz"), counts


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"v{p.parent.name}/{p.name}")
def test_fixture_decodes_to_its_values(case):
    config = json.loads((case / "config.json").read_text())
    assert config["id"] == "bounded" and str(config["version"]) == case.parent.name
    codec = get_codec(config)
    for nn, enc, ref, counts in fixture_chunks(case):
        roles = [k[4:] for k in ref.files if k.startswith("dec_")]
        n = len(ref[f"dec_{roles[0]}"])
        got = codec.decode(enc.read_bytes(), n, counts, f"{case.name} chunk {nn}")
        for role in roles:
            np.testing.assert_allclose(got[role], ref[f"dec_{role}"], rtol=1e-12, atol=1e-300)
            np.testing.assert_array_equal(np.signbit(got[role]), np.signbit(ref[f"dec_{role}"]))
        # within the bounds, as a writer stores the values (float32); Cartesian components
        # relative to pt or |p| of the original, a relative zero exact with its sign
        original = {r: ref[f"orig_{r}"] for r in roles}
        err = BoundedCodec.bound_errors(config, original, {r: got[r].astype(np.float32) for r in roles})
        for role in roles:
            assert err[role].max() <= config["bounds"][role], role


@pytest.mark.parametrize("case", [p for p in CASES if p.parent.name == str(VERSION)], ids=lambda p: p.name)
def test_the_payload_fixtures_are_written_again_byte_for_byte(case):
    """The fixtures of today's payload version (written once by the encoder before its kernels
    were made faster, from the originals stored beside them) come out of today's encoder byte
    for byte."""
    codec = get_codec(json.loads((case / "config.json").read_text()))
    for _, enc, ref, counts in fixture_chunks(case):
        cols = {k[5:]: ref[k] for k in ref.files if k.startswith("orig_")}
        assert cols
        assert codec.encode(cols, counts) == enc.read_bytes(), enc.name
