"""The house rules the code itself can check: no import circle in src/, and no module
reaching into another module's private names (`obj._x` where `_x` is not defined in the
module doing the access, or `from m import _x`)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)


def _modules() -> dict[str, Module]:
    out: dict[str, Module] = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return out


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import, at module level, in a function or for type checkers only: a circle of
    type-only imports is still two modules that cannot be read one without the other."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def _resolve(mod: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = mod.name.split(".")
    if mod.path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _graph(mods: dict[str, Module]) -> dict[str, set[str]]:
    for mod in mods.values():
        for node in _import_nodes(mod.tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _resolve(mod, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]  # fmt: skip
            mod.imports |= {t for t in targets if t in mods and t != mod.name}
    return {name: mod.imports for name, mod in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_privates(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if _private(n)}


def _private_reaches(mod: Module) -> list[str]:
    own = _defined_privates(mod.tree)
    where = f"{mod.path.relative_to(SRC)}"
    found = []
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            found.append(f"{where}:{node.lineno}: .{node.attr} of {ast.unparse(node.value)}")
        elif isinstance(node, ast.ImportFrom):
            found += [f"{where}:{node.lineno}: imports {a.name} from {node.module}"
                      for a in node.names if _private(a.name)]  # fmt: skip
    return found


def test_no_import_circle() -> None:
    cycles = _cycles(_graph(_modules()))
    assert not cycles, "modules that import each other (directly or around a circle):\n" + (
        "\n".join(" <-> ".join(c) for c in cycles)
    )


def test_no_module_reaches_into_another_modules_private_names() -> None:
    found = [hit for mod in _modules().values() for hit in _private_reaches(mod)]
    assert not found, "private names used outside the module that defines them:\n" + "\n".join(
        found
    )


def test_the_checks_see_a_circle_and_a_private_reach() -> None:
    """The two checks above would fail on code that breaks the rules."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("from m import _hidden\nx = other._secret\nself._mine = 1\ny = self._mine\n")
    hits = _private_reaches(Module("x", SRC / "x.py", tree))
    assert [h.split(": ", 1)[1] for h in hits] == ["imports _hidden from m", "._secret of other"]
