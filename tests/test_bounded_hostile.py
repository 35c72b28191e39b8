"""The crafted bounded files of ../shared/cases/hostile/ (see its README) are refused by
decompress and inspect, through the library and the command line, in one line naming the chunk
and the field; nothing is written."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import jetzip

sys.path.insert(0, str(Path(__file__).parent))
from conftest import invoke  # noqa: E402
from test_hostile import hostile  # noqa: E402


def refused(path: Path, match: str, tmp_path: Path) -> None:
    out = tmp_path / "out.root"
    for run in (lambda: jetzip.decompress(path, out), lambda: jetzip.inspect(path)):
        with pytest.raises(jetzip.FormatError, match=match) as info:
            run()
        assert "\n" not in str(info.value) and "chunk 0" in str(info.value)
    assert not out.exists()
    for args in (("decompress", path, "-o", out), ("inspect", path)):
        r = invoke(*args)
        assert r.returncode == 1, r.stdout
        assert r.stderr.decode().count("\n") == 1 and match.split()[-1] in r.stderr.decode()
    assert not out.exists()


def test_steps_fifty_times_the_bound_are_refused(tmp_path):
    """b02: the pt step of a 1e-3 file made 50x larger (pt decoded as inf, exit 0, before)."""
    refused(hostile("b02_steps_x50.aez"), "pt quantization step", tmp_path)


def test_chunks_of_a_file_with_other_bounds_are_refused(tmp_path):
    """b03: the header of a 1e-3 file glued onto the chunks of the same input at 0.1, no CRC
    edited (errors up to 0.1 under a header promising 1e-3, before). The codec's step check
    catches it on its own, whatever the container checks."""
    refused(hostile("b03_splice_head1e-3_chunks0.1.aez"), "pt quantization step", tmp_path)


def test_verbatim_nan_and_inf_are_refused(tmp_path):
    """b05: jets stored verbatim as NaN and inf (written out with exit 0, before)."""
    refused(hostile("b05_verbatim_nan_inf_neg.aez"), "verbatim jet holds NaN or inf", tmp_path)
