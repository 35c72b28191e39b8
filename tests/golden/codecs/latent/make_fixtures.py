#!/usr/bin/env python3
"""Write the latent codec's golden chunk fixtures (numcodecs style), once per payload version.

For each version folder ``<version>/``: ``config.json`` (the codec config as stored in a
``.aez`` header), and per chunk NN ``encoded.NN.bin`` (the payload), ``counts.NN.npy`` (jets
per event) and ``decoded.NN.npz`` (``orig_*`` the columns given to the encoder, ``dec_*`` the
columns decoded on the machine that wrote them, ``latents`` the float32 latents the network
was fed, ``verbatim`` the indices of the jets stored exactly). ``tests/test_latent_golden.py``
decodes them forever. Run once, commit, never regenerate a version that exists (a changed
format is a new version, in a new folder)::

    .venv/bin/python tests/golden/codecs/latent/make_fixtures.py

Version 2 (``quantized``): the shipped model ``AE_3D_200`` (not embedded: found by its
SHA-256), NanoAOD-like (pt, eta, phi, mass) jets from ``tests/jetfactory.py``, default
tolerance. Chunks: 00, 1,302 jets in 300 events, one of them far outside the training ranges
(pt 9 TeV: stored verbatim), one at eta 4.99, some massless; 01, 40 jets in 3 events (fewer
than the chunk statistics need: the fallback steps); 02, an empty chunk.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))  # tests/

import jetfactory  # noqa: E402

from jetzip.codecs.latent import QUANTIZED, LatentCodec  # noqa: E402
from jetzip.model import default_model_path, load_model, shipped_model  # noqa: E402

ROLES = ("pt", "eta", "phi", "m")


def chunks_v2() -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    c0 = jetfactory.counts(300, 21)
    j0 = jetfactory.jets(int(c0.sum()), 21)
    j0["pt"][3] = 9000.0  # beyond the training ranges: verbatim
    j0["eta"][10] = 4.99
    j0["m"][::37] = 0.0
    c1 = np.array([10, 0, 30], np.uint32)
    j1 = jetfactory.jets(40, 22)
    return [(j0, c0), (j1, c1), ({r: np.zeros(0, np.float32) for r in ROLES}, np.zeros(0, np.uint32))]


def write(version: str, codec: LatentCodec, chunks) -> None:
    folder = os.path.join(HERE, version)
    if os.path.exists(folder):
        print(f"{folder} exists: left as it is", file=sys.stderr)
        return
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(codec.get_config(), f, indent=1, sort_keys=True)
    for i, (cols, counts) in enumerate(chunks):
        cols = {r: np.asarray(cols[r], np.float32) for r in ROLES}
        payload = codec.encode(cols, counts)
        n = len(cols["pt"])
        dec = codec.decode(payload, n, counts)
        lat, index, _ = codec.split(payload, n)
        with open(os.path.join(folder, f"encoded.{i:02d}.bin"), "wb") as f:
            f.write(payload)
        np.save(os.path.join(folder, f"counts.{i:02d}.npy"), np.asarray(counts, np.uint32))
        np.savez_compressed(os.path.join(folder, f"decoded.{i:02d}.npz"), latents=lat, verbatim=index,
                            **{f"orig_{r}": cols[r] for r in ROLES}, **{f"dec_{r}": dec[r] for r in ROLES})
        print(f"{folder}: chunk {i}, {n} jets, {len(payload)} bytes, {len(index)} verbatim", file=sys.stderr)


def main() -> int:
    model = load_model(default_model_path())
    if shipped_model(model.weights_sha256) is None:
        raise SystemExit("the fixtures use the shipped model; unset JETZIP_MODEL")
    write("2", LatentCodec(model, "PtEtaPhiM", "GeV", QUANTIZED, embed="auto", device="cpu", threads=1),
          chunks_v2())
    return 0


if __name__ == "__main__":
    sys.exit(main())
