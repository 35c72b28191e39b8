#!/usr/bin/env python3
"""Reading the last 1 % of a table's entries against its first 1 % (issue 24: at most 2x).

Writes a table of about 2M jets (Poisson(4) jets per event) in each format whose reader starts
at an entry: ROOT (a NanoAOD-like ``Events`` TTree that uproot writes: ``nJet`` and ``Jet_*``
jagged branches, baskets of 65,536 events), HDF5 (jetzip's own jagged layout: ``nJet``
counter beside flat ``Jet_*`` columns), Parquet (``Jet_*`` list columns, row groups of 65,536
events) and CSV (one row per jet, an ``event`` column). Then opens each and times
``chunks(1 << 18, a, b)`` over the first and the last 1 % of its entries (best of `--repeat`),
reading every jet column.

Usage:
    python examples/bench_entry_start.py [--jets 2000000] [--repeat 3] [--keep DIR]

Prints one line per format: seconds for the first 1 %, for the last 1 %, their ratio, and
seconds to open the file. A CSV file cannot seek: its lines before the start are scanned
without being decoded, so its ratio is expected to be larger.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make(n_jets: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(4, n_jets // 4 + 1).astype(np.uint32)
    total = np.cumsum(counts)
    counts = counts[: int(np.searchsorted(total, n_jets)) + 1]
    n = int(counts.sum())
    jets = {"pt": rng.exponential(40, n).astype(np.float32) + 15, "eta": rng.normal(0, 1.6, n).astype(np.float32),
            "phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32), "mass": rng.uniform(2, 30, n).astype(np.float32)}
    return counts, jets


def write_hdf5(path: Path, counts: np.ndarray, jets: dict[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        g = f.create_group("Events")
        g.create_dataset("nJet", data=counts, chunks=(1 << 16,))
        for k, v in jets.items():
            g.create_dataset(f"Jet_{k}", data=v, chunks=(1 << 16,))


def write_root(path: Path, counts: np.ndarray, jets: dict[str, np.ndarray]) -> None:
    import awkward as ak
    import uproot

    with uproot.recreate(path) as f:
        f.mktree("Events", {f"Jet_{k}": "var * float32" for k in jets}, counter_name=lambda _: "nJet")
        ends = np.concatenate([[0], np.cumsum(counts.astype(np.int64))])
        for a in range(0, len(counts), 1 << 16):  # one basket per branch and 65,536 events
            b = min(a + (1 << 16), len(counts))
            f["Events"].extend({f"Jet_{k}": ak.unflatten(v[ends[a]:ends[b]], counts[a:b]) for k, v in jets.items()})


def write_parquet(path: Path, counts: np.ndarray, jets: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets = pa.array(np.concatenate([[0], np.cumsum(counts.astype(np.int64))]).astype(np.int32))
    table = pa.table({"nJet": counts, **{f"Jet_{k}": pa.ListArray.from_arrays(offsets, pa.array(v))
                                         for k, v in jets.items()}})
    pq.write_table(table, path, row_group_size=1 << 16)


def write_csv(path: Path, counts: np.ndarray, jets: dict[str, np.ndarray]) -> None:
    event = np.repeat(np.arange(len(counts)), counts.astype(np.int64))
    with open(path, "w") as f:
        f.write("event,pt,eta,phi,mass\n")
        np.savetxt(f, np.column_stack([event, *jets.values()]), fmt=["%d"] + ["%.7g"] * 4, delimiter=",")


def read_window(path: Path, a: int, b: int) -> int:
    from jetzip.tables import open_table

    src = open_table(path, units="GeV")
    try:
        return sum(c.n_jets for c in src.chunks(1 << 18, a, b))
    finally:
        src.close()


def best(repeat: int, fn, *args) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jets", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="write the tables into this folder (and keep them)")
    args = ap.parse_args()
    counts, jets = make(args.jets)
    n_events = len(counts)
    one = max(1, n_events // 100)
    print(f"{int(counts.sum())} jets in {n_events} events; 1 % = {one} events; best of {args.repeat}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'format':8s} {'first 1 %':>10s} {'last 1 %':>10s} {'ratio':>6s} {'open':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        worst = 0.0
        for fmt, ext, writer in (("root", "root", write_root), ("hdf5", "h5", write_hdf5),
                                 ("parquet", "parquet", write_parquet), ("csv", "csv", write_csv)):
            path = folder / f"entries.{ext}"
            writer(path, counts, jets)
            # CSV holds no event without jets: its entries are the others
            entries = counts[counts > 0] if fmt == "csv" else counts
            n = len(entries)
            first = best(args.repeat, read_window, path, 0, one)
            last = best(args.repeat, read_window, path, n - one, n)
            opened = best(args.repeat, read_window, path, 0, 0)
            got = read_window(path, n - one, n)
            want = int(entries[n - one:].sum())
            if got != want:
                print(f"{fmt}: read {got} jets in the last 1 %, expected {want}", file=sys.stderr)
                return 1
            ratio = last / first
            if fmt != "csv":
                worst = max(worst, ratio)
            print(f"{fmt:8s} {first:9.3f}s {last:9.3f}s {ratio:6.2f} {opened:6.3f}s")
    print(f"worst ratio of the formats that seek (ROOT, HDF5, Parquet): {worst:.2f} (target <= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
