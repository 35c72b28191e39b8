"""Atomic outputs: write to a temporary name beside the target, rename when complete.

Why: an interrupted or failed run (Ctrl-C, SIGTERM, a full disk, a bad chunk halfway
through) must never leave a half-written file under the name the user asked for, and must
never overwrite the input it is reading.

The temporary file is ``.<name>~jetzip-<pid>-<host>-<random>.part`` beside the output: hidden,
and recognisable. A run killed outright (SIGKILL, a power cut) cannot delete it; the next run on
the same output removes every such file whose owning process, on this host, has ended. Errors
name the user's output, never the temporary file.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import JetzipError, OutputExistsError

TEMP_TAG = "~jetzip-"
TEMP_SUFFIX = ".part"
_MAX_STEM = 180  # file names are at most 255 bytes: leave room for the tag and the suffix
# .<stem>~jetzip-<pid>-<host>-<random>.part
TEMP_PATTERN = re.compile(r"\.(?P<stem>.+)" + re.escape(TEMP_TAG)
                          + r"(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-(?P<rand>[A-Za-z0-9_]+)"
                          + re.escape(TEMP_SUFFIX))

_TEMP_IN_TEXT = re.compile(r"(?P<dir>(?:[^\s'\"]*/)?)(?<![^\s'\"/(])\.(?P<stem>[^/\s'\"]+?)" + re.escape(TEMP_TAG)
                           + r"\d+-[0-9a-f]{8}-[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX))


def _host_tag() -> str:
    """Eight hex digits naming this machine: a PID says nothing about other hosts' processes."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _stem(name: str) -> str:
    if len(name.encode()) <= _MAX_STEM:
        return name
    return name[:100] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def temp_prefix(out: str | os.PathLike) -> str:
    """The start of this process's temporary names for `out` (a random part and .part follow)."""
    return f".{_stem(Path(out).name)}{TEMP_TAG}{os.getpid()}-{_host_tag()}-"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a real owner: never remove
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return True
    return True


def stale_temporaries(out: str | os.PathLike) -> list[Path]:
    """Temporary files for `out` left by processes on this host that have ended."""
    out = Path(out)
    stem, host, me = _stem(out.name), _host_tag(), os.getpid()
    found = []
    try:
        entries = list(os.scandir(out.parent if str(out.parent) else "."))
    except OSError:
        return []
    for entry in entries:
        m = TEMP_PATTERN.fullmatch(entry.name)
        if not m or m["stem"] != stem or m["host"] != host:
            continue
        pid = int(m["pid"])
        if pid != me and not _pid_alive(pid) and entry.is_file(follow_symlinks=False):
            found.append(out.parent / entry.name)
    return found


def remove_stale_temporaries(out: str | os.PathLike) -> list[Path]:
    """Delete what `stale_temporaries` finds; returns what was removed."""
    removed = []
    for p in stale_temporaries(out):
        with contextlib.suppress(FileNotFoundError):  # another run removed it first
            p.unlink()
            removed.append(p)
    return removed


def user_facing(text: str) -> str:
    """`text` with every temporary name replaced by the output it stands for."""
    return _TEMP_IN_TEXT.sub(lambda m: m["dir"] + m["stem"], text)


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


def _renamed(exc: BaseException, tmp: str, out: Path) -> BaseException | None:
    """`exc` again, naming `out` where it named the temporary file (None: nothing to change)."""
    def fix(a):
        if isinstance(a, (str, os.PathLike)):
            s = os.fspath(a)
            if isinstance(s, str):
                return s.replace(tmp, str(out)).replace(os.path.basename(tmp), out.name)
        return a

    try:
        if isinstance(exc, OSError) and exc.errno is not None and exc.strerror is not None:
            names = [exc.filename, exc.filename2]
            if not any(n is not None and tmp in os.fspath(n) for n in names):
                return None
            new: BaseException = type(exc)(exc.errno, exc.strerror, fix(exc.filename), None, fix(exc.filename2))
        elif tmp in str(exc) or os.path.basename(tmp) in str(exc):
            new = type(exc)(*[fix(a) for a in exc.args])
        else:
            return None
    except Exception:  # an exception type with another constructor: leave it
        return None
    new.__traceback__ = exc.__traceback__
    return new


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False,
                  inputs: Iterable[str | os.PathLike] = ()) -> Iterator[str]:
    """Yield a temporary path; on success rename it to `path`, on any failure delete it.

    Partial files of earlier runs on `path` that were killed outright are removed first.
    """
    out = check_output(path, force, inputs)
    remove_stale_temporaries(out)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(out), suffix=TEMP_SUFFIX, dir=out.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp
        if not force and out.exists():
            raise OutputExistsError(f"output {out} appeared while writing; use -f/--force")
        os.replace(tmp, out)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        renamed = _renamed(exc, tmp, out)
        if renamed is not None:
            raise renamed from exc.__cause__
        raise


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and Ctrl-C raise KeyboardInterrupt so `atomic_output` cleans up
    (CLI only), except inside :func:`native_call`, which raises it on the way out."""
    try:
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_native = {"depth": 0, "pending": False}


def _interrupt(signum, frame):  # noqa: ARG001
    if _native["depth"]:
        _native["pending"] = True  # raised when the native call returns (native_call)
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def native_call() -> Iterator[None]:
    """Around calls into compiled extensions that call back into Python (constriction's Rust
    coder, through rust-numpy): a KeyboardInterrupt raised by a signal handler inside such a
    callback becomes a Rust panic (``PanicException``, exit 1, a panic message on stderr)
    instead of an interruption. Inside, SIGTERM and Ctrl-C (under :func:`sigterm_as_interrupt`)
    are held and raised as KeyboardInterrupt when the block is left."""
    _native["depth"] += 1
    try:
        yield
    finally:
        _native["depth"] -= 1
        if not _native["depth"] and _native["pending"]:
            _native["pending"] = False
            raise KeyboardInterrupt


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt for the rest of the process."""
    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, _interrupt)
