"""Datasets of ``.aez`` parts: the plan, the per-part tasks and the manifest (no Dask here).

A *dataset* is a folder (OUTDIR) holding one ``.aez`` part per input file, or per range of
entries of a large input, plus ``manifest.json``. :mod:`jetzip.dask` runs the tasks defined here
on a ``dask.distributed`` cluster; without a cluster the same tasks run one after the other in
this process, so a dataset can be restored or inspected where Dask is not installed.

Layout of OUTDIR::

    manifest.json               the dataset (below), written last, atomically
    <stem>.aez                  the part of an input compressed whole
    <stem>.p0000.aez, ...       the parts of an input split into entry ranges, in order
    .jetzip-parts/<part>.json   one sidecar per finished part (its manifest entry), written
                                after the part is renamed into place: what a resumed run trusts
    .jetzip-lock                the lock of the runs on this folder (empty)

Parts are written by :func:`jetzip.api.compress` under a temporary name and renamed when
complete, so a part is never visible under its final name before it is whole.

``manifest.json`` is a JSON object: ``kind`` ("jetzip-dataset"), ``manifest_version``,
``jetzip_version``, ``codec`` (id), ``options`` (the compress options that shape the output;
the model by name and SHA-256), ``inputs`` (per input: ``index``, ``path`` as given,
``name`` (the stem restored files are named after), ``format``, ``n_entries``, ``parts``),
``parts`` (per part, in input and entry order: ``file``, ``input``, ``source``,
``entry_range`` ``[start, stop)`` (events, or rows of flat tables), ``n_jets``, ``n_events``,
``bytes``, ``sha256`` of the part file, ``key`` (the identity of the work: source path, size
and mtime, range and options), ``codec``), ``totals``, and ``sha256``: the SHA-256 of the
canonical JSON (sorted keys, no spaces) of everything else in the object.

What a dataset folder cannot be turned into (each checked by :func:`validate_manifest` when a
manifest is written and again when it is read, whoever edited it):

- names: every input ``name`` and part ``file`` is one plain file name inside OUTDIR (printable,
  no ``/`` or ``\\``, no NUL, not empty, not starting with ``.``, so never ``.`` or ``..``,
  at most :data:`MAX_NAME_BYTES` bytes), unique even where the file system ignores case; an
  ``index`` is the input's position. Part names are unique by construction
  (:func:`part_names`): when two would meet (``x.root`` split into ``x.p0000.aez`` and an
  input ``x.p0000.root``), every input's name takes its index as a prefix (``0000-x``).
- events: the parts of each input cover its entries ``[0, n_entries)`` in order, without gap or
  overlap; each part holds as many events as its range (rows of flat tables: less the rows
  dropped as invalid); the totals are the sums of the parts.
- files: manifest, sidecars and parts are opened as regular files only (never through a
  symbolic link, never a FIFO, a device or a folder) and read with a size limit;
  ``.jetzip-parts`` must be a real folder, and jetzip writes through no symbolic link in OUTDIR.
- runs: one compress run at a time per folder, and none while a folder is restored or
  inspected (``OUTDIR/.jetzip-lock``, an ``flock`` released when the process ends).
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from . import __version__
from .errors import (
    FormatError,
    InputError,
    JetzipError,
    OutputExistsError,
    positive_int,
)

MANIFEST = "manifest.json"
SIDECARS = ".jetzip-parts"
LOCK = ".jetzip-lock"
KIND = "jetzip-dataset"
MANIFEST_VERSION = "1.0"
EXTENSION_OF = {"root": ".root", "hdf5": ".h5", "csv": ".csv", "parquet": ".parquet"}

# Options of jetzip.api.compress a dataset forwards to every part. Those in RUNTIME_OPTIONS do
# not change the output (same bytes whatever they are) and are left out of a part's identity.
TABLE_OPTIONS = ("tree", "columns", "preset", "collection", "units", "keep_branches", "drop_branches")
CODEC_OPTIONS = ("error_bound", "latent_dtype", "latent_tolerance", "embed_model", "chunk_jets",
                 "drop_invalid", "context_model", "carried_compression", "strict")
RUNTIME_OPTIONS = ("device", "batch_size", "threads")
COMPRESS_OPTIONS = TABLE_OPTIONS + CODEC_OPTIONS + RUNTIME_OPTIONS
DECOMPRESS_OPTIONS = ("format", "device", "batch_size", "threads", "root_compression")

MAX_MANIFEST_BYTES = 128 << 20  # about 100,000 inputs of one part; a larger file is refused unread
MAX_SIDECAR_BYTES = 4 << 20  # one part's record (its warnings included)
MAX_CONTEXT_MODEL_BYTES = 64 << 20  # hashed into the parts' identity (shipped models: ~30 kB)
MAX_NAME_BYTES = 230  # a part file name; room left for ".json" and the temporary names
MAX_STEM_BYTES = 180  # the part of an input's file name that names it (then an index, a range)
# OS errors a retry cannot fix: the task reports them (one line) instead of raising
PERMANENT_ERRNOS = frozenset(getattr(errno, n) for n in (
    "ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "ENAMETOOLONG", "ENOTDIR", "EISDIR",
    "ENOENT", "ELOOP") if hasattr(errno, n))


# -- helpers ----------------------------------------------------------------------------------
def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default).encode()


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def open_regular(path: str | os.PathLike, what: str = "file") -> IO[bytes]:
    """`path` opened for reading if it is a regular file, never through a symbolic link.

    A FIFO is opened without blocking (then refused), so nothing here waits for a writer;
    a device (``/dev/zero``) or a folder is refused by its type.

    Raises:
        InputError: missing or unreadable. FormatError: a symbolic link, or not a regular file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(f"{what} {path} is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FormatError(f"{what} {path} is a symbolic link; jetzip reads datasets through none") from None
        raise InputError(f"cannot open {what} {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else \
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
            raise FormatError(f"{what} {path} is {kind}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of regular file `path` (see :func:`open_regular`), at most `limit` of them.

    Raises:
        InputError, FormatError: as :func:`open_regular`; FormatError: larger than `limit`.
    """
    with open_regular(path, what) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FormatError(f"{what} {path} is larger than {limit} bytes: not written by jetzip")
    return data


def file_sha256(path: str | os.PathLike, size: int | None = None, what: str = "file") -> str:
    """SHA-256 (hex) of regular file `path`; with `size`, the file must have that many bytes.

    Raises:
        InputError, FormatError: as :func:`open_regular`; FormatError: another size.
    """
    h = hashlib.sha256()
    with open_regular(path, what) as f:
        if size is not None and os.fstat(f.fileno()).st_size != size:
            raise FormatError(f"{path} has {os.fstat(f.fileno()).st_size} bytes, the manifest says {size}")
        left = None if size is None else size + 1  # a file growing meanwhile: stop all the same
        while left is None or left > 0:
            block = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
        if left is not None and left != 1:
            raise FormatError(f"{path} changed while it was read (it does not have the {size} bytes "
                              "the manifest says)")
    return h.hexdigest()


def os_error_text(exc: OSError) -> str:
    """One line for an OS error (the user's output named, never a temporary file)."""
    from .atomic import user_facing

    text = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return " ".join(user_facing(text).split())


# -- names and places inside OUTDIR -------------------------------------------------------------
def name_problem(name: Any, what: str = "name", max_bytes: int = MAX_NAME_BYTES) -> str | None:
    """Why `name` is not one plain file name inside a folder (None when it is): it must be
    text, not empty, not start with ``.`` (so neither ``.`` nor ``..`` nor hidden), hold only
    printable characters and no ``/`` or ``\\`` (no NUL, no control character), and take at
    most `max_bytes` bytes in UTF-8."""
    if not isinstance(name, str) or not name:
        return f"{what} {str(name)[:60]!r} is empty or not text"
    shown = repr(name[:60]) + ("..." if len(name) > 60 else "")
    if name.startswith("."):
        return f"{what} {shown} starts with a dot"
    if not name.isprintable() or "/" in name or "\\" in name:
        return f"{what} {shown} holds a path separator, a NUL or a control character"
    if len(name.encode("utf-8", "surrogatepass")) > max_bytes:
        return f"{what} {shown} is longer than {max_bytes} bytes"
    return None


def safe_stem(path: str | os.PathLike) -> str:
    """What an input is named after: its file name without the extension, made one plain
    name (see :func:`name_problem`): separators, NUL, control and unprintable characters
    (undecodable bytes too) become ``_``, leading dots go (``.hidden.root`` -> ``hidden``),
    long names are cut at :data:`MAX_STEM_BYTES` bytes, and nothing left gives ``input``."""
    stem = Path(os.fspath(path)).stem
    if not stem.isprintable() or "\\" in stem:
        stem = "".join(c if c.isprintable() and c != "\\" else "_" for c in stem)
    clean = stem.lstrip(". ").rstrip()
    clean = clean.encode("utf-8", "surrogatepass")[:MAX_STEM_BYTES].decode("utf-8", "ignore").rstrip()
    return clean or "input"


def _unique_folded(names: Iterable[str]) -> bool:
    """No two of `names` are equal, also where the file system ignores case."""
    seen: set[str] = set()
    for n in names:
        folded = n.casefold()
        if folded in seen:
            return False
        seen.add(folded)
    return True


def _files_of(name: str, ranges: Sequence[Any]) -> list[str]:
    if len(ranges) == 1 and ranges[0] is None:
        return [f"{name}.aez"]
    width = max(4, len(str(len(ranges) - 1)))
    return [f"{name}.p{k:0{width}d}.aez" for k in range(len(ranges))]


def part_names(stems: Sequence[str], ranges: Sequence[Sequence[Any]]) -> tuple[list[str], list[list[str]]]:
    """(input names, part files per input), unique by construction.

    An input compressed whole gives ``<name>.aez``, one split into entry ranges
    ``<name>.p0000.aez``, ... When any two names, or any two part files, would be equal (case
    ignored), every input's name becomes ``<index>-<stem>`` with a fixed-width index: two
    inputs' files then differ in their first characters, and one input's files in their range
    number.

    Raises:
        JetzipError: never for names this module makes (a guard for the construction).
    """
    names = list(stems)
    files = [_files_of(n, r) for n, r in zip(names, ranges)]
    if not (_unique_folded(names) and _unique_folded(f for fs in files for f in fs)):
        width = max(4, len(str(len(names) - 1)))
        names = [f"{i:0{width}d}-{s}" for i, s in enumerate(stems)]
        files = [_files_of(n, r) for n, r in zip(names, ranges)]
    problems = [p for n in names if (p := name_problem(n, "input name"))]
    problems += [p for fs in files for f in fs if (p := name_problem(f, "part file"))]
    if problems or not (_unique_folded(names) and _unique_folded(f for fs in files for f in fs)):
        raise JetzipError(f"cannot name the dataset's parts: {problems[0] if problems else 'names meet'}")
    return names, files


def sidecar_dir(outdir: str | os.PathLike, create: bool = False) -> Path:
    """``OUTDIR/.jetzip-parts``, created when asked; refused unless a real folder.

    Raises:
        JetzipError: it is a symbolic link or not a folder.
    """
    d = Path(outdir) / SIDECARS
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        if not create:
            return d
        with contextlib.suppress(FileExistsError):
            os.mkdir(d)
        st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a folder"
        raise JetzipError(f"{d} is {kind}: jetzip keeps the parts' records only in a real folder "
                          "inside the dataset folder")
    return d


@contextlib.contextmanager
def locked(outdir: str | os.PathLike, exclusive: bool) -> Iterator[None]:
    """Hold ``OUTDIR/.jetzip-lock``: exclusively to write a dataset, shared to read one.

    Another jetzip process holding it the other way makes this fail at once (no waiting). The
    lock (``flock``) goes with the process, however it ends. A reader never creates the lock
    file: without one (no compress run has written there) or when it cannot open it, it reads
    unlocked. Where the file system has no locks (ENOLCK), runs are not serialised.

    Raises:
        JetzipError: the folder is in use, or the lock file is a link or not a regular file.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = os.path.join(outdir, LOCK)
    nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        # a reader never creates the lock (a folder that is not a dataset keeps no trace of it);
        # a compress run creates it first, and writes its manifest last
        fd = os.open(path, (os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY) | nofollow, 0o644)
    except FileNotFoundError:
        if exclusive:
            raise JetzipError(f"cannot write to {outdir}: no such folder") from None
        yield
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise JetzipError(f"{path} is a symbolic link; remove it") from None
        try:
            fd = os.open(path, os.O_RDONLY | nofollow)
        except OSError:
            if exclusive:
                raise JetzipError(f"cannot write to {outdir}: {exc.strerror}") from None
            yield
            return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise JetzipError(f"{path} is not a regular file; remove it")
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            doing = "in use by another jetzip run" if exclusive else "being written by another jetzip run"
            raise JetzipError(f"{outdir} is {doing} (it holds {path}); wait for it to end") from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        yield
    finally:
        os.close(fd)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON under a temporary name beside `path`, then rename (never half-written). The
    temporary file is created new (never through a link left under its name)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileExistsError:  # a leftover (or a planted link): removed, not followed
            os.unlink(tmp)
            fd = os.open(tmp, flags, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def expand_inputs(files_or_glob: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Input paths: each item a file, or a glob pattern (sorted matches).

    Raises:
        InputError: a pattern matches nothing, a file is missing, or a file is given twice.
    """
    if isinstance(files_or_glob, (str, os.PathLike)):
        items = [files_or_glob]
    else:
        items = list(files_or_glob)
    out: list[str] = []
    for item in items:
        item = os.fspath(item)
        if not os.path.exists(item) and any(c in item for c in "*?["):
            hits = sorted(h for h in glob.glob(item) if os.path.isfile(h))
            if not hits:
                raise InputError(f"no file matches {item!r}")
            out += hits
        elif not os.path.isfile(item):
            raise InputError(f"{item} does not exist" if not os.path.exists(item) else f"{item} is not a file")
        else:
            out.append(item)
    if not out:
        raise InputError("no input files given")
    seen: dict[str, str] = {}
    for p in out:
        real = os.path.realpath(p)
        if real in seen:
            raise InputError(f"{p} is given twice (also as {seen[real]})")
        seen[real] = p
    return out


def split_options(options: Mapping[str, Any], allowed: Sequence[str], what: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise JetzipError(f"{what}: unknown or unsupported option(s) {', '.join(unknown)} "
                          f"(accepted: {', '.join(allowed)})")
    return dict(options)


def options_json(options: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The options that shape the output, as JSON (the model by name and SHA-256)."""
    out = {k: v for k, v in options.items() if k not in RUNTIME_OPTIONS and v is not None}
    for k in ("keep_branches", "drop_branches"):
        if isinstance(out.get(k), str):
            out[k] = [out[k]]
    if out.get("error_bound") is None and model is not None:
        out["model"] = {"name": model.name, "weights_sha256": model.weights_sha256}
    context = out.get("context_model")
    if isinstance(context, (str, os.PathLike)) and str(context).lower() not in ("auto", "none"):
        # a part's identity holds the model's bytes: a model file changed in place is other work
        try:
            with open(context, "rb") as f:
                sha = hashlib.sha256(f.read(MAX_CONTEXT_MODEL_BYTES)).hexdigest()
        except OSError:
            sha = None  # the compress task says what is wrong with it
        out["context_model"] = {"file": os.fspath(context), "sha256": sha}
    return json.loads(canonical(out))


# -- planning ---------------------------------------------------------------------------------
def count_entries(path: str, table_options: Mapping[str, Any]) -> int:
    """Events (rows of flat tables) in a table: the reader's count, or one pass over it (CSV)."""
    from .defaults import DEFAULT_CHUNK_JETS
    from .tables import open_table

    opts = {k: v for k, v in table_options.items() if k in TABLE_OPTIONS}
    source = open_table(path, **opts)
    try:
        n = getattr(source, "n_entries", None)
        if n is None:
            n = 0
            for chunk in source.chunks(DEFAULT_CHUNK_JETS):
                n += len(chunk.counts) if chunk.counts is not None else chunk.n_jets
        return int(n)
    finally:
        source.close()


def input_names(paths: Sequence[str]) -> list[str]:
    """The names restored files are named after, for inputs compressed whole (unique; see
    :func:`part_names`)."""
    return part_names([safe_stem(p) for p in paths], [[None]] * len(paths))[0]


def source_identity(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def plan_parts(paths: Sequence[str], n_entries: Sequence[int | None], entries_per_task: int | None,
               options_id: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
    """(inputs, part specs): each input whole, or split into ranges of `entries_per_task`.

    Part file names are unique by construction (:func:`part_names`); each spec also has a
    ``key``, the SHA-256 of the work (source identity, range, options), unique per part.
    """
    ranges: list[list[Any]] = []
    for n in n_entries:
        if entries_per_task and n is not None and n > entries_per_task:
            ranges.append([(a, min(a + entries_per_task, n)) for a in range(0, n, entries_per_task)])
        else:
            ranges.append([None])
    names, files = part_names([safe_stem(p) for p in paths], ranges)
    inputs, parts = [], []
    for i, (path, name, n) in enumerate(zip(paths, names, n_entries)):
        ident = source_identity(path)
        for rng, file in zip(ranges[i], files[i]):
            key = hashlib.sha256(canonical({"source": ident, "entry_range": rng,
                                            "options": options_id})).hexdigest()
            parts.append({"file": file, "input": i, "source": path, "entry_range": rng, "key": key})
        inputs.append({"index": i, "path": path, "name": name, "n_entries": n, "parts": files[i]})
    if len({p["key"] for p in parts}) != len(parts):
        raise JetzipError("two parts of this dataset would be the same work (an input given twice?)")
    return inputs, parts


# -- the compress task ------------------------------------------------------------------------
def sidecar_path(outdir: str | os.PathLike, part_file: str) -> Path:
    return Path(outdir) / SIDECARS / f"{part_file}.json"


def _read_sidecar(outdir: str | os.PathLike, part_file: str) -> dict | None:
    """A part's sidecar record, or None when there is none or it is unusable."""
    try:
        record = json.loads(read_limited(sidecar_path(outdir, part_file), MAX_SIDECAR_BYTES, "part record"))
    except (JetzipError, OSError, ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def finished_part(outdir: str | os.PathLike, spec: Mapping[str, Any]) -> dict | None:
    """The record of a part already written for this very work and intact, else None."""
    record = _read_sidecar(outdir, spec["file"])
    if record is None or record.get("key") != spec["key"] or not isinstance(record.get("bytes"), int):
        return None
    try:
        if file_sha256(Path(outdir) / spec["file"], record["bytes"], "part") != record.get("sha256"):
            return None
    except (JetzipError, OSError):
        return None
    return record


def in_the_way(outdir: str | os.PathLike, spec: Mapping[str, Any]) -> str | None:
    """Why `spec`'s part file can never be written (even with force): a link or a non-file."""
    part = Path(outdir) / spec["file"]
    try:
        mode = os.lstat(part).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return f"{part} is a symbolic link; jetzip writes through none"
    if not stat.S_ISREG(mode):
        return f"{part} exists and is not a regular file"
    return None


def existing_conflict(outdir: str | os.PathLike, spec: Mapping[str, Any]) -> str | None:
    """Why writing `spec` would replace a file that is not an earlier attempt at the same work."""
    part = Path(outdir) / spec["file"]
    if not os.path.lexists(part):
        return None
    record = _read_sidecar(outdir, spec["file"])
    if record is None:
        return f"{part} exists and was not written by this dataset"
    if record.get("key") != spec["key"]:
        return f"{part} was made from another input, entry range or options"
    return None


def compress_part(spec: Mapping[str, Any], outdir: str, options: Mapping[str, Any], model: Any = None,
                  resume: bool = True, task_progress: Callable | None = None) -> dict[str, Any]:
    """Compress one part (a Dask task); returns its manifest record.

    A part already written for the same work and intact (its sidecar's key and SHA-256) is
    skipped (``"skipped": True``) when `resume`. A :class:`JetzipError` (bad input, ...) or an
    OS error a retry cannot fix (a full disk, no permission: :data:`PERMANENT_ERRNOS`) is
    returned as ``{"error": message}`` (one line) instead of raised. Other exceptions
    propagate (and are retried by the scheduler).
    """
    try:
        return _compress_part(spec, outdir, options, model, resume, task_progress)
    except JetzipError as exc:
        return {"file": spec["file"], "input": spec["input"], "key": spec["key"], "error": f"{spec['source']}: {exc}"}
    except OSError as exc:
        if exc.errno not in PERMANENT_ERRNOS:
            raise
        return {"file": spec["file"], "input": spec["input"], "key": spec["key"],
                "error": f"{spec['source']}: {os_error_text(exc)}"}


def _compress_part(spec: Mapping[str, Any], outdir: str, options: Mapping[str, Any], model: Any,
                   resume: bool, task_progress: Callable | None) -> dict[str, Any]:
    from . import api

    where = {"file": spec["file"], "input": spec["input"], "source": spec["source"], "key": spec["key"]}
    if resume:
        done = finished_part(outdir, spec)
        if done is not None:  # the same work: what this run calls it (file, input) is this run's
            return {**done, **where, "skipped": True}
    why = in_the_way(outdir, spec)
    if why:
        raise JetzipError(why)
    side_dir = sidecar_dir(outdir, create=True)
    out = os.path.join(outdir, spec["file"])
    warnings: list[str] = []
    rng = spec["entry_range"]
    opts = dict(options)
    if opts.get("error_bound") is None:
        opts["model"] = model
    if opts.get("threads") is None:
        opts["threads"] = 1  # one network thread per task: the cluster gives the parallelism
    progress = api._noop_progress
    if task_progress is not None:
        def progress(done: int, total: int | None, unit: str | None = None) -> None:  # noqa: ARG001
            task_progress(spec["file"], done, total)
    report = api.compress(spec["source"], out, entry_range=None if rng is None else tuple(rng),
                          force=True, warn=warnings.append, progress=progress, **opts)
    from .aez import open_aez

    with open_aez(out) as aez:
        jagged = aez.table.jagged
        fmt = aez.table.format
        schema = schema_of(aez.table)
    if rng is None:
        # The whole input: its entries are the events written (rows, dropped ones included).
        n = report["n_events"] + (0 if jagged else report["dropped_invalid"])
        rng = [0, n]
    record = {**where, "entry_range": list(rng), "format": fmt, "codec": report["codec"],
              "n_jets": report["n_jets"], "n_events": report["n_events"], "bytes": report["bytes"],
              "sha256": file_sha256(out, report["bytes"], "part"), "dropped_invalid": report["dropped_invalid"],
              "schema": schema, "seconds": round(report["seconds"], 4), "warnings": warnings}
    write_json_atomic(side_dir / f"{spec['file']}.json", record)
    return {**record, "skipped": False}


# -- the manifest -----------------------------------------------------------------------------
PART_KEYS = ("file", "input", "source", "entry_range", "key", "codec", "n_jets", "n_events", "bytes",
             "sha256", "dropped_invalid", "schema")


def schema_of(info: Any) -> str:
    """What the decoded arrays of a part look like (names, jaggedness, dtypes), as a short hash:
    parts with the same schema can be read as one array."""
    d = {k: getattr(info, k) for k in ("jagged", "counter", "collection", "representation", "kept_branches",
                                        "jet_branches", "branch_order")}
    d["columns"] = list(info.columns.items())
    names = [*info.kept_branches, *info.jet_branches, *([info.counter] if info.counter else [])]
    d["dtypes"] = {k: info.dtypes.get(k) for k in names}
    return hashlib.sha256(canonical(d)).hexdigest()[:16]


def build_manifest(inputs: list[dict], specs: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]],
                   codec: str, options: dict) -> dict:
    """The manifest of a finished run: `records[k]` is the record of `specs[k]` (matched by
    position and checked by key, never looked up by file name), grouped by input.

    Raises:
        JetzipError: a record is not its spec's work, or the parts do not cover each input's
            entries exactly once (:func:`validate_manifest`).
    """
    per_input: list[list[dict]] = [[] for _ in inputs]
    for spec, r in zip(specs, records, strict=True):
        if r.get("key") != spec["key"]:
            raise JetzipError(f"{spec['file']}: the record returned is not this part's work")
        per_input[spec["input"]].append({**{k: r.get(k) for k in PART_KEYS}, "file": spec["file"],
                                         "input": spec["input"], "source": spec["source"],
                                         "format": r.get("format")})
    parts: list[dict[str, Any]] = []
    for inp, recs in zip(inputs, per_input):
        inp["format"] = recs[0].get("format")
        if inp["n_entries"] is None:
            inp["n_entries"] = recs[-1]["entry_range"][1]
        parts += [{k: r[k] for k in PART_KEYS} for r in recs]
    totals = {"n_inputs": len(inputs), "n_parts": len(parts),
              "n_jets": sum(p["n_jets"] for p in parts), "n_events": sum(p["n_events"] for p in parts),
              "bytes": sum(p["bytes"] for p in parts)}
    body = {"kind": KIND, "manifest_version": MANIFEST_VERSION, "jetzip_version": __version__,
            "codec": codec, "options": options, "inputs": inputs, "parts": parts, "totals": totals}
    body = json.loads(canonical(body))
    try:
        validate_manifest(body)
    except ValueError as exc:
        raise JetzipError(f"the parts written do not make a whole dataset: {exc}") from None
    return {**body, "sha256": hashlib.sha256(canonical(body)).hexdigest()}


def write_manifest(outdir: str | os.PathLike, manifest: dict) -> Path:
    path = Path(outdir) / MANIFEST
    write_json_atomic(path, manifest)
    return path


def is_dataset(path: str | os.PathLike) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MANIFEST))


def _short(value: Any) -> str:
    """`value` for a message: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count(value: Any, what: str) -> int:
    """`value` as an integer >= 0 (JSON integers only: no booleans, floats or text)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} {_short(value)} is not an integer >= 0")
    return value


def _text(value: Any, what: str, max_len: int = 4096, printable: bool = True) -> str:
    """`value` as text of at most `max_len` characters, without NUL, and (`printable`) without
    control characters."""
    if not isinstance(value, str) or len(value) > max_len or "\0" in value or \
            (printable and any(not c.isprintable() for c in value)):
        raise ValueError(f"{what} {str(value)[:60]!r} is not {'printable ' if printable else ''}text")
    return value


def validate_manifest(m: Mapping[str, Any]) -> None:
    """Check everything a reader of the manifest uses, in one pass (linear in its size).

    Names (:func:`name_problem`), unique also where case is ignored; ``index`` the input's
    position; parts grouped by input in input order, each input's parts covering its entries
    ``[0, n_entries)`` in order without gap or overlap, and listed in its ``parts``; per part,
    ``n_events <= stop - start <= n_events + dropped_invalid`` (the events of a jagged table,
    the rows of a flat one less those dropped); sizes, counts and SHA-256s well-formed; the
    totals the sums of the parts.

    Raises:
        ValueError: the first problem found, in a few words.
    """
    inputs, parts, totals = m.get("inputs"), m.get("parts"), m.get("totals")
    if not isinstance(inputs, list) or not isinstance(parts, list) or not isinstance(totals, dict):
        raise ValueError("inputs, parts and totals must be a list, a list and an object")
    if not inputs:
        raise ValueError("no inputs")
    _text(m.get("codec"), "codec", 64)
    names: set[str] = set()
    for i, inp in enumerate(inputs):
        if not isinstance(inp, dict):
            raise ValueError(f"input {i} is not an object")
        if _count(inp.get("index"), "input index") != i:
            raise ValueError(f"input {i} has the index {inp.get('index')!r}")
        problem = name_problem(inp.get("name"), "input name")
        if problem:
            raise ValueError(problem)
        if inp["name"].casefold() in names:
            raise ValueError(f"input name {inp['name']!r} is given twice")
        names.add(inp["name"].casefold())
        _text(inp.get("path"), "input path", printable=False)  # as the user gave it
        _count(inp.get("n_entries"), "entries")
        if inp.get("format") is not None and inp.get("format") not in EXTENSION_OF:
            raise ValueError(f"input format {_short(inp.get('format'))}")
        if not isinstance(inp.get("parts"), list) or not inp["parts"]:
            raise ValueError(f"input {inp['name']!r} lists no parts")
    files: set[str] = set()
    listed: list[list[str]] = [[] for _ in inputs]
    next_entry = [0] * len(inputs)
    last_input = 0
    sums = {"n_jets": 0, "n_events": 0, "bytes": 0}
    for k, p in enumerate(parts):
        if not isinstance(p, dict):
            raise ValueError(f"part {k} is not an object")
        problem = name_problem(p.get("file"), "part file")
        if problem:
            raise ValueError(problem)
        file: str = p["file"]
        if not file.endswith(".aez"):
            raise ValueError(f"part file {file!r} does not end in .aez")
        if file.casefold() in files:
            raise ValueError(f"part file {file!r} is listed twice")
        files.add(file.casefold())
        i = _count(p.get("input"), "part input")
        if i >= len(inputs) or i < last_input:
            raise ValueError(f"part {file!r}: input {i} is out of range or out of order")
        last_input = i
        rng = p.get("entry_range")
        if not isinstance(rng, list) or len(rng) != 2:
            raise ValueError(f"part {file!r}: entry range {_short(rng)}")
        start, stop = _count(rng[0], "entry"), _count(rng[1], "entry")
        if start != next_entry[i] or stop < start:
            raise ValueError(f"part {file!r} covers entries [{start}, {stop}) of input "
                             f"{inputs[i]['name']!r}, whose parts so far end at {next_entry[i]}: "
                             "parts missing, repeated or out of order")
        next_entry[i] = stop
        n_events = _count(p.get("n_events"), "events")
        dropped = _count(p.get("dropped_invalid") or 0, "dropped jets")
        if not n_events <= stop - start <= n_events + dropped:
            raise ValueError(f"part {file!r} holds {n_events} events for the {stop - start} entries of its range")
        sums["n_events"] += n_events
        sums["n_jets"] += _count(p.get("n_jets"), "jets")
        sums["bytes"] += _count(p.get("bytes"), "bytes")
        sha = p.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"part {file!r}: SHA-256 {str(sha)[:70]!r}")
        listed[i].append(file)
    for inp, mine, end in zip(inputs, listed, next_entry):
        if mine != inp["parts"]:
            raise ValueError(f"input {inp['name']!r} lists other parts than the parts list")
        if end != inp["n_entries"]:
            raise ValueError(f"the parts of input {inp['name']!r} cover {end} of its {inp['n_entries']} entries")
    want = {"n_inputs": len(inputs), "n_parts": len(parts), **sums}
    for key, value in want.items():
        if totals.get(key) != value:
            raise ValueError(f"totals: {key} {_short(totals.get(key))}, the parts say {value}")


def read_manifest(outdir: str | os.PathLike) -> dict:
    """The manifest of a dataset folder, its own checksum verified and every field a reader
    uses checked (:func:`validate_manifest`).

    Raises:
        InputError: no such folder or no manifest. FormatError: damaged, not a manifest, a
            link or not a regular file, larger than :data:`MAX_MANIFEST_BYTES`, or a manifest
            that names a place outside the folder or does not cover each input exactly once.
    """
    path = Path(outdir) / MANIFEST
    if not Path(outdir).is_dir():
        raise InputError(f"{outdir} is not a folder" if Path(outdir).exists() else f"{outdir} does not exist")
    if not os.path.lexists(path):
        raise InputError(f"{outdir} holds no {MANIFEST}: not a jetzip dataset (or its compress run "
                         "did not finish; run it again to resume)")
    data = read_limited(path, MAX_MANIFEST_BYTES, "dataset manifest")
    try:
        m = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{path}: not readable JSON ({exc.__class__.__name__})") from None
    if not isinstance(m, dict) or m.get("kind") != KIND:
        raise FormatError(f"{path} is not a jetzip dataset manifest")
    major = str(m.get("manifest_version", "")).split(".")[0]
    if major != MANIFEST_VERSION.split(".")[0]:
        raise FormatError(f"{path}: manifest version {str(m.get('manifest_version'))[:20]!r} needs another jetzip")
    body = {k: v for k, v in m.items() if k != "sha256"}
    if hashlib.sha256(canonical(body)).hexdigest() != m.get("sha256"):
        raise FormatError(f"{path} is corrupted: its content does not match its SHA-256")
    try:
        validate_manifest(m)
    except ValueError as exc:
        raise FormatError(f"{path}: malformed manifest ({exc})") from None
    return m


def parts_by_input(manifest: Mapping[str, Any]) -> list[list[dict]]:
    """The parts of each input, in order (one pass over the parts)."""
    out: list[list[dict]] = [[] for _ in manifest["inputs"]]
    for p in manifest["parts"]:
        out[p["input"]].append(p)
    return out


def parts_of(manifest: dict, input_index: int) -> list[dict]:
    return [p for p in manifest["parts"] if p["input"] == input_index]


# -- checks -----------------------------------------------------------------------------------
def check_part(part: Mapping[str, Any], outdir: str, verify: bool = True, model: Any = None) -> dict[str, Any]:
    """One part against the manifest: a regular file of the size and SHA-256 it lists and
    (`verify`) every record's checksum, and the totals in its trailer equal to the jets and
    events the manifest lists (:func:`jetzip.api.inspect`, with `model` the entropy model of
    a bounded part coded with one not shipped). Returns ``{"file", "ok", "problem"}``."""
    from . import api

    path = os.path.join(outdir, part["file"])
    out: dict[str, Any] = {"file": part["file"], "ok": False, "problem": None}
    try:
        check_sha(path, part["sha256"], part["bytes"])
        if verify:
            info = api.inspect(path, verify=True, model=model)
            if info.get("n_jets") != part["n_jets"] or info.get("n_events") != part["n_events"]:
                out["problem"] = (f"{path} holds {info.get('n_jets')} jets in {info.get('n_events')} events, "
                                  f"the manifest says {part['n_jets']} in {part['n_events']}")
                return out
            out["payload_bytes"] = info.get("payload_bytes")
            if info.get("payloads_not_verified"):  # checksums hold; a model is missing to decode
                out["problem"] = f"{path}: " + "; ".join(info["payloads_not_verified"])
                return out
    except JetzipError as exc:
        out["problem"] = str(exc)
        return out
    out["ok"] = True
    return out


def check_sha(path: str, sha: str, size: int | None = None) -> None:
    """`path` is a regular file (not a link) of `size` bytes whose SHA-256 is `sha`.

    Raises:
        InputError: missing. FormatError: anything else.
    """
    if file_sha256(path, size, "part") != sha:
        raise FormatError(f"{path} does not match its SHA-256 in the dataset manifest")


# -- the decompress task ----------------------------------------------------------------------
def restore_input(item: Mapping[str, Any], outdir: str, output: str, options: Mapping[str, Any],
                  model: Any = None, force: bool = False) -> dict[str, Any]:
    """Decode the parts of one input, in order, into one table file (a Dask task).

    The parts are checked against their SHA-256 in the manifest, must share one header
    (source table and codec), and stream through one writer, so the restored file is what a
    single-process ``decompress`` of the whole input gives; the jets and events decoded must be
    those the manifest lists. Returns a report; a :class:`JetzipError`, or an OS error a retry
    cannot fix (a full disk), is returned as ``{"error": message}``.
    """
    import time

    from .aez import open_aez
    from .atomic import atomic_output
    from .pipeline import InOrderWorker
    from .tables import format_of, open_file_writer

    t0 = time.perf_counter()
    opts = dict(options)
    fmt_opt = opts.pop("format", None)
    root_compression = opts.pop("root_compression", None) or "input"
    threads = opts.get("threads") or 1
    paths = [os.path.join(outdir, p["file"]) for p in item["parts"]]
    try:
        fmt = format_of(output, fmt_opt, sniff=False, hint="format=")
        for p, path in zip(item["parts"], paths):
            check_sha(path, p["sha256"], p["bytes"])  # regular files, as the manifest lists them
        with open_aez(paths[0]) as first:
            infos = first.tables
            main = next((i for i, t in enumerate(infos) if t.has_jets), 0)
            source_json = first.header_json.get("tables", first.header_json.get("source"))
            configs = first.header.codecs
            first_compression = first.header.source.get("compression")
            codecs = first.codecs(model=model, device=opts.get("device", "auto"),
                                  batch_size=opts.get("batch_size"), threads=threads)
        workers = threads if all(c.parallel for c in codecs) else 1
        n_jets = n_events = 0
        extras: bytes | None = None
        with atomic_output(output, force, inputs=paths) as tmp:
            writer = open_file_writer(tmp, fmt, infos, root_compression, main, first_compression)

            def write(table: int, chunk: Any) -> None:
                writer.write(table, chunk)

            try:
                with InOrderWorker(write) as background:
                    for path in paths:
                        with open_aez(path) as aez:
                            if aez.header_json.get("tables", aez.header_json.get("source")) != source_json \
                                    or aez.header.codecs != configs:
                                raise FormatError(f"{path}: its header differs from the first part's "
                                                  f"({paths[0]}); parts of one input must match")
                            for _, chunk in aez.decoded(codecs, workers, tables=[main]):
                                background.submit(main, chunk)
                                n_jets += chunk.n_jets
                                n_events += chunk.n_entries
                    # the other tables (NanoAOD's Runs): every part carries them whole; once
                    with open_aez(paths[0]) as aez:
                        others = [i for i in range(len(infos)) if i != main]
                        if others:
                            for stored, chunk in aez.decoded(codecs, workers, tables=others):
                                background.submit(stored.table, chunk)
                        else:
                            for _ in aez.chunks():
                                pass
                        extras = aez.extras  # every part carries them: write them once
                if extras is not None:
                    writer.write_extras(bytes(extras), infos[main].format)
            finally:
                writer.close()
            # The parts' trailers were checked against their chunks; the manifest against them.
            want = (sum(p["n_jets"] for p in item["parts"]), sum(p["n_events"] for p in item["parts"]))
            if (n_jets, n_events) != want:
                raise FormatError(f"the parts of {item['name']} hold {n_jets} jets in {n_events} events, "
                                  f"the manifest says {want[0]} in {want[1]}")
    except JetzipError as exc:
        return {"input": item["index"], "output": output, "error": str(exc)}
    except OSError as exc:
        if exc.errno not in PERMANENT_ERRNOS:
            raise
        return {"input": item["index"], "output": output, "error": os_error_text(exc)}
    return {"input": item["index"], "output": output, "format": fmt, "n_jets": n_jets,
            "n_events": n_events, "n_parts": len(paths), "seconds": time.perf_counter() - t0}


def restored_path(output: str | os.PathLike, item: Mapping[str, Any], fmt: str | None) -> str:
    """Where one input is restored: ``output`` a folder (``<name>`` + the input's extension, or
    `fmt`'s), or a pattern with ``{name}`` (and optionally ``{index}``), e.g. ``out/{name}.h5``."""
    output = os.fspath(output)
    if "{" in output:
        try:
            return output.format(name=item["name"], index=item["index"])
        except (KeyError, IndexError, ValueError) as exc:
            raise JetzipError(f"output pattern {output!r}: use {{name}} and {{index}} ({exc})") from None
    ext = EXTENSION_OF.get(fmt or item.get("format") or "", None)
    if ext is None:
        raise JetzipError(f"cannot tell the output format of input {item['path']}; pass format=")
    return os.path.join(output, item["name"] + ext)


def positive_or_none(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def check_outputs(outs: Sequence[str], force: bool) -> None:
    if len(set(outs)) != len(outs):
        raise JetzipError("several inputs would be restored to the same file; put {name} in the pattern")
    if not force:
        for o in outs:
            if os.path.exists(o):
                raise OutputExistsError(f"output {o} exists; use force=True (-f) to overwrite it")
