"""Shared fixtures: a small model trained here (not random weights), sample files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import jetfactory  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NANO_DY = REPO / "tests" / "data" / "nano_dy.root"  # copy of shared/data/nano_dy.root
SHIPPED_MODEL = REPO / "models" / "AE_3D_200.jzm"
EXAMPLE_JETS = REPO / "examples" / "sample_jets.root"


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory) -> Path:
    """A small AE_3D member trained for a few seconds on synthetic jets.

    Good enough to decode jets to a few percent, which is what pipeline tests need; the
    shipped model's precision is tested separately.
    """
    import torch

    from jetzip.training import TrainOptions, train_frames

    torch.manual_seed(0)
    frame = jetfactory.model_frame(40_000, seed=123)
    model = train_frames(frame, TrainOptions(arch="32,32,16:3", epochs=6, batch_size=256, lr_max=5e-3,
                                             seed=1, patience=10))
    path = tmp_path_factory.mktemp("model") / "small.jzm"
    model.save(path)
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
    return subprocess.run([exe, *map(str, args)], capture_output=True, input=input,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)
