"""Every optional import of jetzip, one function each, saying how to install what is missing.

jetzip itself needs torch, numpy, click, h5py, uproot, awkward, rich, zstandard, constriction
and numba (``pyproject.toml``). Parquet, plots, Dask and the SZ3 baseline need extras;
:func:`require` (with the module's name) and each function below return the module or raise
:class:`~jetzip.errors.JetzipError` in one line that names the ``pip install`` to run (in the
spirit of uproot's ``extras.py``).
"""
from __future__ import annotations

from types import ModuleType

from .errors import JetzipError

_HINTS = {
    "pyarrow": ("Parquet needs pyarrow", "jetzip[parquet]"),
    "pyarrow.parquet": ("Parquet needs pyarrow", "jetzip[parquet]"),
    "matplotlib": ("plots need matplotlib", "jetzip[plot]"),
    "dask": ("datasets on a cluster need Dask", "jetzip[dask]"),
    "distributed": ("datasets on a cluster need Dask's distributed scheduler", "jetzip[dask]"),
    "dask_awkward": ("the dask-awkward reader needs dask-awkward", "jetzip[dask]"),
    "pysz": ("the SZ3 baseline needs pysz", "jetzip[sz]"),
    "psutil": ("memory benchmarks need psutil", "jetzip[bench]"),
}


def require(name: str) -> ModuleType:
    """Import `name` (one of the optional modules above).

    Raises:
        JetzipError: it is not installed (the message says what to install).
    """
    try:
        module = __import__(name)  # the import statement's own hook, not importlib's shortcut
        for part in name.split(".")[1:]:
            module = getattr(module, part)
        return module
    except ImportError:
        why, extra = _HINTS.get(name, (f"this needs {name}", name))
        raise JetzipError(f"{why}: pip install '{extra}' (or pip install {name.split('.')[0]})") from None


def pyarrow() -> ModuleType:
    return require("pyarrow")


def pyarrow_parquet() -> ModuleType:
    return require("pyarrow.parquet")


def matplotlib() -> ModuleType:
    return require("matplotlib")
