"""Shared fixtures: the committed small trained model, public test files, running the CLI."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# One torch (OpenMP) thread per process unless the caller chose: on a loaded 2-core machine
# OpenMP's spinning worker threads made the small trainings here 10x slower. Subprocesses inherit
# it. Tests about thread counts pass threads explicitly (compress/decompress threads=...).
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).parent))
import jetfactory  # noqa: E402,F401  (tests import it from here too)

REPO = Path(__file__).resolve().parent.parent
# Public test files live outside the project, beside the repository (in CI too): never copies
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
NANO_DY = SHARED_DATA / "nano_dy.root"  # a real CMS NanoAOD file (scikit-hep uproot-issue121.root)
SHIPPED_MODEL = REPO / "jetzip" / "models" / "AE_3D_200.jzm"
EXAMPLE_JETS = REPO / "examples" / "sample_jets.root"
# A small trained model, made by tests/make_test_model.py and committed (test_train checks it)
SMALL_MODEL = REPO / "tests" / "data" / "small_model.jzm"
# A latent tolerance every jet of the small model meets: tests of the network path use it (the
# default, 5e-3, would store most of the small model's jets verbatim)
LOOSE = "pt=1,eta=1,phi=1"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def shared_file(path: str | os.PathLike) -> Path:
    """A public test file under ../shared, or a skip with the reason (a failure under CI=true)."""
    p = Path(path)
    if not p.is_absolute():
        p = SHARED_DATA / p
    if not p.exists():
        why = (f"{p} is missing: public test files are read from the shared/ folder beside the "
               "repository, not from copies in the project")
        if in_ci():
            pytest.fail(why + " (CI=true: this must not skip)")
        pytest.skip(why)
    return p


@pytest.fixture
def nano_dy() -> Path:
    """The real CMS NanoAOD test file (40 events, 188 jets), from ../shared/data."""
    return shared_file(NANO_DY)


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory) -> Path:
    """The committed small trained model (4-32-32-16-3), copied so no test can change it.

    It decodes jets to a few percent, which is what pipeline tests need; the shipped model's
    precision is tested separately.
    """
    if not SMALL_MODEL.exists():
        pytest.fail(f"{SMALL_MODEL} is missing; make it with .venv/bin/python tests/make_test_model.py")
    path = tmp_path_factory.mktemp("model") / "small.jzm"
    shutil.copyfile(SMALL_MODEL, path)
    return path


@pytest.fixture(scope="session")
def small_model(small_model_path):
    from jetzip.model import load_model

    return load_model(small_model_path)


@pytest.fixture
def nano_file(tmp_path) -> tuple[Path, dict]:
    path = tmp_path / "nano.root"
    data = jetfactory.write_nanoaod(path, n_events=300, seed=5)
    return path, data


@pytest.fixture(scope="session")
def jetzip_exe() -> str:
    """The installed console script (tests it as users run it)."""
    exe = shutil.which("jetzip", path=os.path.dirname(sys.executable)) or shutil.which("jetzip")
    if exe is None:
        pytest.fail("the jetzip console script is not installed (pip install -e .)")
    return exe


def run_cli(exe: str, *args: str, input: bytes | None = None, env: dict | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess:
    """The installed script in a real process: for exit codes, signals, pipes, import costs."""
    return subprocess.run([exe, *map(str, args)], capture_output=True, input=input,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


@dataclass
class CliResult:
    """What `invoke` returns: the fields of a CompletedProcess the tests read."""
    returncode: int
    stdout: bytes
    stderr: bytes
    exception: BaseException | None = None


def invoke(*args, input: bytes | str | None = None, env: dict | None = None,
           cwd: str | os.PathLike | None = None) -> CliResult:
    """Run `jetzip ARGS` in this process (no 3 s of interpreter and torch start-up).

    stdout and stderr are captured separately (click >= 8.2). Use it wherever a real process
    adds nothing; `run_cli` for what needs one.
    """
    from click.testing import CliRunner

    from jetzip.cli import cli

    old = os.getcwd()
    with contextlib.ExitStack() as stack:
        if cwd is not None:
            os.chdir(cwd)
            stack.callback(os.chdir, old)
        r = CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env, prog_name="jetzip")
    exc = r.exception if r.exception is not None and not isinstance(r.exception, SystemExit) else None
    if exc is not None and not isinstance(exc, KeyboardInterrupt):
        raise exc  # a bug escaped the CLI's own handling: show its traceback
    return CliResult(r.exit_code, r.stdout_bytes, r.stderr_bytes, exc)
