"""The bounded codec's compiled kernels, timed one by one, and a ``jetzip.arrays`` read of a
bounded ``.aez`` against uproot reading the same four jet columns from a ZLIB-1 ROOT file
(issue 22), in one process on the cores it may run on (run it under ``taskset -c 0`` for one
core).

The jets: ``--jets`` synthetic jets (``jetzip.synthetic``), in events, pt-sorted within each
event as NanoAOD stores them. The kernels part codes them with ``BoundedCodec.encode`` in chunks
of ``--chunk-jets`` jets (the bounded codec's default chunk, split at events) and decodes them
with ``BoundedCodec.decode``; the compiled loops the coder calls (``streams.K``) and its table
fitting are timed call by call (a thin wrapper around each: the calls are few and long). Best of
``--repeats``. Printed per kernel: seconds and M jets/s.

``--against DIR``: the same kernel timing again, in a second process that imports ``jetzip``
from ``DIR`` (a checkout of another commit, e.g. ``git archive core | tar -x -C DIR``), run
right after this one on the same cores: the ratio old / new per kernel, and whether both wrote
the same payload bytes and decoded the same values (sha256 of each).

The read part (without ``--no-read``): the jets written with uproot to a ZLIB-1 ROOT file in
NanoAOD layout (``examples/bench_arrays.py``'s writer), ``jetzip.compress`` of it with the
bounded codec at ``--bound`` and static tables (``context_model="none"``), then timed:
``uproot.open(f)["Events"].arrays(four columns)`` and ``jetzip.arrays(aez, four columns)``
(after a warm-up read: imports, compiled loops).

The load average is printed before and after: other processes on the machine change the
figures, so compare the ratios of one run, not figures of different runs.

Usage::

    taskset -c 0 python examples/bench_kernels.py [--jets 2000000] [--bound 1e-3] [--repeats 3]
                                                  [--against /tmp/core] [--no-read]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

COLUMNS = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def synthetic_events(n_jets: int, seed: int = 3) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(pt, eta, phi, m float32 columns pt-sorted within events, jets per event)."""
    from jetzip import synthetic

    counts = synthetic.counts(int(n_jets / 4.5), seed).astype(np.int64)
    cols = synthetic.jets(int(counts.sum()), seed)
    event = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-cols["pt"], event))
    return {k: v[order] for k, v in cols.items()}, counts


class Timed:
    """The kernels module seen through a stopwatch: every callable attribute accumulates its
    seconds under its name."""

    def __init__(self, module: Any, seconds: dict[str, float]) -> None:
        self._module = module
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if not callable(value) or isinstance(value, type):
            return value
        return stopwatch(value, name, self._seconds)


def stopwatch(fn: Callable[..., Any], name: str, seconds: dict[str, float]) -> Callable[..., Any]:
    """`fn`, adding the seconds of each call to seconds[name]."""
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + clock() - t0
    return timed


def timed_function(module: Any, name: str, seconds: dict[str, float]) -> Callable[[], None]:
    """Wrap module.name (a Python function called by module-level name) with a stopwatch;
    returns the undo."""
    original = getattr(module, name)
    setattr(module, name, stopwatch(original, name, seconds))
    return lambda: setattr(module, name, original)


def chunks_of(counts: np.ndarray, chunk_jets: int) -> list[tuple[int, int, int, int]]:
    """(first event, end event, first jet, end jet) of chunks of about `chunk_jets` jets."""
    ends = np.concatenate([[0], np.cumsum(counts)])
    out = []
    e = 0
    while e < len(counts):
        f = int(np.searchsorted(ends, ends[e] + chunk_jets, side="right")) - 1
        f = max(f, e + 1)
        out.append((e, f, int(ends[e]), int(ends[f])))
        e = f
    return out


def time_kernels(n_jets: int, bound: str, repeats: int, chunk_jets: int) -> dict:
    """Seconds of each kernel (best of `repeats` for each), of the whole encode and decode, and
    digests of what they wrote."""
    from jetzip.codecs.bounded import BoundedCodec, parse_error_bound, streams

    cols, counts = synthetic_events(n_jets)
    codec = BoundedCodec(parse_error_bound(bound, "PtEtaPhiM"), "PtEtaPhiM")
    codec.prepare()
    parts = chunks_of(counts, chunk_jets)
    fits = [name for name in ("fit_table", "fit_histogram") if hasattr(streams, name)]
    best: dict[str, float] = {}
    payloads: list[bytes] = []
    decoded: list[tuple[np.ndarray, ...]] = []
    for _ in range(repeats + 1):  # the first round compiles or loads the kernels
        seconds: dict[str, float] = {}
        real = streams.K
        streams.K = Timed(real, seconds)
        undo = [timed_function(streams, name, seconds) for name in fits]
        try:
            payloads, decoded = [], []
            t0 = clock()
            for e0, e1, j0, j1 in parts:
                payloads.append(codec.encode({k: v[j0:j1] for k, v in cols.items()}, counts[e0:e1]))
            seconds["encode (all of it)"] = clock() - t0
            t0 = clock()
            for (e0, e1, j0, j1), p in zip(parts, payloads):
                decoded.append(codec.coder().decode(p, j1 - j0, counts[e0:e1], "bench"))
            seconds["decode (all of it)"] = clock() - t0
        finally:
            streams.K = real
            for u in undo:
                u()
        if _ == 0:
            continue
        for k, v in seconds.items():
            best[k] = min(best.get(k, v), v)
    digest = hashlib.sha256()
    for p in payloads:
        digest.update(p)
    values = hashlib.sha256()
    for d in decoded:
        for c in d:
            values.update(np.ascontiguousarray(c).tobytes())
    return {"jets": int(counts.sum()), "chunks": len(parts), "seconds": best, "payload_sha256": digest.hexdigest(),
            "decoded_sha256": values.hexdigest(), "bytes": sum(len(p) for p in payloads),
            "cores": cores(), "load": load(), "clock": "cpu" if clock is time.process_time else "wall"}


def time_read(n_jets: int, bound: str, repeats: int) -> dict:
    """Seconds of uproot's and jetzip's reads of the same four jet columns."""
    import awkward as ak
    import uproot

    import jetzip
    from bench_arrays import write_root

    work = Path(tempfile.mkdtemp(prefix="bench_kernels_"))
    try:
        cols, counts = synthetic_events(n_jets)
        jets = {"counts": counts.astype(np.uint32), "Jet_pt": cols["pt"], "Jet_eta": cols["eta"],
                "Jet_phi": cols["phi"], "Jet_mass": cols["m"]}
        root, aez = work / "zlib1.root", work / "bounded_static.aez"
        write_root(root, jets, uproot.ZLIB(1), 100_000)
        jetzip.compress(root, aez, error_bound=bound, context_model="none", force=True)

        def read_root() -> Any:
            with uproot.open(root) as f:
                return f["Events"].arrays(COLUMNS)

        def read_aez() -> Any:
            return jetzip.arrays(aez, COLUMNS)
        n = int(counts.sum())
        out: dict[str, Any] = {"jets": n, "aez_bytes": aez.stat().st_size, "cores": cores(), "load_before": load()}
        for label, fn in (("uproot ZLIB-1", read_root), ("jetzip.arrays, bounded static tables", read_aez)):
            got = fn()  # caches, imports, compiled loops
            assert int(ak.sum(ak.num(got["Jet_pt"]))) == n
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[label] = min(times)
        out["load_after"] = load()
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def show_kernels(new: dict, old: dict | None) -> str:
    n = new["jets"]
    lines = [f"kernels ({new['clock']} time): {n} synthetic jets in {new['chunks']} chunks, "
             f"{new['bytes'] / n:.3f} B/jet, "
             f"{new['cores']} core(s), load average {new['load']}"
             + (f" / {old['load']} (old)" if old else "")]
    lines.append(f"  {'what':34s}{'seconds':>9s}{'M jets/s':>10s}" + (f"{'old s':>9s}{'old/new':>9s}" if old else ""))
    for k, s in new["seconds"].items():
        line = f"  {k:34s}{s:9.3f}{n / s / 1e6:10.2f}"
        if old:
            o = old["seconds"].get(k)
            line += f"{o:9.3f}{o / s:9.2f}" if o else f"{'-':>9s}{'-':>9s}"
        lines.append(line)
    if old:
        for k, s in old["seconds"].items():
            if k not in new["seconds"]:
                lines.append(f"  {k:34s}{'-':>9s}{'-':>10s}{s:9.3f}{'-':>9s}   (old only)")
        same = new["payload_sha256"] == old["payload_sha256"]
        lines.append(f"  payload bytes identical to old: {same}; decoded values identical to old: "
                     f"{new['decoded_sha256'] == old['decoded_sha256']}")
    return "\n".join(lines)


def show_read(r: dict) -> str:
    n = r["jets"]
    ref = r["uproot ZLIB-1"]
    lines = [f"read of the four jet columns: {n} jets, {r['cores']} core(s), load average before "
             f"{r['load_before']}, after {r['load_after']}; .aez {r['aez_bytes'] / n:.3f} B/jet",
             f"  {'what':40s}{'seconds':>9s}{'M jets/s':>10s}{'x uproot ZLIB-1':>17s}"]
    for k in ("uproot ZLIB-1", "jetzip.arrays, bounded static tables"):
        lines.append(f"  {k:40s}{r[k]:9.3f}{n / r[k] / 1e6:10.2f}{ref / r[k]:17.2f}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jets", type=int, default=2_000_000)
    ap.add_argument("--bound", default="1e-3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk-jets", type=int, default=1 << 20)
    ap.add_argument("--against", help="a checkout of another commit: its kernels timed too")
    ap.add_argument("--no-read", action="store_true", help="kernels only")
    ap.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                    help="the kernels' clock: wall time, or this process's CPU time (less noisy on a busy machine)")
    ap.add_argument("--kernels-only-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global clock
    clock = CLOCK[args.clock]
    if args.kernels_only_json:
        print(json.dumps(time_kernels(args.jets, args.bound, args.repeats, args.chunk_jets)))
        return 0
    import jetzip

    print(f"jetzip from {Path(jetzip.__file__).parent}; {cores()} core(s); load average {load()}", flush=True)
    new = time_kernels(args.jets, args.bound, args.repeats, args.chunk_jets)
    old = None
    if args.against:
        env = dict(os.environ, PYTHONPATH=str(Path(args.against).resolve()))
        me = [sys.executable, os.path.abspath(__file__), "--kernels-only-json", "--jets", str(args.jets), "--bound",
              args.bound, "--repeats", str(args.repeats), "--chunk-jets", str(args.chunk_jets), "--clock", args.clock]
        out = subprocess.run(me, env=env, check=True, capture_output=True, text=True).stdout
        old = json.loads(out.strip().splitlines()[-1])
    print(show_kernels(new, old), flush=True)
    if not args.no_read:
        print(show_read(time_read(args.jets, args.bound, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
