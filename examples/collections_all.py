"""``--collection all`` against the jet collections alone on event files (issue 21).

For each NanoAOD-like file of ``../shared`` (ROOT TTree, RNTuple and Parquet) and each bound
(``1e-3`` and the ``nanoaod`` preset), compresses the file twice with the error-bounded codec:
with no ``--collection`` (every jet collection coded, the rest carried) and with
``--collection all`` (every collection, four-vectors and pt-eta-phi ones, coded where that is
smaller than carrying it: ``jetzip/choose.py``). Prints and writes a Markdown table: whole-file
bytes of both, their ratio, the collections ``all`` coded with the bytes of each (``inspect``),
those it carried instead, and whether ``evaluate`` finds every coded value within its bound.

Usage::

    python examples/collections_all.py [--out docs/results/collections_all_DATE.md]
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

import jetzip

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
FILES = ["cases/nano_tt_v12_lzma9_200.root", "data/nano_dy.root", "data/public/nano_dy.parquet",
         "data/public/nanoAOD_2015_CMS_Open_Data_ttbar.root", "data/public/nano_dimuon_rntuple.root"]
BOUNDS = ["1e-3", "nanoaod"]


def one(path: Path, bound: str, work: Path) -> dict:
    jets = jetzip.compress(path, work / "jets.aez", error_bound=bound, force=True)
    every = jetzip.compress(path, work / "all.aez", error_bound=bound, collection="all", force=True)
    table = jetzip.inspect(work / "all.aez")["tables"][0]
    ev = jetzip.evaluate(path, work / "all.aez")
    return {"file": str(path.relative_to(SHARED)), "bound": bound, "jets_bytes": jets["bytes"],
            "all_bytes": every["bytes"], "ratio": every["bytes"] / jets["bytes"],
            "coded": [(c["name"], c["jets"], c["bytes"]) for c in table["collections"]],
            "carried": [line.partition(":")[0] for line in every["carried_not_coded"]],
            "within": bool(ev["all_within_bounds"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write the Markdown table here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in FILES:
            path = SHARED / name
            if not path.exists():
                print(f"skipped (not here): {name}", file=sys.stderr)
                continue
            for bound in BOUNDS:
                rows.append(one(path, bound, Path(tmp)))
                r = rows[-1]
                print(f"{r['file']} {bound}: all {r['all_bytes']:,} B against {r['jets_bytes']:,} B "
                      f"({r['ratio']:.3f}x), within bounds: {r['within']}", flush=True)
    lines = [f"# `--collection all` against the jet collections alone ({datetime.date.today()})", "",
             f"`python examples/collections_all.py` (jetzip {jetzip.__version__}); load average "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}. Whole `.aez` files, error-bounded codec.", "",
             "| file | bound | jets alone B | `all` B | ratio | coded by `all` (members, bytes) "
             "| carried instead | all within bounds |",
             "|---|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        coded = "; ".join(f"{n} ({k}, {b:,} B)" for n, k, b in r["coded"])
        lines.append(f"| `{r['file']}` | {r['bound']} | {r['jets_bytes']:,} | {r['all_bytes']:,} | "
                     f"{r['ratio']:.3f} | {coded} | {', '.join(r['carried']) or '-'} | "
                     f"{'yes' if r['within'] else 'NO'} |")
    smaller = sum(r["all_bytes"] < r["jets_bytes"] for r in rows)
    lines += ["", f"`all` smaller than the jets alone: {smaller} of {len(rows)}; every coded value within its "
              f"bound: {sum(r['within'] for r in rows)} of {len(rows)}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if smaller == len(rows) and all(r["within"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
