"""Two fixes to uproot's TTree writer: linear-time tree creation (a NanoAOD tree of 1,500
branches took minutes) and counters of the input's integer type (NanoAOD's ``nJet`` is uint32;
uproot writes every counter as int32, which C++ readers of ``UInt_t`` refuse).

uproot 5.7's ``Tree._build_out`` serializes a new TTree's metadata into a list ``out`` and, for
every branch, sums the lengths of *all* of ``out`` so far (three times): quadratic in the number
of branches. Measured on this project's 2-core machine: 250 branches 0.4 s, 1,000 branches 5.8 s,
1,500 branches 26-144 s (depending on load), which made restoring a whole NanoAOD file take
minutes. The same function with ``out`` a list that keeps those two totals as it grows is linear
(1,500 branches: 7 s under the same load) and produces the same bytes.

:func:`install` applies it only when (1) the source of ``_build_out`` has exactly the expected
expressions, and (2) the patched function gives byte-identical metadata and the same branch
offsets as the original on a check tree; otherwise uproot is left as it is. Set
``JETZIP_UPROOT_FIXES=0`` to leave uproot alone in any case. The fix belongs upstream
(scikit-hep/uproot5, ``uproot/writing/_cascadetree.py``); this goes once uproot has it.

Counters: uproot creates a jagged branch's counter as int32. Inside :func:`counter_dtypes`,
a new tree's counters named in the mapping get that integer type instead (dtype and leaf title
together; ``extend`` already casts the counts to the counter's dtype). :func:`install` checks
this too (a uint32 counter written and read back) before using it.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import re
import tempfile
import textwrap
import threading
from typing import Any

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"done": False, "active": False, "why": ""}

_TOTAL = re.compile(r"sum\(\s*len\(x\) for x in out if x is not None\s*\)")
_NONES = "sum(1 if x is None else 0 for x in out)"


class TrackedOut(list):
    """A list of bytes-or-None that knows the total length of its bytes and its number of Nones."""

    def __init__(self, items=()) -> None:
        super().__init__(items)
        self._recount()

    def _recount(self) -> None:
        self._total = sum(len(x) for x in self if x is not None)
        self._nones = sum(1 for x in self if x is None)

    def _add(self, x, sign: int) -> None:
        if x is None:
            self._nones += sign
        else:
            self._total += sign * len(x)

    def append(self, x) -> None:
        super().append(x)
        self._add(x, 1)

    def insert(self, i, x) -> None:
        super().insert(i, x)
        self._add(x, 1)

    def extend(self, xs) -> None:
        for x in xs:
            self.append(x)

    def __iadd__(self, xs):  # type: ignore[override,misc]
        self.extend(xs)
        return self

    def __setitem__(self, i, v) -> None:
        if isinstance(i, int):
            self._add(self[i], -1)
            super().__setitem__(i, v)
            self._add(v, 1)
        else:  # anything else: count again
            super().__setitem__(i, v)
            self._recount()

    def __delitem__(self, i) -> None:
        super().__delitem__(i)
        self._recount()

    def pop(self, *args):
        x = super().pop(*args)
        self._add(x, -1)
        return x

    def remove(self, x) -> None:
        super().remove(x)
        self._add(x, -1)


def _patched(original):
    src = textwrap.dedent(inspect.getsource(original))
    if src.count("out = [None]\n") != 1 or src.count(_NONES) != 3 or len(_TOTAL.findall(src)) != 3:
        return None
    src = src.replace("out = [None]\n", "out = _JetzipTrackedOut([None])\n")
    src = src.replace(_NONES, "out._nones")
    src = _TOTAL.sub("out._total", src)
    module = inspect.getmodule(original)
    namespace = dict(vars(module))
    namespace["_JetzipTrackedOut"] = TrackedOut
    exec(compile(src, f"<jetzip linear {original.__qualname__}>", "exec"), namespace)  # noqa: S102
    return namespace[original.__name__]


def _self_check(original, fast) -> bool:
    """Same metadata bytes and branch offsets as uproot's own on a tree of every branch kind."""
    import awkward as ak
    import numpy as np
    import uproot

    fd, path = tempfile.mkstemp(suffix=".root", prefix="jetzip-check-")
    os.close(fd)
    try:
        with uproot.recreate(path) as f:
            flt = ak.types.ListType(ak.types.NumpyType("float32"))
            types: dict[str, Any] = {}
            for i in range(24):
                types[f"s{i}"] = [np.float32, np.int64, np.dtype(("f8", (3,))), np.bool_][i % 4]
                if i % 3 == 0:
                    types[f"j{i}"] = flt
            tree = f.mktree("T", types,
                            counter_name=lambda b: "nJ" if b.startswith("j") and int(b[1:]) % 2 else f"n{b}")
            data = {k: ak.Array([[1.0, 2.0], [], [3.0]]) if k.startswith("j") else
                    np.zeros((3, *np.dtype(v).shape), dtype=np.dtype(v).base) for k, v in types.items()}
            tree.extend(data)
            cascading = tree._cascading

            def offsets():
                return [(d.get("metadata_start"), d.get("basket_metadata_start"), d.get("tleaf_reference_number"))
                        for d in cascading._branch_data]

            a = b"".join(original(cascading))
            oa = offsets()
            b = b"".join(fast(cascading))
            ob = offsets()
            b"".join(original(cascading))  # leave the offsets as uproot computed them
        return a == b and oa == ob
    finally:
        os.unlink(path)


_COUNTERS = threading.local()


@contextlib.contextmanager
def counter_dtypes(mapping: dict[str, str]):
    """Counters created while this is active get these integer types (name -> dtype name)."""
    previous = getattr(_COUNTERS, "map", None)
    _COUNTERS.map = {k: v for k, v in mapping.items() if v}
    try:
        yield
    finally:
        _COUNTERS.map = previous


def _wrap_init(original_init):
    import numpy as np

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        wanted = getattr(_COUNTERS, "map", None)
        if not wanted:
            return
        for datum in self._branch_data:
            name = datum.get("fName")
            if datum.get("kind") != "counter" or name not in wanted:
                continue
            dt = np.dtype(wanted[name])
            if dt.kind in "iu" and dt.itemsize <= 8:
                fresh = self._branch_np(name, dt, dt, kind="counter")
                datum["dtype"] = fresh["dtype"]
                datum["fTitle"] = fresh["fTitle"]

    __init__._jetzip_counters = True  # type: ignore[attr-defined]
    return __init__


def _counter_check() -> bool:
    """A uint32 counter written under counter_dtypes reads back as uint32 with the right counts."""
    import awkward as ak
    import numpy as np
    import uproot

    fd, path = tempfile.mkstemp(suffix=".root", prefix="jetzip-check-")
    os.close(fd)
    try:
        with uproot.recreate(path) as f, counter_dtypes({"nJet": "uint32"}):
            flt = ak.types.ListType(ak.types.NumpyType("float32"))
            t = f.mktree("T", {"nJet": np.uint32, "Jet_pt": flt, "Jet_eta": flt}, counter_name=lambda b: "nJet")
            arr = ak.Array([[1.0, 2.0], [], [3.0]])
            t.extend({"Jet_pt": arr, "Jet_eta": arr})
        t = uproot.open(path)["T"]
        return (t["nJet"].typename == "uint32_t" and t["nJet"].array(library="np").tolist() == [2, 0, 1]
                and t["Jet_eta"].array().tolist() == [[1.0, 2.0], [], [3.0]]
                and t["Jet_pt"].count_branch.name == "nJet")
    finally:
        os.unlink(path)


def install() -> bool:
    """Use the linear ``_build_out`` if it is safe here (once per process); True when active."""
    with _LOCK:
        if _STATE["done"]:
            return bool(_STATE["active"])
        _STATE["done"] = True
        if os.environ.get("JETZIP_UPROOT_FIXES", "1") == "0":
            _STATE["why"] = "disabled by JETZIP_UPROOT_FIXES=0"
            return False
        try:
            from uproot.writing import _cascadetree

            original = _cascadetree.Tree._build_out
            fast = _patched(original)
            if fast is None:
                _STATE["why"] = "uproot's _build_out is not the one this fix knows"
                return False
            if not _self_check(original, fast):
                _STATE["why"] = "the linear _build_out did not reproduce uproot's bytes"
                return False
            _cascadetree.Tree._build_out = fast
            _STATE["active"] = True
            original_init = _cascadetree.Tree.__init__
            _cascadetree.Tree.__init__ = _wrap_init(original_init)
            if _counter_check():
                _STATE["counters"] = True
            else:
                _cascadetree.Tree.__init__ = original_init
            return True
        except Exception as exc:  # noqa: BLE001 - any surprise: leave uproot as it is
            _STATE["why"] = f"{type(exc).__name__}: {exc}"
            return False
