"""The streaming engine: model-frame jets -> latents on a device, and latents -> jets.

One chunk flows through :meth:`Encoder.encode` as numpy in, numpy out; inside, it is
normalized, split into batches of ``batch_size``, moved to the device and run under
``torch.inference_mode``. Results on CPU and GPU agree to float32 tolerance.
"""
from __future__ import annotations

import numpy as np

from .device import resolve_device
from .model import Model

DEFAULT_BATCH_SIZE = 1 << 16


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
        net = model.network(part).to(self.device)
        self.fn = net.encode if part == "encoder" else net.decode
        self.pin = self.device.type == "cuda"

    def _run(self, x: np.ndarray, out_dim: int) -> np.ndarray:
        torch = self.torch
        out = np.empty((len(x), out_dim), dtype=np.float32)
        x = np.ascontiguousarray(x, dtype=np.float32)
        src = torch.from_numpy(x if x.flags.writeable else x.copy())
        dst = torch.from_numpy(out)
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                xb = src[i:i + self.batch_size]
                if self.pin:
                    xb = xb.pin_memory().to(self.device, non_blocking=True)
                dst[i:i + self.batch_size] = self.fn(xb).float().cpu()
        return out


class Encoder(_Runner):
    """Model frame (E, pt, eta, phi in GeV) -> float32 latents."""

    def __init__(self, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        super().__init__(model, "encoder", device, batch_size)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        return self._run(self.norm.apply(frame), self.model.arch.latent)


class Decoder(_Runner):
    """Latents -> model frame (E, pt, eta, phi in GeV, float64, phi wrapped)."""

    def __init__(self, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        super().__init__(model, "decoder", device, batch_size)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.norm.invert(self._run(latents, self.model.arch.n_features))
