"""Synthetic but LHC-like jets and fixture files in real layouts, for tests only.

Why not Pythia: the test suite must run on a bare CI machine in minutes. These jets follow
a falling pt spectrum from 5 GeV to ~2 TeV, |eta| < 4.7, uniform phi, masses of a few to
twenty percent of pt, and some massless jets, which is what the code paths care about.
"""
from __future__ import annotations

import numpy as np


from jetzip.synthetic import counts, energy, jets  # noqa: E402,F401  (one generator for tests and benchmarks)


def model_frame(n: int, seed: int = 0) -> np.ndarray:
    j = jets(n, seed)
    e = energy(j["pt"], j["eta"], j["m"])
    return np.column_stack([e, j["pt"], j["eta"], j["phi"]]).astype(np.float64)


def write_nanoaod(path, n_events: int = 200, seed: int = 0, extra: bool = True) -> dict:
    """A NanoAOD-like file: Events, nJet, Jet_pt/eta/phi/mass, plus event-level branches."""
    import awkward as ak
    import uproot

    c = counts(n_events, seed)
    j = jets(int(c.sum()), seed)
    c64 = c.astype(np.int64)
    with uproot.recreate(path) as f:
        types = {"run": np.uint32, "event": np.uint64, "MET_pt": np.float32} if extra else {}
        types.update({f"Jet_{k}": "var * float32" for k in ("pt", "eta", "phi", "mass")})
        t = f.mktree("Events", types, counter_name=lambda _: "nJet")
        data = {f"Jet_{k}": ak.unflatten(j[kk], c64) for k, kk in
                (("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "m"))}
        if extra:
            data.update(run=np.full(n_events, 1, np.uint32), event=np.arange(n_events, dtype=np.uint64),
                        MET_pt=np.random.default_rng(seed).uniform(0, 100, n_events).astype(np.float32))
        t.extend(data)
    return {"counts": c, **j}


def write_flat_root(path, n: int = 500, seed: int = 0, tree: str = "jets", mev: bool = False) -> dict:
    """One jet per row with E, pt, eta, phi (the thesis table layout)."""
    import uproot

    j = jets(n, seed)
    e = energy(j["pt"], j["eta"], j["m"])
    scale = 1000.0 if mev else 1.0
    cols = {"E": e * scale, "pt": j["pt"] * scale, "eta": j["eta"], "phi": j["phi"]}
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: np.float32 for k in cols}).extend({k: v.astype(np.float32) for k, v in cols.items()})
    return cols


def write_csv(path, cols: dict[str, np.ndarray]) -> None:
    names = list(cols)
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in zip(*(cols[k] for k in names), strict=True):
            f.write(",".join(repr(float(x)) for x in row) + "\n")


def write_hdf5_columns(path, cols: dict[str, np.ndarray], counts: np.ndarray | None = None,
                       counter: str = "nJet") -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in cols.items():
            f[k] = v
        if counts is not None:
            f[counter] = counts


def write_hdf5_compound(path, cols: dict[str, np.ndarray], name: str = "jets") -> None:
    import h5py

    dtype = np.dtype([(k, "<f4") for k in cols])
    table = np.empty(len(next(iter(cols.values()))), dtype)
    for k, v in cols.items():
        table[k] = v
    with h5py.File(path, "w") as f:
        f[name] = table
