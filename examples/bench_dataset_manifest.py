"""How the time to handle a dataset's manifest grows with its number of inputs (issue 23).

A dataset of N inputs, one part each, is made without compressing anything: N empty input
files (their names, sizes and times are what planning reads), N small part files and a
manifest written as ``jetzip.dask.compress`` writes it. Then, timed for each N:

- ``plan``: :func:`jetzip.dataset.plan_parts` (names, part files, keys);
- ``read``: :func:`jetzip.dataset.read_manifest` (its checksum and every field checked);
- ``inspect``: :func:`jetzip.dask.inspect` with ``verify=False`` (every part's size and SHA-256,
  the per-input summary), in this process;
- ``restore plan``: the per-input grouping of parts that ``decompress`` makes.

Linear handling shows as seconds per input that stay flat as N grows; the quadratic
grouping this replaced took 45-52 s at N = 30,000. Run it with another checkout's Python to
compare (it uses only functions both have). The machine's load average is printed: on a
shared machine the figures are only comparable within one run.

    .venv/bin/python examples/bench_dataset_manifest.py --sizes 3000 10000 30000 \
        --json docs/results/dataset_manifest.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import jetzip.dask as jd
from jetzip import dataset


def make_dataset(root: Path, n: int) -> tuple[list[str], Path]:
    """N empty inputs in root/in, and root/ds: N parts of 16 bytes and their manifest."""
    src, ds = root / "in", root / "ds"
    src.mkdir(parents=True)
    ds.mkdir()
    paths = []
    inputs, parts = [], []
    for i in range(n):
        p = src / f"run{i:06d}.root"
        p.touch()
        paths.append(str(p))
        name = f"run{i:06d}"
        data = i.to_bytes(16, "little")
        (ds / f"{name}.aez").write_bytes(data)
        inputs.append({"index": i, "path": str(p), "name": name, "n_entries": 10, "parts": [f"{name}.aez"],
                       "format": "root"})
        parts.append({"file": f"{name}.aez", "input": i, "source": str(p), "entry_range": [0, 10], "key": "0" * 64,
                      "codec": "bounded", "n_jets": 40, "n_events": 10, "bytes": 16,
                      "sha256": hashlib.sha256(data).hexdigest(), "dropped_invalid": 0, "schema": "s"})
    totals = {"n_inputs": n, "n_parts": n, "n_jets": 40 * n, "n_events": 10 * n, "bytes": 16 * n}
    body = {"kind": dataset.KIND, "manifest_version": dataset.MANIFEST_VERSION, "jetzip_version": "bench",
            "codec": "bounded", "options": {"error_bound": 1e-3}, "inputs": inputs, "parts": parts, "totals": totals}
    body = json.loads(dataset.canonical(body))
    manifest = {**body, "sha256": hashlib.sha256(dataset.canonical(body)).hexdigest()}
    (ds / dataset.MANIFEST).write_text(json.dumps(manifest))
    return paths, ds


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(n: int, workdir: Path) -> dict:
    root = workdir / f"n{n}"
    shutil.rmtree(root, ignore_errors=True)
    paths, ds = make_dataset(root, n)
    out: dict = {"n_inputs": n}
    out["plan"] = timed(lambda: dataset.plan_parts(paths, [None] * n, None, {"error_bound": 1e-3}))
    m: dict = {}
    out["read"] = timed(lambda: m.update(dataset.read_manifest(ds)))
    out["inspect"] = timed(lambda: jd.inspect(ds, verify=False))

    def restore_plan() -> None:  # what decompress builds before its tasks
        if hasattr(dataset, "parts_by_input"):
            dataset.parts_by_input(m)
        else:  # an older checkout: its own grouping
            [[p for p in m["parts"] if p["input"] == inp["index"]] for inp in m["inputs"]]

    out["restore plan"] = timed(restore_plan)
    shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[3000, 10000, 30000])
    ap.add_argument("--workdir", help="where the synthetic datasets go (default: a temporary folder)")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="jetzip-manifest-"))
    load_before = os.getloadavg()
    rows = [measure(n, work) for n in a.sizes]
    load_after = os.getloadavg()
    steps = ["plan", "read", "inspect", "restore plan"]
    print(f"jetzip {dataset.__version__} from {Path(dataset.__file__).parent}; {os.cpu_count()} CPUs; "
          f"load average before {[round(x, 2) for x in load_before]}, after {[round(x, 2) for x in load_after]}")
    print(f"{'inputs':>8s}" + "".join(f"{s + ' (s)':>18s}" for s in steps) + f"{'all, us/input':>16s}")
    for r in rows:
        total = sum(r[s] for s in steps)
        print(f"{r['n_inputs']:8d}" + "".join(f"{r[s]:18.3f}" for s in steps) + f"{1e6 * total / r['n_inputs']:16.1f}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"rows": rows, "load_before": load_before, "load_after": load_after,
                                            "cpu_count": os.cpu_count()}, indent=1))
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
