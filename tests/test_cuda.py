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


# --- the GPU engine (issue 15): skips without CUDA; its batching logic also runs on the CPU in
# tests/test_engine.py::test_stream_engine_logic_on_the_cpu


@pytest.fixture(scope="module")
def shipped():
    from conftest import SHIPPED_MODEL
    from jetzip.model import load_model
    return load_model(SHIPPED_MODEL)


@cuda
@pytest.mark.parametrize("gpu_batch", [None, 1 << 16])
def test_gpu_engine_equals_the_cpu_within_1e_5(shipped, gpu_batch):
    """float32 on the GPU (TF32 off) against the CPU engine, in normalized units; several batches
    with gpu_batch 65536 (both slots reused), one batch of >= 1M jets by default."""
    import jetfactory
    from jetzip.engine import GPU_BATCH_SIZE, Decoder, Encoder

    x = shipped.normalization.apply(jetfactory.model_frame(300_001, seed=13))
    enc_gpu = Encoder(shipped, "cuda", gpu_batch_size=gpu_batch)
    dec_gpu = Decoder(shipped, "cuda", gpu_batch_size=gpu_batch)
    assert enc_gpu.backend == "cuda"
    assert enc_gpu.engine.batch_size == (gpu_batch or GPU_BATCH_SIZE)
    z_cpu = Encoder(shipped, "cpu").run(x)
    z_gpu = enc_gpu.run(x)
    np.testing.assert_allclose(z_gpu, z_cpu, rtol=0, atol=1e-5)
    np.testing.assert_allclose(dec_gpu.run(z_cpu), Decoder(shipped, "cpu").run(z_cpu), rtol=0, atol=1e-5)
    assert enc_gpu.engine._state["h_in"][0].is_pinned() and enc_gpu.engine._state["h_out"][1].is_pinned()
    np.testing.assert_array_equal(enc_gpu.run(x[:1000]), z_gpu[:1000])  # a smaller call reuses the buffers


@cuda
def test_tf32_is_off_unless_asked_and_the_setting_is_restored(shipped):
    import jetfactory
    from jetzip.engine import Encoder

    before = torch.backends.cuda.matmul.allow_tf32
    x = shipped.normalization.apply(jetfactory.model_frame(20_000, seed=2))
    exact = Encoder(shipped, "cuda").run(x)
    tf32 = Encoder(shipped, "cuda", allow_tf32=True).run(x)
    assert torch.backends.cuda.matmul.allow_tf32 == before
    np.testing.assert_allclose(tf32, exact, rtol=0, atol=5e-2)  # TF32 moves results by ~1e-3
    torch.backends.cuda.matmul.allow_tf32 = True  # a caller who turned TF32 on globally
    try:
        np.testing.assert_array_equal(Encoder(shipped, "cuda").run(x), exact)  # still float32 here
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@cuda
def test_numpy_backend_refuses_cuda(shipped):
    from jetzip.engine import Encoder
    from jetzip.errors import JetzipError

    with pytest.raises(JetzipError, match="CPU"):
        Encoder(shipped, "cuda", backend="numpy")
    assert Encoder(shipped, "auto", backend="numpy").device.type == "cpu"
