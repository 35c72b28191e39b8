#!/usr/bin/env python3
"""Reading speed of the bounded codec against uproot reading the same jets from ROOT files.

Issue 22 asks that reading a bounded ``.aez`` be at least as fast as uproot reading the four jet
columns from a ZLIB-1 ROOT file (static tables), at least 0.25x with the learned entropy model,
and compressing at least 0.3x. This script measures the codec on chunks in memory, so that the
figures do not depend on the container: the file-to-file figures come from ``bench_bounded.py``.

In one run, on the same synthetic NanoAOD-like jets (pt-sorted events, ``jetzip.synthetic``):

- uproot reading ``Jet_pt, Jet_eta, Jet_phi, Jet_mass`` (into flat numpy arrays, counts beside)
  from a ZLIB-1 and from an LZ4 ROOT file that uproot writes here;
- the codec decoding every chunk to arrays with each chunk's own tables ("static") and with the
  shipped learned entropy model ("learned");
- the codec encoding every chunk, both ways;

on one core (a child process pinned with ``taskset -c 0``; the times are the child's CPU time, so
that other processes on a shared machine change them less) and on all cores (uproot with thread
pools for decompression and interpretation; the codec decoding chunks in a thread pool: its
compiled loops release the GIL). Ratios are to the ZLIB-1 uproot read of the same run. It also
checks that every decoded value is within its bound, and reports the peak memory of decoding 1
and 4 chunks in a row (flat in the number of jets: chunks are decoded one at a time).

Usage::

    python examples/bench_read.py [--jets 2000000] [--chunk-jets 1048576] [--bound 1e-3] [--repeats 3]
                                  [--out docs/results/bench_read.json]

Prints one line per figure and the machine's load average at start and end.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COLUMNS = ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass")
ROLES = ("pt", "eta", "phi", "m")


def make_jets(n_jets: int, seed: int = 3) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """NanoAOD-like float32 jets, pt-sorted within events, and the jet count of each event."""
    from jetzip import synthetic

    counts = synthetic.counts(int(n_jets / 4.5), seed).astype(np.int64)
    jets = synthetic.jets(int(counts.sum()), seed + 1)
    order = np.lexsort((-jets["pt"], np.repeat(np.arange(len(counts)), counts)))
    return {k: np.asarray(v[order], np.float32) for k, v in jets.items()}, counts


def write_root(path: Path, cols: dict[str, np.ndarray], counts: np.ndarray, compression) -> None:
    import awkward as ak
    import uproot

    with uproot.recreate(path, compression=compression) as f:
        f.mktree("Events", {c: "var * float32" for c in COLUMNS}, counter_name=lambda _: "nJet")
        step = 200_000
        ends = np.concatenate([[0], np.cumsum(counts)])
        for a in range(0, len(counts), step):
            b = min(a + step, len(counts))
            c = counts[a:b]
            f["Events"].extend({col: ak.unflatten(cols[r][ends[a]:ends[b]], c) for col, r in zip(COLUMNS, ROLES)})


def chunks_of(cols: dict[str, np.ndarray], counts: np.ndarray, chunk_jets: int):
    """Whole events, about `chunk_jets` jets per chunk: [(columns, counts)]."""
    ends = np.concatenate([[0], np.cumsum(counts)])
    out, e = [], 0
    while e < len(counts):
        f = int(np.searchsorted(ends, ends[e] + chunk_jets, side="right")) - 1
        f = max(f, e + 1)
        out.append(({k: v[ends[e]:ends[f]] for k, v in cols.items()}, counts[e:f]))
        e = f
    return out


def run_all(pool, fn, items: list):
    """A function that calls fn(*item) for every item, in `pool` if given."""
    def run() -> None:
        if pool is None:
            for item in items:
                fn(*item)
        else:
            list(pool.map(lambda item: fn(*item), items))
    return run


def best(repeats: int, fn, clock=time.perf_counter) -> float:
    """The least `clock` time of `repeats` calls of fn, in seconds (``time.process_time``: CPU
    time of this process, all threads)."""
    least = float("inf")
    for _ in range(repeats):
        t = clock()
        fn()
        least = min(least, clock() - t)
    return least


def uproot_read(path: Path, threads: int = 0) -> int:
    """Read the four jet columns into flat numpy arrays; with `threads`, uproot decompresses and
    interprets baskets in a pool of that many threads (GUIDE section 12's setting)."""
    import awkward as ak
    import uproot

    pool = concurrent.futures.ThreadPoolExecutor(threads) if threads else None
    with uproot.open(path, decompression_executor=pool, interpretation_executor=pool) as f:
        a = f["Events"].arrays(list(COLUMNS))
        cols = [ak.flatten(a[c]).to_numpy() for c in COLUMNS]
    return len(cols[0])


def codecs(bound: str):
    from jetzip.codecs.bounded import BoundedCodec, parse_error_bound
    from jetzip.entropy.context import default_context_model

    bounds = parse_error_bound(bound, "PtEtaPhiM")
    return {"static": BoundedCodec(bounds, "PtEtaPhiM"),
            "learned": BoundedCodec(bounds, "PtEtaPhiM", context_model=default_context_model())}


def measure(work: Path, args: argparse.Namespace, all_cores: bool) -> dict:
    """Every figure of one mode (one pinned core, or all cores)."""
    cols = dict(np.load(work / "jets.npz"))
    counts = cols.pop("counts")
    chunks = chunks_of(cols, counts, args.chunk_jets)
    n = len(cols["pt"])
    cores = len(os.sched_getaffinity(0))
    pool = concurrent.futures.ThreadPoolExecutor(cores) if all_cores else None
    clock = time.perf_counter if all_cores else time.process_time  # one core: CPU time
    res: dict = {"cores": cores, "jets": n, "chunks": len(chunks)}
    for name in ("zlib1", "lz4"):
        path = work / f"{name}.root"
        t = best(args.repeats, lambda path=path: uproot_read(path, cores if all_cores else 0), clock)
        res[f"uproot_{name}_read_jets_per_s"] = n / t
    for label, codec in codecs(args.bound).items():
        payloads = [codec.encode(c, k) for c, k in chunks]  # also compiles / loads the compiled loops
        codec.decode(payloads[0], len(chunks[0][0]["pt"]), chunks[0][1])
        decode_all = run_all(pool, codec.decode, [(p, len(c["pt"]), k) for p, (c, k) in zip(payloads, chunks)])
        encode_all = run_all(pool, codec.encode, chunks)
        res[f"codec_{label}_decode_jets_per_s"] = n / best(args.repeats, decode_all, clock)
        res[f"codec_{label}_encode_jets_per_s"] = n / best(max(1, args.repeats - 1), encode_all, clock)
        res[f"codec_{label}_bytes_per_jet"] = sum(len(p) for p in payloads) / n
        worst = {}
        for p, (c, k) in zip(payloads, chunks):
            dec = codec.decode(p, len(c["pt"]), k)
            for r in ROLES:
                o = c[r].astype(np.float64)
                d = dec[r].astype(np.float32).astype(np.float64)
                rel = r in ("pt", "m")
                err = np.abs(d - o) / np.where(o != 0, np.abs(o), 1.0) if rel else np.abs(d - o)
                worst[r] = max(worst.get(r, 0.0), float(err.max(initial=0.0)))
        res[f"codec_{label}_within_bounds"] = all(worst[r] <= codec.bounds[r] for r in ROLES)
    base = res["uproot_zlib1_read_jets_per_s"]
    for key in list(res):
        if key.startswith("codec_") and key.endswith("_jets_per_s"):
            res[key.replace("_jets_per_s", "_vs_uproot_zlib1")] = res[key] / base
    return res


def peak_memory(work: Path, args: argparse.Namespace, n_chunks: int) -> float:
    """Peak RSS (MB) of a process that decodes `n_chunks` chunks one after another."""
    code = ("import sys, resource, numpy as np; sys.path.insert(0, %r); import bench_read as b; "
            "cols = dict(np.load(%r)); counts = cols.pop('counts'); "
            "chunks = b.chunks_of(cols, counts, %d); c = b.codecs(%r)['static']; "
            "p = c.encode(*chunks[0]); del cols; base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "[c.decode(p, len(chunks[0][0]['pt']), chunks[0][1]) for _ in range(%d)]; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
            % (str(Path(__file__).parent), str(work / "jets.npz"), args.chunk_jets, args.bound, n_chunks))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def report(mode: str, res: dict) -> None:
    print(f"-- {mode}: {res['jets']} jets in {res['chunks']} chunks, {res['cores']} core(s)")
    for name in ("zlib1", "lz4"):
        print(f"uproot read, {name.upper()} ROOT file: {res[f'uproot_{name}_read_jets_per_s'] / 1e6:.2f} M jets/s")
    for label in ("static", "learned"):
        print(f"jetzip codec, {label}: decode {res[f'codec_{label}_decode_jets_per_s'] / 1e6:.2f} M jets/s "
              f"({res[f'codec_{label}_decode_vs_uproot_zlib1']:.2f}x uproot ZLIB-1), encode "
              f"{res[f'codec_{label}_encode_jets_per_s'] / 1e6:.2f} M jets/s "
              f"({res[f'codec_{label}_encode_vs_uproot_zlib1']:.2f}x), "
              f"{res[f'codec_{label}_bytes_per_jet']:.3f} B/jet, every jet within its bound: "
              f"{res[f'codec_{label}_within_bounds']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jets", type=int, default=2_000_000)
    ap.add_argument("--chunk-jets", type=int, default=1 << 20)
    ap.add_argument("--bound", default="1e-3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--measure", choices=("one-core", "all-cores"), help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:  # a child: measure and print JSON
        print(json.dumps(measure(Path(args.work), args, args.measure == "all-cores")))
        return 0
    import uproot

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cols, counts = make_jets(args.jets)
        np.savez(work / "jets.npz", counts=counts, **cols)
        write_root(work / "zlib1.root", cols, counts, uproot.ZLIB(1))
        write_root(work / "lz4.root", cols, counts, uproot.LZ4(1))
        child = [sys.executable, __file__, "--work", str(work), "--jets", str(args.jets), "--chunk-jets",
                 str(args.chunk_jets), "--bound", args.bound, "--repeats", str(args.repeats)]
        results = {}
        for mode, prefix in (("one-core", ["taskset", "-c", "0"]), ("all-cores", [])):
            out = subprocess.run(prefix + child + ["--measure", mode], capture_output=True, text=True)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return 1
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            report(mode, results[mode])
        results["peak_rss_mb_decoding_1_chunk"] = peak_memory(work, args, 1)
        results["peak_rss_mb_decoding_4_chunks"] = peak_memory(work, args, 4)
        print(f"peak memory decoding 1 chunk: {results['peak_rss_mb_decoding_1_chunk']:.0f} MB, 4 chunks in a row: "
              f"{results['peak_rss_mb_decoding_4_chunks']:.0f} MB")
    results.update({"bound": args.bound, "chunk_jets": args.chunk_jets, "load_average_start": load_start[0],
                    "load_average_end": os.getloadavg()[0]})
    print(f"load average: {load_start[0]:.2f} at start, {results['load_average_end']:.2f} at end "
          f"(figures are worth quoting only on a quiet machine)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
