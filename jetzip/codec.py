"""The streaming engine: model-frame jets -> latents on a device, and latents -> jets.

One chunk flows through :meth:`Encoder.encode` as numpy in, numpy out; inside, it is
normalized, split into batches, moved to the device and pushed through the layers under
``torch.inference_mode``. Results on CPU and GPU agree to float32 tolerance.

Why not ``module(x)``: on CPU the network is cheap enough (26k multiply-adds per jet) that
allocation and cache misses decide the speed. Each layer here is one ``addmm`` into a
preallocated buffer followed by an in-place ``tanh_``, on batches small enough (2k jets) for
the activations to stay in cache; see ``jetzip bench`` for the measured effect.
"""
from __future__ import annotations

import numpy as np

from .device import resolve_device
from .model import Model

DEFAULT_BATCH_SIZE = 2048


class _Runner:
    def __init__(self, model: Model, part: str, device: str = "auto",
                 batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        import torch

        if batch_size < 1:
            from .errors import JetzipError
            raise JetzipError(f"--batch-size must be positive, not {batch_size}")
        self.torch = torch
        self.device = resolve_device(device)
        self.model = model
        self.norm = model.normalization
        self.batch_size = batch_size
        self.part = part
        shapes = model.arch.tensor_shapes(part)
        n_layers = len(shapes) // 2
        # (W^T, b) per layer, contiguous on the device: h <- b + h @ W^T
        self.layers = [
            (torch.from_numpy(np.ascontiguousarray(model.weights[f"{part}.{2 * i}.weight"].T)).to(self.device),
             torch.from_numpy(np.array(model.weights[f"{part}.{2 * i}.bias"])).to(self.device))
            for i in range(n_layers)]
        self.widths = [w.shape[1] for w, _ in self.layers]
        self._buffers: list = []
        self.cuda = self.device.type == "cuda"

    def _forward(self, xb):
        """One batch through the layers (tanh on the latent first when decoding)."""
        torch = self.torch
        n = xb.shape[0]
        if len(self._buffers) != len(self.layers) or self._buffers[0].shape[0] < n:
            self._buffers = [torch.empty((max(n, self.batch_size), w), device=self.device)
                             for w in self.widths]
        h = xb
        if self.part == "decoder":
            h = torch.tanh(h)
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            out = self._buffers[i][:n]
            torch.addmm(b, h, w, out=out)
            if i < last:
                out.tanh_()
            h = out
        return h

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        out = np.empty((len(x), self.widths[-1]), dtype=np.float32)
        x = np.asarray(x, dtype=np.float32)  # C- or F-ordered: addmm reads either layout
        src = torch.from_numpy(x if x.flags.writeable else x.copy())
        dst = torch.from_numpy(out)
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                xb = src[i:i + self.batch_size]
                if self.cuda:
                    xb = xb.pin_memory().to(self.device, non_blocking=True)
                    dst[i:i + self.batch_size] = self._forward(xb).cpu()
                else:
                    dst[i:i + self.batch_size] = self._forward(xb)
        return out


class Encoder(_Runner):
    """Model frame (E, pt, eta, phi in GeV) -> float32 latents (pre-tanh)."""

    def __init__(self, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        super().__init__(model, "encoder", device, batch_size)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        return self._run(self.norm.apply(frame))

    def run(self, normalized: np.ndarray) -> np.ndarray:
        """Latents of already normalized inputs (see Normalization.apply)."""
        return self._run(normalized)


class Decoder(_Runner):
    """Latents -> model frame (E, pt, eta, phi in GeV, float64, phi wrapped)."""

    def __init__(self, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        super().__init__(model, "decoder", device, batch_size)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.norm.invert(self._run(latents))

    def run(self, latents: np.ndarray) -> np.ndarray:
        """Normalized network outputs (invert with Normalization.invert)."""
        return self._run(latents)
