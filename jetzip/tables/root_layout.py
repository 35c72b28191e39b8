"""What a ROOT tree (TTree or RNTuple) holds, branch by branch, for jetzip's purposes.

Every leaf of the jet tree is classified once, from metadata only:

* ``scalar``: one number (or a fixed-size numeric array) per event: carried as a kept branch;
* ``jagged``: a numeric list per event (NanoAOD ``Jet_btag``, Delphes ``Jet/Jet.PT``,
  ``std::vector<float>``): per-jet when it belongs to the jet collection, otherwise carried with
  the rest of the tree (other collections);
* ``p4``: ``TLorentzVector`` or ``std::vector<TLorentzVector>``: a 4-vector (px, py, pz, E);
* ``other``: strings, bitsets, objects uproot cannot write back: named, never silently dropped.

Names: a branch is known by its output name (``Jet.PT`` for the TClonesArray leaf
``Jet/Jet.PT``, ``runNum`` for ``Info/runNum`` unless that collides) and read by its key.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

TLV_MEMBERS = {"px": "fP.fX", "py": "fP.fY", "pz": "fP.fZ", "E": "fE"}
TREE_CLASSES = ("TTree", "ROOT::RNTuple")


def _objects(file) -> dict[str, tuple[str, str]]:
    """Name -> (key of its newest cycle, class), plus 'name;N' keys for explicit cycles."""
    newest: dict[str, tuple[int, str, str]] = {}
    cycles: dict[str, tuple[str, str]] = {}
    for key, cls in file.classnames(recursive=True).items():
        name, _, cycle = key.rpartition(";")
        if not name:
            name, cycle = key, "0"
        number = int(cycle) if cycle.isdigit() else 0
        cycles[key] = (key, cls)
        if name not in newest or number > newest[name][0]:
            newest[name] = (number, key, cls)
    out = {n: (k, c) for n, (_, k, c) in newest.items()}
    out.update({k: v for k, v in cycles.items() if k not in out})
    return out



@dataclasses.dataclass
class Leaf:
    name: str  # output name
    key: str  # what uproot reads it by
    kind: str  # scalar | jagged | string | p4 | p4-jagged | other
    dtype: str = ""  # numpy dtype name of one value (for jagged: of the content)
    shape: tuple = ()  # fixed-size array per value (scalars only)
    counter: str | None = None  # the scalar integer branch that counts a jagged one, if any
    typename: str = ""
    member: tuple = ()  # a member of an object branch (TVector2 MET -> ("fX",)), read from its key
    parent: str = ""  # the object branch a member comes from (its output name)
    # the uproot branch, for a branch its key cannot reach (a second top-level branch of the
    # same name, as in some Delphes files); such keys end in "#<occurrence>"
    branch: Any = dataclasses.field(default=None, repr=False, compare=False)


def object_members(leaf: Leaf, interp) -> list[Leaf]:
    """The numeric members of an object branch (TVector2, TVector3, TLorentzVector, or a list of
    them) as leaves of their own, named as ROOT draws them: MET.fX, muonp4.fP.fX, muonp4.fE."""
    import uproot

    jagged = isinstance(interp, uproot.AsJagged)
    inner = interp.content if jagged else interp
    dt = _np_dtype(inner)
    if dt is None or dt.names is None:
        return []
    out = []
    fields: Any = dt.fields or {}
    for field in dt.names:
        if "@" in field:
            continue
        fdt = fields[field][0]
        if fdt.kind not in "biuf" or fdt.shape != () or fdt.itemsize > 8:
            return []
        path = tuple(field.split("/"))
        out.append(Leaf(f"{leaf.name}.{'.'.join(path)}", leaf.key, "jagged" if jagged else "scalar",
                        fdt.newbyteorder("=").name, typename=f"{leaf.typename} member {'.'.join(path)}",
                        member=path, parent=leaf.name, branch=leaf.branch))
    return out


def expand(tree, leaves: list[Leaf], keep_p4: str | None = None) -> list[Leaf]:
    """Object branches (other than the jet 4-vector `keep_p4`) replaced by their members."""
    import uproot

    out = []
    for lf in leaves:
        interp = (lf.branch if lf.branch is not None else tree[lf.key]).interpretation \
            if lf.kind in ("p4", "p4-jagged", "other") else None
        if interp is not None and lf.name != keep_p4 and (
                isinstance(interp, uproot.AsStridedObjects) or (
                    isinstance(interp, uproot.AsJagged) and isinstance(interp.content, uproot.AsStridedObjects))):
            members = object_members(lf, interp)
            if members:
                out.extend(members)
                continue
        out.append(lf)
    return out


def get_member(array, leaf: Leaf):
    for part in leaf.member:
        array = array[part]
    return array


def _np_dtype(interp) -> np.dtype | None:
    to = getattr(interp, "to_dtype", None)
    if to is None:
        return None
    try:
        return np.dtype(to)
    except TypeError:
        return None


def classify_ttree(tree) -> list[Leaf]:
    """The leaves of a TTree in file order."""
    import uproot

    # keys with their branch objects: two top-level branches may share a name (Delphes), and
    # then a key reaches only the first: the second's leaves keep their object
    pairs: list[tuple[str, Any, int]] = []
    occurrence: dict[str, int] = {}
    current = 0
    for key, br in zip(tree.keys(recursive=True), tree.values(recursive=True)):
        top = key.partition("/")[0]
        if "/" not in key:
            occurrence[top] = occurrence.get(top, 0) + 1
            current = occurrence[top]
        if not br.branches:
            pairs.append((key, br, current if "/" in key else occurrence[top]))
    keys = [k for k, _, _ in pairs]
    short = [k.rpartition("/")[2] for k in keys]
    dup = {s for s in short if short.count(s) > 1}
    leaves: list[Leaf] = []
    taken: set[str] = set()
    for (key, br, nth), s in zip(pairs, short):
        name = key.replace("/", ".") if s in dup else s
        if nth > 1:  # the second branch of a name: its own names and its object
            top = key.partition("/")[0]
            name = f"{top}_{nth}" + (name[len(top):] if name.startswith(top) else f".{name}")
            key = f"{key}#{nth}"
        while name in taken:
            name = f"{name}_"
        taken.add(name)
        interp = br.interpretation
        leaf = Leaf(name, key, "other", typename=br.typename, branch=br if "#" in key else None)
        typename = br.typename.replace(" ", "")
        if typename == "TLorentzVector":
            leaf.kind, leaf.dtype = "p4", "float64"
        elif typename in ("std::vector<TLorentzVector>", "vector<TLorentzVector>", "TLorentzVector[]"):
            leaf.kind, leaf.dtype = "p4-jagged", "float64"
        elif isinstance(interp, uproot.AsDtype) and not isinstance(interp, uproot.AsStridedObjects):
            dt = _np_dtype(interp)
            if dt is not None and dt.base.kind in "biuf" and dt.base.itemsize <= 8:
                leaf.kind, leaf.dtype, leaf.shape = "scalar", dt.base.newbyteorder("=").name, dt.shape
        elif isinstance(interp, uproot.AsStrings):
            leaf.kind, leaf.dtype = "string", "string"
        elif isinstance(interp, uproot.AsJagged) and isinstance(interp.content, uproot.AsDtype):
            dt = _np_dtype(interp.content)
            if dt is not None and dt.kind in "biuf" and dt.shape == () and dt.itemsize <= 8:
                leaf.kind, leaf.dtype = "jagged", dt.newbyteorder("=").name
        if leaf.kind == "jagged":
            cb = getattr(br, "count_branch", None)
            if cb is not None and not cb.branches:
                cdt = _np_dtype(cb.interpretation) if isinstance(cb.interpretation, uproot.AsDtype) else None
                if cdt is not None and cdt.kind in "iu" and cdt.shape == ():
                    leaf.counter = cb.name
        leaves.append(leaf)
    # counters are known by their output names
    by_short = {lf.key.rpartition("/")[2]: lf.name for lf in leaves}
    for lf in leaves:
        if lf.counter is not None:
            lf.counter = by_short.get(lf.counter, lf.counter)
    return leaves


def rntuple_projections(ntuple) -> dict[str, Any] | None:
    """The projected fields of an RNTuple (ROOT's ``RNTupleImporter`` writes a NanoAOD's
    ``Jet_pt`` as a projection of ``_collection6._0.Jet_pt`` and ``nJet`` as an
    ``RNTupleCardinality`` projected on ``_collection6``; uproot reads both kinds as fields of
    their own), or None when there are none.

    Returns ``{"fields": [[name, type name, role, parent, source], ...], "rebuilt": {F: [[leaf,
    projected field], ...]}, "order": [physical top-level field names]}``: every projected field record
    in header order (parent: its index in this list, -1 for a top-level one; source: the dotted
    path of physical field names it projects, e.g. ``_collection6._0.Jet_pt``); "rebuilt": the
    physical collections of records of numbers whose every leaf is reachable through a top-level
    projection (a reader reads those, the writer rebuilds the collection from them); "order":
    the physical top-level fields in the input's order. See the RNTuple binary format
    specification (root-project/root, ``tree/ntuple/doc/BinaryFormatSpecification.md``: field
    flag 0x02, alias columns)."""
    records = ntuple.field_records
    projected = [i for i, r in enumerate(records) if r.source_field_id is not None]
    if not projected:
        return None

    def path(i: int) -> str:
        parts = [records[i].field_name]
        while records[i].parent_field_id != i:
            i = records[i].parent_field_id
            parts.append(records[i].field_name)
        return ".".join(reversed(parts))

    position = {i: k for k, i in enumerate(projected)}
    fields = [[records[i].field_name, records[i].type_name, int(records[i].struct_role),
               -1 if records[i].parent_field_id == i else position.get(records[i].parent_field_id, -1),
               path(int(records[i].source_field_id))] for i in projected]
    if any(f[3] == -1 and records[projected[k]].parent_field_id != projected[k] for k, f in enumerate(fields)):
        return None  # a projection below a physical field: not one this writer can rebuild
    order = [r.field_name for i, r in enumerate(records) if r.parent_field_id == i and i not in position]
    # physical collections of records of numbers, each leaf the source of a top-level list projection
    by_source = {f[4]: fields[f[3]][0] for f in fields if f[3] >= 0 and fields[f[3]][3] == -1}
    children: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        if r.parent_field_id != i:
            children.setdefault(r.parent_field_id, []).append(i)
    rebuilt: dict[str, list[list[str]]] = {}
    tops: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.parent_field_id == i:
            tops.setdefault(r.field_name, i)
    for name in order:
        top = tops[name]
        inner = children.get(top, [])
        if int(records[top].struct_role) != 1 or len(inner) != 1 or int(records[inner[0]].struct_role) != 2:
            continue  # not a collection of one record
        leaves = children.get(inner[0], [])
        if leaves and all(not children.get(i) and path(i) in by_source for i in leaves):
            rebuilt[name] = [[records[i].field_name, by_source[path(i)]] for i in leaves]
    return {"fields": fields, "rebuilt": rebuilt, "order": order}


def classify_rntuple(ntuple) -> list[Leaf]:
    """Top-level fields of an RNTuple: numbers, lists of numbers, lists of records of numbers.
    A physical collection that its projections reach entirely (:func:`rntuple_projections`) is
    read through them (``Jet_pt``, ``nJet``), not a second time as itself."""
    import awkward as ak

    form = ntuple.arrays(entry_stop=0).layout.form
    spec = rntuple_projections(ntuple)
    skip = set(spec["rebuilt"]) if spec else set()
    leaves: list[Leaf] = []
    for field, content in zip(form.fields, form.contents):
        if field in skip:
            continue
        if content.parameters.get("__array__") in ("string", "bytestring"):
            leaves.append(Leaf(field, field, "string", "string", typename=str(content.type)))
        elif isinstance(content, ak.forms.NumpyForm) and content.inner_shape == ():
            leaves.append(Leaf(field, field, "scalar", _prim(content.primitive), typename=str(content.type)))
        elif isinstance(content, (ak.forms.ListOffsetForm, ak.forms.ListForm)):
            inner = content.content
            if isinstance(inner, ak.forms.NumpyForm) and inner.inner_shape == ():
                leaves.append(Leaf(field, field, "jagged", _prim(inner.primitive), typename=str(content.type)))
            elif isinstance(inner, ak.forms.RecordForm) and inner.contents and all(
                    isinstance(c, ak.forms.NumpyForm) and c.inner_shape == () for c in inner.contents):
                for sub, c in zip(inner.fields, inner.contents):
                    leaves.append(Leaf(f"{field}.{sub}", f"{field}.{sub}", "jagged", _prim(c.primitive),
                                       counter=field, typename=str(c.type)))
            else:
                leaves.append(Leaf(field, field, "other", typename=str(content.type)))
        else:
            leaves.append(Leaf(field, field, "other", typename=str(content.type)))
    return leaves


def _prim(primitive: str) -> str:
    return np.dtype({"bool": "bool"}.get(primitive, primitive)).name


# ---------------------------------------------------------------------------------------------
# Several jets per row as scalar branches: pT_h1_j1, E_h1_j1, ... or pxj1, pyj1, ... mj2

_ROLE_TOKENS = {"e": "E", "energy": "E", "pt": "pt", "eta": "eta", "phi": "phi", "m": "m",
                "mass": "m", "px": "px", "py": "py", "pz": "pz"}
_GLUED = re.compile(r"^(px|py|pz|pt|eta|phi|mass|e|m)(j\d+)$", re.IGNORECASE)


@dataclasses.dataclass
class SlotLayout:
    """k jets per row, one scalar branch per (variable, slot)."""

    pattern: str  # user-facing collection name: the slots with digits as '*', e.g. 'h*_j*'
    slots: list[str]  # h1_j1, h1_j2, ... in file order
    template: str  # "{var}_{slot}" or "{var}{slot}"
    roles: dict[str, str]  # role -> variable spelling (pT, E, ...)
    extras: list[str]  # other variables present for every slot (m, tag, angle)

    def name(self, var: str, slot: str) -> str:
        return self.template.format(var=var, slot=slot)

    def pattern_name(self, var: str) -> str:
        return self.template.format(var=var, slot=self.pattern)


def find_slot_layouts(names: list[str]) -> dict[str, SlotLayout]:
    """Groups of slots (>= 2) that each hold a full 4-vector, keyed by their pattern."""
    from ..features import REPRESENTATIONS

    per_slot: dict[tuple[str, str], dict[str, str]] = {}  # (template, slot) -> var -> name
    order: list[tuple[str, str]] = []
    for name in names:
        m = _GLUED.match(name)
        if m:
            var, slot, template = m.group(1), m.group(2), "{var}{slot}"
        elif "_" in name:
            var, _, slot = name.partition("_")
            template = "{var}_{slot}"
        else:
            continue
        if not slot:
            continue
        key = (template, slot)
        if key not in per_slot:
            per_slot[key] = {}
            order.append(key)
        per_slot[key][var] = name
    groups: dict[str, SlotLayout] = {}
    for template, slot in order:
        variables = per_slot[(template, slot)]
        roles = {}
        for var in variables:
            role = _ROLE_TOKENS.get(var.lower())
            if role and (role not in roles or var == role):
                roles[role] = var
        rep = next((r for r, need in REPRESENTATIONS.items() if set(need) <= set(roles)), None)
        if rep is None:
            continue
        pattern = re.sub(r"\d+", "*", slot)
        used = {r: roles[r] for r in REPRESENTATIONS[rep]}
        g = groups.get(pattern)
        if g is None:
            groups[pattern] = SlotLayout(pattern, [slot], template, used, [])
        elif g.template == template and g.roles == used:
            g.slots.append(slot)
    out = {}
    for pattern, g in groups.items():
        if len(g.slots) < 2:
            continue
        # every other variable present for each slot: m, tag, angle (pT_h1_j1 ...) or tau21 (tau21j1)
        present = set(names)
        first_slot = g.slots[0]
        candidates_ = []
        for name in names:
            if g.template == "{var}_{slot}":
                var, _, slot = name.partition("_")
            else:
                var, slot = name[: -len(first_slot)], name[-len(first_slot):]
            if slot == first_slot and var and var not in g.roles.values() and var not in candidates_:
                candidates_.append(var)
        g.extras = [v for v in candidates_ if all(g.name(v, s) in present for s in g.slots)]
        out[pattern] = g
    return out
