"""The ``jetzip`` command line: Click options forwarded to :mod:`jetzip.api` and friends.

Conventions: data (a CSV with ``-o -``, JSON with ``--json``) goes to stdout; messages and
progress go to stderr. Exit codes: 0 success, 1 a problem with the input, files or options
(a one-line message, no traceback; with several inputs: any of them failed), 2 a usage error,
130 interrupted. A reader that goes away early (``jetzip decompress x.aez -o - | head -1``)
ends the command quietly with exit 0, every time; a closed stderr only silences messages.
Options are parsed here and forwarded as keywords; their defaults and choices are the
library's constants. Heavy imports (torch, uproot) happen inside the commands, so ``--help``
stays fast.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .defaults import (DEFAULT_BOUNDED_CHUNK_JETS, DEFAULT_CHUNK_JETS, DEFAULT_CONTEXT_MODEL, DEFAULT_DEVICE,
                       DEFAULT_LATENT_DTYPE,
                       DEFAULT_LATENT_TOLERANCE, DEFAULT_ROOT_COMPRESSION, DEVICE_HELP, ERROR_BOUND_PRESETS,
                       LATENT_DTYPE_CHOICES)
from .bench import run_bench
from .engine import DEFAULT_BATCH_SIZE
from .errors import JetzipError, damage_message, damaged_input
from .features import NORMALIZATION_KINDS, UNIT_SCALE
from .model import NAMED_ARCHITECTURES
from .tables import FORMATS
from .tables.layouts import PRESETS
from .tables.root_writer import COMPRESSIONS
from .training import TrainOptions

EXIT_INTERRUPTED = 130
# stdout's reader went away (| head): end quietly with 0. Not 141 (128 + SIGPIPE): CPython drops
# the rest of a write that the close interrupts without an error, so the code could not be the
# same every time, while the user asked for less output and got it.
EXIT_CLOSED_PIPE = 0
TRAIN_DEFAULTS = TrainOptions()


def _console(stdout: bool = False):
    """stderr for messages and progress; stdout for a command's report (inspect, evaluate)."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            """rich would exit 1 here. A closed stdout ends the command (see run_guarded); a
            closed stderr only silences the messages: the work goes on."""
            self.quiet = True
            if self.stderr:
                _silence(2)
                return
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    console = PipeConsole(stderr=not stdout, highlight=False)
    if not console.is_terminal:
        console.width = 120  # logs and pipes: wide enough for the residual tables
    return console


class Ui:
    """Messages and progress on stderr."""

    def __init__(self, quiet: bool = False, progress: bool = True) -> None:
        self.quiet = quiet
        self.console = _console()
        self.show_progress = progress and not quiet and self.console.is_terminal

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        self.console.print(f"jetzip: warning: {message}", markup=False, style="yellow", soft_wrap=True)

    def error(self, message: str) -> None:
        self.console.print(f"jetzip: error: {message}", markup=False, style="red", soft_wrap=True)

    def progress(self, description: str, unit: str, total: int | None = None):
        """A context manager yielding an `advance(done, total=None, unit=None)` callback.

        The bar says what it counts: `unit` ("events", "jets", ...) after the count, and the
        chunks done so far. The library calls `advance` once per chunk.
        """
        if not self.show_progress:
            return contextlib.nullcontext(lambda done, total=None, unit=None: None)
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        @contextlib.contextmanager
        def bar():
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[unit]}, {task.fields[chunks]} chunks"),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
                          transient=True) as p:
                task = p.add_task(description, total=total, unit=unit, chunks=0)
                chunks = 0

                def advance(done: int, total: int | None = None, unit: str | None = None) -> None:
                    nonlocal chunks
                    chunks += 1
                    fields: dict[str, Any] = {"chunks": chunks}
                    if total is not None:
                        fields["total"] = total
                    if unit:
                        fields["unit"] = unit
                    p.update(task, advance=done, **fields)
                yield advance
        return bar()


def run_guarded(fn: Callable[[], Any]) -> Any:
    """Map library errors to exit 1, Ctrl-C / SIGTERM to 130, a closed stdout to 141, bugs to a
    short message; flush stdout here, so that a closed pipe is noticed while it can be handled."""
    from .atomic import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            result = fn()
            sys.stdout.flush()
        return result
    except KeyboardInterrupt:
        _to_stderr("jetzip: interrupted; no output was written")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if closed_pipe(exc):
            exit_closed_pipe()
        if interrupted(exc):
            _to_stderr("jetzip: interrupted; no output was written")
            sys.exit(EXIT_INTERRUPTED)
        if isinstance(exc, JetzipError) or not os.environ.get("JETZIP_DEBUG"):
            raise click.ClickException(error_message(exc)) from None
        raise  # JETZIP_DEBUG=1: a bug shows its traceback


def error_message(exc: BaseException) -> str:
    """The one-line message for an error (library errors, OS errors, memory, bugs)."""
    from .atomic import user_facing

    if isinstance(exc, JetzipError):
        text = str(exc)
    elif damaged_input(exc):
        text = damage_message(exc, "the input")
    elif isinstance(exc, MemoryError):
        text = "out of memory; try a smaller --batch-size or --chunk-jets"
    elif isinstance(exc, OSError) and (exc.strerror or exc.filename):
        text = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    else:  # a bug: say so briefly; JETZIP_DEBUG=1 shows the traceback
        text = f"internal error ({type(exc).__name__}: {exc}); rerun with JETZIP_DEBUG=1 and report it"
    return _one_line(user_facing(text))


def _one_line(message: str) -> str:
    """Errors are one line, for logs and grep (third-party messages can span several)."""
    return " ".join(message.split())


def _caused_by(exc: BaseException | None, test: Callable[[BaseException], bool]) -> bool:
    """Whether `exc` or anything in its chain of causes and contexts passes `test`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if test(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def interrupted(exc: BaseException | None) -> bool:
    """Whether `exc` was caused by Ctrl-C / SIGTERM: numba's dispatcher calls back into Python
    (``_numba_unpickle``), where the signal handler's KeyboardInterrupt is raised, and returns
    it as ``SystemError: ... returned a result with an exception set`` caused by it."""
    return _caused_by(exc, lambda e: isinstance(e, KeyboardInterrupt))


def closed_pipe(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) is a write to a pipe whose reader has gone."""
    return _caused_by(exc, lambda e: isinstance(e, OSError) and e.errno == errno.EPIPE)


def exit_closed_pipe() -> None:
    """End quietly: nothing more can reach the reader, and nothing is said about it.

    stdout is pointed at /dev/null first, so the interpreter's final flush of what is still
    buffered cannot fail again (that made the exit code random).
    """
    _silence(1)
    sys.exit(EXIT_CLOSED_PIPE)


def _silence(fd: int) -> None:
    """Point file descriptor `fd` (1 or 2) at /dev/null; nothing when it is not a real file."""
    stream = sys.stdout if fd == 1 else sys.stderr
    with contextlib.suppress(Exception):  # tests run the CLI in-process on in-memory streams
        if stream.fileno() != fd:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def _to_stderr(message: str) -> None:
    """A message on stderr; a closed stderr silences it (and the rest) instead of failing."""
    try:
        click.echo(message, err=True)
    except OSError as exc:
        if not closed_pipe(exc):
            raise
        _silence(2)


def _json_out(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# Options shared by every command that reads jet tables.
def table_options(f):
    f = click.option("--tree", help="ROOT tree (or HDF5 group) holding the jets "
                     "(default: every tree with jets is coded).")(f)
    f = click.option("--columns", metavar="E=..,pt=..,eta=..,phi=..",
                     help="Name the 4-vector columns explicitly (roles E, pt, eta, phi, m, px, py, pz).")(f)
    f = click.option("--preset", type=click.Choice(list(PRESETS)),
                     help="Use a known file layout instead of detecting it.")(f)
    f = click.option("--collection", metavar="NAME",
                     help="Four-vector collection(s) to code: Jet, FatJet, ..., 'A,B', or 'all' (with "
                     "--error-bound: every collection smaller coded than carried; 'all,-GenPart' leaves some out) "
                     "(default: every jet collection; the others are carried losslessly). HDF5, Parquet and CSV "
                     "tables code one collection.")(f)
    f = click.option("--units", type=click.Choice(list(UNIT_SCALE)),
                     help="Units of energies and momenta in the input (default: by layout, else inferred).")(f)
    return f


def device_options(f):
    f = click.option("--device", default=DEFAULT_DEVICE, show_default=True,
                     help=f"{DEVICE_HELP} (auto takes a GPU when there is one).")(f)
    f = click.option("--batch-size", type=click.IntRange(1),
                     help=f"Jets per network batch (default: {DEFAULT_BATCH_SIZE}).")(f)
    return f


def threads_option(f):
    return click.option("--threads", type=click.IntRange(1),
                        help="CPU threads: the latent codec's network's (default: torch's, i.e. all cores "
                             "or OMP_NUM_THREADS), or the error-bounded chunks coded side by side (default: "
                             "all cores); reading and writing take one more each.")(f)


def max_jets_option(help: str):
    return click.option("--max-jets", type=click.IntRange(1), help=help)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="jetzip")
def cli() -> None:
    """Compress particle-physics jet tables (ROOT, HDF5, Parquet, CSV) and restore the whole file.

    Four-vectors are coded by the error-bounded codec (--error-bound: every value within a
    guaranteed error) or the AE_3D_200 autoencoder's 3-number latent (the default); every
    other branch, tree and object is carried losslessly.

    \b
    jetzip compress jets.root -o jets.aez
    jetzip decompress jets.aez -o jets_restored.root
    jetzip inspect jets.aez
    """


def _expand_inputs(inputs: tuple[str, ...]) -> tuple[list[str], bool]:
    """The input files, and whether they came from a glob (then -o must be a folder)."""
    out: list[str] = []
    globbed = False
    for item in inputs:
        if not os.path.exists(item) and any(c in item for c in "*?["):
            hits = sorted(glob.glob(item))
            if not hits:
                raise JetzipError(f"no file matches {item!r}")
            out += hits
            globbed = True
        else:
            out.append(item)
    return out, globbed


def _outputs_for(inputs: list[str], output: str | None, suffix: str, globbed: bool = False) -> list[str]:
    if output == "-":
        raise JetzipError("-o -: a .aez file cannot go to standard output; give a file name")
    if output is None:
        return [str(Path(p).with_suffix(suffix)) for p in inputs]
    if len(inputs) > 1 or globbed or output.endswith(os.sep) or os.path.isdir(output):
        if output.endswith(os.sep) and not os.path.exists(output):
            os.makedirs(output)  # 'outdir/' says it is a folder: make it
        if not os.path.isdir(output):
            why = ("with several inputs or a glob" if len(inputs) > 1 or globbed
                   else "when it ends with a slash")
            raise JetzipError(f"-o {output}: must be an existing folder {why} (end it with / to "
                              "have it created)")
        outs = [os.path.join(output, Path(p).stem + suffix) for p in inputs]
        if len(set(outs)) != len(outs):
            raise JetzipError("several inputs share a file name; compress them to separate folders")
        return outs
    return [output]


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output .aez (or a folder for several inputs). Default: INPUT with .aez.")
@click.option("--error-bound", metavar="SPEC",
              help="Store every value within a guaranteed maximum error (relative for pt and E or mass, "
                   "absolute for eta and phi; for px, py, pz tables |dpx|, |dpy| <= b pt and |dpz| <= b |p|) "
                   "using the error-bounded codec instead of the 3-float latent: one number, "
                   "'pt=5e-4,eta=2.5e-4,...' or " + " or ".join(repr(p) for p in ERROR_BOUND_PRESETS)
                   + " (CMS NanoAOD's precision, on any table).")
@click.option("-m", "--model", type=click.Path(dir_okay=False), help="Model file (default: the shipped AE_3D_200).")
@table_options
@click.option("--keep-branches", multiple=True, metavar="PATTERN",
              help="Carry only the matching branches (every branch that is not coded is carried "
                   "losslessly by default; glob pattern, repeatable).")
@click.option("--drop-branches", multiple=True, metavar="PATTERN",
              help="Leave out matching branches that would otherwise be carried (glob pattern, repeatable).")
@click.option("--latent-dtype", type=click.Choice(LATENT_DTYPE_CHOICES), default=DEFAULT_LATENT_DTYPE,
              show_default=True, help="Latent codec: latents quantized below the network's own error and "
              "rANS-coded (about 4.6 B/jet), or the literal 3 floats (float32: 12 B/jet; float16: 6).")
@click.option("--tolerance", "latent_tolerance", metavar="SPEC",
              help="Latent codec: jets whose round trip is further off than this are stored verbatim "
                   f"(pt relative; eta, phi absolute; default {DEFAULT_LATENT_TOLERANCE}).")
@click.option("--no-embed-model", is_flag=True, help="Store only the model's hash, not its decoder (~100 kB).")
@click.option("--context-model", default=DEFAULT_CONTEXT_MODEL, show_default=True, metavar="none|auto|FILE",
              help="With --error-bound: the entropy model (none: each chunk's own tables, fast to read; auto: the "
                   "shipped learned model, about 2 % smaller jets, 6x slower to read and 7x to write; or a file "
                   "from 'jetzip train --entropy-model', needed again to decompress).")
@click.option("--drop-invalid", is_flag=True, help="Leave out jets with NaN/inf, E or pt <= 0, or E < pt (counted).")
@click.option("--strict", is_flag=True,
              help="Refuse to write anything when some part of the input cannot be carried (a branch uproot "
                   "cannot read, an object it cannot write back).")
@click.option("--carried-compression", metavar="lzma|zstd[:LEVEL]",
              help="How the branches carried losslessly are compressed (default: lzma where the input used "
                   "LZMA, as CMS NanoAOD does, else zstd).")
@max_jets_option("Compress only the first events holding at most this many jets.")
@device_options
@threads_option
@click.option("--chunk-jets", type=click.IntRange(1024),
              help=f"Jets per chunk read and written (bounds memory; default {DEFAULT_CHUNK_JETS}, "
                   f"{DEFAULT_BOUNDED_CHUNK_JETS} with --error-bound).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Compress on a Dask cluster into a dataset folder (-o OUTDIR/: one .aez part per input "
                   "or entry range, and manifest.json): tcp://host:8786 for a running scheduler, or "
                   "local:N for N local worker processes (pip install 'jetzip[dask]'). Running the same "
                   "command again resumes, skipping the parts already written.")
@click.option("--entries-per-task", type=click.IntRange(1), metavar="N",
              help="With --scheduler: split inputs with more events (rows) than N into one part per N.")
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True,
              help="With --scheduler: retries of a task that fails unexpectedly or loses its worker.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings.")
def compress(inputs, output, as_json, no_progress, quiet, **options) -> None:
    """Compress jet tables (ROOT, HDF5, CSV, Parquet) into .aez files.

    With several inputs or a glob, a file that fails does not stop the others: a summary
    at the end says what was done and what failed, and the exit code is 1 if any failed.
    """
    ui = Ui(quiet, not no_progress)
    force = options.pop("force")
    options["embed_model"] = False if options.pop("no_embed_model") else None
    for name in ("keep_branches", "drop_branches"):
        options[name] = tuple(options[name])
    dataset = {k: options.pop(k) for k in ("scheduler", "entries_per_task", "retries")}
    if dataset["scheduler"] is not None:
        run_guarded(lambda: _compress_dataset(ui, inputs, output, force, as_json, dataset, options))
        return

    def go():
        from . import api

        if dataset["entries_per_task"] is not None:
            raise JetzipError("--entries-per-task splits inputs into dataset parts: it needs --scheduler")

        paths, globbed = _expand_inputs(inputs)
        outs = _outputs_for(paths, output, ".aez", globbed)
        several = len(paths) > 1 or globbed
        reports: list[dict[str, Any]] = []
        failed: list[tuple[str, str]] = []
        for path, out in zip(paths, outs, strict=True):
            try:
                with ui.progress(f"compress {os.path.basename(path)}", "events") as advance:
                    r = api.compress(path, out, force=force, progress=advance, warn=ui.warn, **options)
            except Exception as exc:
                if not several or closed_pipe(exc):
                    raise
                message = error_message(exc)
                ui.error(message if path in message else f"{path}: {message}")
                failed.append((path, message))
                reports.append({"input": path, "output": out, "error": message})
                continue
            reports.append(r)
            share = f", {r['ratio_to_input']:.0%} of the input" if r.get("ratio_to_input") else ""
            if r["n_jets"]:
                alone = (f"the jets alone {r['payload_bytes_per_jet']:.2f} B/jet"
                         if r.get("n_four_vectors", r["n_jets"]) == r["n_jets"] else
                         f"the {r['n_four_vectors']} coded four-vectors of every collection alone "
                         f"{r['payload_bytes_per_jet']:.2f} B each")
                ui.info(f"{path} -> {out}: {r['n_jets']} jets in {r['n_events']} events, "
                        f"{r['bytes']} bytes{share} ({r['bytes_per_jet']:.2f} B/jet; {alone}), "
                        f"{r['seconds']:.2f} s")
            else:
                ui.info(f"{path} -> {out}: no jets ({r['n_events']} events), {r['bytes']} bytes{share}")
        if several and (failed or not ui.quiet):
            _summary(ui, "compressed", reports, failed)
        if as_json:
            _json_out(reports[0] if len(reports) == 1 and not several else reports)
        if failed:
            sys.stdout.flush()
            sys.exit(1)

    run_guarded(go)


def _compress_dataset(ui: Ui, inputs: tuple[str, ...], output: str | None, force: bool, as_json: bool,
                      dataset: dict[str, Any], options: dict[str, Any]) -> None:
    """compress --scheduler: a dataset folder of parts on a Dask cluster (jetzip.dask)."""
    from . import dask as jd

    if not output or output == "-":
        raise JetzipError("--scheduler writes a dataset folder: give -o OUTDIR/")
    if options.pop("max_jets", None) is not None:
        raise JetzipError("--max-jets cannot be used with --scheduler (use --entries-per-task to split inputs)")
    with ui.progress(f"compress into {output}", "parts") as advance:
        r = jd.compress(list(inputs), output, scheduler=dataset["scheduler"],
                        entries_per_task=dataset["entries_per_task"], retries=dataset["retries"], force=force,
                        progress=lambda done, total: advance(1, total), warn=ui.warn, **options)
    ui.info(f"{r['n_inputs']} input(s) -> {r['outdir']}: {r['n_parts']} parts ({r['n_skipped']} already done), "
            f"{r['n_jets']} jets in {r['n_events']} events, {r['bytes']} bytes, {r['seconds']:.2f} s "
            f"({r['jets_per_second'] or 0:.3g} jets/s)")
    if as_json:
        _json_out(r)


def _summary(ui: Ui, verb: str, reports: list[dict[str, Any]], failed: list[tuple[str, str]]) -> None:
    """One line on stderr: how many inputs were done (jets, bytes) and which failed."""
    ok = [r for r in reports if "error" not in r]
    jets = sum(r.get("n_jets") or 0 for r in ok)
    size = sum(r.get("bytes") or 0 for r in ok)
    line = f"jetzip: {verb} {len(ok)} of {len(reports)} inputs ({jets} jets, {size} bytes)"
    if failed:
        line += f"; {len(failed)} failed: " + ", ".join(p for p, _ in failed)
    ui.console.print(line, markup=False, soft_wrap=True, style="red" if failed else None)


@cli.command()
@click.argument("input")
@click.option("-o", "--output", required=True,
              help="Restored table (.root, .h5, .csv, .parquet), or - for CSV on stdout.")
@click.option("-m", "--model", type=click.Path(dir_okay=False),
              help="Model file, needed for files made with --no-embed-model (its hash must match), or the .jzc "
                   "entropy model of files or datasets made with --context-model FILE.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: by extension).")
@click.option("--root-compression", "--compression", "root_compression", type=click.Choice(COMPRESSIONS),
              default=DEFAULT_ROOT_COMPRESSION, show_default=True,
              help="Compression of ROOT output: input (the input file's algorithm and level), or one at level 1 "
                   "(zstd needs ROOT >= 6.20 to read).")
@click.option("--strict", is_flag=True,
              help="Refuse when the output cannot hold everything the .aez holds (another format, a type uproot "
                   "cannot write); nothing is written.")
@device_options
@threads_option
@click.option("--scheduler", metavar="ADDRESS",
              help="INPUT a dataset folder: restore its inputs on a Dask cluster (tcp://host:8786 or local:N).")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (on stderr when -o -).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings.")
def decompress(input, output, model, fmt, root_compression, strict, device, batch_size, threads, scheduler, force,
               as_json, no_progress, quiet) -> None:
    """Restore a jet table from a .aez file, in the layout it was compressed from.

    INPUT may be a dataset folder (made by compress --scheduler): then -o is a folder (one file
    per input, named after it) or a pattern like 'out/{name}.h5'.
    """
    ui = Ui(quiet or output == "-", not no_progress)

    def go():
        from . import api

        if os.path.isdir(input):
            from . import dask as jd

            if output == "-":
                raise JetzipError("a dataset restores to a folder (-o OUTDIR/) or a pattern like 'out/{name}.h5'")
            if strict:
                raise JetzipError("--strict applies to one .aez file, not to a dataset folder")
            with ui.progress(f"decompress {input}", "inputs") as advance:
                r = jd.decompress(input, output, scheduler=scheduler, model=model, force=force, format=fmt,
                                  root_compression=root_compression, device=device, batch_size=batch_size,
                                  threads=threads, progress=lambda done, total: advance(1, total))
            ui.info(f"{input} -> {len(r['outputs'])} file(s) in {output}: {r['n_jets']} jets in "
                    f"{r['n_events']} events, {r['seconds']:.2f} s")
            if as_json:
                _json_out(r)
            return
        if scheduler is not None:
            raise JetzipError(f"--scheduler restores a dataset folder; {input} is a file")

        with ui.progress(f"decompress {os.path.basename(input)}", "events") as advance:
            r = api.decompress(input, output, model=model, format=fmt, device=device,
                               batch_size=batch_size, force=force, root_compression=root_compression,
                               threads=threads, strict=strict, progress=advance, warn=ui.warn)
        ui.info(f"{input} -> {output}: {r['n_jets']} jets in {r['n_events']} events ({r['format']}), "
                f"{r['seconds']:.2f} s")
        if as_json:
            if output == "-":
                click.echo(json.dumps(r, default=_json_default), err=True)
            else:
                _json_out(r)

    run_guarded(go)


@cli.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option("--no-verify", is_flag=True, help="Skip checking every checksum (faster on huge files).")
@click.option("--scheduler", metavar="ADDRESS", help="PATH a dataset folder: check its parts on a Dask cluster.")
@click.option("-m", "--model", type=click.Path(dir_okay=False),
              help="The context model a bounded file or dataset was coded with, when it is not the shipped one.")
def inspect(path, as_json, no_verify, scheduler, model) -> None:
    """Show what a .aez file, a model file, a context model or a dataset folder holds, verifying
    every checksum."""
    def go():
        from . import api
        from .render import print_inspect

        if os.path.isdir(path):
            from . import dask as jd

            info = jd.inspect(path, scheduler=scheduler, verify=not no_verify, strict=False, model=model)
            if as_json:
                _json_out(info)
            else:
                click.echo(jd.format_inspect(info))
            if info["problems"]:
                raise JetzipError(f"dataset {path}: {len(info['problems'])} part(s) fail their checks; "
                                  f"the first: {info['problems'][0]}")
            return

        info = api.inspect(path, verify=not no_verify, model=model)
        if as_json:
            _json_out(info)
        else:
            print_inspect(info, _console(stdout=True))

    run_guarded(go)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Model file to write (checkpoint beside it: OUTPUT.ckpt).")
@table_options
@click.option("--arch", default=TRAIN_DEFAULTS.arch, show_default=True,
              help=", ".join(NAMED_ARCHITECTURES) + ", or hidden sizes and latent like '200,100,50:3'.")
@click.option("--entropy-model", is_flag=True,
              help="Train the error-bounded codec's learned entropy model (-o FILE.jzc) on (pt, eta, phi, "
                   "mass) tables with events, instead of an autoencoder (uses --epochs, --seed, --max-jets).")
@click.option("--epochs", type=click.IntRange(1),
              help=f"Default {TRAIN_DEFAULTS.epochs} (autoencoder), 12 (--entropy-model).")
@click.option("--batch-size", type=click.IntRange(1), default=TRAIN_DEFAULTS.batch_size, show_default=True)
@click.option("--lr-max", type=click.FloatRange(min=0, min_open=True), default=TRAIN_DEFAULTS.lr_max,
              show_default=True, help="Peak learning rate of the one-cycle schedule.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=TRAIN_DEFAULTS.weight_decay, show_default=True)
@click.option("--patience", type=click.IntRange(1), default=TRAIN_DEFAULTS.patience, show_default=True,
              help="Stop after this many epochs without a better validation loss.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=TRAIN_DEFAULTS.val_fraction, show_default=True)
@click.option("--seed", type=int, default=TRAIN_DEFAULTS.seed, show_default=True)
@click.option("--normalization", type=click.Choice(NORMALIZATION_KINDS), default=TRAIN_DEFAULTS.normalization,
              show_default=True, help="Feature transform (see README).")
@click.option("--threads", type=click.IntRange(1), help="CPU threads for torch (default: all cores).")
@click.option("--targets", metavar="E,pt,eta,phi", default=",".join(f"{t:g}" for t in TRAIN_DEFAULTS.targets),
              show_default=True,
              help="Residuals to aim for (E, pt relative; eta, phi absolute); they set the loss weights.")
@max_jets_option("Use at most this many jets.")
@click.option("--device", default=TRAIN_DEFAULTS.device, show_default=True, help=DEVICE_HELP + ".")
@click.option("--resume", is_flag=True, help="Continue from OUTPUT.ckpt.")
@click.option("--drop-invalid", is_flag=True, help="Skip jets with NaN/inf or non-positive E or pt.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing model file.")
@click.option("--json", "as_json", is_flag=True, help="Print the model summary as JSON on stdout.")
@click.option("--no-progress", is_flag=True, help="No progress display.")
@click.option("-q", "--quiet", is_flag=True)
def train(inputs, output, tree, columns, preset, collection, units, arch, entropy_model, epochs, batch_size,
          lr_max, weight_decay, patience, val_fraction, seed, normalization, threads, targets, max_jets, device,
          resume, drop_invalid, force, as_json, no_progress, quiet) -> None:
    """Train an autoencoder (or, with --entropy-model, the bounded codec's entropy model) on jet
    tables and save it as a model file."""
    ui = Ui(quiet, not no_progress)
    if entropy_model:
        run_guarded(lambda: _train_entropy_model(ui, inputs, output, epochs or 12, seed, max_jets, threads, force,
                                                 as_json, dict(tree=tree, columns=columns, preset=preset,
                                                               collection=collection, units=units)))
        return
    epochs = epochs or TRAIN_DEFAULTS.epochs

    def go():
        from .model import Architecture
        from .render import TrainDisplay, print_train_summary
        from .training import TrainOptions, train as train_model

        Architecture.parse(arch)  # fail fast on a bad --arch
        if threads:
            import torch
            torch.set_num_threads(threads)
        try:
            target_values = tuple(float(x) for x in targets.split(","))
        except ValueError:
            target_values = ()
        if len(target_values) != 4 or min(target_values) <= 0:
            raise JetzipError(f"--targets needs four positive numbers E,pt,eta,phi, not {targets!r}")
        options = TrainOptions(arch=arch, epochs=epochs, batch_size=batch_size, lr_max=lr_max,
                               weight_decay=weight_decay, patience=patience,
                               val_fraction=val_fraction, seed=seed, device=device,
                               normalization=normalization, targets=target_values)
        with TrainDisplay(ui.console, enabled=ui.show_progress, quiet=ui.quiet) as display:
            model = train_model(_expand_inputs(inputs)[0], output, options=options, resume=resume,
                                force=force, max_jets=max_jets, drop_invalid=drop_invalid,
                                report=display.report, warn=ui.warn, tree=tree, columns=columns,
                                preset=preset, collection=collection, units=units)
        if not ui.quiet:
            print_train_summary(model, output, ui.console)
        try:
            from .plots import plot_loss_curve
            plot_loss_curve(model.history, str(Path(output).with_suffix("")) + "_loss.png")
        except ImportError:
            pass
        if as_json:
            _json_out(model.header())

    run_guarded(go)


def _train_entropy_model(ui: Ui, inputs: tuple[str, ...], output: str, epochs: int, seed: int,
                         max_jets: int | None, threads: int | None, force: bool, as_json: bool,
                         table_options: dict[str, Any]) -> None:
    """train --entropy-model: jetzip.context_training on the inputs; one line per stream."""
    from .context_training import train_context_model

    if threads:
        import torch
        torch.set_num_threads(threads)
    model = train_context_model(_expand_inputs(inputs)[0], output, max_jets=max_jets, epochs=epochs, seed=seed,
                                force=force, report=ui.info, **table_options)
    ui.info(f"wrote {output} (sha256 {model.sha256[:12]}...): streams {', '.join(sorted(model.streams))}")
    if as_json:
        _json_out({"output": output, "sha256": model.sha256, **model.meta})


@cli.command()
@click.argument("original")
@click.argument("compressed")
@click.option("-m", "--model", type=click.Path(dir_okay=False),
              help="Model file (needed for --no-embed-model files; gives the loss curve).")
@click.option("--plots", type=click.Path(file_okay=False), help="Write the figures (PNG) into this folder.")
@click.option("--pdf", is_flag=True, help="Also write PDF figures.")
@max_jets_option("Evaluate only the first N jets.")
@click.option("--baselines", is_flag=True,
              help="Also measure classical codecs (float16, NanoAOD rounding, quantization, ...) on the "
                   "same jets at the file's bounds.")
@device_options
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as one JSON document on stdout.")
def evaluate(original, compressed, model, plots, pdf, max_jets, baselines, device, batch_size, as_json) -> None:
    """Residual statistics (and figures) of a .aez file against its original table."""
    def go():
        from .evaluation import evaluate as run_evaluate
        from .render import print_evaluation

        use_model = model
        if use_model is None and plots:
            use_model = _default_model_if_matching(compressed)
        r = run_evaluate(original, compressed, model=use_model, device=device, batch_size=batch_size,
                         max_jets=max_jets, plots=plots, pdf=pdf, baselines=baselines)
        if as_json:
            _json_out(r)
        else:
            print_evaluation(r, _console(stdout=True))

    run_guarded(go)


def _library_default(fn: Callable[..., Any], name: str) -> Any:
    """The default of keyword `name` of the library function `fn` (one source of truth)."""
    import inspect as _inspect

    return _inspect.signature(fn).parameters[name].default


@cli.command()
@click.option("--workdir", type=click.Path(file_okay=False), default="bench_work", show_default=True,
              help="Folder for the generated input and the outputs (reused between runs).")
@click.option("--jets", "n_jets", type=click.IntRange(1000), default=_library_default(run_bench, "n_jets"),
              show_default=True, help="Jets in the generated NanoAOD-like input.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False, exists=True),
              help="Use this jet table instead of generating one.")
@click.option("-m", "--model", type=click.Path(dir_okay=False), help="Model file (default: the shipped one).")
@click.option("--device", default=_library_default(run_bench, "device"), show_default=True, help=DEVICE_HELP + ".")
@click.option("--batch-size", type=click.IntRange(1), help="jetzip's batch size (default: its own).")
@click.option("--repeats", type=click.IntRange(1), default=_library_default(run_bench, "repeats"), show_default=True,
              help="Repeat every timing (end to end in fresh processes), keep the best.")
@click.option("--memory", "memory_sizes", metavar="N,N,...",
              help="Instead: peak RSS of compress/decompress at these jet counts, e.g. 1000000,10000000.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the result as JSON here.")
def bench(workdir, n_jets, input_path, model, device, batch_size, repeats, memory_sizes, json_path) -> None:
    """Benchmark compress/decompress against plain PyTorch loops, float16 and zstd."""
    def go():
        from . import bench as b

        console = _console()
        log = lambda m: console.print(f"[bench] {m}", markup=False)  # noqa: E731
        if memory_sizes:
            try:
                sizes = [int(float(x)) for x in memory_sizes.split(",")]
            except ValueError:
                raise JetzipError(f"--memory: expected jet counts like 1000000,10000000, "
                                  f"got {memory_sizes!r}") from None
            rows = b.memory_scaling(workdir, sizes, model=model, log=log)
            text = "\n".join(f"{r['n_jets']:>10d} jets: compress peak RSS {r['compress_peak_rss_mb']:7.0f} MB "
                             f"({r['compress_s']:.1f} s), decompress peak RSS {r['decompress_peak_rss_mb']:7.0f} MB "
                             f"({r['decompress_s']:.1f} s)" for r in rows)
            result: Any = {"memory": rows}
        else:
            result = b.run_bench(workdir, n_jets=n_jets, input=input_path, model=model, device=device,
                                 batch_size=batch_size, repeats=repeats, log=log)
            text = b.format_table(result)
        click.echo(text)
        if json_path:
            Path(json_path).write_text(json.dumps(result, indent=2, default=_json_default))

    run_guarded(go)


def _default_model_if_matching(compressed: str):
    """The shipped model when `compressed` was made with it (for the loss-curve figure)."""
    from .aez import open_aez
    from .model import default_model_path
    from .model import load_model

    path = default_model_path()
    if not path.exists():
        return None
    with open_aez(compressed) as aez:
        config = aez.header.codec
    from .codecs import codec_class

    sha = codec_class(str(config.get("id"))).summary(config).get("model_sha256")
    if not sha:
        return None  # no network, no loss curve
    m = load_model(path)
    return m if m.weights_sha256 == sha else None


def main() -> None:
    """The console script: click's own handling, except that a closed stdout (``| head``) ends
    quietly with exit 0 every time, whether it shows while writing or at the final flush. A
    stdout or stderr closed before the start (``>&-``) is a reader that has gone: the work is
    done, nothing is written there."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - for the life of the process
    try:
        code = cli.main(prog_name="jetzip", standalone_mode=False)
    except click.ClickException as exc:
        try:
            exc.show()
        except OSError as again:
            if not closed_pipe(again):
                raise
            _silence(2)
        code = exc.exit_code
    except click.Abort:
        _to_stderr("Aborted!")
        code = 1
    except OSError as exc:
        if not closed_pipe(exc):
            raise
        exit_closed_pipe()
    except SystemExit as exc:
        code = exc.code
        if type(sys.stdout).__name__ == "_PacifyFlushWrapper":
            exit_closed_pipe()  # click met the closed pipe itself (help, version): same ending
    try:
        sys.stdout.flush()
    except OSError as exc:
        if not closed_pipe(exc):
            raise
        exit_closed_pipe()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
