#!/usr/bin/env python3
"""The three jet tables on which issue 20 measures the default (latent) codec, made with Pythia8 +
FastJet (``examples/make_jets.py``; ``pip install pythia8mc==8.317.2 fastjet==3.5.2.0``).

- ``qcd.root``: QCD dijets (pT-hat > 20/150/600/1500 GeV, 40/30/20/10 %) in a NanoAOD-like tree
  (``event``, ``process``, ``nJet``, jagged float32 ``Jet_pt/eta/phi/mass``, ROOT's default
  ZLIB-1 as uproot writes it), seed 21;
- ``zjets.root``: Z+jets, the same layout, seed 22;
- ``atlas_like.h5``: an ATLAS-like flat table, one jet per row, float32 ``E, pt, eta, phi`` in MeV,
  pt > 20 GeV, the default process mix, seed 23, datasets gzip-4 compressed with byte shuffle (as
  h5py writes a compressed table; an uncompressed one would make the comparison easier).

Files that exist are kept. Usage::

    python examples/make_latent_inputs.py data/latent [--jets 200000]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_jets  # noqa: E402


def atlas_like(path: str, n_jets: int, seed: int, jobs: int) -> None:
    import h5py

    data = make_jets.generate(n_jets, seed, make_jets.parse_mix(make_jets.DEFAULT_MIX), jobs, 20.0, 5.0, 0.0)
    pt, eta, phi, m = (np.asarray(data[k], np.float64) for k in ("pt", "eta", "phi", "mass"))
    e = np.sqrt((pt * np.cosh(eta)) ** 2 + m ** 2)
    tmp = path + ".part"
    with h5py.File(tmp, "w") as f:
        for name, v in (("E", e), ("pt", pt), ("eta", eta), ("phi", phi)):
            scale = 1000.0 if name in ("E", "pt") else 1.0  # MeV, as ATLAS stores them
            f.create_dataset(name, data=(v * scale).astype(np.float32), compression="gzip",
                             compression_opts=4, shuffle=True)
        f["E"].attrs["units"] = f["pt"].attrs["units"] = "MeV"
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--jets", type=int, default=200_000, help="jets per file (approximate)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    os.makedirs(args.folder, exist_ok=True)
    qcd = os.path.join(args.folder, "qcd.root")
    if not os.path.exists(qcd):
        mix = make_jets.parse_mix("qcd20=0.4,qcd150=0.3,qcd600=0.2,qcd1500=0.1")
        make_jets.write(qcd, make_jets.generate(args.jets, 21, mix, args.jobs, 5.0, 5.0, 0.05))
        print(f"wrote {qcd}", file=sys.stderr)
    zj = os.path.join(args.folder, "zjets.root")
    if not os.path.exists(zj):
        make_jets.write(zj, make_jets.generate(args.jets, 22, {"zjets": 1.0}, args.jobs, 5.0, 5.0, 0.05))
        print(f"wrote {zj}", file=sys.stderr)
    atlas = os.path.join(args.folder, "atlas_like.h5")
    if not os.path.exists(atlas):
        atlas_like(atlas, args.jets, 23, args.jobs)
        print(f"wrote {atlas}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
