"""Guarantees under bad input data, interruption and failures (see README: Guarantees)."""
from __future__ import annotations

import hashlib
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import uproot

import jetzip
import jetfactory
from conftest import LOOSE, invoke


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def csv_table(tmp_path, n=40, seed=1, **override):
    j = jetfactory.jets(n, seed=seed)
    cols = {"E": jetfactory.energy(j["pt"], j["eta"], j["m"]).astype(np.float64), "pt": j["pt"].astype(np.float64),
            "eta": j["eta"].astype(np.float64), "phi": j["phi"].astype(np.float64)}
    for k, (idx, value) in override.items():
        cols[k][idx] = value
    p = tmp_path / "jets.csv"
    jetfactory.write_csv(p, cols)
    return p


# --- bad input data -------------------------------------------------------------------------

@pytest.mark.parametrize("column,value,reason", [
    ("E", math.nan, "NaN or inf"), ("E", -math.inf, "NaN or inf"), ("E", 0.0, "E <= 0"),
    ("E", -3.0, "E <= 0"), ("pt", -1.0, "pt <= 0")])
def test_invalid_values_error_or_drop(tmp_path, small_model_path, column, value, reason):
    p = csv_table(tmp_path, **{column: ([3, 9], value)})
    out = tmp_path / "x.aez"
    r = invoke("compress", p, "-o", out, "-m", small_model_path, "--units", "GeV")
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    assert f"2 jet(s) cannot be encoded (2 with {reason})".encode() in r.stderr, r.stderr
    assert b"line 5" in r.stderr and not out.exists()
    r = invoke("compress", p, "-o", out, "-m", small_model_path, "--units", "GeV", "--drop-invalid")
    assert r.returncode == 0 and b"dropped 2 invalid jets" in r.stderr
    assert jetzip.read_aez(out)["tail"]["n_jets"] == 38


def test_energy_below_pt_is_invalid(tmp_path, small_model_path):
    j = jetfactory.jets(30, seed=2)
    cols = {"E": jetfactory.energy(j["pt"], j["eta"], j["m"]).astype(np.float64), "pt": j["pt"].astype(np.float64),
            "eta": j["eta"].astype(np.float64), "phi": j["phi"].astype(np.float64)}
    cols["E"][4] = cols["pt"][4] * 0.5
    jetfactory.write_csv(tmp_path / "j.csv", cols)
    r = invoke("compress", tmp_path / "j.csv", "-o", tmp_path / "x.aez", "-m", small_model_path,
                "--units", "GeV")
    assert r.returncode == 1 and b"1 with E < pt" in r.stderr and b"line 6" in r.stderr


def test_dropping_invalid_jets_keeps_event_structure(tmp_path, small_model_path):
    import awkward as ak
    src = tmp_path / "nano.root"
    data = jetfactory.write_nanoaod(src, n_events=30, seed=3, extra=False)
    pt = data["pt"].copy()
    pt[0] = np.nan
    with uproot.recreate(tmp_path / "bad.root") as f:
        c = data["counts"].astype(np.int64)
        f.mktree("Events", {f"Jet_{k}": "var * float32" for k in ("pt", "eta", "phi", "mass")},
                 counter_name=lambda _: "nJet").extend(
            {"Jet_pt": ak.unflatten(pt, c), "Jet_eta": ak.unflatten(data["eta"], c),
             "Jet_phi": ak.unflatten(data["phi"], c), "Jet_mass": ak.unflatten(data["m"], c)})
    rep = jetzip.compress(tmp_path / "bad.root", tmp_path / "x.aez", model=small_model_path, drop_invalid=True)
    assert rep["dropped_invalid"] == 1
    counts = jetzip.read_aez(tmp_path / "x.aez")["counts"]
    expected = data["counts"].copy()
    expected[np.argmax(expected > 0)] -= 1
    np.testing.assert_array_equal(counts, expected)


def test_jets_outside_training_ranges_are_counted(tmp_path, small_model_path):
    p = csv_table(tmp_path, n=50, eta=([1, 2, 3], 7.5))
    r = invoke("compress", p, "-o", tmp_path / "x.aez", "-m", small_model_path, "--units", "GeV")
    assert r.returncode == 0
    assert b"3 of 50 jets (6.00%) lie outside the model's training ranges" in r.stderr


def test_phi_outside_range_is_wrapped(tmp_path, small_model_path):
    p = csv_table(tmp_path, n=30, phi=([0, 1], 3 * np.pi / 2))
    # through the network (jets stored verbatim keep the value they had)
    jetzip.compress(p, tmp_path / "x.aez", model=small_model_path, units="GeV", latent_tolerance=LOOSE)
    jetzip.decompress(tmp_path / "x.aez", tmp_path / "back.csv")
    back = np.loadtxt(tmp_path / "back.csv", delimiter=",", skiprows=1)
    assert np.all((back[:, 3] >= -np.pi) & (back[:, 3] <= np.pi))
    assert back[0, 3] == pytest.approx(-np.pi / 2, abs=0.2)  # 3pi/2 is -pi/2 after wrapping


def test_empty_files(tmp_path, small_model_path):
    for name, needle in (("e.root", b"cannot read as a ROOT file"), ("e.csv", b"is empty"),
                         ("e.h5", b"cannot read as an HDF5 file")):
        (tmp_path / name).write_bytes(b"")
        r = invoke("compress", tmp_path / name, "-o", tmp_path / "x.aez", "-m", small_model_path)
        assert r.returncode == 1 and needle in r.stderr, (name, r.stderr)
        assert not (tmp_path / "x.aez").exists()


def test_header_only_csv_gives_an_empty_aez(tmp_path, small_model_path):
    (tmp_path / "h.csv").write_text("pt,eta,phi,m\n")
    rep = jetzip.compress(tmp_path / "h.csv", tmp_path / "h.aez", model=small_model_path, units="GeV")
    assert rep["n_jets"] == 0
    jetzip.decompress(tmp_path / "h.aez", tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_text() == "pt,eta,phi,m\n"


def test_non_numeric_and_ragged_csv(tmp_path, small_model_path):
    (tmp_path / "a.csv").write_text("pt,eta,phi,m\n30,0.1,0.2,5\n40,abc,0.3,6\n")
    r = invoke("compress", tmp_path / "a.csv", "-o", tmp_path / "x.aez", "-m", small_model_path,
                "--units", "GeV")
    assert r.returncode == 1 and b"line 3: non-numeric cell 'abc'" in r.stderr
    (tmp_path / "b.csv").write_text("pt,eta,phi,m\n30,0.1,0.2,5\n40,0.3,6\n")
    r = invoke("compress", tmp_path / "b.csv", "-o", tmp_path / "x.aez", "-m", small_model_path,
                "--units", "GeV")
    assert r.returncode == 1 and b"line 3 has 3 cells, the header has 4" in r.stderr
    assert not (tmp_path / "x.aez").exists()


def test_integer_columns_are_accepted(tmp_path, small_model_path):
    j = jetfactory.jets(200, seed=5)
    cols = {"pt": np.round(j["pt"]).astype(np.int32) + 1, "eta": j["eta"], "phi": j["phi"],
            "m": np.round(j["m"]).astype(np.int64)}
    jetfactory.write_hdf5_columns(tmp_path / "i.h5", cols)
    rep = jetzip.compress(tmp_path / "i.h5", tmp_path / "i.aez", model=small_model_path)
    assert rep["n_jets"] == 200


# --- interruption and failures ---------------------------------------------------------------

@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.root"
    from jetzip.synthetic import write_nanoaod
    write_nanoaod(path, 400_000, seed=8)
    return path


def default_sigint() -> None:
    """In the child before exec: Ctrl-C's default action. A suite started in the background of
    a non-interactive shell (`cmd &`) inherits SIGINT ignored, and so would jetzip, which
    rightly keeps an ignored signal ignored: the interrupt tests would then test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_killed_compress_leaves_no_output_and_intact_input(tmp_path, big_input, small_model_path, jetzip_exe, sig):
    before = sha(big_input)
    out = tmp_path / "big.aez"
    proc = subprocess.Popen([jetzip_exe, "compress", str(big_input), "-o", str(out), "-m", str(small_model_path),
                             "--batch-size", "64", "--chunk-jets", "4096"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    deadline = time.time() + 120
    while not leftovers(tmp_path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "compress finished before it could be interrupted"
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert not out.exists()
    assert leftovers(tmp_path) == []
    assert sha(big_input) == before


def test_partial_file_of_a_killed_run_is_removed_by_the_next_run(tmp_path, big_input, small_model_path,
                                                                  jetzip_exe, nano_file):
    """SIGKILL cannot be caught: the temporary file stays, recognisable, until the next run on it."""
    from jetzip.atomic import TEMP_PATTERN

    out = tmp_path / "big.aez"
    proc = subprocess.Popen([jetzip_exe, "compress", str(big_input), "-o", str(out), "-m", str(small_model_path),
                             "--batch-size", "64", "--chunk-jets", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not leftovers(tmp_path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "compress finished before it could be killed"
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    (left,) = leftovers(tmp_path)
    m = TEMP_PATTERN.fullmatch(left)
    assert m and m["stem"] == "big.aez" and int(m["pid"]) == proc.pid, left
    assert not out.exists()
    path, data = nano_file  # the next run on that output (any input)
    r = invoke("compress", path, "-o", out, "-m", small_model_path)
    assert r.returncode == 0, r.stderr
    assert leftovers(tmp_path) == []
    assert jetzip.read_aez(out)["tail"]["n_jets"] == int(data["counts"].sum())


def test_disk_full_leaves_no_output(tmp_path, nano_file, small_model_path, monkeypatch):
    import errno

    from jetzip import aez
    path, _ = nano_file
    real = aez.AezWriter.write_chunk

    def full(self, *a, **k):
        if self.n_chunks >= 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(aez.AezWriter, "write_chunk", full)
    with pytest.raises(OSError, match="No space left"):
        jetzip.compress(path, tmp_path / "x.aez", model=small_model_path, chunk_jets=1024)
    assert not (tmp_path / "x.aez").exists() and leftovers(tmp_path) == []


def test_failed_decompress_keeps_existing_output(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "a.aez", model=small_model_path, chunk_jets=1024)
    data = bytearray((tmp_path / "a.aez").read_bytes())
    data[-30] ^= 1
    (tmp_path / "bad.aez").write_bytes(bytes(data))
    (tmp_path / "out.root").write_bytes(b"old result")
    with pytest.raises(jetzip.FormatError):
        jetzip.decompress(tmp_path / "bad.aez", tmp_path / "out.root", force=True)
    assert (tmp_path / "out.root").read_bytes() == b"old result"
    assert leftovers(tmp_path) == []


def test_interrupted_training_resumes(tmp_path, jetzip_exe):
    src = tmp_path / "jets.root"
    jetfactory.write_nanoaod(src, n_events=300, seed=6)  # ~1.4k jets: an epoch takes a fraction of a second
    out = tmp_path / "m.jzm"
    options = ["--arch", "AE_3D_50", "--epochs", "12", "--batch-size", "64", "--seed", "1"]
    proc = subprocess.Popen([jetzip_exe, "train", str(src), "-o", str(out), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    ckpt = tmp_path / "m.jzm.ckpt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not out.exists() and ckpt.exists()
    r = invoke("train", src, "-o", out, *options, "--resume", "--patience", "1")
    assert r.returncode == 0, r.stderr
    assert b"resumed at epoch" in r.stderr
    model = jetzip.load_model(out)
    assert model.arch.name == "AE_3D_50" and model.history[0]["epoch"] == 0


def test_library_import_does_not_need_click():
    code = ("import sys, builtins; real = builtins.__import__\n"
            "def guard(name, *a, **k):\n"
            "    if name == 'click' or name.startswith('click.'): raise ImportError('no click')\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\n"
            "import jetzip, jetzip.api, jetzip.aez, jetzip.training, jetzip.evaluation\n"
            "print(jetzip.compress.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "compress"


def test_no_reader_thread_left_after_a_failed_compress(tmp_path, small_model_path, nano_file):
    import threading

    path, _ = nano_file

    def fail(done, total):
        raise RuntimeError("stop here")

    for _ in range(3):
        with pytest.raises(RuntimeError, match="stop here"):
            jetzip.compress(path, tmp_path / "x.aez", model=small_model_path, chunk_jets=1024, progress=fail)
    assert not [t for t in threading.enumerate() if t.name == "jetzip-reader"]
    assert not (tmp_path / "x.aez").exists()


def test_a_signal_inside_a_native_call_is_raised_when_it_returns():
    """SIGTERM (and Ctrl-C) arriving while constriction's Rust code calls back into Python must
    not raise KeyboardInterrupt inside that callback (a Rust panic, exit 1): ``native_call``
    holds it and raises it once the call has returned."""
    import os

    from jetzip.atomic import native_call, sigterm_as_interrupt

    finished = []
    with sigterm_as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            with native_call():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):  # the handler runs here, between bytecodes: it must not raise
                    pass
                finished.append(True)
        with pytest.raises(KeyboardInterrupt):  # outside a native call: raised at once
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100000):
                pass
    assert finished == [True]


def test_ctrl_c_inside_a_numba_call_is_an_interruption(capsys, monkeypatch):
    """Ctrl-C / SIGTERM landing while numba's dispatcher calls back into Python (its
    ``_numba_unpickle``) comes out of the compiled call as a SystemError caused by the
    KeyboardInterrupt (seen with ``compress --error-bound 1e-3 --threads 1`` on 10M jets): the CLI
    says it was interrupted (exit 130), not an internal error to report."""
    from click import ClickException

    from jetzip.cli import EXIT_INTERRUPTED, run_guarded

    monkeypatch.delenv("JETZIP_DEBUG", raising=False)

    def numba_like():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher(<function quantize_verify>) returned a result with an "
                              "exception set") from exc

    with pytest.raises(SystemExit) as info:
        run_guarded(numba_like)
    assert info.value.code == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err

    def bug():
        raise SystemError("a real bug")

    with pytest.raises(ClickException, match="internal error"):
        run_guarded(bug)
