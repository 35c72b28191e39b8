#!/usr/bin/env python3
"""Fuzz the bounded codec's payload decoder with mutated chunks.

Why: a ``.aez`` file's CRCs protect against damage, not against a crafted file (a CRC is
recomputed in a second). The bounded decoder must therefore distrust every chunk: never crash,
never hang, and never hand out a value that no honest payload under the file's configuration
could hold (a step the bounds do not allow, a chunk spliced from a file with other bounds, NaN,
inf, pt <= 0, |phi| > pi, ...). ``tests/test_bounded_fuzz.py`` runs a few hundred seeded cases
of this oracle in CI; this script runs as many as you like and prints the count of each outcome.

Payloads fuzzed: chunks the current encoder writes (each chunk's own tables, and the shipped
learned entropy model), and the version 1 and 2 chunks of the golden files
``tests/golden/v2.0_bounded_nano.aez`` and ``v2.0_bounded_learned_nano.aez``. Mutations: bit
flips (anywhere, or in the first 96 bytes where the parameters are), random bytes, truncation,
inserted and deleted runs, a whole chunk written under other bounds (must be refused), and
random combinations. Each mutant is decoded and counted as:

- refused: a FormatError (the expected outcome for most);
- identical: decodes to the original's values;
- other values: decodes without error to values an honest payload could hold (every coded value
  on the configuration's quantization grid, finite, pt > 0, |phi| <= pi; a CRC upstream is what
  notices such a change);
- violation: decodes to a value no honest payload can hold (NaN or inf, off the grid, ...);
- crash: any other exception (the first few tracebacks are printed).

The exit code is 1 if there was any violation or crash.

Example::

    python examples/fuzz_bounded.py --cases 20000 --seed 1
"""
from __future__ import annotations

import argparse
import collections
import math
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from jetzip.codecs.bounded import BoundedCodec, parse_error_bound
from jetzip.errors import FormatError

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
HEAD_BYTES = 96
SHOWN_TRACEBACKS = 5


@dataclass
class Case:
    """One valid payload with what decoding it must give."""

    name: str
    codec: BoundedCodec
    payload: bytes
    n: int
    counts: np.ndarray | None
    reference: dict[str, np.ndarray]
    other: bytes  # the same jets encoded under other bounds (a spliced chunk)


def synthetic_jets(n_events: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """pt-sorted events of jets like NanoAOD's, with exact zeros and signed masses, and a few
    jets the codec stores verbatim (pt <= 0, |eta| beyond 10^4)."""
    from jetzip import synthetic

    counts = synthetic.counts(n_events, seed).astype(np.int64)
    n = int(counts.sum())
    j = synthetic.jets(n, seed + 1)
    event = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-j["pt"], event))
    cols = {k: np.asarray(v[order], np.float32).copy() for k, v in j.items()}
    cols["m"][::37] = 0.0
    cols["m"][5::41] = -0.0
    cols["m"][7::43] = -1e-3
    cols["pt"][11::301] = 0.0
    cols["eta"][13::307] = 2e4
    return cols, counts.astype(np.uint32)


def golden_chunks(name: str) -> list[tuple[BoundedCodec, bytes, int, np.ndarray | None]]:
    """(codec, payload, n_jets, counts) of every chunk of a golden file."""
    import jetzip

    out = []
    with jetzip.open_aez(GOLDEN / name) as f:
        codec = f.codec()
        assert isinstance(codec, BoundedCodec)
        for c in f.chunks():
            out.append((codec, bytes(c.payload), c.n_jets, c.counts))
    return out


def cases(model: Any | None = None) -> list[Case]:
    """The valid payloads the mutants start from."""
    from jetzip.entropy.context import default_context_model

    model = model or default_context_model()
    cols, counts = synthetic_jets(700, 5)
    n = len(cols["pt"])
    out = []
    for label, cm in (("tables", None), ("learned", model)):
        codec = BoundedCodec(parse_error_bound("1e-3", "PtEtaPhiM"), "PtEtaPhiM", context_model=cm)
        other = BoundedCodec(parse_error_bound("0.1", "PtEtaPhiM"), "PtEtaPhiM", context_model=cm)
        payload = codec.encode(cols, counts)
        out.append(Case(f"current/{label}", codec, payload, n, counts, codec.decode(payload, n, counts),
                        other.encode(cols, counts)))
    # constituents of jets as (px, py, pz, E): the Cartesian path and the constituents' plan
    from jetzip import synthetic

    jets = synthetic.jets(n, 9)
    xyz = {"px": jets["pt"] * np.cos(jets["phi"]), "py": jets["pt"] * np.sin(jets["phi"]),
           "pz": jets["pt"] * np.sinh(jets["eta"])}
    xyz["E"] = np.sqrt(xyz["px"] ** 2 + xyz["py"] ** 2 + xyz["pz"] ** 2 + jets["m"] ** 2)
    xyz = {k: v.astype(np.float32) for k, v in xyz.items()}
    codec = BoundedCodec(parse_error_bound("1e-3", "PxPyPzE"), "PxPyPzE", kind="constituents")
    other = BoundedCodec(parse_error_bound("1e-2", "PxPyPzE"), "PxPyPzE", kind="constituents")
    payload = codec.encode(xyz, counts)
    out.append(Case("current/constituents", codec, payload, n, counts, codec.decode(payload, n, counts),
                    other.encode(xyz, counts)))
    for name in ("v2.0_bounded_nano.aez", "v2.0_bounded_learned_nano.aez"):
        chunks = golden_chunks(name)
        for i in (0, len(chunks) - 1):
            codec, payload, n_jets, cnt = chunks[i]
            j, k = (i + 1) % len(chunks), i
            other = chunks[j][1] if j != k else b""
            out.append(Case(f"{name}/chunk{i}", codec, payload, n_jets, cnt,
                            codec.decode(payload, n_jets, cnt), other))
    return out


# --- mutations ------------------------------------------------------------------------------

def flip(p: bytearray, rng: np.random.Generator, head: bool = False) -> None:
    i = int(rng.integers(min(len(p), HEAD_BYTES) if head else len(p)))
    p[i] ^= 1 << int(rng.integers(8))


def mutate(payload: bytes, other: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """(kind of mutation, mutant)."""
    p = bytearray(payload)
    kind = str(rng.choice(["flip", "flip_head", "byte", "byte_head", "truncate", "insert", "delete",
                           "splice", "combo"]))
    if kind == "flip":
        flip(p, rng)
    elif kind == "flip_head":
        flip(p, rng, head=True)
    elif kind in ("byte", "byte_head"):
        i = int(rng.integers(min(len(p), HEAD_BYTES) if kind == "byte_head" else len(p)))
        p[i] = int(rng.integers(256))
    elif kind == "truncate":
        del p[int(rng.integers(len(p))):]
    elif kind == "insert":
        i = int(rng.integers(len(p) + 1))
        p[i:i] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    elif kind == "delete":
        i = int(rng.integers(len(p)))
        del p[i:i + int(rng.integers(1, 9))]
    elif kind == "splice":  # the chunk of another file (other bounds, or another chunk)
        p = bytearray(other) if other else bytearray(payload[: len(payload) // 2])
    else:
        for _ in range(int(rng.integers(2, 6))):
            flip(p, rng, head=bool(rng.integers(2)))
    return kind, bytes(p)


# --- the oracle -----------------------------------------------------------------------------

def grid_violations(case: Case, dec: dict[str, np.ndarray]) -> int:
    """Jets whose decoded values no honest payload under `case.codec`'s configuration holds.

    A jet passes if it equals a jet of the reference decode that is off the grid (a verbatim
    jet of the original), or if it is finite with pt > 0, |phi| <= pi, log pt on the pt grid,
    and the 4th column of its class's sign on its grid relative to pt."""
    codec = case.codec
    steps = codec.grid_steps()
    four = codec.fourth
    x = _polar(dec, four)
    ref = _polar(case.reference, four)
    with np.errstate(all="ignore"):
        def on_grid(cols: np.ndarray) -> np.ndarray:
            pt, eta, phi, x4 = cols.T
            ok = np.isfinite(cols).all(axis=1) & (pt > 0) & (np.abs(phi) <= math.pi)
            ok &= _integral(np.log(pt) / steps["pt"])
            if steps.get("eta") is not None:
                ok &= _integral(eta / steps["eta"])
            if four == "m":
                rel = np.log(np.abs(x4)) - np.log(pt)
                ok &= (x4 == 0) | _integral(rel / steps[four])
            else:
                ok &= _integral((np.log(x4) - np.log(pt) - np.log(np.cosh(_snap(eta, steps.get("eta"))))) / steps[four])
            return ok

        ref_verbatim = {tuple(r) for r in ref[~on_grid(ref)].tolist()}
        ok = on_grid(x)
    bad = np.flatnonzero(~ok)
    return sum(tuple(x[i].tolist()) not in ref_verbatim for i in bad)


def _polar(cols: dict[str, np.ndarray], four: str) -> np.ndarray:
    """(n, 4) pt, eta, phi, 4th column of decoded columns, polar or Cartesian."""
    if "px" not in cols:
        return np.stack([cols[r] for r in ("pt", "eta", "phi", four)], axis=1)
    with np.errstate(all="ignore"):
        pt = np.hypot(cols["px"], cols["py"])
        return np.stack([pt, np.arcsinh(cols["pz"] / pt), np.arctan2(cols["py"], cols["px"]), cols[four]], axis=1)


def _integral(v: np.ndarray) -> np.ndarray:
    return np.isfinite(v) & (np.abs(v - np.rint(v)) < 1e-6)


def _snap(eta: np.ndarray, step: float | None) -> np.ndarray:
    return eta if step is None else np.rint(eta / step) * step


def outcome(case: Case, mutant: bytes) -> str:
    try:
        dec = case.codec.decode(mutant, case.n, case.counts)
    except FormatError:
        return "refused"
    if all(np.array_equal(dec[k], case.reference[k], equal_nan=True) for k in case.reference):
        return "identical"
    return "violation" if grid_violations(case, dec) else "other values"


def run(n_cases: int, seed: int, report: Callable[[str], None] = print,
        only: Callable[[Case], bool] = lambda c: True) -> dict[str, collections.Counter]:
    """Decode `n_cases` mutants; returns {outcome: Counter of case/mutation kinds}."""
    rng = np.random.default_rng(seed)
    pool = [c for c in cases() if only(c)]
    results: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    shown = 0
    for _ in range(n_cases):
        case = pool[int(rng.integers(len(pool)))]
        kind, mutant = mutate(case.payload, case.other, rng)
        try:
            what = outcome(case, mutant)
        except Exception:  # noqa: BLE001 - the point is to count them
            what = "crash"
            if shown < SHOWN_TRACEBACKS:
                report(f"crash on {case.name} ({kind}):\n{traceback.format_exc()}")
                shown += 1
        if kind == "splice" and case.other and what != "refused":
            what = f"{what} (splice not refused)"
        results[what][f"{case.name} {kind}"] += 1
    return results


def summary(results: dict[str, collections.Counter]) -> Iterator[str]:
    total = sum(sum(c.values()) for c in results.values())
    yield f"{total} mutated payloads"
    for what in ("refused", "identical", "other values", "violation", "crash"):
        yield f"  {what:<13} {sum(results.get(what, collections.Counter()).values()):>7}"
    for what in sorted(set(results) - {"refused", "identical", "other values", "violation", "crash"}):
        yield f"  {what:<13} {sum(results[what].values()):>7}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = run(args.cases, args.seed)
    for line in summary(results):
        print(line)
    for what in ("violation", "crash"):
        for name, k in results.get(what, collections.Counter()).most_common(10):
            print(f"  {what}: {name} x{k}")
    print(f"{time.perf_counter() - t0:.1f} s")
    bad = sum(sum(c.values()) for w, c in results.items() if w in ("violation", "crash") or "not refused" in w)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
