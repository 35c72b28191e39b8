"""Synthetic jets for benchmarks and tests: fast, seeded, shaped like LHC jets.

Not a physics generator (that is ``examples/make_jets.py``, Pythia8 + FastJet): a falling pt
spectrum from 5 GeV to ~2.5 TeV, |eta| < 4.7, uniform phi, masses of 2-20 % of pt with 5 %
massless jets, and Poisson jet counts per event with some empty events. Enough to exercise
every code path and to time them on millions of jets in seconds.
"""
from __future__ import annotations

import numpy as np


def jets(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Flat float32 arrays pt, eta, phi, m (GeV)."""
    rng = np.random.default_rng(seed)
    pt = np.minimum(5.0 * (1 - rng.random(n)) ** (-1 / 1.6), 2500.0)
    eta = rng.normal(0, 1.8, n).clip(-4.7, 4.7)
    phi = rng.uniform(-np.pi, np.pi, n)
    m = pt * rng.uniform(0.02, 0.2, n)
    m[rng.random(n) < 0.05] = 0.0
    return {k: v.astype(np.float32) for k, v in dict(pt=pt, eta=eta, phi=phi, m=m).items()}


def energy(pt: np.ndarray, eta: np.ndarray, m: np.ndarray) -> np.ndarray:
    p = pt.astype(np.float64) * np.cosh(eta.astype(np.float64))
    return np.sqrt(p * p + m.astype(np.float64) * np.abs(m)).astype(np.float32)


def counts(n_events: int, seed: int = 0, mean: float = 5.0, zero_fraction: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    c = rng.poisson(mean, n_events).astype(np.uint32)
    c[rng.random(n_events) < zero_fraction] = 0
    return c


def write_nanoaod(path, n_jets: int, seed: int = 0, events_per_basket: int = 200_000,
                  pt_sorted: bool = False) -> int:
    """Write a NanoAOD-like ROOT file with about `n_jets` jets, streaming; returns the jet count.
    `pt_sorted`: jets in falling pt within each event, as NanoAOD stores them."""
    import awkward as ak
    import uproot

    mean = 5.0
    n_events = int(n_jets / (mean * 0.9))
    total = 0
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", {"run": np.uint32, "event": np.uint64,
                                   **{f"Jet_{k}": "var * float32" for k in ("pt", "eta", "phi", "mass")}},
                        counter_name=lambda _: "nJet")
        for i, start in enumerate(range(0, n_events, events_per_basket)):
            stop = min(start + events_per_basket, n_events)
            c = counts(stop - start, seed + i, mean)
            j = jets(int(c.sum()), seed + 1000 + i)
            c64 = c.astype(np.int64)
            if pt_sorted:
                event = np.repeat(np.arange(len(c64)), c64)
                order = np.lexsort((-j["pt"], event))
                j = {k: v[order] for k, v in j.items()}
            tree.extend({"run": np.ones(stop - start, np.uint32),
                         "event": np.arange(start, stop, dtype=np.uint64),
                         **{f"Jet_{k}": ak.unflatten(j[kk], c64) for k, kk in
                            (("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "m"))}})
            total += int(c.sum())
    return total
