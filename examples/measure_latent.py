#!/usr/bin/env python3
"""The default (latent) codec against its inputs: whole-file sizes and residuals (issue 20).

For each input table, compresses with the latent codec in four ways and measures:

- ``float32 + DECW``: today's default (3 x float32 latents, the 106 kB decoder embedded);
- ``float32``: the same latents, the shipped model named by its SHA-256 (no decoder in the file);
- ``float16``: float16 latents, shipped model;
- ``quantized``: latent codec version 2 (refined, quantized, rANS-coded latents), shipped model.

Sizes: the input's bytes, the ``.aez`` as written (container format 2.0, whose ``HEAD`` JSON is
stored uncompressed), its parts (jet payloads, side records, header JSON, the rest: chunk
records with counts and kept branches), and an estimate for a container that compresses the
header: the file with the header JSON replaced by its zlib-9 size. Residuals: ``jetzip
evaluate`` of each file against its input (pt, E relative; eta, phi absolute): std and p99 of
|r|, and their ratio to the ``float32`` file's.

Inputs: ``examples/make_latent_inputs.py`` (Pythia8 + FastJet; run it first) and
``examples/sample_jets.root``. Results go to ``docs/results/latent_<date>.md`` and ``.json``.

    python examples/measure_latent.py data/latent [--out docs/results]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import zlib
from typing import Any

import jetzip
import jetzip.api as api
from jetzip import defaults

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = {  # name -> (latent dtype, embed the decoder)
    "float32 + DECW": ("float32", True),
    "float32": ("float32", False),
    "float16": ("float16", False),
    "quantized": ("quantized", None),
}
ROLES = ("pt", "eta", "phi", "E")


def compress(src: str, out: str, dtype: str, embed: bool | None) -> dict[str, Any]:
    """jetzip.compress with this latent dtype and embedding. While the command line does not yet
    offer ``quantized`` and ``embed="auto"``, the codec that compress builds is swapped for one
    with these options (the rest of compress, container included, runs as is)."""
    if dtype in defaults.LATENT_DTYPE_CHOICES and embed is not None:
        return jetzip.compress(src, out, latent_dtype=dtype, embed_model=embed, force=True)
    real = api.make_codec

    def make_codec(info, **kw):
        kw.update(latent_dtype=dtype, embed_model=embed)
        return real(info, **kw)

    api.make_codec = make_codec
    try:
        return jetzip.compress(src, out, force=True)
    finally:
        api.make_codec = real


def parts(path: str) -> dict[str, Any]:
    info = jetzip.inspect(path)
    header = json.dumps(info["header"], sort_keys=True).encode()
    out = {"bytes": info["bytes"], "payload": info["payload_bytes"], "side": info["side_bytes"],
           "header_json": len(header), "header_zlib9": len(zlib.compress(header, 9)),
           "latent": info.get("latent_bytes"), "verbatim": info.get("verbatim_bytes"),
           "verbatim_jets": info.get("verbatim_jets"), "n_jets": info["n_jets"]}
    out["rest"] = out["bytes"] - out["payload"] - out["side"] - out["header_json"]
    out["estimate"] = out["bytes"] - out["header_json"] + out["header_zlib9"]
    return out


def measure(src: str, work: str) -> dict[str, Any]:
    row: dict[str, Any] = {"input": src, "input_bytes": os.path.getsize(src), "variants": {}}
    for name, (dtype, embed) in VARIANTS.items():
        out = os.path.join(work, os.path.basename(src) + "." + dtype + ("-decw" if embed else "") + ".aez")
        rep = compress(src, out, dtype, embed)
        t0 = time.perf_counter()
        jetzip.decompress(out, out + ".h5", force=True)
        decompress_seconds = time.perf_counter() - t0
        os.remove(out + ".h5")
        ev = jetzip.evaluate(src, out)
        entry = {**parts(out), "seconds": rep["seconds"], "decompress_seconds": decompress_seconds,
                 "exact_jets": rep.get("exact_jets"),
                 "residuals": {r: {"std": ev["residuals"][r]["std"], "p99_abs": ev["residuals"][r]["p99_abs"],
                                   "max_abs": ev["residuals"][r]["max_abs"]} for r in ROLES}}
        entry["ratio"] = entry["bytes"] / row["input_bytes"]
        entry["ratio_estimate"] = entry["estimate"] / row["input_bytes"]
        row["variants"][name] = entry
        os.remove(out)
    base = row["variants"]["float32"]["residuals"]
    for entry in row["variants"].values():
        entry["residual_ratio"] = {r: {k: entry["residuals"][r][k] / base[r][k] for k in ("std", "p99_abs")}
                                   for r in ROLES}
    return row


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# The latent codec against its inputs ({meta['date']})", "",
             f"`{meta['command']}` on {meta['machine']}; jetzip {meta['jetzip']}. Sizes in bytes; "
             "ratio = `.aez` / input. `estimate`: the same file with its header JSON zlib-9 compressed "
             "(container 2.0 stores it raw). Residuals: std and p99 |r| of pt, E (relative), eta, phi "
             "(absolute), as ratios to the `float32` file's. Seconds: file to file (compress; decompress to HDF5), "
             "taken on a shared machine under the load given above.", "",
             "| input | jets | input bytes | latents | .aez bytes | ratio | estimate | ratio (est.) | "
             "jets' payload B/jet | decoder | header JSON | verbatim jets | compress s | decompress s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for name, v in row["variants"].items():
            lines.append(f"| {os.path.basename(row['input'])} | {v['n_jets']} | {row['input_bytes']} | {name} | "
                         f"{v['bytes']} | {v['ratio']:.3f} | {v['estimate']} | {v['ratio_estimate']:.3f} | "
                         f"{v['payload'] / v['n_jets']:.3f} | {v['side']} | {v['header_json']} | "
                         f"{v['verbatim_jets']} | {v['seconds']:.1f} | {v['decompress_seconds']:.1f} |")
    lines += ["", "| input | latents | " + " | ".join(f"{r} std" for r in ROLES) + " | "
              + " | ".join(f"{r} p99" for r in ROLES) + " | std / float32 | p99 / float32 |",
              "|---|---|" + "---|" * (2 * len(ROLES) + 2)]
    for row in rows:
        for name, v in row["variants"].items():
            res, rat = v["residuals"], v["residual_ratio"]
            lines.append(f"| {os.path.basename(row['input'])} | {name} | "
                         + " | ".join(f"{res[r]['std']:.3g}" for r in ROLES) + " | "
                         + " | ".join(f"{res[r]['p99_abs']:.3g}" for r in ROLES) + " | "
                         + " ".join(f"{rat[r]['std']:.3f}" for r in ROLES) + " | "
                         + " ".join(f"{rat[r]['p99_abs']:.3f}" for r in ROLES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="the folder examples/make_latent_inputs.py wrote")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "docs", "results"))
    args = ap.parse_args(argv)
    inputs = [os.path.join(args.folder, f) for f in ("qcd.root", "zjets.root", "atlas_like.h5")]
    inputs.append(os.path.join(HERE, "sample_jets.root"))
    missing = [p for p in inputs if not os.path.exists(p)]
    if missing:
        print(f"missing inputs {missing}: run examples/make_latent_inputs.py {args.folder}", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for src in inputs:
            rows.append(measure(src, work))
            print(f"measured {src}", file=sys.stderr)
    date = datetime.date.today().isoformat()
    meta = {"date": date, "command": "python examples/measure_latent.py " + " ".join(argv or sys.argv[1:]),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
            "jetzip": jetzip.__version__}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"latent_{date}.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    text = markdown(rows, meta)
    with open(os.path.join(args.out, f"latent_{date}.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
