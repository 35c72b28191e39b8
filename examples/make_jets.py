#!/usr/bin/env python3
"""Generate realistic, reproducible jet tables with Pythia8 + FastJet.

Why: jetzip's shipped model, its example file and its benchmarks all need jets that look
like LHC jets (pt from a few GeV to several TeV, |eta| up to 5, some massless), and
anyone must be able to regenerate them bit for bit from a seed.

Events are pp collisions at 13 TeV; visible final-state particles are clustered with
anti-kt R = 0.4; jets with pt > --pt-min GeV and |eta| < --eta-max are kept. A fraction
of jets (``--massless-fraction``) gets its mass set to 0, -0.0 or a tiny negative value,
as reconstructed jet collections contain (the energy is recomputed consistently).

Output layout (by extension): ``.root`` -> NanoAOD-like TTree ``Events`` with ``nJet``
and jagged float32 ``Jet_pt/Jet_eta/Jet_phi/Jet_mass`` plus ``event`` and ``process``;
``.h5`` / ``.csv`` -> one jet per row with columns ``event, pt, eta, phi, mass``.

Needs the ``gen`` extra: ``pip install pythia8mc==8.317.2 fastjet==3.5.2.0``.

Example:
    python examples/make_jets.py --jets 20000 --seed 7 --mix ttbar=1 -o jets.root
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time

import numpy as np

# Process name -> Pythia settings (beyond beams and seeds).
PROCESSES: dict[str, list[str]] = {
    "ttbar": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"],
    "qcd20": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 20."],
    "qcd150": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 150."],
    "qcd600": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 600."],
    "qcd1500": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 1500."],
    "zjets": [
        "WeakBosonAndParton:qqbar2gmZg = on", "WeakBosonAndParton:qg2gmZq = on",
        "PhaseSpace:pTHatMin = 20.", "23:onMode = off", "23:onIfAny = 1 2 3 4 5 12 14 16",
    ],
    "wjets": [
        "WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on",
        "PhaseSpace:pTHatMin = 30.", "24:onMode = off", "24:onIfAny = 1 2 3 4 5",
    ],
    "higgs_bb": ["HiggsSM:gg2H = on", "25:onMode = off", "25:onIfAny = 5"],
}
PROCESS_IDS = {name: i for i, name in enumerate(PROCESSES)}

# Training default: a broad mix; held-out samples use another seed and mix.
DEFAULT_MIX = "ttbar=0.3,qcd20=0.2,qcd150=0.15,qcd600=0.1,qcd1500=0.1,zjets=0.15"


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in PROCESSES:
            raise SystemExit(f"unknown process {name!r}; known: {', '.join(PROCESSES)}")
        mix[name] = float(weight or 1.0)
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items()}


def _generate(task: tuple[str, int, int, float, float]) -> dict[str, np.ndarray]:
    """One worker: generate events of one process until `n_jets` jets are collected."""
    process, seed, n_jets, pt_min, eta_max = task
    import fastjet as fj
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for setting in ["Beams:eCM = 13000.", "Random:setSeed = on", f"Random:seed = {seed}",
                    "Next:numberCount = 0", "Print:quiet = on", *PROCESSES[process]]:
        pythia.readString(setting)
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise for {process}")
    jet_def = fj.JetDefinition(fj.antikt_algorithm, 0.4)
    counts, pts, etas, phis, masses = [], [], [], [], []
    collected = 0
    while collected < n_jets:
        if not pythia.next():
            continue
        event = pythia.event
        particles = [fj.PseudoJet(p.px(), p.py(), p.pz(), p.e())
                     for p in (event[i] for i in range(event.size()))
                     if p.isFinal() and p.isVisible()]
        jets = fj.ClusterSequence(particles, jet_def).inclusive_jets(pt_min)
        jets = sorted((j for j in jets if abs(j.eta()) < eta_max), key=lambda j: -j.pt())
        counts.append(len(jets))
        for j in jets:
            pts.append(j.pt())
            etas.append(j.eta())
            phis.append(j.phi_std())
            masses.append(j.m())
        collected += len(jets)
    return {
        "counts": np.asarray(counts, np.uint32),
        "pt": np.asarray(pts, np.float64),
        "eta": np.asarray(etas, np.float64),
        "phi": np.asarray(phis, np.float64),
        "mass": np.asarray(masses, np.float64),
        "process": np.full(len(counts), PROCESS_IDS[process], np.int32),
    }


def generate(n_jets: int, seed: int, mix: dict[str, float], jobs: int, pt_min: float,
             eta_max: float, massless_fraction: float) -> dict[str, np.ndarray]:
    """Generate about `n_jets` jets; the result depends only on the arguments, not on `jobs`."""
    shards_per_process = 8  # fixed, so that the output does not depend on the worker count
    tasks = []
    for p_index, (process, weight) in enumerate(mix.items()):
        quota = int(round(n_jets * weight))
        per_shard = -(-quota // shards_per_process)
        for shard in range(shards_per_process):
            want = min(per_shard, quota - shard * per_shard)
            if want > 0:
                # Pythia seeds must be < 900,000,000.
                tasks.append((process, (seed * 1009 + p_index * 101 + shard) % 899_999_999 + 1,
                              want, pt_min, eta_max))
    if jobs > 1:
        with mp.get_context("spawn").Pool(jobs) as pool:
            parts = pool.map(_generate, tasks, chunksize=1)
    else:
        parts = [_generate(t) for t in tasks]
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["event"] = np.arange(len(out["counts"]), dtype=np.uint64)
    _make_some_massless(out, seed, massless_fraction)
    return out


def _make_some_massless(out: dict[str, np.ndarray], seed: int, fraction: float) -> None:
    """Reconstructed collections hold jets with mass 0, -0.0 or tiny negative values."""
    rng = np.random.default_rng(seed + 12345)
    n = len(out["mass"])
    pick = rng.random(n) < fraction
    kind = rng.integers(0, 4, n)
    m = out["mass"]
    m[pick & (kind <= 1)] = 0.0
    m[pick & (kind == 2)] = -0.0
    tiny = pick & (kind == 3)
    m[tiny] = -rng.uniform(0, 1e-3, tiny.sum()) * out["pt"][tiny]


def write(path: str, data: dict[str, np.ndarray]) -> None:
    """Write ROOT (NanoAOD-like jagged), HDF5 or CSV (flat) to a temporary name, then rename."""
    ext = os.path.splitext(path)[1].lower()
    tmp = path + ".part"
    cols = {k: data[k].astype(np.float32) for k in ("pt", "eta", "phi", "mass")}
    if ext == ".root":
        import awkward as ak
        import uproot

        counts = data["counts"].astype(np.int64)
        jets = ak.zip({k: ak.unflatten(v, counts) for k, v in cols.items()})
        with uproot.recreate(tmp) as f:
            step = 200_000
            offsets = np.concatenate([[0], np.cumsum(counts)])
            tree = f.mktree("Events", {"event": np.uint64, "process": np.int32,
                                       "nJet": np.uint32,
                                       **{f"Jet_{k}": "var * float32" for k in cols}},
                            counter_name=lambda c: "nJet", field_name=lambda o, i: f"{o}_{i}")
            del jets
            for start in range(0, len(counts), step):
                stop = min(start + step, len(counts))
                c = counts[start:stop]
                sl = slice(offsets[start], offsets[stop])
                tree.extend({"event": data["event"][start:stop],
                             "process": data["process"][start:stop],
                             "nJet": c.astype(np.uint32),
                             **{f"Jet_{k}": ak.unflatten(v[sl], c) for k, v in cols.items()}})
    elif ext in (".h5", ".hdf5"):
        import h5py

        event = np.repeat(data["event"], data["counts"].astype(np.int64))
        with h5py.File(tmp, "w") as f:
            f["event"] = event
            for k, v in cols.items():
                f[k] = v
    elif ext == ".csv":
        event = np.repeat(data["event"], data["counts"].astype(np.int64))
        with open(tmp, "w") as f:
            f.write("event,pt,eta,phi,mass\n")
            for row in zip(event, *(cols[k] for k in ("pt", "eta", "phi", "mass"))):
                f.write("%d,%r,%r,%r,%r\n" % (row[0], *(float(x) for x in row[1:])))
    else:
        raise SystemExit(f"unsupported output extension {ext!r} (use .root, .h5 or .csv)")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help=".root, .h5 or .csv")
    ap.add_argument("--jets", type=int, default=10_000, help="number of jets (approximate)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mix", default=DEFAULT_MIX, help=f"process weights (default {DEFAULT_MIX})")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--pt-min", type=float, default=5.0, help="GeV")
    ap.add_argument("--eta-max", type=float, default=5.0)
    ap.add_argument("--massless-fraction", type=float, default=0.05)
    args = ap.parse_args(argv)
    t0 = time.time()
    data = generate(args.jets, args.seed, parse_mix(args.mix), args.jobs, args.pt_min,
                    args.eta_max, args.massless_fraction)
    write(args.output, data)
    print(f"wrote {len(data['pt'])} jets in {len(data['counts'])} events to {args.output} "
          f"in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
