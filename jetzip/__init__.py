"""jetzip: compress particle-physics jet tables to 3 floats per jet with an autoencoder.

How data flows, module by module::

    tables/    read ROOT, HDF5, CSV jet tables in chunks (and write them back)
    features   4-vector conventions and units -> model frame (E, pt, eta, phi in GeV),
               and the normalization the network sees
    model      the AE_3D family and model files (no pickle)
    codec      chunks -> device -> latents, and back
    aez        the .aez container (spec in its docstring), on the record framing of container
    api        compress / decompress / inspect, tying the above together
    reading    arrays: read a .aez like uproot reads ROOT (what is asked, decoded in parallel)
    train, evaluate, bench, plots   one command each
    cli        Click only: options, messages, exit codes

The public API is importable without Click and without torch until it is used.
"""
from __future__ import annotations

from typing import Any

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("jetzip")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

from .errors import (FormatError, InputError, JetzipError, ModelMismatchError,  # noqa: E402
                     OutputExistsError, UnsupportedVersionError)

_LAZY = {
    "compress": ("api", "compress"),
    "decompress": ("api", "decompress"),
    "inspect": ("api", "inspect"),
    "arrays": ("reading", "arrays"),
    "train": ("training", "train"),
    "TrainOptions": ("training", "TrainOptions"),
    "evaluate": ("evaluation", "evaluate"),
    "load_model": ("model", "load_model"),
    "open_aez": ("aez", "open_aez"),
    "read_aez": ("aez", "read_aez"),
    "open_table": ("tables", "open_table"),
    "Model": ("model", "Model"),
    "Architecture": ("model", "Architecture"),
    "Normalization": ("features", "Normalization"),
}

__all__ = ["__version__", "JetzipError", "InputError", "FormatError", "UnsupportedVersionError",
           "ModelMismatchError", "OutputExistsError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'jetzip' has no attribute {name!r}")
