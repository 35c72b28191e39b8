"""Reading the four jet columns: uproot from ROOT files against ``jetzip.arrays`` from ``.aez``
files of the same jets (issue 22), on one core and on all cores, in one run.

The jets: ``--jets-file`` (a NanoAOD-layout ROOT file of ``examples/make_jets.py``: Pythia8 jets)
or, without it, ``--jets`` synthetic jets (``jetzip.synthetic``, pt-sorted within events as
NanoAOD stores them). They are written here, in NanoAOD layout (``nJet``, ``Jet_pt``,
``Jet_eta``, ``Jet_phi``, ``Jet_mass`` as float32, ``run``, ``event``), to two ROOT files with
uproot: ZLIB level 1 and LZ4 level 1 (baskets of ``--basket-events`` events). From the ZLIB
one, ``jetzip.compress`` writes three ``.aez`` files: the bounded codec at ``--bound`` with its
chunks' own tables (``context_model="none"``, the default), the bounded codec with the shipped
learned entropy model (``context_model="auto"``), and the default (latent) codec.

Timed, best of ``--repeats``, each in a fresh state of nothing but the Python objects:

- ``uproot.open(f)["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"])`` on each
  ROOT file (uproot's defaults);
- ``jetzip.arrays(aez, ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"])`` on each ``.aez`` (the
  same awkward arrays: float32, jagged by event), with ``workers`` left at its default: every
  core the process may run on;
- file to file, the bounded codec with static tables: ``jetzip.compress`` of the ZLIB-1 ROOT
  file (the whole file: jets coded, ``run`` and ``event`` carried) and ``jetzip.decompress`` of
  its ``.aez`` back to ROOT (written ZLIB-1, the input's compression), ``threads`` at its
  default (every core the process may run on).

Every ``.aez`` is checked with ``jetzip.evaluate`` first: every bounded jet within its bound.

"One core" runs the timing part of this script again under ``taskset -c 0`` (Linux); "all
cores" runs it as it is. A warm-up read comes before the clock (imports, compiled loops,
models). Printed: M jets/s and the ratio to uproot's ZLIB-1 read in the same
mode, and the load average before and after each mode (the figures mean little on a busy
machine). ``--out`` also writes everything as JSON.

Usage::

    python examples/bench_arrays.py [--jets 2000000 | --jets-file jets.root] [--bound 1e-3]
                                    [--repeats 3] [--out docs/results/arrays_DATE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COLUMNS = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
ROOT_FILES = {"uproot ZLIB-1": "zlib1.root", "uproot LZ4-1": "lz4.root"}
AEZ_FILES = {"jetzip bounded, static tables": "bounded_static.aez",
             "jetzip bounded, learned model (--context-model auto)": "bounded_learned.aez",
             "jetzip latent (default codec)": "latent.aez"}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def jets_of(args: argparse.Namespace, work: Path) -> dict[str, np.ndarray]:
    """counts and float32 columns of the jets to write."""
    import awkward as ak
    import uproot

    src = Path(args.jets_file) if args.jets_file else work / "synthetic.root"
    if not args.jets_file:
        from jetzip import synthetic

        synthetic.write_nanoaod(src, args.jets, seed=3, pt_sorted=True)
    with uproot.open(src) as f:
        arr = f["Events"].arrays(COLUMNS)
    out = {"counts": ak.to_numpy(ak.num(arr["Jet_pt"])).astype(np.uint32)}
    out.update({k: ak.to_numpy(ak.flatten(arr[k])).astype(np.float32) for k in COLUMNS})
    return out


def write_root(path: Path, jets: dict[str, np.ndarray], compression, basket_events: int) -> None:
    import awkward as ak
    import uproot

    counts = jets["counts"].astype(np.int64)
    ends = np.concatenate([[0], np.cumsum(counts)])
    with uproot.recreate(path, compression=compression) as f:
        tree = f.mktree("Events", {"run": np.uint32, "event": np.uint64, **{k: "var * float32" for k in COLUMNS}},
                        counter_name=lambda _: "nJet")
        for a in range(0, len(counts), basket_events):
            b = min(a + basket_events, len(counts))
            c = counts[a:b]
            tree.extend({"run": np.ones(b - a, np.uint32), "event": np.arange(a, b, dtype=np.uint64),
                         **{k: ak.unflatten(jets[k][ends[a]:ends[b]], c) for k in COLUMNS}})


def prepare(args: argparse.Namespace, work: Path) -> dict:
    import uproot

    import jetzip

    jets = jets_of(args, work)
    n = int(jets["counts"].sum())
    write_root(work / ROOT_FILES["uproot ZLIB-1"], jets, uproot.ZLIB(1), args.basket_events)
    write_root(work / ROOT_FILES["uproot LZ4-1"], jets, uproot.LZ4(1), args.basket_events)
    src = work / ROOT_FILES["uproot ZLIB-1"]
    made = {}
    options_of = {"bounded_static.aez": {"error_bound": args.bound, "context_model": "none"},
                  "bounded_learned.aez": {"error_bound": args.bound, "context_model": "auto"},
                  "latent.aez": {}}
    for label, name in AEZ_FILES.items():
        options = options_of[name]
        t0 = time.perf_counter()
        r = jetzip.compress(src, work / name, force=True, **options)
        made[label] = {"bytes": r["bytes"], "compress_seconds": time.perf_counter() - t0}
        print(f"  wrote {name}: {r['bytes'] / n:.2f} B/jet", flush=True)
        if "bounded" in name:
            ev = jetzip.evaluate(src, work / name)
            made[label]["all_within_bounds"] = bool(ev["all_within_bounds"])
            assert ev["all_within_bounds"], f"{name}: jets beyond their bounds"
    sizes = {label: (work / f).stat().st_size for label, f in ROOT_FILES.items()}
    return {"jets": n, "events": len(jets["counts"]), "root_bytes": sizes, "aez": made}


def best(repeats: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def time_reads(work: Path, repeats: int, bound: str) -> dict:
    """Seconds of each read in this process (its CPU affinity is the mode)."""
    import awkward as ak
    import uproot

    import jetzip
    from jetzip.defaults import available_cores

    result: dict = {"cores": available_cores(), "load_before": load(), "seconds": {}}
    n = None
    for label, name in ROOT_FILES.items():
        def read_root(path=work / name):
            with uproot.open(path) as f:
                return f["Events"].arrays(COLUMNS)
        read_root()  # file system cache, imports
        s, arr = best(repeats, read_root)
        n = int(ak.sum(ak.num(arr["Jet_pt"])))
        result["seconds"][label] = s
    for label, name in AEZ_FILES.items():
        def read_aez(path=work / name):
            return jetzip.arrays(path, COLUMNS)
        got = read_aez()  # warm-up: imports, compiled loops, models
        assert int(ak.sum(ak.num(got["Jet_pt"]))) == n and set(got.fields) == set(COLUMNS)
        result["seconds"][label] = best(repeats, read_aez)[0]
    src, static = work / ROOT_FILES["uproot ZLIB-1"], work / AEZ_FILES["jetzip bounded, static tables"]
    result["seconds"]["jetzip compress, file to file (static)"] = best(repeats, lambda: jetzip.compress(
        src, work / "timed.aez", error_bound=bound, context_model="none", force=True))[0]
    result["seconds"]["jetzip decompress, file to file (static)"] = best(repeats, lambda: jetzip.decompress(
        static, work / "timed.root", force=True))[0]
    result["jets"] = n
    result["load_after"] = load()
    return result


def report(info: dict, modes: dict) -> str:
    n = info["jets"]
    lines = [f"{n} jets in {info['events']} events, NanoAOD layout; bounded at {info['bound']}; "
             f"{info['cpu_count']} CPUs; best of {info['repeats']}"]
    for label, size in info["root_bytes"].items():
        lines.append(f"  {label:54s}{size:>12,d} B  {size / n:6.2f} B/jet (the whole file)")
    for label, made in info["aez"].items():
        within = {True: "every jet within its bound", False: "JETS BEYOND THEIR BOUNDS"}.get(
            made.get("all_within_bounds"), "")
        lines.append(f"  {label:54s}{made['bytes']:>12,d} B  {made['bytes'] / n:6.2f} B/jet  {within}")
    for mode, r in modes.items():
        lines.append(f"\n{mode} ({r['cores']} core(s) for jetzip's workers; load average before "
                     f"{r['load_before']}, after {r['load_after']})")
        lines.append(f"  {'what':54s}{'M jets/s':>10s}{'x uproot ZLIB-1':>17s}{'seconds':>9s}")
        ref = r["seconds"]["uproot ZLIB-1"]
        for label, s in r["seconds"].items():
            lines.append(f"  {label:54s}{n / s / 1e6:10.2f}{ref / s:17.2f}{s:9.3f}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jets", type=int, default=2_000_000, help="synthetic jets (without --jets-file)")
    ap.add_argument("--jets-file", help="a NanoAOD-layout ROOT file of examples/make_jets.py")
    ap.add_argument("--bound", default="1e-3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--basket-events", type=int, default=100_000)
    ap.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    ap.add_argument("--out", help="also write the results as JSON here")
    ap.add_argument("--time-only", help=argparse.SUPPRESS)  # the re-executed timing part: its folder
    args = ap.parse_args()
    if args.time_only:
        print(json.dumps(time_reads(Path(args.time_only), args.repeats, args.bound)))
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_arrays_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"writing the files in {work} (load average {load()})", flush=True)
        info = prepare(args, work)
        info.update(bound=args.bound, repeats=args.repeats, cpu_count=os.cpu_count(),
                    jets_file=args.jets_file, date=time.strftime("%Y-%m-%d"))
        modes = {}
        me = [sys.executable, os.path.abspath(__file__), "--time-only", str(work), "--repeats", str(args.repeats),
              "--bound", args.bound]
        if shutil.which("taskset"):
            out = subprocess.run(["taskset", "-c", "0", *me], check=True, capture_output=True, text=True).stdout
            modes["one core (taskset -c 0)"] = json.loads(out.strip().splitlines()[-1])
        else:
            print("taskset not found: no one-core figures", file=sys.stderr)
        out = subprocess.run(me, check=True, capture_output=True, text=True).stdout
        modes["all cores"] = json.loads(out.strip().splitlines()[-1])
        text = report(info, modes)
        print(text)
        if args.out:
            Path(args.out).write_text(json.dumps({"info": info, "modes": modes}, indent=1))
            Path(args.out).with_suffix(".txt").write_text(
                f"$ python examples/bench_arrays.py {' '.join(sys.argv[1:])}\n{text}\n")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
