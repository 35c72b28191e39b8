"""Does ROOT itself read a restored ROOT file as uproot does? (A check by hand: ROOT is not a
dependency of jetzip; run this with a Python that has ROOT, e.g. ``pip install root`` in a
virtual environment of its own, and uproot.)

    python examples/root_reads.py restored.root [other.root ...]

For every TTree of every file: ROOT opens it without an error, and every leaf's values of
every entry, read through ``TTree::GetEntry`` and ``TLeaf::GetValue``, equal uproot's
(``ak.flatten`` of each branch, in order). Prints one line per tree; exits 1 on any
difference or ROOT error.
"""
from __future__ import annotations

import sys


def root_values(path: str, name: str) -> dict[str, list[float]]:
    import ROOT

    f = ROOT.TFile.Open(path)
    if not f or f.IsZombie():
        raise SystemExit(f"{path}: ROOT cannot open it")
    t = f.Get(name)
    leaves = list(t.GetListOfLeaves())
    out: dict[str, list[float]] = {lf.GetName(): [] for lf in leaves}
    for i in range(t.GetEntries()):
        if t.GetEntry(i) <= 0:
            raise SystemExit(f"{path}: {name}: ROOT could not read entry {i}")
        for lf in leaves:
            if lf.IsA().GetName() == "TLeafC":
                out[lf.GetName()].append(str(lf.GetValueString()))
                continue
            vals = out[lf.GetName()]
            for j in range(lf.GetLen()):
                vals.append(lf.GetValue(j))
    f.Close()
    return out


def uproot_values(path: str, name: str) -> dict[str, list[float]]:
    import awkward as ak
    import numpy as np
    import uproot

    out: dict[str, list[float]] = {}
    with uproot.open(path) as f:
        for b in f[name].values():
            arr = b.array()
            if arr.ndim == 1 and ak.fields(arr) == [] and str(arr.type.content) == "string":
                out[b.name] = ak.to_list(arr)
                continue
            while arr.ndim > 1:
                arr = ak.flatten(arr)
            out[b.name] = [float(x) for x in np.asarray(arr).ravel()]
    return out


def main(paths: list[str]) -> int:
    import ROOT
    import uproot

    ROOT.gErrorIgnoreLevel = ROOT.kWarning
    bad = 0
    for path in paths:
        with uproot.open(path) as f:
            trees = [k.split(";")[0] for k, c in f.classnames().items() if c == "TTree"]
        for name in trees:
            r, u = root_values(path, name), uproot_values(path, name)
            diff = [k for k in u if k not in r or len(r[k]) != len(u[k]) or
                    any(not (a == b or (a != a and b != b)) for a, b in zip(r[k], u[k], strict=False))]
            bad += bool(diff)
            print(f"{path}: {name}: {len(u)} branches, {sum(len(v) for v in u.values())} values: "
                  + ("ROOT reads what uproot reads" if not diff else f"differ: {', '.join(diff[:5])}"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
