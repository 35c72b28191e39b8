"""The engine: parallel CPU workers give the same numbers, in the same order, as one thread."""
from __future__ import annotations

import numpy as np
import pytest

import jetfactory
from conftest import SHIPPED_MODEL
from jetzip.engine import Decoder, Encoder
from jetzip.model import load_model


@pytest.fixture(scope="module")
def model():
    return load_model(SHIPPED_MODEL)


@pytest.mark.parametrize("n", [1, 63, 64, 1000, 5001])
def test_thread_count_does_not_change_a_bit(model, n):
    """One worker or three, the caller's torch threads 1 or 2: the same latents and jets."""
    import torch

    frame = jetfactory.model_frame(max(n, 1), seed=7)[:n]
    results = []
    before = torch.get_num_threads()
    try:
        for workers, torch_threads in ((1, 1), (3, 2), (2, 1)):
            torch.set_num_threads(torch_threads)
            enc, dec = Encoder(model, "cpu", 64, workers=workers), Decoder(model, "cpu", 64, workers=workers)
            z = enc.encode(frame)
            results.append((z, dec.decode(z)))
    finally:
        torch.set_num_threads(before)
    for z, y in results:
        assert z.shape == (n, 3) and y.shape == (n, 4)
        np.testing.assert_array_equal(z, results[0][0])
        np.testing.assert_array_equal(y, results[0][1])


def test_default_workers_follow_torch_threads(model):
    import torch
    assert Encoder(model, "cpu").workers == torch.get_num_threads()
    assert Encoder(model, "cpu", workers=5).workers == 5


def test_worker_error_reaches_the_caller(model):
    enc = Encoder(model, "cpu", 16, workers=2)
    bad = np.zeros((200, 5), dtype=np.float32)  # five columns: the first layer expects four
    with pytest.raises(RuntimeError):
        enc.run(bad)


def _encode_in_child(queue):
    frame = jetfactory.model_frame(3000, seed=3)
    queue.put(Encoder(load_model(SHIPPED_MODEL), "cpu", 64, workers=2).encode(frame).shape)


def test_a_forked_child_can_encode_after_the_parent_did(model):
    import multiprocessing

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
