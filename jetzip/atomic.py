"""Atomic outputs: write to a temporary name beside the target, rename when complete.

Why: an interrupted or failed run (Ctrl-C, SIGTERM, a full disk, a bad chunk halfway
through) must never leave a half-written file under the name the user asked for, and must
never overwrite the input it is reading.
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import JetzipError, OutputExistsError


def check_output(path: str | os.PathLike, force: bool,
                 inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an existing output without `force`, and any output that is one of the inputs."""
    out = Path(path)
    for inp in inputs:
        try:
            if out.exists() and os.path.samefile(out, inp):
                raise JetzipError(f"output {out} is the input file; choose another name")
        except FileNotFoundError:
            pass
    if out.is_dir():
        raise OutputExistsError(f"output {out} is a directory")
    if out.exists() and not force:
        raise OutputExistsError(f"output {out} exists; use -f/--force to overwrite it")
    if not out.parent.exists():
        raise JetzipError(f"output folder {out.parent} does not exist")
    return out


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False,
                  inputs: Iterable[str | os.PathLike] = ()) -> Iterator[str]:
    """Yield a temporary path; on success rename it to `path`, on any failure delete it."""
    out = check_output(path, force, inputs)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp
        if not force and out.exists():
            raise OutputExistsError(f"output {out} appeared while writing; use -f/--force")
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `atomic_output` cleans up (CLI only)."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt
    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, handler)
