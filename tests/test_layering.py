"""The import layering ARCHITECTURE.md states holds for every module of the package.

ARCHITECTURE.md lists the layers (```layers) and the imports that break the rule today
(```exceptions); this test reads both and checks the package's imports, top-level and inside
functions, found by parsing the source (nothing is imported).
"""
from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tracejit"


def _block(name: str) -> list[str]:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    match = re.search(rf"```{name}\n(.*?)```", text, re.S)
    assert match, f"ARCHITECTURE.md has no ```{name} block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def layers() -> list[tuple[str, list[str]]]:
    return [(name.strip(), patterns.split()) for name, patterns in (line.split(":", 1) for line in _block("layers"))]


def exceptions() -> set[tuple[str, str]]:
    return {tuple(f"tracejit.{m.strip()}" for m in line.split(":", 1)[0].split("->")) for line in _block("exceptions")}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def layer_of(name: str, table) -> int | None:
    short = name.removeprefix("tracejit.") if name != "tracejit" else "tracejit"
    for k, (_, patterns) in enumerate(table):
        if any(fnmatch.fnmatchcase(short, p) for p in patterns):
            return k
    return None


def graph():
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_has_a_layer():
    table = layers()
    assert [m for m in sorted(modules()) if layer_of(m, table) is None] == []


def test_imports_go_only_to_the_same_or_earlier_layers():
    table, allowed = layers(), exceptions()
    wrong = []
    for name, targets in sorted(graph().items()):
        for target in sorted(targets):
            if layer_of(target, table) > layer_of(name, table) and (name, target) not in allowed:
                wrong.append(f"{name} ({table[layer_of(name, table)][0]}) imports {target} "
                             f"({table[layer_of(target, table)][0]})")
    assert wrong == []


def test_imports_form_no_cycle_besides_the_listed_exceptions():
    edges = {name: targets - {t for (s, t) in exceptions() if s == name} for name, targets in graph().items()}
    done, cycles = set(), []

    def visit(name, path):
        if name in path:
            cycles.append(path[path.index(name):] + [name])
            return
        if name in done:
            return
        for target in sorted(edges[name]):
            visit(target, path + [name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])
    assert cycles == []


def test_every_listed_exception_still_exists():
    # a removed exception comes off the list, so that the list only names what is still to do
    g = graph()
    assert [f"{s} -> {t}" for s, t in sorted(exceptions()) if t not in g.get(s, ())] == []


def test_the_checks_see_a_wrong_import(tmp_path, monkeypatch):
    table = layers()
    assert layer_of("tracejit.core", table) < layer_of("tracejit.jit", table)
    source = tmp_path / "core.py"
    source.write_text("from .jit import trace\n")
    assert imports("tracejit.core", source, modules()) == {"tracejit.jit"}
