"""The bounded codec's parameters: bounds, quantization steps, context grids, the config tag.

Everything here is a pure function of the codec's configuration (bounds, representation, units)
and, for the context grids, of a small index stored in each chunk: the encoder and the decoder
compute the same numbers, and a decoder can tell a stored parameter that no encoder of this
configuration would write.

Steps (payload version 3; versions 1 and 2 in :func:`legacy_step_choices`):

- relative bound b (pt, E, mass): ``s = 2 log1p(b (1 - SAFETY) - F32_REL)``, so that
  ``|log x^ - log x| <= s/2`` keeps ``|x^ - x| <= b |x|`` after the float32 rounding of a writer;
- absolute bound b (eta, phi): ``s = 2 (b (1 - SAFETY) - u)`` with ``u = 2^floor(log2 b) / 64``,
  half the float32 spacing at ``|x| < 2^(log2 u + 25)`` (512 at b = 1e-3, 128 at NanoAOD's
  2^-12): the bound holds after float32 rounding below that size, and the encoder stores any
  jet beyond it verbatim if it would miss. A step depends on the bound only (before version 3,
  on each chunk's largest |value|), so a jet decodes to the same value in whichever chunk it is.
"""
from __future__ import annotations

import json
import math
import zlib
from typing import Any, Mapping

import numpy as np

from ...errors import InputError

# Roles of each representation the codec bounds (features.REPRESENTATIONS), and of its 4th column
# (PtEtaPhi, pt, eta and phi only, is coded as PtEtaPhiM with every mass an exact zero: one
# mass class, no 4th column symbols; the zeros are not written back)
ROLES = {"EPtEtaPhi": ("pt", "eta", "phi", "E"), "PtEtaPhiM": ("pt", "eta", "phi", "m"),
         "PxPyPzE": ("px", "py", "pz", "E"), "PxPyPzM": ("px", "py", "pz", "m"), "PtEtaPhi": ("pt", "eta", "phi")}
FOURTH = {rep: roles[3] if len(roles) == 4 else "m" for rep, roles in ROLES.items()}
CARTESIAN = {"PxPyPzE", "PxPyPzM"}
# relative bounds: pt, E, mass relative to themselves; px, py relative to pt and pz to |p|
RELATIVE = {"pt": True, "eta": False, "phi": False, "E": True, "m": True, "px": True, "py": True, "pz": True}
KIND_TEXT = {"pt": "relative", "eta": "absolute", "phi": "absolute", "E": "relative", "m": "relative",
             "px": "relative to pt", "py": "relative to pt", "pz": "relative to |p|"}
ALIASES = {"pt": "pt", "eta": "eta", "phi": "phi", "e": "E", "energy": "E", "m": "m", "mass": "m",
           "px": "px", "py": "py", "pz": "pz"}
CARTESIAN_SHARES = (0.43, 0.56, 0.89)  # of a Cartesian bound, for pt, eta and phi (polar_bounds)
NANOAOD = {"pt": 2.0 ** -11, "eta": 2.0 ** -12, "phi": 2.0 ** -12, "E": 2.0 ** -11, "m": 2.0 ** -11}
# The same preset on Cartesian tables: the largest error NanoAOD's rounding of pt (2^-11
# relative) and of eta and phi (2^-12 absolute) puts on px, py (relative to pt: dpt cos(phi) -
# pt sin(phi) dphi, at most sqrt(5) 2^-12), on pz (relative to |p|: tanh(eta) dpt/pt + deta, at
# most 3 2^-12) and on E (relative: |p|'s error, at most 3 2^-12); the mass as NanoAOD stores it.
# (with the second-order terms a d + d^2 / 2 of a = 2^-11, d = 2^-12 on top)
_NANO_2ND = NANOAOD["pt"] * NANOAOD["eta"] + NANOAOD["eta"] ** 2 / 2
_NANO_XY = math.hypot(NANOAOD["pt"], NANOAOD["phi"]) + _NANO_2ND
_NANO_Z = NANOAOD["pt"] + NANOAOD["eta"] + _NANO_2ND
NANOAOD_CARTESIAN = {"px": _NANO_XY, "py": _NANO_XY, "pz": _NANO_Z, "E": _NANO_Z, "m": NANOAOD["m"]}
PRESETS = {"nanoaod": NANOAOD}
CARTESIAN_PRESETS = {"nanoaod": NANOAOD_CARTESIAN}
MIN_RELATIVE, MAX_RELATIVE = 1e-6, 0.5
MIN_ABSOLUTE, MAX_ABSOLUTE = 1e-5, 1.0
SAFETY = 1e-3  # steps sit this fraction below the bound
F32_REL = 2.0 ** -23  # >= twice float32's relative rounding error
# Context grids of the 4th column: pt edges (GeV), |eta| edges, how many of each a grid uses,
# and from how many coded jets on a chunk uses it (finer contexts pay for their tables only
# with enough jets)
PT_EDGES_GEV = (10.0, 15.0, 20.0, 30.0, 45.0, 70.0, 100.0, 150.0, 250.0, 400.0, 700.0, 1200.0)
ETA_EDGES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
GRIDS = ((0, 0), (3, 1), (6, 2), (12, 4), (12, 8))
GRID_MIN_JETS = (0, 2_000, 20_000, 150_000, 600_000)
ETA_PT_EDGES_GEV = (30.0, 100.0)  # eta is coded in these pt classes (central jets are harder)
# Constituents ("kind": "constituents"): contexts are the particle's pt bin (softer particles lie
# farther from the jet axis and have less E beyond |p|); finer bins from more particles on
CONSTITUENT_PT_EDGES_GEV = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
CONSTITUENT_GRIDS = ((0, 0), (2, 0), (4, 0), (8, 0))
CONSTITUENT_GRID_MIN = (0, 2_000, 10_000, 25_000)
KINDS = ("jets", "constituents")
ETA_PT_MIN_JETS = 2_000
UNIT_SCALE = {"GeV": 1.0, "MeV": 1e3, "TeV": 1e-3}  # GeV -> file units
LOG_UNITS = {"GeV": 0.0, "MeV": 6.907755278982137, "TeV": -6.907755278982137}  # log(GeV / file unit)
ULP_EXPONENTS = range(-23, 105)  # float32 spacing 2^k from |x| in [1, 2) up to 3e38 (k = 104)


def parse_error_bound(spec: str | float | Mapping[str, float], representation: str) -> dict[str, float]:
    """The per-column bounds for a table of `representation`, from the CLI's SPEC.

    Args:
        spec: one number (relative for pt and E or mass, absolute for eta and phi; for
            Cartesian tables |dpx|, |dpy| <= b pt, |dpz| <= b |p| and E or mass relative, pt and
            |p| those of the original four-vector), a string ``"pt=5e-4,eta=2.5e-4,phi=2.5e-4,
            mass=1e-3"`` (``"px=...,py=...,pz=...,E=..."`` for Cartesian tables; physics names,
            whatever the file calls its columns; columns left out get the smallest bound given),
            a mapping of the same, or the preset ``"nanoaod"``: CMS NanoAOD's precision (pt and
            mass 2^-11 relative, eta and phi 2^-12 absolute); on Cartesian tables the largest
            error that precision puts on px and py (sqrt(5) 2^-12 = 5.5e-4), pz and E (3 2^-12 =
            7.3e-4), each plus its second-order terms (2^-23 + 2^-25); mass 2^-11.
        representation: ``EPtEtaPhi``, ``PtEtaPhiM``, ``PxPyPzE`` or ``PxPyPzM``.

    Returns:
        role -> bound: ``{"pt": b, "eta": b, "phi": b, "E" or "m": b}``, or ``{"px": b, "py": b,
        "pz": b, "E" or "m": b}``.

    Raises:
        InputError: unknown names, unparsable or out-of-range numbers, a bound for a column
            the table does not store, or a table the codec cannot bound.
    """
    if representation not in ROLES:
        raise InputError(f"--error-bound needs a table of (pt, eta, phi) or (px, py, pz) with E or mass; this "
                         f"one stores {representation}; use the latent codec (no --error-bound)")
    fourth = FOURTH[representation]
    roles = ROLES[representation]
    given: dict[str, float] = {}
    if isinstance(spec, str) and spec.strip().lower() in PRESETS:
        name = spec.strip().lower()
        preset = CARTESIAN_PRESETS[name] if representation in CARTESIAN else PRESETS[name]
        return {r: preset[r] for r in roles}
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        given = {r: float(spec) for r in roles}
    elif isinstance(spec, str) and "=" not in spec:
        try:
            number = float(spec)
        except ValueError:
            raise InputError(f"--error-bound {spec!r}: expected a number, name=number pairs "
                             f"or one of {', '.join(PRESETS)}") from None
        given = {r: number for r in roles}
    else:
        items: list[tuple[str, Any]]
        if isinstance(spec, str):
            items = []
            for part in spec.split(","):
                name, sep, value = part.partition("=")
                if not sep:
                    raise InputError(f"--error-bound: {part.strip()!r} is not name=number")
                items.append((name, value))
        elif isinstance(spec, Mapping):
            items = list(spec.items())
        else:
            raise InputError(f"error bound must be a number, a string or a mapping, not {spec!r}")
        for name, value in items:
            key = ALIASES.get(str(name).strip().lower())
            if key is None:
                raise InputError(f"--error-bound: unknown column {str(name).strip()!r}; use pt, eta, "
                                 "phi and E or mass")
            if key in given:
                raise InputError(f"--error-bound: {'mass' if key == 'm' else key} is given twice")
            if key not in roles and key in ("E", "m") and fourth in roles:
                raise InputError(f"--error-bound: this table stores {'mass' if fourth == 'm' else 'E'}, "
                                 f"not {'mass' if key == 'm' else 'E'}; bound "
                                 f"{'mass' if fourth == 'm' else 'E'} instead")
            if key not in roles:
                raise InputError(f"--error-bound: this table stores {', '.join(roles[:3])}, not {key}; bound "
                                 f"{', '.join(roles)}")
            try:
                given[key] = float(value)
            except (TypeError, ValueError):
                raise InputError(f"--error-bound: {name}={value!r} is not a number") from None
        if not given:
            raise InputError("--error-bound: no bounds given")
        _check_ranges(given)  # the columns named first, so an error names what the user wrote
        smallest = min(given.values())
        given = {r: given.get(r, smallest) for r in roles}
    _check_ranges(given)
    return given


def _check_ranges(given: Mapping[str, float]) -> None:
    for role, b in given.items():
        lo, hi = (MIN_RELATIVE, MAX_RELATIVE) if RELATIVE[role] else (MIN_ABSOLUTE, MAX_ABSOLUTE)
        if not (math.isfinite(b) and lo <= b <= hi):
            kind = "relative" if RELATIVE[role] else "absolute"
            raise InputError(f"--error-bound: {'mass' if role == 'm' else role} bound {b:g} is outside the "
                             f"supported {kind} range {lo:g} to {hi:g} (relative: pt, E, mass; absolute: "
                             "eta, phi)")


def float32_margin(bound: float) -> float:
    """``2^floor(log2 bound) / 64``: what an absolute step leaves for float32 rounding (see the
    module doc). Exact: a power of two from the bound's binary exponent."""
    return math.ldexp(1.0, math.frexp(bound)[1] - 7)


def step(role: str, bound: float) -> float:
    """The quantization step of `role` at `bound` (payload version 3; module doc)."""
    if RELATIVE[role]:
        return 2.0 * math.log1p(bound * (1 - SAFETY) - F32_REL)
    return 2.0 * (bound * (1 - SAFETY) - float32_margin(bound))


def polar_bounds(bounds: Mapping[str, float], representation: str) -> dict[str, float]:
    """The bounds the codec quantizes (pt, eta, phi, E or mass) with: the table's own for polar
    tables. For Cartesian ones, with b_pt, b_eta, b_phi the polar bounds as fractions of the
    Cartesian one, the errors add up to first order as dpx / pt = (dpt/pt) cos phi - dphi sin phi,
    whose largest value is sqrt(b_pt^2 + b_phi^2), and dpz / |p| = (dpt/pt) tanh eta + deta, at
    most b_pt + b_eta. The shares CARTESIAN_SHARES (0.43, 0.56, 0.89) keep both below 0.99 of the
    bound and maximize log b_pt + log b_eta + log b_phi (the bits they save) under those two
    limits. The encoder checks the Cartesian bound of every jet and stores any jet that misses it
    (a second-order term at large bounds) verbatim."""
    if representation not in CARTESIAN:
        return dict(bounds)
    fourth = FOURTH[representation]
    xy = min(bounds["px"], bounds["py"])
    share_pt, share_eta, share_phi = CARTESIAN_SHARES
    return {"pt": share_pt * min(xy, bounds["pz"]), "eta": share_eta * bounds["pz"], "phi": share_phi * xy,
            fourth: bounds[fourth]}


def steps(bounds: Mapping[str, float], fourth: str) -> tuple[float, float, float, float]:
    """(s_pt, s_eta, s_phi, s_4) for the polar bounds of a table whose 4th column is `fourth`."""
    return (step("pt", bounds["pt"]), step("eta", bounds["eta"]), step("phi", bounds["phi"]),
            step(fourth, bounds[fourth]))


def phi_limit(s_phi: float) -> int:
    """Q = ceil(pi / s_phi): version 3 codes q_phi in [-Q, Q] (2Q + 1 symbols)."""
    return int(math.ceil(math.pi / s_phi))


# -- versions 1 and 2 --------------------------------------------------------------------------

def steps_for(bounds: Mapping[str, float], max_abs: Mapping[str, float]) -> dict[str, float]:
    """Steps of payload versions 1 and 2: relative ones as :func:`step`; absolute ones
    ``2 (b (1 - SAFETY) - ulp)`` with ulp the float32 spacing at the chunk's largest |value|
    (`max_abs`, role -> value)."""
    out = {}
    for role, b in bounds.items():
        if RELATIVE[role]:
            out[role] = step(role, b)
        else:
            x = max(float(max_abs.get(role, 4.0)), 1.0)
            ulp = float(np.spacing(np.float32(min(x, 3e38))))
            out[role] = 2.0 * max(b * (1 - SAFETY) - ulp, b * 0.25)
    return out


def legacy_step_choices(role: str, bound: float) -> tuple[float, ...]:
    """Every step an encoder of payload versions 1 and 2 could write for `role` at `bound`
    (:func:`steps_for`: one value for a relative bound; for an absolute one, one per float32
    spacing 2^k of the chunk's largest |value|). A stored step outside this set is refused."""
    if RELATIVE[role]:
        return (step(role, bound),)
    return tuple(sorted({2.0 * max(bound * (1 - SAFETY) - 2.0 ** k, bound * 0.25) for k in ULP_EXPONENTS}))


def legacy_phi_limit(s_phi: float, b_phi: float) -> int:
    """Largest |q_phi| a jet a version 1 or 2 encoder kept (not verbatim) can have: |phi| <=
    pi + b, so |round(phi / s)| <= (pi + b) / s + 1/2 (one more for rounding slack)."""
    return int(math.floor((math.pi + b_phi) / s_phi + 0.5)) + 1


# -- context grids -----------------------------------------------------------------------------

def thresholds(edges: tuple[float, ...], k: int, step: float, log: bool, scale: float) -> np.ndarray:
    """``k`` of `edges` (spread evenly) as thresholds on integer symbols: ``ceil(x / step)``
    with x the edge times `scale` (GeV -> file units), its log for `log`."""
    if k == 0:
        return np.zeros(0, np.int64)
    chosen = np.array(edges, np.float64)[np.linspace(0, len(edges) - 1, k).round().astype(int)]
    chosen = np.unique(chosen)
    x = np.log(chosen * scale) if log else chosen
    return np.ceil(x / step).astype(np.int64)


def grids(kind: str) -> tuple[tuple[int, int], ...]:
    """The context grids (how many pt edges, how many |eta| edges) of a kind of table."""
    return CONSTITUENT_GRIDS if kind == "constituents" else GRIDS


def grid_index(n_coded: int, kind: str = "jets") -> int:
    """The context grid of a chunk of `n_coded` coded 4th values (jets) or particles (constituents)."""
    return int(np.searchsorted(CONSTITUENT_GRID_MIN if kind == "constituents" else GRID_MIN_JETS, n_coded,
                               side="right")) - 1


def grid_thresholds(grid: int, s_pt: float, s_eta: float, units: str, kind: str = "jets"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(pt thresholds on q_pt, |eta| thresholds on |q_eta|) of context grid `grid`."""
    k_pt, k_eta = grids(kind)[grid]
    edges = CONSTITUENT_PT_EDGES_GEV if kind == "constituents" else PT_EDGES_GEV
    return (thresholds(edges, k_pt, s_pt, True, UNIT_SCALE.get(units, 1.0)),
            thresholds(ETA_EDGES, k_eta, s_eta, False, 1.0))


def eta_class_thresholds(s_pt: float, units: str) -> np.ndarray:
    """Thresholds on q_pt of the pt classes eta is coded in."""
    return thresholds(ETA_PT_EDGES_GEV, len(ETA_PT_EDGES_GEV), s_pt, True, UNIT_SCALE.get(units, 1.0))


def config_tag(config: Mapping[str, Any]) -> int:
    """CRC-32 of what decides a chunk's decoding (version, representation, units, bounds, the
    entropy model's sha256, the kind of table when not jets): every version 3 chunk carries it,
    so a chunk spliced from a file of another configuration is refused by the codec itself."""
    model = config.get("entropy_model")
    key = {"version": config.get("version"), "representation": config.get("representation"),
           "units": config.get("units"), "bounds": {k: float(v) for k, v in dict(config.get("bounds") or {}).items()},
           "entropy_model": model.get("sha256") if isinstance(model, Mapping) else None}
    if config.get("kind", "jets") != "jets":
        key["kind"] = config.get("kind")
    return zlib.crc32(json.dumps(key, sort_keys=True).encode())
