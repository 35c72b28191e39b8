"""Choosing the torch device: ``auto`` takes a GPU when there is one, else the CPU."""
from __future__ import annotations

from .errors import JetzipError


def resolve_device(name: str = "auto"):
    import torch

    if name is None:
        name = "auto"
    if not isinstance(name, str):
        raise JetzipError(f"device must be a string (auto, cpu, cuda or cuda:N), not {name!r}")
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise JetzipError(f"--device {name}: CUDA is not available on this machine "
                              "(use --device cpu or auto)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise JetzipError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise JetzipError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
