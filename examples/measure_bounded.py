#!/usr/bin/env python3
"""Measure the error-bounded codec on real .aez files: size, max error against the bound,
speed, and the classical baselines on the same jets (issue 11's figures).

For every input and bound it runs ``jetzip.compress(..., error_bound=B)`` into a real file
with the shipped learned entropy model (and once more with ``context_model="none"``, the
chunks' own tables only, for its size),
``jetzip.decompress`` back to ROOT (both timed file to file), ``jetzip.evaluate`` (every jet
checked against its bound) and, once per input and bound, ``evaluate --baselines``.

Inputs (each skipped with a note when missing):
- ``data/heldout_seed11.root``: Pythia jets no model was trained on (``python
  examples/make_jets.py --jets 200000 --seed 11 -o data/heldout_seed11.root``), (pt, eta, phi,
  mass) NanoAOD-like;
- the same jets as a flat (E, pt, eta, phi) table in MeV (ATLAS-like), all and pt > 20 GeV;
- ``../shared/data/nano_dy.root`` (real CMS NanoAOD, 40 events).

Usage:
    python examples/measure_bounded.py [--out docs/results/bounded] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import jetzip

BOUNDS = ("3.46e-3", "1e-3", "5e-4", "nanoaod")
REPO = Path(__file__).resolve().parent.parent


def flat_e_table(src: Path, out: Path, pt_min_gev: float = 0.0) -> int:
    """(E, pt, eta, phi) in MeV, one jet per row, from a NanoAOD-like file."""
    import awkward as ak
    import uproot

    a = uproot.open(src)["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"])
    pt, eta, phi, m = (ak.flatten(a[k]).to_numpy().astype(np.float64)
                       for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"))
    keep = pt > pt_min_gev
    p = pt * np.cosh(eta)
    e = np.sqrt(np.maximum(p * p + m * np.abs(m), 0.0))
    cols = {"E": e[keep] * 1e3, "pt": pt[keep] * 1e3, "eta": eta[keep], "phi": phi[keep]}
    with uproot.recreate(out) as f:
        f.mktree("jets", {k: np.float32 for k in cols}).extend({k: v.astype(np.float32) for k, v in cols.items()})
    return int(keep.sum())


def inputs(work: Path) -> list[tuple[str, Path]]:
    out = []
    held = REPO / "data" / "heldout_seed11.root"
    if held.exists():
        out.append(("Pythia held-out, (pt, eta, phi, mass), pt > 5 GeV", held))
        for name, cut in (("ATLAS-like flat (E, pt, eta, phi) MeV, pt > 5 GeV", 0.0),
                          ("ATLAS-like flat (E, pt, eta, phi) MeV, pt > 20 GeV", 20.0)):
            path = work / f"atlas_like_{int(cut)}.root"
            flat_e_table(held, path, cut)
            out.append((name, path))
    else:
        print(f"note: {held} missing (see the module doc); skipped", file=sys.stderr)
    nano = REPO.parent / "shared" / "data" / "nano_dy.root"
    if nano.exists():
        out.append(("CMS NanoAOD nano_dy.root (40 events)", nano))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, path in inputs(work):
            for bound in BOUNDS:
                aez = work / "x.aez"
                static = jetzip.compress(path, work / "static.aez", error_bound=bound, force=True,
                                         threads=args.threads, context_model="none")
                t0 = time.perf_counter()
                rep = jetzip.compress(path, aez, error_bound=bound, force=True, threads=args.threads,
                                      context_model="auto")
                t1 = time.perf_counter()
                jetzip.decompress(aez, work / "back.root", force=True, threads=args.threads)
                t2 = time.perf_counter()
                ev = jetzip.evaluate(path, aez, baselines=True)
                n = rep["n_jets"]
                base = ev["baselines"]
                row = {
                    "input": name, "bound": bound, "n_jets": n,
                    "entropy_model": (rep["codec_config"].get("entropy_model") or {}).get("name"),
                    "bytes_per_jet": rep["bytes_per_jet"], "payload_bytes_per_jet": rep["payload_bytes_per_jet"],
                    "static_payload_bytes_per_jet": static["payload_bytes_per_jet"],
                    "learned_saves_bytes_per_jet": static["payload_bytes_per_jet"] - rep["payload_bytes_per_jet"],
                    "all_within_bounds": ev["all_within_bounds"],
                    "max_error_over_bound": {k: v["max_error"] / v["bound"] for k, v in ev["bounds"].items()},
                    "compress_jets_per_s": n / (t1 - t0), "decompress_jets_per_s": n / (t2 - t1),
                    "baselines": {k: v.get("bytes_per_jet") for k, v in base.items() if isinstance(v, dict)},
                }
                nano = base.get("nanoaod-mantissa+lzma", {}).get("bytes_per_jet")
                shuffled = base.get("nanoaod-mantissa+shuffle+lzma", {}).get("bytes_per_jet")
                if nano:  # the jets' own bytes: kept branches and other trees are not jets
                    row["ratio_to_nanoaod_storage"] = rep["payload_bytes_per_jet"] / nano
                    row["ratio_to_nanoaod_shuffled"] = rep["payload_bytes_per_jet"] / shuffled
                results.append(row)
                print(json.dumps(row), flush=True)
    lines = ["| input | bound | jets | B/jet (file) | B/jet (payload) | B/jet (payload, own tables only) | "
             "all within | max err / bound | "
             "float16+zstd | NanoAOD mantissa+LZMA (ROOT way / shuffled) | quantize+zstd | SZ3 | "
             "payload x NanoAOD (ROOT way / shuffled) | compress Mj/s | decompress Mj/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        b = r["baselines"]

        def f(x):
            return "-" if x is None else f"{x:.2f}"
        lines.append(f"| {r['input']} | {r['bound']} | {r['n_jets']} | {r['bytes_per_jet']:.3f} | "
                     f"{r['payload_bytes_per_jet']:.3f} | {r['static_payload_bytes_per_jet']:.3f} | "
                     f"{r['all_within_bounds']} | "
                     f"{max(r['max_error_over_bound'].values()):.4f} | {f(b.get('float16+zstd'))} | "
                     f"{f(b.get('nanoaod-mantissa+lzma'))} / {f(b.get('nanoaod-mantissa+shuffle+lzma'))} | "
                     f"{f(b.get('quantize+zstd'))} | {f(b.get('sz3'))} | "
                     f"{f(r.get('ratio_to_nanoaod_storage'))} / {f(r.get('ratio_to_nanoaod_shuffled'))} | "
                     f"{r['compress_jets_per_s'] / 1e6:.2f} | "
                     f"{r['decompress_jets_per_s'] / 1e6:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(results, indent=1))
        Path(args.out + ".md").write_text(f"Command: python examples/measure_bounded.py --out {args.out}\n"
                                          f"Machine: {os.cpu_count()} CPUs\n\n{table}\n")
    return 0 if all(r["all_within_bounds"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
