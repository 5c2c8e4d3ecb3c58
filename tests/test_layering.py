"""The package's imports point one way: no cycle between its parts, no import against the layers.

Every ``import hyperkit...`` of every module counts, function-level ones included (the AST of
each file is walked, not the modules' import-time behaviour). A *part* is a subpackage
(``hyperkit.data``) or a top-level module (``hyperkit.config`` is a subpackage, ``hyperkit.seeds`` a
module). The allowed order, lowest first; a part may import its own layer and the layers below:
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hyperkit

PACKAGE = Path(hyperkit.__file__).parent

#: lowest first; a part may import parts of its own layer or of a lower one (never a cycle)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("hyperkit", "errors", "files", "seeds", "config", "provenance", "metrics", "kernels", "plots", "commands",
     "durations", "stopping", "side_by_side"),  # base
    ("data",),
    ("phantoms",),     # difficulty.py reads patches through data
    ("model",),
    ("training",),
    ("inference",),
    ("evaluation",),
    ("widgets", "reproduce", "report", "cli"),
)

#: (importing module, imported module) edges that still run against the layers, each with the
#: reason; only these may fail the direction check. Each is a re-export left at the old place
#: (marked "# moved:" there) until the importing module, not ours to edit now, imports the new place.
KNOWN_EDGES: dict[tuple[str, str], str] = {}

#: modules of the model part must not load profiles (they get a typed ModelConfig instead)
FORBIDDEN: dict[str, tuple[str, ...]] = {"model": ("hyperkit.config.profiles",)}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``hyperkit...`` module that ``path`` imports, at any depth of its code."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "hyperkit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "hyperkit":
                continue
            out.add(target)
            for a in node.names:  # ``from hyperkit.training import reference`` imports a module
                if (PACKAGE.parent / Path(*target.split("."), a.name)).with_suffix(".py").is_file() or \
                        (PACKAGE.parent / Path(*target.split("."), a.name, "__init__.py")).is_file():
                    out.add(f"{target}.{a.name}")
    return out


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "hyperkit"


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


LAYER_OF = {part: i for i, layer in enumerate(LAYERS) for part in layer}


def test_every_part_has_a_layer():
    parts = {_part(m) for m in _graph()}
    assert parts <= set(LAYER_OF), f"parts without a layer (add them to LAYERS): {sorted(parts - set(LAYER_OF))}"


def test_imports_follow_the_layers():
    wrong = []
    for module, targets in _graph().items():
        for target in targets:
            if LAYER_OF[_part(target)] > LAYER_OF[_part(module)] and (module, target) not in KNOWN_EDGES:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers " + str(LAYERS) + ":\n" + "\n".join(sorted(wrong))


def test_no_cycle_between_parts():
    edges: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        for target in targets:
            if _part(module) != _part(target) and (module, target) not in KNOWN_EDGES:
                edges.setdefault(_part(module), set()).add(_part(target))
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in seen:
                visit(nxt, path + [node])
        seen[node] = 2

    for node in sorted(edges):
        if node not in seen:
            visit(node, [])
    assert not cycles, "import cycles between parts:\n" + "\n".join(cycles)


def test_forbidden_imports():
    bad = [f"{m} -> {t}" for m, targets in _graph().items() for t in targets
           if any(t == f or t.startswith(f + ".") for f in FORBIDDEN.get(_part(m), ()))]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("edge", sorted(KNOWN_EDGES), ids=lambda e: f"{e[0]}->{e[1]}")
def test_known_edges_still_exist(edge):
    """A re-export shim is removed once nothing needs it: this test then says to drop its entry."""
    module, target = edge
    if target not in _graph().get(module, set()):
        pytest.fail(f"{module} no longer imports {target}: remove the entry from KNOWN_EDGES and the "
                    f"'# moved:' re-export at {target}")
    pytest.xfail(KNOWN_EDGES[edge])
