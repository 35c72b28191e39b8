"""The streaming engine: model-frame jets -> latents on a device, and latents -> jets.

One chunk flows through :meth:`Encoder.encode` as numpy in, numpy out; inside, it is
normalized, split into batches, moved to the device and pushed through the layers under
``torch.inference_mode``. Results on CPU and GPU agree to float32 tolerance.

Why not ``module(x)``: on CPU the network is cheap enough (26k multiply-adds per jet) that
allocation and cache misses decide the speed. Each layer here is one ``addmm`` into a
preallocated buffer followed by an in-place ``tanh_``, on batches small enough (2k jets) for
the activations to stay in cache; see ``jetzip bench`` for the measured effect.

Why worker threads on CPU: torch's own (OpenMP) threads meet at a barrier after every layer,
so when the reader or writer thread takes a core, every layer of every batch waits for it.
Instead, ``torch.get_num_threads()`` workers (or ``workers``) each run whole slices of batches
with one torch thread (torch releases the GIL inside its kernels); the operating system then
shares the cores between them and the I/O threads without anyone waiting at a barrier. As every
batch runs single-threaded, the latents are the same bits whatever the thread count.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .device import resolve_device
from .model import Model

DEFAULT_BATCH_SIZE = 2048
BATCHES_PER_TASK = 4  # small tasks balance the workers when an I/O thread takes a core

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _forget_pools_in_child() -> None:
    """A forked child inherits the pools but not their threads: start afresh there."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def _single_thread_torch() -> None:
    import torch

    torch.set_num_threads(1)  # per thread with torch's OpenMP backend: the caller keeps its own


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool per worker count, created on first use (its threads idle in between)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(
                workers, thread_name_prefix="jetzip-engine", initializer=_single_thread_torch)
        return pool


class _Runner:
    def __init__(self, model: Model, part: str, device: str = "auto",
                 batch_size: int = DEFAULT_BATCH_SIZE, workers: int | None = None) -> None:
        import torch

        from .errors import JetzipError

        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise JetzipError(f"batch size must be a positive integer, not {batch_size!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                    or workers < 1):
            raise JetzipError(f"threads must be a positive integer, not {workers!r}")
        self.torch = torch
        self.device = resolve_device(device)
        self.model = model
        self.norm = model.normalization
        self.batch_size = batch_size
        self.part = part
        self.cuda = self.device.type == "cuda"
        # CPU: as many single-threaded workers as the caller's torch threads (see module doc).
        self.workers = 1 if self.cuda else max(1, workers or torch.get_num_threads())
        shapes = model.arch.tensor_shapes(part)
        n_layers = len(shapes) // 2
        # (W^T, b) per layer, contiguous on the device: h <- b + h @ W^T
        self.layers = [
            (torch.from_numpy(np.ascontiguousarray(model.weights[f"{part}.{2 * i}.weight"].T)).to(self.device),
             torch.from_numpy(np.array(model.weights[f"{part}.{2 * i}.bias"])).to(self.device))
            for i in range(n_layers)]
        self.widths = [w.shape[1] for w, _ in self.layers]
        self._local = threading.local()  # activation buffers, one set per thread

    def _forward(self, xb):
        """One batch through the layers (tanh on the latent first when decoding)."""
        torch = self.torch
        n = xb.shape[0]
        buffers = getattr(self._local, "buffers", None)
        if buffers is None or buffers[0].shape[0] < n:
            buffers = self._local.buffers = [
                torch.empty((max(n, self.batch_size), w), device=self.device) for w in self.widths]
        h = xb
        if self.part == "decoder":
            h = torch.tanh(h)
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            out = buffers[i][:n]
            torch.addmm(b, h, w, out=out)
            if i < last:
                out.tanh_()
            h = out
        return h

    def _run_slice(self, src, dst, start: int, stop: int) -> None:
        torch = self.torch
        with torch.inference_mode():
            for i in range(start, stop, self.batch_size):
                j = min(i + self.batch_size, stop)
                xb = src[i:j]
                if self.cuda:
                    xb = xb.pin_memory().to(self.device, non_blocking=True)
                    dst[i:j] = self._forward(xb).cpu()
                else:
                    dst[i:j] = self._forward(xb)

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        out = np.empty((len(x), self.widths[-1]), dtype=np.float32)
        x = np.asarray(x, dtype=np.float32)  # C- or F-ordered: addmm reads either layout
        src = torch.from_numpy(x if x.flags.writeable else x.copy())
        dst = torch.from_numpy(out)
        n = len(x)
        if self.cuda:
            self._run_slice(src, dst, 0, n)
            return out
        # Disjoint slices of the same output: no copies, no locks; exceptions re-raise here.
        # Every batch runs on a one-thread worker, even with one worker, so the latents do not
        # depend on the thread count.
        task = self.batch_size * BATCHES_PER_TASK
        futures = [worker_pool(self.workers).submit(self._run_slice, src, dst, i, min(i + task, n))
                   for i in range(0, n, task)]
        try:
            for f in futures:
                f.result()
        except BaseException:  # an error or Ctrl-C: drop the queued slices, they are not wanted
            for f in futures:
                f.cancel()
            raise
        return out


class Encoder(_Runner):
    """Model frame (E, pt, eta, phi in GeV) -> float32 latents (pre-tanh)."""

    def __init__(self, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                 workers: int | None = None) -> None:
        super().__init__(model, "encoder", device, batch_size, workers)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        return self._run(self.norm.apply(frame))

    def run(self, normalized: np.ndarray) -> np.ndarray:
        """Latents of already normalized inputs (see Normalization.apply)."""
        return self._run(normalized)


class Decoder(_Runner):
    """Latents -> model frame (E, pt, eta, phi in GeV, float64, phi wrapped)."""

    def __init__(self, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                 workers: int | None = None) -> None:
        super().__init__(model, "decoder", device, batch_size, workers)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.norm.invert(self._run(latents))

    def run(self, latents: np.ndarray) -> np.ndarray:
        """Normalized network outputs (invert with Normalization.invert)."""
        return self._run(latents)
