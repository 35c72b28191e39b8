#!/usr/bin/env python3
"""Measure a model the way the model card quotes it: compress + decompress held-out jets.

For each data set it runs the real round trip (``jetzip.compress`` then ``jetzip.evaluate``,
which decodes the .aez) with float32 and float16 latents, and prints a Markdown table of the
residuals (E, pt, m relative; eta, phi absolute, phi wrapped): std, p99 |r| and max |r|.

    python models/measure.py models/AE_3D_200.jzm data/heldout_200k.root ../shared/data/nano_dy.root \
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
    ev = jetzip.evaluate(data, aez, model=model)
    ev["bytes_per_jet_without_decoder"] = rep["bytes_per_jet"]
    ev["outside_training_ranges"] = rep["outside_training_ranges"]
    return ev


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("data", nargs="+")
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.data:
            for dtype in ("float32", "float16"):
                results[f"{os.path.basename(data)} {dtype}"] = measure(args.model, data, dtype, tmp)
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
    if args.json:
        slim = {k: {kk: vv for kk, vv in v.items() if kk != "plots"} for k, v in results.items()}
        with open(args.json, "w") as f:
            json.dump(slim, f, indent=1, sort_keys=True)
    print(f"\nheld-out float32 targets (std pt<=1.2e-3, E<=2.5e-3, eta<=2e-3, phi<=1e-3, p99<=8e-3): "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
