#!/usr/bin/env python3
"""Run the CLI on every crafted file of ../shared/cases/hostile/: exit code, the message, peak
memory (max RSS of the child) and wall time; fails when any run exceeds 1 GB or 10 s, prints a
traceback or exits with a code other than 0 or 1.

Usage:
    python examples/hostile_check.py [--jetzip .venv/bin/jetzip]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOSTILE = REPO.parent / "shared" / "cases" / "hostile"
LIMIT_BYTES, LIMIT_SECONDS = 1 << 30, 10.0

# (file, CLI arguments after the file; OUT is replaced by an output path)
CASES = [
    ("counts_bomb_2p26.aez", ["decompress", "-o", "OUT.root"]),
    ("keep_bomb_1000.aez", ["decompress", "-o", "OUT.root"]),
    ("empty_chunks_10000.aez", ["decompress", "-o", "OUT.root"]),
    ("decw_tampered_crc_fixed.aez", ["inspect"]),
    ("latents_nan_inf.aez", ["decompress", "-o", "OUT.root"]),
    ("cols_duplicate_names.aez", ["decompress", "-o", "OUT.root"]),
    ("skewed_1e7.root", ["compress", "-o", "OUT.aez", "--error-bound", "1e-3"]),
    ("h5_counter_1e9.h5", ["compress", "-o", "OUT.aez", "--error-bound", "1e-3"]),
    ("csv_cols_70000.csv", ["compress", "-o", "OUT.aez", "--error-bound", "1e-3"]),
    ("string_branch_flat.root", ["compress", "-o", "OUT.aez", "--error-bound", "1e-3"]),
    # format 2.0 files with their CRCs recomputed, and small tables with absurd shapes (issue 23)
    ("b02_steps_x50.aez", ["decompress", "-o", "OUT.root"]),
    ("b03_splice_head1e-3_chunks0.1.aez", ["decompress", "-o", "OUT.root"]),
    ("b05_verbatim_nan_inf_neg.aez", ["decompress", "-o", "OUT.root"]),
    ("b08_jetbomb_25x4M.aez", ["decompress", "-o", "OUT.root"]),
    ("i01_pandas_items_1e8.h5", ["compress", "-o", "OUT.aez", "--error-bound", "1e-3"]),
    ("p01_skewed_1e8_jets.parquet", ["compress", "-o", "OUT.aez", "--error-bound", "1e-3"]),
    ("i06c_awkward_length_vs_offsets.h5", ["compress", "-o", "OUT.aez", "--error-bound", "1e-3"]),
    ("train_one_event.root", ["train", "--entropy-model", "-o", "OUT.jzc"]),
]


PROBE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.returncode); "
         "sys.stdout.write(r.stderr)")


def run(exe: str, name: str, args: list[str], work: Path) -> dict:
    """One case in its own probe process, so the children's ru_maxrss is this case's peak."""
    command = [exe, args[0], str(HOSTILE / name), *(a.replace("OUT", str(work / "out")) for a in args[1:])]
    if args[0] != "inspect":
        command.append("--force")
    t0 = time.perf_counter()
    probe = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    lines = probe.stdout.splitlines()
    peak_kb, code = int(lines[0]), int(lines[1])
    message = [ln for ln in lines[2:] if ln.strip()]
    return {"file": name, "command": args[0], "exit": code, "peak_mb": peak_kb / 1024, "seconds": seconds,
            "message": message[-1][:160] if message else "",
            "traceback": any("Traceback" in ln for ln in lines)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jetzip", default=str(REPO / ".venv" / "bin" / "jetzip"))
    args = ap.parse_args()
    if not HOSTILE.exists():
        print(f"{HOSTILE} not found", file=sys.stderr)
        return 1
    bad = 0
    print(f"{'file':30s} {'command':10s} exit  peak MB  seconds  message")
    with tempfile.TemporaryDirectory() as tmp:
        for name, cli in CASES:
            r = run(args.jetzip, name, cli, Path(tmp))
            ok = (r["exit"] in (0, 1) and not r["traceback"] and r["peak_mb"] * (1 << 20) < LIMIT_BYTES
                  and r["seconds"] < LIMIT_SECONDS)
            bad += not ok
            print(f"{r['file']:30s} {r['command']:10s} {r['exit']:4d} {r['peak_mb']:8.0f} {r['seconds']:8.2f}  "
                  f"{'' if ok else 'FAIL '}{r['message']}")
    print(f"{len(CASES) - bad} of {len(CASES)} within 1 GB and 10 s, one-line errors; machine: {os.cpu_count()} CPUs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
