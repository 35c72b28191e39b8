#!/usr/bin/env python3
"""Write the golden .aez files of format version 1 and the arrays they were made from.

Run once per format version; the outputs are committed and ``tests/test_golden.py`` decodes
them forever, so a change to the on-disk format breaks CI instead of users' archives.
Never regenerate the files of a released version: add new ones beside them.

    .venv/bin/python tests/golden/make_golden.py
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jetfactory  # noqa: E402

import jetzip  # noqa: E402
from jetzip.training import TrainOptions, train_frames  # noqa: E402


def decoded_columns(aez: str, tmp: str, names: list[str], group: str) -> dict[str, np.ndarray]:
    import h5py

    out = os.path.join(tmp, os.path.basename(aez) + ".h5")
    jetzip.decompress(aez, out, force=True)
    with h5py.File(out) as f:
        return {n.split("_")[-1]: f[group + n][...] for n in names}


def main() -> None:
    model = train_frames(jetfactory.model_frame(20_000, seed=77),
                         TrainOptions(arch="32,32,16:3", epochs=10, batch_size=256, lr_max=5e-3, seed=3))
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "golden_model.jzm")
        model.save(model_path)
        # 1) jagged NanoAOD-like, float32 latents, embedded decoder, a kept branch, empty events
        nano = os.path.join(tmp, "golden_nano.root")
        data = jetfactory.write_nanoaod(nano, n_events=40, seed=21)
        out = os.path.join(HERE, "v1.0_nano_float32.aez")
        jetzip.compress(nano, out, model=model_path, keep_branches=["event"], chunk_jets=64, force=True)
        cols = {"pt": data["pt"], "eta": data["eta"], "phi": data["phi"], "m": data["m"]}
        decoded = decoded_columns(out, tmp, ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"], "Events/")
        content = jetzip.read_aez(out)
        np.savez(os.path.join(HERE, "v1.0_nano_float32.npz"), counts=data["counts"],
                 event=np.arange(40, dtype=np.uint64), latents=content["latents"],
                 **{f"orig_{k}": v for k, v in cols.items()}, **{f"dec_{k}": v for k, v in decoded.items()})
        # 2) flat CSV table (E, pt, eta, phi), float16 latents
        j = jetfactory.jets(50, seed=22)
        flat = {"E": jetfactory.energy(j["pt"], j["eta"], j["m"]), "pt": j["pt"], "eta": j["eta"], "phi": j["phi"]}
        csv = os.path.join(tmp, "golden_flat.csv")
        jetfactory.write_csv(csv, flat)
        out = os.path.join(HERE, "v1.0_flat_float16.aez")
        jetzip.compress(csv, out, model=model_path, latent_dtype="float16", units="GeV", force=True)
        content = jetzip.read_aez(out)
        decoded = decoded_columns(out, tmp, ["E", "pt", "eta", "phi"], "")
        np.savez(os.path.join(HERE, "v1.0_flat_float16.npz"), latents=content["latents"],
                 **{f"orig_{k}": v for k, v in flat.items()}, **{f"dec_{k}": v for k, v in decoded.items()})
    print("wrote", sorted(f for f in os.listdir(HERE) if f.startswith("v1.0")))


if __name__ == "__main__":
    main()
