"""The module layering of docs/ARCHITECTURE.md holds: no import from a higher layer, no cycles.

Every ``import`` and ``from ... import`` of a jetzip module is counted, including those inside
functions (lazy imports are how cycles usually hide).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jetzip"

# layer of each module (dotted name below jetzip); a package's modules share its layer
LAYERS = {
    "cli": 6,
    "api": 5, "evaluation": 5, "baselines": 5, "training": 5, "context_training": 5, "bench": 5, "dask": 5,
    "dataset": 5, "reading": 5, "render": 5, "plots": 5, "choose": 5,
    "aez": 4, "aez_v2": 4,
    "codecs": 3,
    "engine": 2, "entropy": 2, "model": 2, "models": 2,
    "tables": 1, "carry": 1, "features": 1, "residuals": 1, "synthetic": 1,
    "errors": 0, "extras": 0, "defaults": 0, "atomic": 0, "pipeline": 0, "device": 0, "container": 0,
    "": 0,  # jetzip/__init__.py: version and lazy re-exports only
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def layer(name: str) -> int:
    top = name.split(".")[0]
    assert top in LAYERS, f"module jetzip.{name} has no layer in docs/ARCHITECTURE.md / this test"
    return LAYERS[top]


def imports(path: Path) -> set[str]:
    """jetzip modules imported by the file at `path` (dotted names below jetzip)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else list(package)
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("jetzip"):
                mod = node.module[len("jetzip"):].lstrip(".")
            else:
                continue
            for alias in node.names:  # "from . import x" may name a module
                candidate = f"{mod}.{alias.name}" if mod else alias.name
                if (PACKAGE / Path(*candidate.split("."))).with_suffix(".py").exists() or \
                        (PACKAGE / Path(*candidate.split("."))).is_dir():
                    out.add(candidate)
                else:
                    out.add(mod)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jetzip."):
                    out.add(alias.name[len("jetzip."):])
    out.discard(name)
    return {m for m in out if m}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_module_imports_from_a_higher_layer():
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            if layer(dep) > layer(mod):
                bad.append(f"jetzip.{mod} (layer {layer(mod)}) imports jetzip.{dep} (layer {layer(dep)})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    g = graph()

    def normal(m: str) -> str:  # a package and its __init__ are one node
        return m

    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            d = normal(d)
            if d not in g:
                continue
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    # a package importing its own submodules (jetzip.codecs -> jetzip.codecs.base) is not a cycle
    real = [c for c in cycles if not all(part.startswith(c.split(" -> ")[0].split(".")[0]) for part in c.split(" -> "))
            or len({p.split(".")[0] for p in c.split(" -> ")}) > 1]
    assert not real, "\n".join(real)


def test_every_module_has_a_layer():
    for mod in graph():
        layer(mod)
