"""A Dask part at the end of a file against one at its start (issue 24): seconds of each.

A dataset splits a large input into entry ranges, one task each
(``jetzip.dask.compress(..., entries_per_task=N)``). A task's cost should not depend on where
its range lies in the file: a reader that starts at the basket (cluster, row group) holding
the range's first entry reads as much for the last 1 % as for the first 1 %; one that reads
from the start of the file and drops the entries before the range pays for all of them.

Measured on one file (by default a synthetic NanoAOD-like ROOT file of 2M jets), for the
first and the last 1 % of its entries, best of `--repeats`:

- ``reader``: the table reader alone, ``open_table(path).chunks(n, entry_start=a,
  entry_stop=b)`` consumed to the end (:class:`jetzip.tables.JetSource`);
- ``task``: :func:`jetzip.dataset.compress_part`, the very function a Dask worker runs for a
  part (read, encode with the bounded codec, write the ``.aez`` part and its record), in this
  process on one thread.

The target: the last 1 % costs at most 2x the first 1 %. The machine's load average is printed;
on a shared machine compare the two columns of one run, not runs.

    .venv/bin/python examples/bench_entry_start_dask.py --json docs/results/entry_start_dask.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from jetzip import dataset
from jetzip.defaults import DEFAULT_BOUNDED_CHUNK_JETS
from jetzip.tables import open_table


def read_range(path: str, a: int, b: int) -> int:
    """Jets in entries [a, b), through the reader started at `a`."""
    src = open_table(path)
    try:
        return sum(c.n_jets for c in src.chunks(DEFAULT_BOUNDED_CHUNK_JETS, entry_start=a, entry_stop=b))
    finally:
        src.close()


def task(path: str, a: int, b: int, outdir: Path, error_bound: str) -> int:
    """The Dask task of a part covering entries [a, b); returns its jets."""
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    options = {"error_bound": error_bound, "threads": 1}
    spec = {"file": "part.aez", "input": 0, "source": path, "entry_range": (a, b), "key": "bench"}
    record = dataset.compress_part(spec, str(outdir), options, resume=False)
    if "error" in record:
        raise SystemExit(record["error"])
    return int(record["n_jets"])


def best(fn, repeats: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="a jet table to split (default: a synthetic NanoAOD-like ROOT file)")
    ap.add_argument("--jets", type=int, default=2_000_000, help="jets of the synthetic file")
    ap.add_argument("--events-per-basket", type=int, default=200_000, help="of the synthetic file")
    ap.add_argument("--fraction", type=float, default=0.01, help="of the entries per part")
    ap.add_argument("--error-bound", default="1e-3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", help="default: a temporary folder (removed)")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="jetzip-entry-start-"))
    work.mkdir(parents=True, exist_ok=True)
    path = a.input
    if path is None:
        from jetzip.synthetic import write_nanoaod

        path = str(work / f"nano_{a.jets}_{a.events_per_basket}.root")
        if not os.path.exists(path):
            write_nanoaod(path, a.jets, seed=7, events_per_basket=a.events_per_basket)
    n = dataset.count_entries(path, {})
    k = max(1, int(n * a.fraction))
    ranges = {"first": (0, k), "last": (n - k, n)}
    load_before = os.getloadavg()
    rows: dict[str, dict] = {}
    for where, (lo, hi) in ranges.items():
        read_s, jets = best(lambda lo=lo, hi=hi: read_range(path, lo, hi), a.repeats)
        task_s, jets_task = best(lambda lo=lo, hi=hi: task(path, lo, hi, work / "out", a.error_bound), a.repeats)
        assert jets == jets_task, (jets, jets_task)
        rows[where] = {"entries": [lo, hi], "jets": jets, "reader_s": read_s, "task_s": task_s}
    load_after = os.getloadavg()
    ratio = {k: rows["last"][k] / rows["first"][k] for k in ("reader_s", "task_s")}
    print(f"{path}: {n} entries; parts of {k} entries ({a.fraction:.0%}); bounded codec {a.error_bound}; "
          f"best of {a.repeats}; {os.cpu_count()} CPUs; load average before "
          f"{[round(x, 2) for x in load_before]}, after {[round(x, 2) for x in load_after]}")
    print(f"{'part':8s}{'entries':>22s}{'jets':>10s}{'reader (s)':>12s}{'task (s)':>10s}")
    for where, r in rows.items():
        print(f"{where:8s}{str(r['entries']):>22s}{r['jets']:10d}{r['reader_s']:12.3f}{r['task_s']:10.3f}")
    print(f"{'last/first':40s}{ratio['reader_s']:12.2f}{ratio['task_s']:10.2f}   (target: at most 2)")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"input": path, "n_entries": n, "rows": rows, "ratio": ratio,
                                            "load_before": load_before, "load_after": load_after,
                                            "cpu_count": os.cpu_count()}, indent=1))
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
