#!/usr/bin/env python3
"""Does every file come back whole? Compress each file with no options (both codecs),
decompress it to its own format, and compare every tree and object, every readable branch
(names, order, entries) and every value.

For each file and codec the table gives: trees restored / in the input, branches carried /
readable, branches whose values are bit-identical (the coded four-vector columns are checked
against the codec's bound instead), jets within their bound (bounded codec), the options
needed (none, unless said), and the note of anything that failed.

Usage:
    python examples/whole_file.py [FILE ...] [--json OUT.json] [--codec bounded|latent|both]

Without files: every file of ``../shared/data/public/``, ``../shared/cases/`` and
``../shared/data/``. The comparison functions are what ``tests/test_whole_files.py`` asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
BOUND = "1e-3"


def shared_files() -> list[Path]:
    out = []
    for folder in (SHARED / "data" / "public", SHARED / "cases", SHARED / "data"):
        if folder.is_dir():
            out += sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in
                          (".root", ".h5", ".parquet", ".csv"))
    return out


# --- values -------------------------------------------------------------------------------------

def same_values(a: Any, b: Any) -> bool:
    """Bit-identical values and structure (NaN equal to NaN, dtypes equal), for numpy or
    awkward arrays of any type."""
    import awkward as ak

    a, b = ak.Array(a) if isinstance(a, np.ndarray) else a, ak.Array(b) if isinstance(b, np.ndarray) else b
    return _same_layout(ak.to_layout(a), ak.to_layout(b))


def same_fields(a: Any, b: Any, coded: set[str], name: str = "") -> bool:
    """`same_values`, field by field for records, leaving out the `coded` fields (named alone or
    as ``name.field``: an RNTuple's collection of records holding the coded jet columns, checked
    against the bound elsewhere)."""
    import awkward as ak

    fields = ak.fields(a)
    if not fields:
        return same_values(a, b)
    if set(fields) != set(ak.fields(b)):
        return False
    rest = [f for f in fields if f not in coded and f"{name}.{f}" not in coded]
    if len(rest) < len(fields) and a.ndim > 1 and not bool(ak.all(ak.num(a, axis=1) == ak.num(b, axis=1))):
        return False  # the coded members' lists: the same lengths
    return all(same_fields(a[f], b[f], coded, f"{name}.{f}" if name else f) for f in rest)


def _same_layout(x: Any, y: Any) -> bool:
    import awkward as ak

    if len(x) != len(y):
        return False
    if isinstance(x, ak.contents.IndexedOptionArray) or isinstance(x, ak.contents.ByteMaskedArray):
        x = x.project() if not isinstance(y, type(x)) else x
    if isinstance(x, ak.contents.NumpyArray) and isinstance(y, ak.contents.NumpyArray):
        xa, ya = np.asarray(x.data), np.asarray(y.data)
        if xa.dtype.newbyteorder("=") != ya.dtype.newbyteorder("="):
            return False
        return bool(np.array_equal(xa, ya, equal_nan=xa.dtype.kind in "fc"))
    if isinstance(x, ak.contents.RegularArray) and isinstance(y, ak.contents.RegularArray):
        return x.size == y.size and _same_layout(x.content, y.content)
    if isinstance(x, (ak.contents.ListOffsetArray, ak.contents.ListArray)) and \
            isinstance(y, (ak.contents.ListOffsetArray, ak.contents.ListArray)):
        x, y = x.to_ListOffsetArray64(True), y.to_ListOffsetArray64(True)
        xo, yo = np.asarray(x.offsets.data), np.asarray(y.offsets.data)
        if not np.array_equal(np.diff(xo), np.diff(yo)):
            return False
        return _same_layout(x.content[xo[0]:xo[-1]], y.content[yo[0]:yo[-1]])
    if isinstance(x, ak.contents.RecordArray) and isinstance(y, ak.contents.RecordArray):
        return list(x.fields) == list(y.fields) and all(_same_layout(x.content(f), y.content(f)) for f in x.fields)
    return ak.to_list(x) == ak.to_list(y)


# --- ROOT ---------------------------------------------------------------------------------------

def root_objects(path: Path) -> dict[str, str]:
    import uproot

    with uproot.open(path) as f:
        out = {}
        for key, cls in f.classnames(recursive=True).items():
            name = key.rpartition(";")[0] or key
            out.setdefault(name, cls)
        return out


def root_branches(tree: Any) -> tuple[list[str], dict[str, Any], list[str]]:
    """(every leaf name in order, name -> array for the readable ones, unreadable names).

    Leaves are named as jetzip names them (``Jet.PT`` for the TClonesArray leaf ``Jet/Jet.PT``,
    ``Particle_2.PT`` for a second top-level branch ``Particle``): the documented mapping."""
    from jetzip.tables.root_layout import classify_ttree

    names, arrays, unreadable = [], {}, []
    if "RNTuple" not in type(tree).__name__:
        for lf in classify_ttree(tree):
            names.append(lf.name)
            try:
                arrays[lf.name] = (lf.branch if lf.branch is not None else tree[lf.key]).array(library="ak")
            except Exception:  # noqa: BLE001 - what uproot cannot read
                unreadable.append(lf.name)
        return names, arrays, unreadable
    arr = tree.arrays()
    for field in arr.fields:
        names.append(field)
        arrays[field] = arr[field]
    return names, arrays, unreadable


def leaf_of(name: str) -> str:
    return name.rpartition("/")[2]


def compare_root(original: Path, restored: Path, coded: set[str], warnings: list[str] = ()) -> dict[str, Any]:
    """Every tree and object of `original` in `restored`; every readable branch by name (leaf
    name for split branches: ``Jet/Jet.PT`` comes back as ``Jet.PT``), its entries, its values:
    bit-identical in the form the ROOT writer documents for what uproot cannot write
    (:func:`jetzip.tables.root_writer.writable`: records as fields, lists of lists flattened
    with their lengths), the `coded` four-vector columns checked against the bound elsewhere."""
    import uproot

    from jetzip.tables.root_writer import writable

    o_objs, r_objs = root_objects(original), root_objects(restored)
    report: dict[str, Any] = {"trees": 0, "trees_restored": 0, "objects": 0, "objects_restored": 0,
                              "branches": 0, "readable": 0, "carried": 0, "identical": 0, "problems": []}
    with uproot.open(original) as fo, uproot.open(restored) as fr:
        for name, cls in o_objs.items():
            if cls == "TDirectory":
                continue
            is_tree = cls in ("TTree", "ROOT::RNTuple")
            report["trees" if is_tree else "objects"] += 1
            if name not in r_objs:
                if any(name in w and "not carried" in w for w in warnings):
                    report["named_not_carried"] = report.get("named_not_carried", 0) + 1
                    continue  # named by compress: uproot cannot write it
                if is_tree and not root_branches(fo[name])[1]:
                    report["unreadable_trees"] = report.get("unreadable_trees", 0) + 1
                    continue  # nothing uproot reads: named by compress, not restorable
                report["problems"].append(f"{cls} {name} missing")
                continue
            report["trees_restored" if is_tree else "objects_restored"] += 1
            if not is_tree:
                continue
            to, tr = fo[name], fr[name]
            if to.num_entries != tr.num_entries:
                report["problems"].append(f"{name}: {tr.num_entries} entries, the input {to.num_entries}")
            names, arrays, unreadable = root_branches(to)
            r_names, r_arrays, _ = root_branches(tr)
            r_by_leaf = {leaf_of(n): n for n in r_names}
            report["branches"] += len(names)
            report["readable"] += len(arrays)
            report["unreadable"] = report.get("unreadable", 0) + len(unreadable)  # named by compress
            for b, arr in arrays.items():
                report["carried"] += 1
                if b in coded or leaf_of(b) in coded or f"{b}_px" in r_arrays:
                    report["identical"] += 1  # coded (checked against the bound), or TLorentzVector jets
                    continue
                if "RNTuple" in type(to).__name__:  # RNTuples are restored field for field
                    if b not in r_arrays:
                        report["carried"] -= 1
                        report["problems"].append(f"{name}: field {b} missing")
                    elif same_fields(arr, r_arrays[b], coded, b):
                        report["identical"] += 1
                    else:
                        report["problems"].append(f"{name}: field {b} differs")
                    continue
                # what the writer makes of it (the documented forms: fields, flattened lists)
                pieces, _ = writable(b, arr)
                if not pieces:
                    report["carried"] -= 1
                    report["not_restorable"] = report.get("not_restorable", 0) + 1
                    continue
                missing = [p for p in pieces if p not in r_arrays and r_by_leaf.get(leaf_of(p)) not in r_arrays]
                if missing:
                    report["carried"] -= 1
                    report["problems"].append(f"{name}: branch {b} missing ({missing[0]})")
                    continue
                if all(same_values(v, r_arrays[p if p in r_arrays else r_by_leaf[leaf_of(p)]])
                       for p, v in pieces.items()):
                    report["identical"] += 1
                else:
                    report["problems"].append(f"{name}: branch {b} differs")
    return report


# --- any format: through jetzip -------------------------------------------------------------------

def coded_columns(aez_path: Path) -> set[str]:
    """Every branch a codec stores (lossy), as the input names it."""
    from jetzip.aez import open_aez
    from jetzip.tables.wide import wide_of

    with open_aez(aez_path) as aez:
        out = {n for t in aez.tables for c in t.all_collections() for n in c.columns.values()}
        for t in aez.tables:
            w = wide_of(t) if t.layout == "jets-per-row" else None
            if w is not None:  # several jets per row: every slot's four columns
                out |= {n for jet in w.jets for n in jet.values()}
        return out


def check_file(path: Path, codec: str, work: Path) -> dict[str, Any]:
    """Compress `path` with no options (the bounded codec at 1e-3, or the default), decompress
    to its own format, compare; returns one row of the table."""
    import jetzip

    row: dict[str, Any] = {"file": path.name, "codec": codec, "input_bytes": path.stat().st_size}
    aez = work / f"{path.stem}.{codec}.aez"
    out = work / f"{path.stem}.{codec}.restored{path.suffix}"
    warnings: list[str] = []
    t0 = time.perf_counter()
    try:
        rep = jetzip.compress(path, aez, error_bound=BOUND if codec == "bounded" else None, force=True,
                              warn=warnings.append)
        row.update(aez_bytes=rep["bytes"], ratio=rep["bytes"] / row["input_bytes"], jets=rep["n_jets"])
        jetzip.decompress(aez, out, force=True, warn=warnings.append)
        row["restored_bytes"] = out.stat().st_size
        if codec == "bounded":
            ev = jetzip.evaluate(path, aez)
            row["within_bound"] = bool(ev.get("all_within_bounds"))
    except Exception as exc:  # noqa: BLE001 - a JetzipError, or an internal error to report
        row["error"] = str(exc) if isinstance(exc, jetzip.JetzipError) else \
            f"internal error ({type(exc).__name__}: {exc})"
        row["seconds"] = time.perf_counter() - t0
        return row
    row["warnings"] = warnings
    if path.suffix == ".root":
        cmp = compare_root(path, out, coded_columns(aez), warnings)
        row.update(cmp)
    row["seconds"] = time.perf_counter() - t0
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--codec", choices=("bounded", "latent", "both"), default="both")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    files = args.files or shared_files()
    codecs = ["bounded", "latent"] if args.codec == "both" else [args.codec]
    rows = []
    print(f"{'file':42s} {'codec':8s} {'in kB':>8s} {'aez':>6s} {'trees':>6s} {'branches':>13s} "
          f"{'identical':>9s} {'unread':>6s} {'bound':>5s}  notes")
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            for codec in codecs:
                r = check_file(path, codec, Path(tmp))
                rows.append(r)
                if "error" in r:
                    print(f"{r['file']:42s} {codec:8s} {r['input_bytes'] / 1e3:8.1f} ERROR {r['error'][:120]}")
                    continue
                trees = f"{r.get('trees_restored', '-')}/{r.get('trees', '-')}"
                branches = f"{r.get('carried', '-')}/{r.get('readable', '-')}"
                ident = f"{r.get('identical', '-')}"
                bound = {True: "yes", False: "NO"}.get(r.get("within_bound"), "-")
                notes = "; ".join(r.get("problems", [])[:3])
                print(f"{r['file']:42s} {codec:8s} {r['input_bytes'] / 1e3:8.1f} {r['ratio']:6.2f} {trees:>6s} "
                      f"{branches:>13s} {ident:>9s} {r.get('unreadable', 0):>6d} {bound:>5s}  {notes[:150]}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    bad = [r for r in rows if "error" in r or r.get("problems") or r.get("within_bound") is False]
    print(f"{len(rows) - len(bad)} of {len(rows)} whole (options: none); machine: {os.cpu_count()} CPUs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
