"""Throughput of the bounded codec, file to file and codec alone, threads=1 against all cores.

Writes a NanoAOD-like ROOT file of synthetic jets (``jetzip.synthetic.write_nanoaod``), then
times, in one run on one machine (so the figures compare with each other, not across machines):

- the codec alone (``BoundedCodec.encode``/``decode`` on one chunk in memory, one core);
- ``jetzip.compress`` and ``jetzip.decompress`` file to file with ``threads=1`` and with
  ``threads=<cores>`` (chunks coded in worker processes side by side), checking that both
  thread counts write identical ``.aez`` bytes;

each with the chunks' own tables only (``context_model="none"``) and with the shipped learned
entropy model (``"auto"``). The jets are pt-sorted within events, as NanoAOD stores them (the
learned pt stream needs that).

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


def best_of(repeats: int, fn, *args, **kwargs) -> float:
    """The shortest of `repeats` runs of ``fn(*args, **kwargs)``, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
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
        n = synthetic.write_nanoaod(src, args.jets, seed=3, pt_sorted=True)
        res["jets"] = n

        import awkward as ak
        import uproot

        arr = uproot.open(src)["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"], entry_stop=220_000)
        cnt = ak.num(arr["Jet_pt"]).to_numpy().astype(np.int64)
        cols = {r: ak.flatten(arr[k]).to_numpy() for r, k in
                (("pt", "Jet_pt"), ("eta", "Jet_eta"), ("phi", "Jet_phi"), ("m", "Jet_mass"))}
        n1 = len(cols["pt"])
        from jetzip.entropy.context import default_context_model

        ok = True
        for label, cm in (("own tables", None), ("learned model", default_context_model())):
            codec = BoundedCodec(parse_error_bound(args.bound, "PtEtaPhiM"), "PtEtaPhiM", context_model=cm)
            payload = codec.encode(cols, cnt)
            t_enc = best_of(args.repeats, codec.encode, cols, cnt)
            t_dec = best_of(args.repeats, codec.decode, payload, n1, cnt)
            key = "learned" if cm is not None else "static"
            res[f"codec_{key}_encode_jets_per_s"] = n1 / t_enc
            res[f"codec_{key}_decode_jets_per_s"] = n1 / t_dec
            res[f"codec_{key}_bytes_per_jet"] = len(payload) / n1
            print(f"codec alone, {label}, {n1} jets, one core: encode {n1 / t_enc / 1e6:.2f} M jets/s, "
                  f"decode {n1 / t_dec / 1e6:.2f} M jets/s, {len(payload) / n1:.3f} B/jet", flush=True)

            digests = {}
            for threads in (1, cores):
                aez = work / f"t{threads}.aez"
                back = work / f"t{threads}.root"
                tc = best_of(args.repeats, jetzip.compress, src, aez, error_bound=args.bound, force=True,
                             threads=threads, context_model=cm or "none")
                td = best_of(args.repeats, jetzip.decompress, aez, back, force=True, threads=threads)
                digests[threads] = digest(aez)
                res[f"{key}_compress_threads{threads}_jets_per_s"] = n / tc
                res[f"{key}_decompress_threads{threads}_jets_per_s"] = n / td
                print(f"file to file, {label}, {n} jets, threads={threads}: compress {n / tc / 1e6:.2f} M jets/s "
                      f"({tc:.2f} s), decompress {n / td / 1e6:.2f} M jets/s ({td:.2f} s)", flush=True)
            same = len(set(digests.values())) == 1
            res[f"{key}_identical_across_threads"] = same
            ok &= same
            print(f"{label}: .aez identical with threads=1 and threads={cores}: {same}")
    res["load_average_end"] = os.getloadavg()[0]
    print(f"load average: {res['load_average_start']:.2f} at start, {res['load_average_end']:.2f} at end")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
