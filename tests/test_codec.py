"""The engine: parallel CPU workers give the same numbers, in the same order, as one thread."""
from __future__ import annotations

import numpy as np
import pytest

import jetfactory
from conftest import SHIPPED_MODEL
from jetzip.codec import Decoder, Encoder
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
