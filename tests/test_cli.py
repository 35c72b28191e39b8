"""The jetzip command as users run it: the installed script, exit codes, stdout/stderr split."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from jetzip.cli import cli
from conftest import LOOSE, invoke, run_cli

COMMANDS = ["compress", "decompress", "inspect", "train", "evaluate", "bench"]


def test_version_and_help():
    from jetzip import __version__
    r = invoke("--version")
    assert r.returncode == 0 and __version__ in r.stdout.decode()
    r = invoke("--help")
    assert r.returncode == 0
    for cmd in COMMANDS:
        assert cmd in r.stdout.decode()


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd):
    r = CliRunner().invoke(cli, [cmd, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output


def test_compress_decompress_inspect_through_installed_script(tmp_path, nano_file, small_model_path, jetzip_exe):
    """The console script end to end (a real process for compress and for CSV on stdout)."""
    path, data = nano_file
    aez = tmp_path / "n.aez"
    r = run_cli(jetzip_exe, "compress", path, "-o", aez, "-m", small_model_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"", "human messages must go to stderr"
    assert b"jets" in r.stderr
    r = invoke("inspect", aez, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["verified"] is True and info["n_jets"] == int(data["counts"].sum())
    assert info["codec_config"]["model"]["embedded"] is True
    r = invoke("inspect", aez)
    assert r.returncode == 0 and b"all verified" in r.stdout, "the report is the output: stdout"
    r = run_cli(jetzip_exe, "decompress", aez, "-o", "-")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    header = lines[0].split(",")
    # the original has an `event` branch: the index column is named apart from it
    assert header[0] == "jetzip_event" and header[-4:] == ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
    assert len(lines) == 1 + int(data["counts"].sum())
    table = np.loadtxt(lines[1:], delimiter=",")
    np.testing.assert_array_equal(np.bincount(table[:, 0].astype(int), minlength=300)[data["counts"] > 0],
                                  data["counts"][data["counts"] > 0])
    r = invoke("decompress", aez, "-o", tmp_path / "back.root")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.root").exists()


def test_inspect_model(small_model_path):
    r = invoke("inspect", small_model_path, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["kind"] == "model"
    assert info["arch"]["hidden"] == [32, 32, 16]
    assert info["metadata"]["val_residuals"]["pt"]["n"] > 0
    r = invoke("inspect", small_model_path)
    assert r.returncode == 0 and b"architecture" in r.stdout


def test_compress_json_report(tmp_path, nano_file, small_model_path):
    path, data = nano_file
    r = invoke("compress", path, "-o", tmp_path / "x.aez", "-m", small_model_path, "--json",
               "--no-embed-model", "--tolerance", LOOSE, "--latent-dtype", "float32")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["n_jets"] == int(data["counts"].sum())
    assert rep["exact_jets"] == 0  # the loose tolerance: every jet through the network
    assert 12 <= rep["payload_bytes_per_jet"] < 12.5  # 3 float32 per jet
    assert rep["bytes_per_jet"] < 16  # and the header
    r = invoke("compress", path, "-o", tmp_path / "q.aez", "-m", small_model_path, "--json",
               "--no-embed-model", "--tolerance", LOOSE)  # the default: quantized latents
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["payload_bytes_per_jet"] < rep["payload_bytes_per_jet"] / 2


def test_default_output_name_and_several_inputs(tmp_path, small_model_path):
    import jetfactory
    a, b = tmp_path / "a.root", tmp_path / "b.root"
    jetfactory.write_nanoaod(a, 50, seed=1)
    jetfactory.write_nanoaod(b, 60, seed=2)
    r = CliRunner().invoke(cli, ["compress", str(a), "-m", str(small_model_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a.aez").exists()
    out = tmp_path / "out"
    out.mkdir()
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "*.root"), "-o", str(out), "-m", str(small_model_path)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["a.aez", "b.aez"]
