#!/usr/bin/env python3
"""Write the bounded codec's payload fixtures (numcodecs style), once per payload version.

For each case, ``tests/golden/codecs/bounded/<version>/<case>/`` holds ``config.json`` (the codec's
configuration), and per chunk NN ``encoded.NN.bin`` (the payload), ``counts.NN.npy`` (jets per
event; absent for a flat table) and ``decoded.NN.npz`` (the original columns ``orig_<role>`` and
the decoded ones ``dec_<role>``). ``tests/test_bounded_fixtures.py`` decodes them forever. Never
rewrite a version's fixtures: a new payload version gets a new folder, and a case that is missing
is the only thing this script writes::

    .venv/bin/python tests/golden/codecs/make_bounded_fixtures.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import jetfactory  # noqa: E402
from test_bounded import adversarial  # noqa: E402

from jetzip.codecs.bounded import BoundedCodec, parse_error_bound  # noqa: E402
from jetzip.codecs.bounded.spec import VERSION  # noqa: E402
from jetzip.entropy.context import default_context_model  # noqa: E402


def events(n_events: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """pt-sorted events (as NanoAOD stores them) with exact zeros and signed masses."""
    counts = jetfactory.counts(n_events, seed).astype(np.int64)
    j = jetfactory.jets(int(counts.sum()), seed)
    order = np.lexsort((-j["pt"], np.repeat(np.arange(len(counts)), counts)))
    j = {k: v[order].copy() for k, v in j.items()}
    j["m"][::17] = -0.0
    j["m"][5::23] = -1.5e-4
    j["m"][7::29] = 0.0
    return j, counts.astype(np.uint32)


def cases() -> dict[str, tuple[BoundedCodec, list[tuple[dict[str, np.ndarray], np.ndarray | None]]]]:
    model = default_context_model()
    nano, nano_counts = events(300, 41)
    half = len(nano_counts) // 2
    cut = int(nano_counts[:half].sum())
    adv, adv_counts = adversarial(600, seed=42)
    flat = jetfactory.jets(400, 43)
    flat_e = {"E": jetfactory.energy(flat["pt"], flat["eta"], flat["m"]), "pt": flat["pt"], "eta": flat["eta"],
              "phi": flat["phi"]}
    return {
        # two chunks of one file: own tables, the bounds of the v2.0 golden file
        "nano_tables": (BoundedCodec(parse_error_bound("pt=5e-4,eta=2.5e-4,phi=2.5e-4,mass=1e-3", "PtEtaPhiM"),
                                     "PtEtaPhiM"),
                        [({k: v[:cut] for k, v in nano.items()}, nano_counts[:half]),
                         ({k: v[cut:] for k, v in nano.items()}, nano_counts[half:])]),
        # the shipped learned entropy model at NanoAOD's precision
        "nano_learned": (BoundedCodec(parse_error_bound("nanoaod", "PtEtaPhiM"), "PtEtaPhiM", context_model=model),
                         [(nano, nano_counts)]),
        # the hard cases: verbatim jets, |eta| 5, phi at +-pi, signed zeros, tiny masses
        "adversarial": (BoundedCodec(parse_error_bound("1e-3", "PtEtaPhiM"), "PtEtaPhiM", context_model=model),
                        [(adv, adv_counts)]),
        # a flat (E, pt, eta, phi) table
        "flat_e": (BoundedCodec(parse_error_bound("3.46e-3", "EPtEtaPhi"), "EPtEtaPhi"), [(flat_e, None)]),
        # Cartesian (px, py, pz, m) jets, with a pt = 0 jet (verbatim) and exact zeros (issue 21)
        "cartesian_m": (BoundedCodec(parse_error_bound("1e-3", "PxPyPzM"), "PxPyPzM"), [cartesian(nano, nano_counts)]),
        # the particles of jets as (px, py, pz, E) constituents (issue 21)
        "constituents_e": (BoundedCodec(parse_error_bound("1e-3", "PxPyPzE"), "PxPyPzE", kind="constituents"),
                           [particles(44)]),
    }


def cartesian(jets: dict[str, np.ndarray], counts: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    pt, eta, phi = (jets[k].astype(np.float64) for k in ("pt", "eta", "phi"))
    cols = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "m": jets["m"]}
    cols = {k: np.asarray(v, np.float32).copy() for k, v in cols.items()}
    cols["px"][3] = cols["py"][3] = 0.0  # pt = 0
    cols["py"][8] = 0.0
    return cols, counts


def particles(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Jets of 5 to 60 massless particles with falling pt around a jet axis."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(5, 60, 25).astype(np.uint32)
    n = int(counts.sum())
    axis = np.repeat(rng.normal(0, 1.5, (len(counts), 2)), counts, axis=0)
    pt = np.concatenate([np.sort(rng.exponential(5.0, int(k)))[::-1] + 0.1 for k in counts])
    eta = axis[:, 0] + rng.normal(0, 0.2, n) / np.sqrt(pt)
    phi = (axis[:, 1] + rng.normal(0, 0.2, n) / np.sqrt(pt) + np.pi) % (2 * np.pi) - np.pi
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    cols = {"px": px, "py": py, "pz": pz, "E": np.sqrt(px * px + py * py + pz * pz)}
    return {k: v.astype(np.float32) for k, v in cols.items()}, counts


def main() -> None:
    for name, (codec, chunks) in cases().items():
        folder = HERE / "bounded" / str(VERSION) / name
        if folder.exists():
            continue
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(codec.get_config(), indent=1, sort_keys=True) + "\n")
        for i, (cols, counts) in enumerate(chunks):
            payload = codec.encode(cols, counts)
            (folder / f"encoded.{i:02d}.bin").write_bytes(payload)
            if counts is not None:
                np.save(folder / f"counts.{i:02d}.npy", counts)
            dec = codec.decode(payload, len(next(iter(cols.values()))), counts)
            np.savez_compressed(folder / f"decoded.{i:02d}.npz",
                                **{f"orig_{k}": np.asarray(v) for k, v in cols.items()},
                                **{f"dec_{k}": v for k, v in dec.items()})
        print("wrote", folder.relative_to(HERE))


if __name__ == "__main__":
    main()
