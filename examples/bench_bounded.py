"""Throughput of the bounded codec, file to file and codec alone, threads=1 against all cores.

Writes a NanoAOD-like ROOT file of synthetic jets (``jetzip.synthetic.write_nanoaod``), then
times, in one run on one machine (so the figures compare with each other, not across machines):

- the codec alone (``BoundedCodec.encode``/``decode`` on one chunk in memory, one core);
- ``jetzip.compress`` and ``jetzip.decompress`` file to file with ``threads=1`` and with
  ``threads=<cores>`` (chunks coded in worker processes side by side), checking that both
  thread counts write identical ``.aez`` bytes.

Usage::

    python examples/bench_bounded.py [--jets 4000000] [--bound 1e-3] [--repeats 2] [--out FILE.json]

Prints one line per figure; ``--out`` also writes them as JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import jetzip
from jetzip import synthetic
from jetzip.codecs.bounded import BoundedCodec, parse_error_bound


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jets", type=int, default=4_000_000)
    ap.add_argument("--bound", default="1e-3")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    res: dict = {"jets_requested": args.jets, "bound": args.bound, "cores": cores,
                 "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "nano.root"
        n = synthetic.write_nanoaod(src, args.jets, seed=3)
        res["jets"] = n

        cols = synthetic.jets(1_000_000, seed=5)
        n1 = len(cols["pt"])
        cnt = synthetic.counts(400_000, seed=5).astype(np.int64)
        cnt = cnt[: int(np.searchsorted(np.cumsum(cnt), n1)) + 1]
        cnt[-1] -= int(cnt.sum()) - n1
        codec = BoundedCodec(parse_error_bound(args.bound, "PtEtaPhiM"), "PtEtaPhiM")
        payload = codec.encode(cols, cnt)
        t_enc = best_of(args.repeats, lambda: codec.encode(cols, cnt))
        t_dec = best_of(args.repeats, lambda: codec.decode(payload, n1, cnt))
        res["codec_encode_jets_per_s"] = n1 / t_enc
        res["codec_decode_jets_per_s"] = n1 / t_dec
        print(f"codec alone, 1M jets, one core: encode {n1 / t_enc / 1e6:.2f} M jets/s, "
              f"decode {n1 / t_dec / 1e6:.2f} M jets/s", flush=True)

        digests = {}
        for threads in (1, cores):
            aez = work / f"t{threads}.aez"
            back = work / f"t{threads}.root"
            tc = best_of(args.repeats, lambda: jetzip.compress(src, aez, error_bound=args.bound, force=True,
                                                                threads=threads, embed_model=False))
            td = best_of(args.repeats, lambda: jetzip.decompress(aez, back, force=True, threads=threads))
            digests[threads] = digest(aez)
            res[f"compress_threads{threads}_jets_per_s"] = n / tc
            res[f"decompress_threads{threads}_jets_per_s"] = n / td
            print(f"file to file, {n} jets, threads={threads}: compress {n / tc / 1e6:.2f} M jets/s "
                  f"({tc:.2f} s), decompress {n / td / 1e6:.2f} M jets/s ({td:.2f} s)", flush=True)
        res["identical_across_threads"] = len(set(digests.values())) == 1
        print(f".aez identical with threads=1 and threads={cores}: {res['identical_across_threads']}")
    res["load_average_end"] = os.getloadavg()[0]
    print(f"load average: {res['load_average_start']:.2f} at start, {res['load_average_end']:.2f} at end")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0 if res["identical_across_threads"] else 1


if __name__ == "__main__":
    sys.exit(main())
