"""Every crafted file of ../shared/cases/hostile/ gives a one-line error or a correct result.

Peak memory and time are measured by examples/hostile_check.py (a script, not a timed test).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import jetzip

SHARED = Path(__file__).resolve().parents[2] / "shared"
HOSTILE = SHARED / "cases" / "hostile"


def hostile(name: str) -> Path:
    path = HOSTILE / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing: CI must have ../shared beside the repository")
        pytest.skip(f"{path} not found (../shared/cases is this project's shared data)")
    return path


def one_line_error(fn, match: str) -> None:
    with pytest.raises(jetzip.JetzipError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, match", [
    ("counts_bomb_2p26.aez", "more than a chunk may hold"),
    ("keep_bomb_1000.aez", "kept branches are corrupted"),
    ("latents_nan_inf.aez", "decode to NaN or inf"),
    ("cols_duplicate_names.aez", "appears twice"),
    ("decw_tampered_crc_fixed.aez", "does not match its SHA-256"),
])
def test_damaged_aez_files_are_refused_in_one_line(name, match, tmp_path):
    path = hostile(name)
    one_line_error(lambda: jetzip.decompress(path, tmp_path / "out.root"), match)
    assert not (tmp_path / "out.root").exists()


def test_inspect_does_not_call_a_tampered_decoder_verified():
    one_line_error(lambda: jetzip.inspect(hostile("decw_tampered_crc_fixed.aez")), "SHA-256")


def test_ten_thousand_empty_chunks_decode_to_an_empty_table(tmp_path):
    rep = jetzip.decompress(hostile("empty_chunks_10000.aez"), tmp_path / "out.h5")
    assert rep["n_jets"] == 0 and (tmp_path / "out.h5").exists()


def test_skewed_events_are_cut_into_bounded_chunks(tmp_path):
    """2000 empty events, then 100 events of 1e5 jets: chunks hold whole events, never all."""
    out = tmp_path / "s.aez"
    rep = jetzip.compress(hostile("skewed_1e7.root"), out, error_bound="1e-3", chunk_jets=200_000,
                          max_jets=1_000_000)
    assert rep["n_jets"] == 1_000_000 and rep["n_chunks"] >= 5
    with jetzip.open_aez(out) as aez:
        assert max(c.n_jets for c in aez.chunks()) <= 200_000


def test_counter_declaring_1e9_rows(tmp_path):
    path = hostile("h5_counter_1e9.h5")
    try:
        rep = jetzip.compress(path, tmp_path / "c.aez", error_bound="1e-3")
    except jetzip.JetzipError as exc:
        assert "\n" not in str(exc)
    else:
        assert rep["n_jets"] < 10**7


def test_seventy_thousand_column_header(tmp_path):
    rep = jetzip.compress(hostile("csv_cols_70000.csv"), tmp_path / "w.aez", error_bound="1e-3")
    assert rep["n_jets"] > 0


def test_string_pt_branch_is_one_line_error(tmp_path):
    one_line_error(lambda: jetzip.compress(hostile("string_branch_flat.root"), tmp_path / "s.aez",
                                           error_bound="1e-3"), "pt")
    assert not (tmp_path / "s.aez").exists()


def test_hostile_check_script_lists_every_case():
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "examples" / "hostile_check.py"
    spec = importlib.util.spec_from_file_location("hostile_check", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = {c[0] for c in module.CASES}
    if HOSTILE.exists():
        assert names == {p.name for p in HOSTILE.iterdir()}
    assert np.all([isinstance(c[1], list) for c in module.CASES])


def test_entropy_model_training_on_one_event_is_a_one_line_error(tmp_path):
    """5,000 jets in one event: the validation split is by event, so one event is too few."""
    from jetzip.context_training import train_context_model

    one_line_error(lambda: train_context_model([str(hostile("train_one_event.root"))], str(tmp_path / "m.jzc")),
                   "too few")
    assert not (tmp_path / "m.jzc").exists()
