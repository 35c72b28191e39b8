"""jetzip: compress particle-physics jet tables (ROOT, HDF5, Parquet, CSV) into ``.aez`` files,
and give back the whole file: every tree, collection, branch and object.

Two codecs code the four-vectors: ``bounded`` (the default: every decoded pt, eta, phi, mass or
px, py, pz, E within a stated maximum error, rANS-coded with constriction) and ``latent`` (the
AE_3D_200 autoencoder: 3 numbers per jet). Every other branch is carried losslessly.

How a chunk of jets flows, module by module::

    tables/     read: find the four-vector collections of every table of a file (layouts,
                root_layout), read them in chunks from any entry (root, hdf5, parquet, csv)
    features    transform: 4-vector conventions and units -> the codecs' frame
    codecs/     codec: one interface (base), the error-bounded codec (bounded/, entropy/) and
                the autoencoder (latent, on engine, model, device)
    carry       every other branch, stored losslessly
    aez         container: the .aez format (docs/FORMAT.md), on the record framing of container;
                aez_v2 reads formats 1.0 and 2.0
    tables/     write: the same tables back to ROOT, HDF5, Parquet or CSV (*_writer, *_extras)
    api         compress / decompress / inspect, tying the above together (pipeline overlaps them)
    reading     arrays: read a .aez like uproot reads ROOT (what is asked, decoded in parallel)
    dask        many files or one large one as dask tasks; dataset: the folder they write
    training, evaluation, baselines, bench, plots   one command each
    cli         Click only: options, messages, exit codes

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
