"""jetzip as a shell tool: closed pipes, several inputs, temporary files, progress, options.

Real processes where the shell's view matters (pipes, exit codes, import cost); the rest runs
the CLI in this process (`invoke`).
"""
from __future__ import annotations

import errno
import inspect
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import jetzip
import jetfactory
from conftest import LOOSE, invoke, run_cli


@pytest.fixture(scope="module")
def big_aez(tmp_path_factory, small_model_path):
    """A .aez whose CSV is far larger than a pipe's buffer (~64 kB): ~13k jets, ~0.8 MB."""
    folder = tmp_path_factory.mktemp("pipes")
    src = folder / "big.root"
    jetfactory.write_nanoaod(src, n_events=3000, seed=1)
    aez = folder / "big.aez"
    jetzip.compress(src, aez, model=small_model_path, latent_tolerance=LOOSE)
    return src, aez


def _quiet_end(err: bytes) -> None:
    text = err.decode(errors="replace")
    for noise in ("Traceback", "Exception ignored", "Error", "BrokenPipe", "internal error"):
        assert noise not in text, text


# --- closed pipes ---------------------------------------------------------------------------

def test_closed_pipe_ends_quietly_and_always_the_same(big_aez, jetzip_exe):
    """`decompress -o - | head -1`, `evaluate | true`, `inspect | head -1`: exit 0, no noise.

    Several at once, so that the reader closes at different moments: before a write, or while
    a large write waits for it (the old exit code depended on that); a shell pipeline below.
    """
    src, aez = big_aez
    commands = {"decompress | head -1": ["decompress", aez, "-o", "-"],
                "evaluate | true": ["evaluate", src, aez],
                "inspect | head -1": ["inspect", aez]}
    procs = []
    for name, args in commands.items():
        for _ in range(2 if name.startswith("decompress") else 1):
            p = subprocess.Popen([jetzip_exe, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if name.endswith("| true"):
                p.stdout.close()  # `true` reads nothing: every write meets a closed pipe
            procs.append((name, p))
    codes: dict[str, set[int]] = {}
    for name, p in procs:
        if not p.stdout.closed:
            first = p.stdout.readline()  # `head -1`
            p.stdout.close()
            assert first.strip(), name
            if name.startswith("decompress"):
                assert first.decode().split(",")[-4:] == ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass\n"]
        err = p.stderr.read()
        p.wait(timeout=300)
        _quiet_end(err)
        codes.setdefault(name, set()).add(p.returncode)
    assert codes == {name: {0} for name in commands}, codes


def test_closed_pipe_in_a_real_shell_pipeline(big_aez, jetzip_exe):
    _, aez = big_aez
    r = subprocess.run(["bash", "-c", f'"{jetzip_exe}" decompress "{aez}" -o - | head -1; '
                                      'echo "status ${PIPESTATUS[0]}" >&2'],
                       capture_output=True, timeout=300)
    assert r.stdout.decode().count("\n") == 1
    assert r.stderr.decode().strip().splitlines()[-1] == "status 0"
    _quiet_end(r.stderr)


def test_help_and_version_need_no_torch(jetzip_exe):
    code = ("import sys, time; t = time.perf_counter(); from jetzip.cli import main; sys.argv = ['jetzip', "
            "'compress', '--help']\ntry:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('torch' in sys.modules, 'uproot' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "False False"
    assert "--error-bound" in r.stdout
    r = run_cli(jetzip_exe, "--version")
    assert r.returncode == 0 and jetzip.__version__ in r.stdout.decode()


def test_exit_codes_of_the_installed_script(tmp_path, jetzip_exe):
    assert run_cli(jetzip_exe, "compress").returncode == 2  # usage
    r = run_cli(jetzip_exe, "inspect", tmp_path / "missing.aez")
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1 and b"does not exist" in r.stderr


# --- several inputs -------------------------------------------------------------------------

def test_a_bad_input_does_not_stop_the_others(tmp_path, small_model_path):
    good_a, good_c = tmp_path / "a.root", tmp_path / "c.root"
    jetfactory.write_nanoaod(good_a, 40, seed=1)
    jetfactory.write_nanoaod(good_c, 50, seed=3)
    (tmp_path / "b.root").write_bytes(b"not ROOT" * 20)
    out = tmp_path / "out"
    r = invoke("compress", good_a, tmp_path / "b.root", tmp_path / "missing.root", good_c, "-o", str(out) + "/",
               "-m", small_model_path, "--json")
    assert r.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.aez", "c.aez"]
    err = r.stderr.decode()
    assert re.search(r"b\.root: cannot read as a ROOT file", err) and "missing.root does not exist" in err
    summary = err.strip().splitlines()[-1]
    jets = sum(jetzip.read_aez(out / n)["tail"]["n_jets"] for n in ("a.aez", "c.aez"))
    assert summary.startswith(f"jetzip: compressed 2 of 4 inputs ({jets} jets, "), summary
    assert summary.endswith(f"2 failed: {tmp_path / 'b.root'}, {tmp_path / 'missing.root'}"), summary
    reports = json.loads(r.stdout)
    assert [("error" in rep) for rep in reports] == [False, True, True, False]
    # all well: exit 0 and a summary that says so
    r = invoke("compress", str(tmp_path / "[ac].root"), "-o", out, "-m", small_model_path, "-f")
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().strip().splitlines()[-1].startswith("jetzip: compressed 2 of 2 inputs")
    # one input fails alone: the usual one-line error, no summary
    r = invoke("compress", tmp_path / "b.root", "-o", tmp_path / "b.aez", "-m", small_model_path)
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1 and b"compressed" not in r.stderr


# --- temporary files ------------------------------------------------------------------------

def test_errors_name_the_output_not_the_temporary_file(tmp_path, nano_file, small_model_path, monkeypatch):
    from jetzip import api

    path, _ = nano_file
    aez = tmp_path / "n.aez"
    jetzip.compress(path, aez, model=small_model_path)
    out = tmp_path / "restored.h5"
    seen = []

    def disk_full(target, *a, **k):
        seen.append(target)
        raise OSError(errno.ENOSPC, "No space left on device", target)

    monkeypatch.setattr(api, "open_file_writer", disk_full)
    r = invoke("decompress", aez, "-o", out)
    assert r.returncode == 1
    assert seen and "~jetzip-" in os.path.basename(seen[0]), "the writer got a temporary name"
    err = r.stderr.decode()
    assert f"{out}: No space left on device" in err and "~jetzip-" not in err and ".part" not in err, err

    def refuses(target, *a, **k):
        raise jetzip.JetzipError(f"cannot write {target}: the format refuses it")

    monkeypatch.setattr(api, "open_file_writer", refuses)
    with pytest.raises(jetzip.JetzipError) as info:
        jetzip.decompress(aez, out)
    assert str(info.value) == f"cannot write {out}: the format refuses it"
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path, nano_file, small_model_path):
    from jetzip.atomic import TEMP_PATTERN, stale_temporaries, temp_prefix

    path, _ = nano_file
    out = tmp_path / "n.aez"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = temp_prefix(out)
        def named(pid, host=None):
            name = mine.replace(f"-{os.getpid()}-", f"-{pid}-")
            if host:
                name = re.sub(r"-[0-9a-f]{8}-$", f"-{host}-", name)
            p = tmp_path / (name + "x1y2z3.part")
            p.write_bytes(b"half a file")
            assert TEMP_PATTERN.fullmatch(p.name)
            return p
        left_by_dead = named(dead.pid)
        being_written = named(alive.pid)
        other_host = named(dead.pid, host="0123abcd" if "0123abcd" not in mine else "abcd0123")
        other_output = tmp_path / (temp_prefix(tmp_path / "other.aez").replace(f"-{os.getpid()}-", f"-{dead.pid}-")
                                   + "q.part")
        other_output.write_bytes(b"x")
        assert stale_temporaries(out) == [left_by_dead]
        r = invoke("compress", path, "-o", out, "-m", small_model_path)
        assert r.returncode == 0, r.stderr
        assert not left_by_dead.exists()
        assert being_written.exists() and other_host.exists() and other_output.exists()
        assert out.exists()
    finally:
        alive.kill()
        alive.wait()


# --- progress -------------------------------------------------------------------------------

def test_progress_bars_say_what_they_count(tmp_path, nano_file, small_model_path, monkeypatch):
    from rich.console import Console

    from jetzip import cli

    path, data = nano_file
    screen = io.StringIO()
    monkeypatch.setattr(cli, "_console", lambda stdout=False: Console(file=screen, force_terminal=True,
                                                                       color_system=None, width=200))
    r = invoke("compress", path, "-o", tmp_path / "n.aez", "-m", small_model_path, "--chunk-jets", "1024")
    assert r.returncode == 0, r.stderr
    n_events, n_chunks = len(data["counts"]), jetzip.read_aez(tmp_path / "n.aez")["tail"]["n_chunks"]
    assert n_chunks > 1
    assert f"{n_events}/{n_events} events, {n_chunks} chunks" in screen.getvalue(), screen.getvalue()[-2000:]
    screen.truncate(0)
    r = invoke("decompress", tmp_path / "n.aez", "-o", tmp_path / "back.root")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"decompress n\.aez.*{n_events}/\? events, {n_chunks} chunks", screen.getvalue())


# --- options forwarded one-to-one -----------------------------------------------------------

def test_every_library_keyword_has_its_option():
    """The CLI is a thin layer: each keyword of compress/decompress is an option of the same name,
    and the dataset options (--scheduler, ...) are keywords of jetzip.dask's functions."""
    from jetzip import api
    from jetzip import dask as jd
    from jetzip.cli import cli

    renamed = {"compress": {"no_embed_model": "embed_model"}, "decompress": {"fmt": "format"}}
    own = {"inputs", "input", "as_json", "no_progress", "quiet"}
    library_only = {"input", "output", "progress", "warn",
                    "entry_range"}  # a part of a file, for jetzip.dask's tasks
    dataset = {"scheduler", "entries_per_task", "retries"}  # jetzip.dask
    for name, fn, dataset_fn in (("compress", api.compress, jd.compress),
                                 ("decompress", api.decompress, jd.decompress)):
        keywords = set(inspect.signature(fn).parameters) - library_only
        options = {renamed[name].get(p.name, p.name) for p in cli.commands[name].params} - own
        assert keywords | {"output"} == options - dataset, (name, keywords ^ (options - dataset))
        assert options & dataset <= set(inspect.signature(dataset_fn).parameters), name


def test_max_jets_keeps_whole_events(tmp_path, nano_file, small_model_path):
    path, data = nano_file
    r = invoke("compress", path, "-o", tmp_path / "m.aez", "-m", small_model_path, "--max-jets", "100", "--json")
    assert r.returncode == 0, r.stderr
    counts = jetzip.read_aez(tmp_path / "m.aez")["counts"]
    n = len(counts)
    np.testing.assert_array_equal(counts, data["counts"][:n])
    assert counts.sum() <= 100 < counts.sum() + data["counts"][n]
    assert json.loads(r.stdout)["n_jets"] == counts.sum()


def test_error_bound_option_bounds_every_value(tmp_path, nano_file):
    import awkward as ak
    import uproot

    path, data = nano_file
    r = invoke("compress", path, "-o", tmp_path / "b.aez", "--error-bound", "pt=1e-3,eta=2e-3,phi=2e-3,m=1e-2",
               "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["codec"] == "bounded"
    assert invoke("decompress", tmp_path / "b.aez", "-o", tmp_path / "b.root").returncode == 0
    back = uproot.open(tmp_path / "b.root")["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi"])
    pt, eta = ak.flatten(back["Jet_pt"]).to_numpy(), ak.flatten(back["Jet_eta"]).to_numpy()
    dphi = (ak.flatten(back["Jet_phi"]).to_numpy() - data["phi"] + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(pt / data["pt"] - 1).max() <= 1e-3 * (1 + 1e-4) + 1e-7
    assert np.abs(eta - data["eta"]).max() <= 2e-3 + 1e-6 and np.abs(dphi).max() <= 2e-3 + 1e-6
    r = invoke("compress", path, "-o", tmp_path / "x.aez", "--error-bound", "pt=banana")
    assert r.returncode == 1 and not (tmp_path / "x.aez").exists()


def test_tolerance_option_reaches_the_latent_codec(tmp_path, nano_file, small_model_path):
    path, data = nano_file
    n = int(data["counts"].sum())
    exact = {}
    for tol in ("pt=1e-9,eta=1e-9,phi=1e-9", LOOSE):
        r = invoke("compress", path, "-o", tmp_path / "t.aez", "-m", small_model_path, "--tolerance", tol,
                   "-f", "--json")
        assert r.returncode == 0, r.stderr
        exact[tol] = json.loads(r.stdout)["exact_jets"]
    assert exact == {"pt=1e-9,eta=1e-9,phi=1e-9": n, LOOSE: 0}


def test_drop_branches_option(tmp_path, small_model_path):
    j = jetfactory.jets(30, seed=2)
    jetfactory.write_csv(tmp_path / "w.csv", {"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "m": j["m"],
                                              "weight": np.linspace(0, 1, 30), "flag": np.ones(30)})
    kept = {}
    for extra in ((), ("--drop-branches", "fl*"), ("--drop-branches", "fl*", "--drop-branches", "w*")):
        r = invoke("compress", tmp_path / "w.csv", "-o", tmp_path / "w.aez", "-m", small_model_path,
                   "--units", "GeV", "-f", *extra)
        assert r.returncode == 0, r.stderr
        src = jetzip.read_aez(tmp_path / "w.aez")["table"]
        kept[extra] = sorted(src["kept_branches"] + src["jet_branches"])
    assert list(kept.values()) == [["flag", "weight"], ["weight"], []]


def test_closed_stderr_only_silences_messages(tmp_path, nano_file, small_model_path, jetzip_exe):
    """`jetzip compress ... 2>&1 | head -0`: the warnings cannot be shown, the work is still done."""
    path, data = nano_file
    out = tmp_path / "n.aez"
    p = subprocess.Popen([jetzip_exe, "compress", str(path), "-o", str(out), "-m", str(small_model_path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p.stderr.close()
    assert p.wait(timeout=300) == 0
    assert jetzip.read_aez(out)["tail"]["n_jets"] == int(data["counts"].sum())


def test_public_test_files_skip_outside_ci_and_fail_in_ci(tmp_path, monkeypatch):
    """shared/ beside the repository holds public test files; without it: skip, but never in CI."""
    from conftest import NANO_DY, REPO, SHARED, shared_file

    assert NANO_DY.parent.parent == SHARED and SHARED.parent == REPO.parent
    missing = tmp_path / "not-there.root"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not-there.root is missing"):
        shared_file(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        shared_file(missing)


def test_stdout_and_stderr_closed_before_the_start(tmp_path, nano_file, small_model_path, jetzip_exe):
    """`jetzip compress ... --json >&- 2>&-`: the work is done, exit 0 (a reader that has gone),
    no internal error (Python starts with sys.stdout None then)."""
    path, data = nano_file
    out = tmp_path / "n.aez"
    r = subprocess.run(["bash", "-c", f'"{jetzip_exe}" compress "{path}" -o "{out}" -m "{small_model_path}" '
                                      '--json >&- 2>&-; echo "status $?" > status.txt'],
                       cwd=tmp_path, capture_output=True, timeout=300)
    assert r.returncode == 0
    assert (tmp_path / "status.txt").read_text().strip() == "status 0"
    assert jetzip.read_aez(out)["tail"]["n_jets"] == int(data["counts"].sum())
