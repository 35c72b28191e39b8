#!/usr/bin/env python3
"""Write the golden .aez files of format version 3.0 and the values they decode to.

Like ``make_golden_v2.py``: run once, commit the outputs, never regenerate them for a released
version (add new files beside them). ``tests/test_golden_all.py`` decodes every golden file
forever.

The source is a small NanoAOD-like ROOT file made here (seeded): a tree ``Events`` with two
jet collections (``Jet`` with a per-jet ``Jet_btag``, ``FatJet``), an incomplete collection
carried as it is (``Muon_pt``, ``Muon_charge``), per-event numbers (``run``, ``event``,
``MET_pt``, a boolean ``HLT_x``), and a second tree ``Runs`` (``run``, ``genEventSumw``).

- ``v3.0_bounded_multi.aez``: the bounded codec at 1e-3 with the chunks' own tables
  (``context_model="none"``), chunks of 200 jets: two tables, two coded collections, carried
  branches of several types;
- ``v3.0_latent_multi.aez``: the default latent codec (quantized latents, payload version 2)
  of the shipped model, which the file names by its SHA-256 without embedding it;
- ``v3.0_bounded3_multi.aez`` (added 2026-12-06): as ``v3.0_bounded_multi`` with the bounded
  codec's payload version 3 (the compiled loops, decoded on threads) and one-byte event counts
  stored with zlib's run-length strategy.

The ``.npz`` beside each holds, per table ``t`` and collection ``c``, ``t{t}/c{c}/counts`` and
``t{t}/c{c}/{role}`` (the decoded values) and, per carried branch, ``t{t}/carried/{name}``
(numbers) or its awkward buffers' flat values and counts. Write only the missing files::

    .venv/bin/python tests/golden/make_golden_v3.py
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jetzip  # noqa: E402


def write_source(path: str, seed: int = 31) -> None:
    import awkward as ak
    import uproot

    rng = np.random.default_rng(seed)
    n = 120
    nj = rng.poisson(4, n)
    nj[::17] = 0
    nf = rng.poisson(1, n)
    nm = rng.poisson(1.5, n)

    def jets(k: int, scale: float) -> dict[str, np.ndarray]:
        pt = (scale * (1 + rng.pareto(3.0, k))).astype(np.float32)
        return {"pt": pt, "eta": rng.uniform(-4, 4, k).astype(np.float32),
                "phi": rng.uniform(-np.pi, np.pi, k).astype(np.float32),
                "mass": (pt * rng.uniform(0, 0.2, k)).astype(np.float32)}

    j, fj = jets(int(nj.sum()), 20.0), jets(int(nf.sum()), 250.0)
    j["mass"][::9] = 0.0
    with uproot.recreate(path) as f:
        types = {"run": np.uint32, "event": np.uint64, "MET_pt": np.float32, "HLT_x": np.bool_}
        types.update({f"Jet_{k}": "var * float32" for k in ("pt", "eta", "phi", "mass", "btag")})
        types.update({f"FatJet_{k}": "var * float32" for k in ("pt", "eta", "phi", "mass")})
        types.update({"Muon_pt": "var * float32", "Muon_charge": "var * int32"})
        t = f.mktree("Events", types, counter_name=lambda b: "n" + b.split("_")[0])
        data = {f"Jet_{k}": ak.unflatten(v, nj) for k, v in j.items()}
        data["Jet_btag"] = ak.unflatten(rng.uniform(0, 1, int(nj.sum())).astype(np.float32), nj)
        data.update({f"FatJet_{k}": ak.unflatten(v, nf) for k, v in fj.items()})
        data["Muon_pt"] = ak.unflatten(rng.uniform(3, 80, int(nm.sum())).astype(np.float32), nm)
        data["Muon_charge"] = ak.unflatten(rng.choice([-1, 1], int(nm.sum())).astype(np.int32), nm)
        data.update(run=np.full(n, 1, np.uint32), event=np.arange(n, dtype=np.uint64),
                    MET_pt=rng.uniform(0, 100, n).astype(np.float32), HLT_x=rng.random(n) < 0.3)
        t.extend(data)
        f.mktree("Runs", {"run": np.uint32, "genEventSumw": np.float64}).extend(
            {"run": np.array([1], np.uint32), "genEventSumw": np.array([123.25])})


def reference(aez: str) -> dict[str, np.ndarray]:
    """Everything the file decodes to, by table, collection and carried branch."""
    import awkward as ak

    out: dict[str, np.ndarray] = {}
    with jetzip.open_aez(aez) as f:
        parts: dict[str, list] = {}
        for stored, chunk in f.decoded(f.codecs(device="cpu")):
            t = stored.table
            info = f.tables[t]
            for c, coll in enumerate(info.all_collections()):
                part = chunk if c == 0 else chunk.others[coll.name]
                parts.setdefault(f"t{t}/c{c}/counts", []).append(np.asarray(part.counts))
                for role in coll.columns:
                    parts.setdefault(f"t{t}/c{c}/{role}", []).append(np.asarray(part.columns[role]))
            for name, value in {**chunk.kept, **chunk.jet_kept, **chunk.carried}.items():
                if isinstance(value, np.ndarray):
                    parts.setdefault(f"t{t}/carried/{name}", []).append(value)
                else:
                    parts.setdefault(f"t{t}/carried/{name}/values", []).append(
                        np.asarray(ak.flatten(value, axis=None)))
                    parts.setdefault(f"t{t}/carried/{name}/counts", []).append(np.asarray(ak.num(value, axis=1)))
            for other in chunk.others.values():
                for col, value in other.jet_kept.items():
                    parts.setdefault(f"t{t}/carried/{col}", []).append(value)
        for key, values in parts.items():
            out[key] = np.concatenate(values)
    return out


def main() -> None:
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "multi.root")
        write_source(src)
        for name, options in (("v3.0_bounded_multi", {"error_bound": "1e-3", "context_model": "none",
                                                      "chunk_jets": 200}),
                              ("v3.0_latent_multi", {}),
                              ("v3.0_bounded3_multi", {"error_bound": "1e-3", "context_model": "none",
                                                       "chunk_jets": 200})):
            aez = os.path.join(HERE, f"{name}.aez")
            if os.path.exists(aez):
                continue
            jetzip.compress(src, aez, device="cpu", threads=1, **options)
            np.savez_compressed(os.path.join(HERE, f"{name}.npz"), **reference(aez))
            made.append(name)
    print("wrote", ", ".join(made) if made else "nothing (every file exists)")


if __name__ == "__main__":
    main()
