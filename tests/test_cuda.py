"""CPU and GPU give the same results (runs only where CUDA is available; CI has no GPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import jetzip

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
def test_cpu_and_cuda_latents_and_decoded_jets_agree(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "cpu.aez", model=small_model_path, device="cpu")
    jetzip.compress(path, tmp_path / "gpu.aez", model=small_model_path, device="cuda")
    a, b = jetzip.read_aez(tmp_path / "cpu.aez"), jetzip.read_aez(tmp_path / "gpu.aez")
    np.testing.assert_allclose(a["latents"], b["latents"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(a["counts"], b["counts"])
    ra = jetzip.evaluate(path, tmp_path / "cpu.aez", device="cpu")["residuals"]
    rb = jetzip.evaluate(path, tmp_path / "cpu.aez", device="cuda")["residuals"]
    for k in ra:
        assert rb[k]["std"] == pytest.approx(ra[k]["std"], rel=1e-3)


def test_auto_device_falls_back_to_cpu_without_cuda():
    from jetzip.device import resolve_device
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
