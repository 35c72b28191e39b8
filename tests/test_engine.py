"""The engine: parallel CPU workers give the same numbers, in the same order, as one thread,
with either CPU backend; the backend rule; the GPU engine's batching logic (run on the CPU)."""
from __future__ import annotations

import time

import numpy as np
import pytest

import jetfactory
from conftest import SHIPPED_MODEL
from jetzip import engine
from jetzip.engine import Decoder, Encoder
from jetzip.errors import JetzipError
from jetzip.model import load_model

BACKENDS = ("numpy", "torch")


@pytest.fixture(scope="module")
def model():
    return load_model(SHIPPED_MODEL)


def _reference(model, x):
    """The torch module itself, one tensor (what training and the thesis notebooks run)."""
    import torch

    net = model.network()
    with torch.inference_mode():
        z = net.encode(torch.from_numpy(np.ascontiguousarray(x)))
        return z.numpy(), net.decode(z).numpy()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [1, 63, 64, 1000, 5001])
def test_thread_count_does_not_change_a_bit(model, n, backend):
    """One worker or three, the caller's torch threads 1 or 2: the same latents and jets."""
    import torch

    frame = jetfactory.model_frame(max(n, 1), seed=7)[:n]
    results = []
    before = torch.get_num_threads()
    try:
        for workers, torch_threads in ((1, 1), (3, 2), (2, 1)):
            torch.set_num_threads(torch_threads)
            enc = Encoder(model, "cpu", 64, workers=workers, backend=backend)
            dec = Decoder(model, "cpu", 64, workers=workers, backend=backend)
            z = enc.encode(frame)
            results.append((z, dec.decode(z)))
    finally:
        torch.set_num_threads(before)
    for z, y in results:
        assert z.shape == (n, 3) and y.shape == (n, 4)
        np.testing.assert_array_equal(z, results[0][0])
        np.testing.assert_array_equal(y, results[0][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_that_idled_does_not_take_the_callers_threads(model, backend):
    """The cause of the old one-ulp flake, made deterministic.

    A pool thread that was started but had not yet run a torch operator used to take, at its
    first operator, the thread count the caller had set meanwhile (2), and MKL's 2-thread
    product of the last, 9-row batch differed from the 1-thread one by one ulp.
    """
    import torch

    workers = 7  # a pool no other test uses: its threads start here, idle
    frame = jetfactory.model_frame(5001, seed=7)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ref = Encoder(model, "cpu", 64, workers=1, backend=backend).encode(frame)
        pool = engine.worker_pool(workers)
        for f in [pool.submit(time.sleep, 0.05) for _ in range(workers)]:
            f.result()
        torch.set_num_threads(2)
        z = Encoder(model, "cpu", 64, workers=workers, backend=backend).encode(frame)
        counts = {f.result() for f in [pool.submit(torch.get_num_threads) for _ in range(3 * workers)]}
    finally:
        torch.set_num_threads(before)
    assert counts == {1}
    np.testing.assert_array_equal(z, ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_match_the_torch_module(model, backend):
    frame = jetfactory.model_frame(3000, seed=5)
    x = model.normalization.apply(frame)
    z_ref, y_ref = _reference(model, x)
    z = Encoder(model, "cpu", 256, workers=2, backend=backend).run(x)
    y = Decoder(model, "cpu", 256, workers=2, backend=backend).run(z_ref)
    assert z.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_allclose(z, z_ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_layout_does_not_change_a_bit(model, backend):
    """normalization.apply gives a transposed (F-ordered) array; a C-ordered copy gives the same bits."""
    x = model.normalization.apply(jetfactory.model_frame(1500, seed=2))
    assert x.flags.f_contiguous and not x.flags.c_contiguous
    enc = Encoder(model, "cpu", 128, workers=2, backend=backend)
    ro = np.ascontiguousarray(x)
    ro.flags.writeable = False
    np.testing.assert_array_equal(enc.run(x), enc.run(np.ascontiguousarray(x)))
    np.testing.assert_array_equal(enc.run(x), enc.run(ro))
    dec = Decoder(model, "cpu", 128, workers=2, backend=backend)
    z = enc.run(x)
    np.testing.assert_array_equal(dec.run(z), dec.run(np.asfortranarray(z)))


def test_backend_rule_is_fixed_and_can_be_overridden(model, monkeypatch):
    monkeypatch.delenv(engine.BACKEND_ENV, raising=False)
    monkeypatch.setattr(engine, "numpy_blas", lambda: "scipy-openblas")
    assert engine.default_cpu_backend() == "numpy"
    assert Encoder(model, "cpu").backend == "numpy"
    monkeypatch.setattr(engine, "numpy_blas", lambda: "mkl-sdl")
    assert engine.default_cpu_backend() == "numpy"
    monkeypatch.setattr(engine, "numpy_blas", lambda: "blas")  # the reference BLAS: slow
    assert engine.default_cpu_backend() == "torch"
    assert Encoder(model, "cpu").backend == "torch"
    assert Encoder(model, "cpu", backend="numpy").backend == "numpy"
    monkeypatch.setenv(engine.BACKEND_ENV, "numpy")
    assert Decoder(model, "cpu").backend == "numpy"
    assert Decoder(model, "cpu", backend="torch").backend == "torch"  # the keyword wins
    monkeypatch.setenv(engine.BACKEND_ENV, "fortran")
    with pytest.raises(JetzipError, match="JETZIP_BACKEND"):
        Encoder(model, "cpu")
    with pytest.raises(JetzipError, match="unknown backend"):
        Encoder(model, "cpu", backend="tensorflow")
    monkeypatch.delenv(engine.BACKEND_ENV)
    assert engine.choose_backend("cuda", None) == "cuda"
    assert engine.choose_backend("cuda", "torch") == "cuda"
    with pytest.raises(JetzipError, match="numpy backend runs on the CPU"):
        engine.choose_backend("cuda", "numpy")


def test_numpy_is_the_rule_here_and_names_its_blas():
    """The numpy wheels link OpenBLAS: this is what the project's machines and CI run."""
    name = engine.numpy_blas()
    assert name != "unknown"
    if any(s in name for s in engine.FAST_BLAS):
        assert engine.default_cpu_backend() == "numpy"


def test_blas_threads_are_one_during_a_run_and_restored_after(model):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with engine.single_thread_blas():
            with engine.single_thread_blas():  # nested runs (two encoders at once)
                assert set(blas_threads()) <= {1}
            assert set(blas_threads()) <= {1}
        assert blas_threads() == before
        Encoder(model, "cpu", 64, workers=2, backend="numpy").run(np.zeros((500, 4), np.float32))
        assert blas_threads() == before


def test_default_workers_follow_torch_threads(model):
    import torch
    assert Encoder(model, "cpu").workers == torch.get_num_threads()
    assert Encoder(model, "cpu", workers=5).workers == 5


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_bad_sizes_are_clear_errors(model, bad):
    with pytest.raises(JetzipError, match="batch size"):
        Encoder(model, "cpu", bad)
    with pytest.raises(JetzipError, match="threads"):
        Encoder(model, "cpu", 64, workers=bad)
    with pytest.raises(JetzipError, match="GPU batch size"):
        Encoder(model, "cpu", 64, gpu_batch_size=bad)


def test_wrong_width_is_refused(model):
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        Encoder(model, "cpu", 16, workers=2).run(np.zeros((200, 5), dtype=np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_error_reaches_the_caller(model, backend, monkeypatch):
    enc = Encoder(model, "cpu", 16, workers=2, backend=backend)
    real = enc.engine._run_slice

    def failing(src, dst, start, stop):
        if start >= 128:
            raise RuntimeError("boom in a worker")
        return real(src, dst, start, stop)

    monkeypatch.setattr(enc.engine, "_run_slice", failing)
    with pytest.raises(RuntimeError, match="boom in a worker"):
        enc.run(np.zeros((1000, 4), dtype=np.float32))


def test_empty_input(model):
    for backend in BACKENDS:
        assert Encoder(model, "cpu", backend=backend).run(np.zeros((0, 4), np.float32)).shape == (0, 3)
        assert Decoder(model, "cpu", backend=backend).run(np.zeros((0, 3), np.float32)).shape == (0, 4)


@pytest.mark.parametrize("n", [1, 999, 1000, 1001, 4321])
def test_stream_engine_logic_on_the_cpu(model, n):
    """The GPU engine's two-slot pipeline (here without streams or pinning) gives the CPU's numbers."""
    x = model.normalization.apply(jetfactory.model_frame(n, seed=11))
    for cls, inp in ((Encoder, x), (Decoder, None)):
        runner = cls(model, "cpu", 64, backend="torch")
        if inp is None:
            inp = Encoder(model, "cpu", 64).run(x)
        stream = engine._StreamEngine(runner, 250, allow_tf32=False)  # batches of 250: slots reused
        assert stream.batch_size == 250 and not stream.cuda
        out = np.full((n, runner.widths[-1]), np.nan, dtype=np.float32)
        stream.run(inp, out)
        np.testing.assert_allclose(out, runner.run(inp), rtol=0, atol=1e-5)
        out2 = np.empty_like(out)
        stream.run(inp[: n // 2], out2[: n // 2])  # smaller call: the buffers are reused
        np.testing.assert_array_equal(out2[: n // 2], out[: n // 2])


def test_gpu_batches_are_at_least_a_million(model):
    runner = Encoder(model, "cpu", 2048, backend="torch")
    assert engine._StreamEngine(runner, None, False).batch_size == engine.GPU_BATCH_SIZE
    runner = Encoder(model, "cpu", 4 << 20, backend="torch")
    assert engine._StreamEngine(runner, None, False).batch_size == 4 << 20


def _encode_in_child(queue):
    frame = jetfactory.model_frame(3000, seed=3)
    queue.put(Encoder(load_model(SHIPPED_MODEL), "cpu", 64, workers=2).encode(frame).shape)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_forked_child_can_encode_after_the_parent_did(model, backend, monkeypatch):
    import multiprocessing

    monkeypatch.setenv(engine.BACKEND_ENV, backend)
    Encoder(model, "cpu", 64, workers=2).encode(jetfactory.model_frame(3000, seed=3))  # pool exists now
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=_encode_in_child, args=(q,))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the child hung on the pool it inherited"
    assert q.get(timeout=5) == (3000, 3)


def test_tf32_setting_is_set_for_the_run_and_restored():
    """The GPU engine sets cuBLAS TF32 for its run and puts the caller's setting back (the
    flags exist on CPU builds too)."""
    import torch

    m = torch.backends.cuda.matmul
    before = m.allow_tf32
    try:
        for wanted in (True, False):
            restore = engine.tf32_matmul(torch, wanted)
            assert m.allow_tf32 is wanted
            restore()
            assert m.allow_tf32 == before
    finally:
        m.allow_tf32 = before
