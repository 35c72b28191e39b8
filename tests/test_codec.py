"""The engine: parallel CPU workers give the same numbers, in the same order, as one thread."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import jetfactory
from conftest import SHIPPED_MODEL
from jetzip.codec import Decoder, Encoder
from jetzip.model import load_model


@pytest.fixture(scope="module")
def model():
    return load_model(SHIPPED_MODEL)


def _single_thread(fn):
    """Run fn in a fresh thread with one torch thread, so kernels match the workers' exactly."""
    box = {}

    def target():
        import torch
        torch.set_num_threads(1)
        box["out"] = fn()

    t = threading.Thread(target=target)
    t.start()
    t.join()
    return box["out"]


@pytest.mark.parametrize("n", [1, 63, 64, 1000, 5001])
def test_workers_match_one_thread_bit_for_bit(model, n):
    frame = jetfactory.model_frame(max(n, 1), seed=7)[:n]
    one_enc, one_dec = Encoder(model, "cpu", 64, workers=1), Decoder(model, "cpu", 64, workers=1)
    z1 = _single_thread(lambda: one_enc.encode(frame))
    y1 = _single_thread(lambda: one_dec.decode(z1))
    many_enc, many_dec = Encoder(model, "cpu", 64, workers=3), Decoder(model, "cpu", 64, workers=3)
    z3 = many_enc.encode(frame)
    y3 = many_dec.decode(z3)
    assert z3.shape == (n, 3) and y3.shape == (n, 4)
    np.testing.assert_array_equal(z3, z1)
    np.testing.assert_array_equal(y3, y1)


def test_default_workers_follow_torch_threads(model):
    import torch
    assert Encoder(model, "cpu").workers == torch.get_num_threads()
    assert Encoder(model, "cpu", workers=5).workers == 5


def test_worker_error_reaches_the_caller(model):
    enc = Encoder(model, "cpu", 16, workers=2)
    bad = np.zeros((200, 5), dtype=np.float32)  # five columns: the first layer expects four
    with pytest.raises(RuntimeError):
        enc.run(bad)
