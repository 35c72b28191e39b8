"""Which columns of a table are the jets: presets for common layouts and name matching.

A *collection* is a group of columns sharing a prefix (``Jet_pt``, ``Jet_eta`` -> ``Jet``;
``AnalysisJetsAuxDyn.pt`` -> ``AnalysisJets``; ``pt`` -> the empty prefix of a flat table).
Each column's suffix is matched to a *role* (E, pt, eta, phi, m, px, py, pz) by common
spellings. A collection whose roles form a 4-vector representation is a candidate.

Presets name the layouts found in the wild (see the README's table); when a preset applies,
its tree, collection, units and counter are used, otherwise a single candidate is taken and
several candidates are an error that lists them.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Mapping

from ..errors import InputError
from ..features import ALL_REPRESENTATIONS, REPRESENTATIONS, THREE_VECTORS

ROLE_SPELLINGS: dict[str, tuple[str, ...]] = {
    "E": ("e", "energy", "en"),
    "pt": ("pt", "pt_", "ptjet", "transverse_momentum"),
    "eta": ("eta",),
    "phi": ("phi",),
    "m": ("m", "mass"),
    "px": ("px",),
    "py": ("py",),
    "pz": ("pz",),
}
_SPELLING_TO_ROLE = {s: role for role, spellings in ROLE_SPELLINGS.items() for s in spellings}
COLLECTION_SUFFIXES = ("AuxDyn", "Aux")  # ATLAS xAOD decorations: AnalysisJetsAuxDyn.pt


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    trees: tuple[str, ...]
    collection: str
    units: str | None  # None: infer from the data
    jagged: bool
    description: str


PRESETS: dict[str, Preset] = {
    "nanoaod": Preset("nanoaod", ("Events",), "Jet", "GeV", True,
                      "CMS NanoAOD: Events, nJet, Jet_pt/eta/phi/mass (GeV)"),
    "physlite": Preset("physlite", ("CollectionTree",), "AnalysisJets", "MeV", True,
                       "ATLAS PHYSLITE: CollectionTree, AnalysisJetsAuxDyn.pt/.eta/.phi/.m (MeV)"),
    "atlas-opendata": Preset("atlas-opendata", ("mini", "analysis"), "jet", None, True,
                             "ATLAS open data: mini/analysis, jet_n, jet_pt/eta/phi/E (MeV or GeV)"),
    "delphes": Preset("delphes", ("Delphes",), "Jet", "GeV", True,
                      "Delphes: Delphes, Jet_size, TClonesArray splits Jet/Jet.PT/.Eta/.Phi/.Mass (GeV)"),
    "flat": Preset("flat", (), "", None, False,
                   "one jet per row: E/pt/eta/phi, pt/eta/phi/m or px/py/pz/E columns"),
}


@dataclasses.dataclass
class Collection:
    name: str  # user-facing name: Jet, AnalysisJets, jet, or "" for a flat table
    columns: dict[str, str]  # role -> column name
    three_vector: bool = False  # pt, eta, phi only (features.THREE_VECTORS): --collection all

    @property
    def representation(self) -> str | None:
        reps = THREE_VECTORS if self.three_vector else REPRESENTATIONS
        for rep, roles in reps.items():
            if set(roles) <= set(self.columns):
                return rep
        return None

    def used_columns(self, order: list[str] | None = None) -> dict[str, str]:
        """The four columns of the representation, in file order when `order` is given."""
        rep = self.representation
        assert rep is not None
        used = {role: self.columns[role] for role in ALL_REPRESENTATIONS[rep]}
        if order:
            pos = {n: i for i, n in enumerate(order)}
            used = dict(sorted(used.items(), key=lambda kv: pos.get(kv[1], len(pos))))
        return used


# ROOT::Math::LorentzVector members (TreeMaker's Jets.fCoordinates.fPt) and EDM4hep's momentum
# vector (Jet.momentum.x): their spellings of the roles
_MEMBER_ROLES = {"fpt": "pt", "feta": "eta", "fphi": "phi", "fe": "E", "fm": "m", "fx": "px", "fy": "py",
                 "fz": "pz", "ft": "E"}
_MOMENTUM = {"x": "px", "y": "py", "z": "pz"}


def split_name(name: str) -> tuple[str, str]:
    """'Jet_pt' -> ('Jet', 'pt'); 'AnalysisJetsAuxDyn.pt' -> ('AnalysisJets', 'pt'); 'pt' -> ('', 'pt');
    'Jets.fCoordinates.fPt' (a LorentzVector member) -> ('Jets', 'pt'); 'Jet.momentum.x' (EDM4hep) ->
    ('Jet', 'px'); 'AnalysisJetsAuxDyn:pt' (RNTuple PHYSLITE) -> ('AnalysisJets', 'pt')."""
    parts = name.replace(":", ".").split(".")
    if len(parts) >= 3 and parts[-2] == "fCoordinates" and parts[-1].lower() in _MEMBER_ROLES:
        return ".".join(parts[:-2]), _MEMBER_ROLES[parts[-1].lower()]
    if len(parts) >= 3 and parts[-2] == "momentum" and parts[-1] in _MOMENTUM:
        return ".".join(parts[:-2]), _MOMENTUM[parts[-1]]
    if ":" in name:
        name = name.replace(":", ".")
    if "." in name:
        prefix, _, var = name.rpartition(".")
    elif "_" in name:
        prefix, _, var = name.rpartition("_")
    else:
        prefix, var = "", name
    for suffix in COLLECTION_SUFFIXES:
        if prefix.endswith(suffix) and len(prefix) > len(suffix):
            prefix = prefix[: -len(suffix)]
    return prefix, var


def find_collections(names: Iterable[str]) -> dict[str, Collection]:
    """Group column names into collections with the roles they hold (any, even incomplete)."""
    found: dict[str, Collection] = {}
    for name in names:
        prefix, var = split_name(name)
        role = _SPELLING_TO_ROLE.get(var.lower())
        if role is None:
            continue
        col = found.setdefault(prefix, Collection(prefix, {}))
        # An exact-case match wins ('E' over 'e' when both exist).
        if role not in col.columns or var == role:
            col.columns[role] = name
    return found


_JET_ALGORITHM = re.compile(r"^(ak|ca|kt|antikt)\d", re.IGNORECASE)  # AK4CHS, CA15Puppi: jets by their algorithm


def is_jet_name(name: str) -> bool:
    """Whether a collection is named like jets: ``Jet``, ``FatJet``, ``AnalysisJets``,
    ``AK4CHS``, ``CA15Puppi``."""
    return "jet" in name.lower() or bool(_JET_ALGORITHM.match(name))


_CONSTITUENTS = re.compile(r"^(part|pfcand|pfcands|pf|cand|cands|constituent|constituents|particle|particles|"
                           r"jetconstituents|pfparticles)$", re.IGNORECASE)
MANY_SLOTS = 16  # a row holding more four-vectors than this holds a jet's particles, not jets


def collection_kind(name: str, slots: int = 0) -> str:
    """``"constituents"`` for the particles inside jets (JetClass's ``part_*``, PF candidates,
    the top-tagging landscape's 200 zero-padded slots per row), else ``"jets"``: the bounded
    codec's contexts for each (particles are nearly massless, fall steeply in pt, sit close to
    their jet's axis)."""
    return "constituents" if _CONSTITUENTS.match(name or "") or slots > MANY_SLOTS else "jets"


def candidates(names: Iterable[str]) -> dict[str, Collection]:
    """Complete collections; when some are named like jets, only those (not Muon, Photon...)."""
    complete = {k: c for k, c in find_collections(names).items() if c.representation}
    jets = {k: c for k, c in complete.items() if is_jet_name(k)}
    return jets or complete


def jet_like(names: Iterable[str]) -> list[str]:
    """Column names worth listing in an error about missing jets."""
    keys = ("jet", "pt", "eta", "phi", "mass")
    return sorted(n for n in names if any(k in n.lower() for k in keys))[:40]


def parse_columns(text: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """'E=jet_E,pt=jet_pt,...' -> {'E': 'jet_E', ...}, checking the roles."""
    if text is None or text == "":
        return None
    if isinstance(text, Mapping):
        mapping = dict(text)
    else:
        mapping = {}
        for part in text.split(","):
            role, eq, name = part.partition("=")
            if not eq or not role.strip() or not name.strip():
                raise InputError(f"--columns: expected ROLE=NAME pairs like 'pt=Jet_pt', got {part!r}")
            mapping[role.strip()] = name.strip()
    aliases = {"mass": "m", "e": "E", "energy": "E", "pT": "pt"}
    mapping = {aliases.get(k, k): v for k, v in mapping.items()}
    unknown = set(mapping) - set(ROLE_SPELLINGS)
    if unknown:
        raise InputError(f"--columns: unknown role(s) {', '.join(sorted(unknown))}; "
                         f"use {', '.join(ROLE_SPELLINGS)}")
    if not Collection("", mapping).representation:
        raise InputError(f"--columns: {', '.join(sorted(mapping))} do not form a 4-vector; give one of "
                         + "; ".join("/".join(r) for r in REPRESENTATIONS.values()))
    return mapping


def choose_collection(names: list[str], *, where: str, columns: Mapping[str, str] | None = None,
                      collection: str | None = None, preset: Preset | None = None,
                      three_vector: bool = False) -> Collection:
    """Pick the jet collection among `names`, or raise an InputError that lists what exists
    (`three_vector`: a collection named by `collection` may hold pt, eta and phi only)."""
    if columns:
        missing = [n for n in columns.values() if n not in names]
        if missing:
            raise InputError(f"{where}: no column(s) {', '.join(missing)}; jet-like columns: "
                             f"{', '.join(jet_like(names)) or 'none'}")
        prefixes = {split_name(n)[0] for n in columns.values()}
        return Collection(prefixes.pop() if len(prefixes) == 1 else "", dict(columns))
    cands = candidates(names)
    wanted = collection if collection is not None else (preset.collection if preset else None)
    if wanted is not None:
        complete = {k: c for k, c in find_collections(names).items() if c.representation}
        if wanted in complete:  # any complete collection by name (part_*, Muon_*), not only jets
            return complete[wanted]
        partial = find_collections(names).get(wanted)
        if partial is not None and three_vector and Collection(wanted, partial.columns, True).representation:
            return Collection(wanted, dict(partial.columns), three_vector=True)
        if partial is not None and Collection(wanted, partial.columns, True).representation:
            raise InputError(f"{where}: collection {wanted!r} holds pt, eta and phi only: with --error-bound it is "
                             f"coded beside a four-vector collection (--collection Jet,{wanted} or all), else carried")
        if partial is not None:
            raise InputError(f"{where}: collection {wanted!r} has only {', '.join(sorted(partial.columns.values()))}, "
                             "not a full 4-vector; use --columns")
        if collection is not None or preset is not None or not cands:
            by = "" if collection is not None or preset is None else f" (the {preset.name} preset's)"
            raise InputError(f"{where}: no jet collection {wanted!r}{by}; found "
                             f"{_describe(cands) or 'no 4-vector collections'}"
                             + ("" if cands else f"; jet-like columns: {', '.join(jet_like(names)) or 'none'}"))
    if len(cands) == 1:
        return next(iter(cands.values()))
    if not cands:
        raise InputError(f"{where}: no jet 4-vectors found (need E/pt/eta/phi, pt/eta/phi/m or "
                         f"px/py/pz/E columns); jet-like columns: {', '.join(jet_like(names)) or 'none'}; "
                         "use --columns to name them")
    raise InputError(f"{where}: several jet collections found: {_describe(cands)}; "
                     "choose one with --collection NAME or --columns")


def every_but(collection: str | None) -> tuple[bool, set[str]]:
    """Whether `collection` asks for every collection (``"all"``, ``"all,-GenPart,-Muon"``), and
    the names it leaves out (``{"GenPart", "Muon"}``)."""
    parts = [p.strip() for p in (collection or "").split(",") if p.strip()]
    if not parts or parts[0].lower() != "all" or any(not p.startswith("-") for p in parts[1:]):
        return False, set()
    return True, {p[1:].strip() for p in parts[1:]}


def choose_collections(names: list[str], *, where: str, columns: Mapping[str, str] | None = None,
                       collection: str | None = None, preset: Preset | None = None) -> list[Collection]:
    """The collections of a table to code, the first being the one a reader calls *the* jets.

    - `columns`: those four columns only;
    - `collection` ``"all"``: every complete four-vector collection (Jet, FatJet, Muon, ...);
      ``"all,-GenPart,-Muon"``: every one but those (carried losslessly instead);
      ``"A,B"``: those; one name: that one;
    - otherwise every jet collection (names with "jet"; every complete collection when none is),
      the preset's first (NanoAOD ``Jet``), then in file order.

    Raises:
        InputError: as :func:`choose_collection`, naming what exists.
    """
    if columns:
        return [choose_collection(names, where=where, columns=columns)]
    every, but = every_but(collection)
    if every:
        complete = {k: c for k, c in find_collections(names).items() if c.representation}
        # uproot's counters of each list branch (nElectron_pt of Electron_pt) are not a collection
        complete = {k: c for k, c in complete.items() if not (k[:1] == "n" and k[1:] in complete)}
        if not complete:
            return [choose_collection(names, where=where)]  # the error that lists what exists
        chosen = [c for k, c in complete.items() if k not in but]
        if not chosen:
            raise InputError(f"{where}: --collection {collection} leaves no collection to code; found "
                             f"{_describe(complete)}")
        # pt, eta and phi only (TrigObj): after every four-vector collection, never the first
        found = find_collections(names)
        threes = [Collection(k, dict(c.columns), three_vector=True) for k, c in found.items()
                  if k not in complete and k not in but and not (k[:1] == "n" and k[1:] in found)
                  and Collection(k, dict(c.columns), three_vector=True).representation]
    elif collection is not None and "," in collection:
        wanted = list(dict.fromkeys(c.strip() for c in collection.split(",") if c.strip()))
        if not wanted or any(c.lower() == "all" or c.startswith("-") for c in wanted):
            raise InputError(f"--collection {collection!r}: give 'all', 'all,-NAME,...' (every collection but "
                             "those) or names (Jet,Muon)")
        got = [choose_collection(names, where=where, collection=c, three_vector=True) for c in wanted]
        fours = [c for c in got if not c.three_vector]
        if not fours:  # pt, eta and phi only: the error that says so
            choose_collection(names, where=where, collection=wanted[0])
        lead = fours[0]  # a four-vector collection first (TrigObj,Jet is Jet,TrigObj)
        return [lead] + [c for c in got if c is not lead]
    elif collection is not None:
        if collection.strip().startswith("-"):
            raise InputError(f"--collection {collection!r}: to leave collections out, write all,{collection.strip()}")
        return [choose_collection(names, where=where, collection=collection, preset=preset)]
    else:
        cands = candidates(names)
        if not cands or (preset is not None and preset.collection not in cands and not
                         find_collections(names).get(preset.collection)):
            return [choose_collection(names, where=where, preset=preset)]
        chosen = list(cands.values())
        threes = []
    position = {n: i for i, n in enumerate(names)}
    chosen.sort(key=lambda c: min(position.get(n, len(position)) for n in c.columns.values()))
    first = preset.collection if preset is not None else None
    chosen.sort(key=lambda c: c.name != first)
    threes.sort(key=lambda c: min(position.get(n, len(position)) for n in c.columns.values()))
    return chosen + threes


def _describe(cands: Mapping[str, Collection]) -> str:
    return "; ".join(f"{k or '(no prefix)'} ({', '.join(c.used_columns().values())})"
                     for k, c in sorted(cands.items()))
