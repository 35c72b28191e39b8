"""A non-editable install carries the default model and the learned entropy model: compress
without --model from any folder, with both codecs, and a shipped model found by its name."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample_jets.root"


def test_a_built_package_finds_its_default_model_from_another_folder(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                            "--no-build-isolation", "--target", str(target), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    assert (target / "jetzip" / "models" / "AE_3D_200.jzm").is_file()
    assert (target / "jetzip" / "models" / "context_v1.jzc").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import jetzip, jetzip.model as m\n"
            "print(jetzip.__file__)\n"
            "print(m.default_model_path())\n"
            f"r = jetzip.compress({str(SAMPLE)!r}, 'x.aez', max_jets=2000, device='cpu')\n"
            # --context-model auto: the packaged entropy model, found and loaded from the install
            # (compressing with it would spend the test compiling the installed copy's kernels)
            "from jetzip.entropy.context import context_model_option, default_context_model_path\n"
            "cm = context_model_option('auto')\n"
            "assert str(default_context_model_path()).startswith(jetzip.__file__.rpartition('jetzip')[0])\n"
            "r3 = jetzip.compress(" + repr(str(SAMPLE)) + ", 'z.aez', max_jets=2000, model='AE_3D_200')\n"
            "print(cm.name, r3['model'])\n"
            "print(r['model'], r['n_jets'])\n")
    env = {k: v for k, v in os.environ.items() if k != "JETZIP_MODEL"}
    env["PYTHONPATH"] = str(target)  # the installed copy, not the source tree
    run = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    module, model, learned, report = run.stdout.strip().splitlines()[-4:]
    assert learned == "context_v1 AE_3D_200"
    assert module.startswith(str(target)) and model.startswith(str(target))
    assert report.split()[0] == "AE_3D_200" and (elsewhere / "x.aez").is_file()
