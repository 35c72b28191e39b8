#!/usr/bin/env python3
"""Write small ROOT files in the real ATLAS layouts, with ROOT itself (std::vector<float> branches).

uproot cannot write ``std::vector`` branches (scikit-hep/uproot5#1486), so these fixtures are
made with PyROOT and committed; the tests only read them. Reproduce with:

    python3 -m venv /tmp/rootenv && /tmp/rootenv/bin/pip install ROOT numpy
    /tmp/rootenv/bin/python tests/data/make_root_fixtures.py

Files (jets from a fixed seed; energies and momenta in MeV):
- ``physlite_like.root``: tree ``CollectionTree``, ``AnalysisJetsAuxDyn.pt/.eta/.phi/.m`` as
  ``std::vector<float>``, no counter, plus ``EventInfoAuxDyn.eventNumber`` (ULong64_t);
- ``opendata_like.root``: tree ``mini``, ``jet_n`` (Int_t), ``jet_pt/jet_eta/jet_phi/jet_E`` as
  ``std::vector<float>``, plus ``runNumber`` (Int_t).
"""
from __future__ import annotations

import os

import numpy as np
import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))


def jets(n_events: int, seed: int):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(4, n_events)
    counts[rng.random(n_events) < 0.1] = 0
    n = counts.sum()
    pt = 7000.0 * (1 - rng.random(n)) ** (-1 / 1.6)
    eta = rng.normal(0, 1.6, n).clip(-4.5, 4.5)
    phi = rng.uniform(-np.pi, np.pi, n)
    m = pt * rng.uniform(0.02, 0.2, n)
    m[rng.random(n) < 0.08] = 0.0
    e = np.sqrt((pt * np.cosh(eta)) ** 2 + m ** 2)
    return counts, pt, eta, phi, m, e


def physlite(path: str) -> None:
    counts, pt, eta, phi, m, _ = jets(120, 11)
    f = ROOT.TFile(path, "RECREATE")
    t = ROOT.TTree("CollectionTree", "PHYSLITE-like")
    vecs = {k: ROOT.std.vector("float")() for k in ("pt", "eta", "phi", "m")}
    for k, v in vecs.items():
        t.Branch(f"AnalysisJetsAuxDyn.{k}", v)
    evn = np.zeros(1, dtype=np.uint64)
    t.Branch("EventInfoAuxDyn.eventNumber", evn, "EventInfoAuxDyn.eventNumber/l")
    start = 0
    for i, c in enumerate(counts):
        for k, arr in (("pt", pt), ("eta", eta), ("phi", phi), ("m", m)):
            vecs[k].clear()
            for x in arr[start:start + c]:
                vecs[k].push_back(float(x))
        evn[0] = 1000 + i
        t.Fill()
        start += c
    t.Write()
    f.Close()


def opendata(path: str) -> None:
    counts, pt, eta, phi, _, e = jets(150, 12)
    f = ROOT.TFile(path, "RECREATE")
    t = ROOT.TTree("mini", "ATLAS open data-like")
    n = np.zeros(1, dtype=np.int32)
    run = np.zeros(1, dtype=np.int32)
    t.Branch("runNumber", run, "runNumber/I")
    t.Branch("jet_n", n, "jet_n/I")
    vecs = {k: ROOT.std.vector("float")() for k in ("pt", "eta", "phi", "E")}
    for k, v in vecs.items():
        t.Branch(f"jet_{k}", v)
    start = 0
    for c in counts:
        n[0] = c
        run[0] = 284500
        for k, arr in (("pt", pt), ("eta", eta), ("phi", phi), ("E", e)):
            vecs[k].clear()
            for x in arr[start:start + c]:
                vecs[k].push_back(float(x))
        t.Fill()
        start += c
    t.Write()
    f.Close()


if __name__ == "__main__":
    physlite(os.path.join(HERE, "physlite_like.root"))
    opendata(os.path.join(HERE, "opendata_like.root"))
    print("wrote", os.listdir(HERE))
