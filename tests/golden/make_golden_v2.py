#!/usr/bin/env python3
"""Write the golden .aez files of format version 2.0 and the arrays they were made from.

Like ``make_golden.py`` for 1.0: run once, commit the outputs, never regenerate them for a
released version (add new files beside them). ``tests/test_golden_v2.py`` decodes them forever.

- ``v2.0_bounded_nano.aez``: the error-bounded codec, (pt, eta, phi, mass) NanoAOD-like jets
  with empty events, exact zeros and signed tiny masses, a per-event and a per-jet branch,
  several chunks, bounds pt=5e-4, eta=2.5e-4, phi=2.5e-4, mass=1e-3;
- ``v2.0_bounded_flat_e.aez``: the error-bounded codec, a flat (E, pt, eta, phi) CSV table,
  one bound 3.46e-3;
- ``v2.0_latent_nano.aez``: the latent codec with its verbatim jets (the committed small test
  model, default tolerance, so most jets are verbatim and some are not);
- ``v2.0_bounded_learned_nano.aez`` (added with the learned entropy model, bounded codec
  version 2): the first 300 events of ``examples/sample_jets.root`` at ``--error-bound
  nanoaod`` with the shipped ``context_v1`` model, in chunks of 1000 jets. It decodes only with
  that model: a shipped model is never changed, a new one gets a new name.

The first three were made before the learned model existed (so with the chunks' own tables:
``context_model="none"`` below says so). Write only the missing files::

    .venv/bin/python tests/golden/make_golden_v2.py
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


def decoded(aez: str, tmp: str) -> dict[str, np.ndarray]:
    """Every decoded column, per chunk joined, straight from the codec (no writer)."""
    with jetzip.open_aez(aez) as f:
        codec = f.codec(device="cpu")
        parts = [codec.decode(c.payload, c.n_jets, c.counts) for c in f.chunks()]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def nano_with_extras(path: str, n_events: int, seed: int) -> dict[str, np.ndarray]:
    import awkward as ak
    import uproot

    c = jetfactory.counts(n_events, seed)
    j = jetfactory.jets(int(c.sum()), seed)
    m = j["m"].copy()
    m[::17] = -0.0
    m[5::23] = -1.5e-4
    m[7::29] = 0.0
    j["m"] = m
    c64 = c.astype(np.int64)
    btag = np.random.default_rng(seed).random(len(m)).astype(np.float32)
    with uproot.recreate(path) as f:
        t = f.mktree("Events", {"event": np.uint64, "Jet_pt": "var * float32", "Jet_eta": "var * float32",
                                "Jet_phi": "var * float32", "Jet_mass": "var * float32",
                                "Jet_btag": "var * float32"}, counter_name=lambda _: "nJet")
        t.extend({"event": np.arange(n_events, dtype=np.uint64),
                  **{f"Jet_{k}": ak.unflatten(j[kk], c64) for k, kk in
                     (("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "m"))},
                  "Jet_btag": ak.unflatten(btag, c64)})
    return {"counts": c, **j, "btag": btag}


def learned(tmp: str) -> None:
    import uproot

    src = os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples", "sample_jets.root")
    cut = os.path.join(tmp, "sample300.root")
    arrays = uproot.open(src)["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"], entry_stop=300)
    with uproot.recreate(cut) as f:
        f["Events"] = {k: arrays[k] for k in arrays.fields}
    out = os.path.join(HERE, "v2.0_bounded_learned_nano.aez")
    jetzip.compress(cut, out, error_bound="nanoaod", chunk_jets=1000, force=True, context_model="auto")
    content = jetzip.read_aez(out)
    import awkward as ak

    np.savez(os.path.join(HERE, "v2.0_bounded_learned_nano.npz"), counts=content["counts"],
             **{f"orig_{r}": ak.flatten(arrays[k]).to_numpy() for r, k in
                (("pt", "Jet_pt"), ("eta", "Jet_eta"), ("phi", "Jet_phi"), ("m", "Jet_mass"))},
             **{f"dec_{k}": v for k, v in decoded(out, tmp).items()})


def main() -> None:
    if not os.path.exists(os.path.join(HERE, "v2.0_bounded_learned_nano.aez")):
        with tempfile.TemporaryDirectory() as tmp:
            learned(tmp)
    if os.path.exists(os.path.join(HERE, "v2.0_bounded_nano.aez")):
        print("wrote", sorted(f for f in os.listdir(HERE) if f.startswith("v2.0")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        nano = os.path.join(tmp, "golden_nano.root")
        data = nano_with_extras(nano, 120, 31)
        out = os.path.join(HERE, "v2.0_bounded_nano.aez")
        jetzip.compress(nano, out, error_bound="pt=5e-4,eta=2.5e-4,phi=2.5e-4,mass=1e-3",
                        chunk_jets=200, force=True, context_model="none")
        content = jetzip.read_aez(out)
        np.savez(os.path.join(HERE, "v2.0_bounded_nano.npz"), counts=data["counts"],
                 **{f"orig_{k}": data[k] for k in ("pt", "eta", "phi", "m", "btag")},
                 **{f"dec_{k}": v for k, v in decoded(out, tmp).items()},
                 kept=np.array(sorted(content["kept"])), jet_kept=np.array(sorted(content["jet_kept"])))

        j = jetfactory.jets(300, seed=32)
        flat = {"E": jetfactory.energy(j["pt"], j["eta"], j["m"]), "pt": j["pt"], "eta": j["eta"], "phi": j["phi"]}
        csv = os.path.join(tmp, "golden_flat.csv")
        jetfactory.write_csv(csv, flat)
        out = os.path.join(HERE, "v2.0_bounded_flat_e.aez")
        jetzip.compress(csv, out, error_bound="3.46e-3", units="GeV", force=True, context_model="none")
        np.savez(os.path.join(HERE, "v2.0_bounded_flat_e.npz"), **{f"orig_{k}": v for k, v in flat.items()},
                 **{f"dec_{k}": v for k, v in decoded(out, tmp).items()})

        small = jetfactory.write_nanoaod(os.path.join(tmp, "small.root"), n_events=60, seed=33)
        out = os.path.join(HERE, "v2.0_latent_nano.aez")
        model = os.path.join(os.path.dirname(HERE), "data", "small_model.jzm")
        jetzip.compress(os.path.join(tmp, "small.root"), out, model=model, chunk_jets=128, force=True)
        content = jetzip.read_aez(out)
        np.savez(os.path.join(HERE, "v2.0_latent_nano.npz"), counts=small["counts"], latents=content["latents"],
                 **{f"orig_{k}": small[k] for k in ("pt", "eta", "phi", "m")},
                 **{f"dec_{k}": v for k, v in decoded(out, tmp).items()})
    print("wrote", sorted(f for f in os.listdir(HERE) if f.startswith("v2.0")))


if __name__ == "__main__":
    main()
