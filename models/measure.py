#!/usr/bin/env python3
"""Measure a model the way the model card quotes it: compress + decompress held-out jets.

For each data set it runs the real round trip (``jetzip.compress`` then ``jetzip.evaluate``,
which decodes the .aez) with float32 and float16 latents, and prints a Markdown table of the
residuals (E, pt, m relative; eta, phi absolute, phi wrapped): std, p99 |r| and max |r|.

    python models/measure.py jetzip/models/AE_3D_200.jzm data/heldout_200k.root ../shared/data/nano_dy.root \
        --json models/residuals.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import jetzip

TARGETS = {"pt": 1.2e-3, "E": 2.5e-3, "eta": 2.0e-3, "phi": 1.0e-3}
P99_TARGET = 8e-3


def measure(model: str, data: str, dtype: str, workdir: str) -> dict:
    aez = os.path.join(workdir, f"{os.path.basename(data)}.{dtype}.aez")
    rep = jetzip.compress(data, aez, model=model, latent_dtype=dtype, force=True, embed_model=False)
    ev = jetzip.evaluate(data, aez, model=model, return_arrays=True)
    arrays = ev.pop("arrays")
    ev["by_pt"] = by_pt(arrays["original"]["pt"], arrays["residuals"])
    ev["bytes_per_jet_without_decoder"] = rep["bytes_per_jet"]
    ev["outside_training_ranges"] = rep["outside_training_ranges"]
    return ev


PT_BINS = ((5, 10), (10, 15), (15, 20), (20, 50), (50, 200), (200, float("inf")), (20, float("inf")))


def by_pt(pt, res: dict) -> dict:
    """std and p99 |r| of E, pt, eta, phi in bins of the original jet pt."""
    import numpy as np

    out = {}
    for lo, hi in PT_BINS:
        sel = (pt >= lo) & (pt < hi)
        if sel.sum() < 100:
            continue
        label = f"> {lo}" if hi == float("inf") else f"{lo}-{hi}"
        out[label] = {"jets": int(sel.sum()), **{v: (float(np.std(res[v][sel])),
                                                    float(np.percentile(np.abs(res[v][sel]), 99)))
                                                for v in ("E", "pt", "eta", "phi")}}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("data", nargs="+")
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args()
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for data in args.data:
                for dtype in ("float32", "float16"):
                    results[f"{os.path.basename(data)} {dtype}"] = measure(args.model, data, dtype, tmp)
    except jetzip.JetzipError as exc:
        print(f"measure.py: {exc} (the held-out jets come from `bash models/train_default.sh`)",
              file=sys.stderr)
        return 1
    print("| data, latents | jets | " + " | ".join(f"{v} std" for v in ("pt", "E", "eta", "phi", "m")) +
          " | " + " | ".join(f"{v} p99 abs" for v in ("pt", "E", "eta", "phi")) + " | B/jet |")
    print("|---" * 12 + "|")
    ok = True
    for name, ev in results.items():
        r = ev["residuals"]
        stds = [r[v]["std"] if v in r else float("nan") for v in ("pt", "E", "eta", "phi", "m")]
        p99 = [r[v]["p99_abs"] for v in ("pt", "E", "eta", "phi")]
        print(f"| {name} | {ev['n_jets']} | " + " | ".join(f"{x:.2e}" for x in stds) + " | "
              + " | ".join(f"{x:.2e}" for x in p99) + f" | {ev['bytes_per_jet_without_decoder']:.2f} |")
        if "heldout" in name and "float32" in name:
            for v, t in TARGETS.items():
                ok &= r[v]["std"] <= t and r[v]["p99_abs"] <= P99_TARGET
    for name, ev in results.items():
        if "float32" not in name or not ev["by_pt"]:
            continue
        print(f"\n{name}, residuals by jet pt (std / p99 |r|):\n")
        print("| pt (GeV) | jets | E | pt | eta | phi |\n|---|---|---|---|---|---|")
        for label, row in ev["by_pt"].items():
            print(f"| {label} | {row['jets']:,} | " + " | ".join(f"{row[v][0]:.1e} / {row[v][1]:.1e}"
                                                       for v in ("E", "pt", "eta", "phi")) + " |")
    if args.json:
        slim = {k: {kk: vv for kk, vv in v.items() if kk != "plots"} for k, v in results.items()}
        with open(args.json, "w") as f:
            json.dump(slim, f, indent=1, sort_keys=True)
    print(f"\nheld-out float32 targets (std pt<=1.2e-3, E<=2.5e-3, eta<=2e-3, phi<=1e-3, p99<=8e-3): "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
