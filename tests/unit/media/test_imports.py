"""No import circle in the media manager and its wire types; a kind never imports the
worker's main (it builds on the shared parts)."""

from __future__ import annotations

import ast
from pathlib import Path

import mediaplane

SRC = Path(mediaplane.__file__).parent
PACKAGES = ("media", "wire")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of these packages it imports (TYPE_CHECKING ones too)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (SRC / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in files else node.module)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_graph_is_found() -> None:
    graph = import_graph()
    assert "mediaplane.media.worker.kinds.composite" in graph
    assert "mediaplane.media.worker.kind" in graph["mediaplane.media.worker.kinds.composite"]


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_the_circle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_kind_imports_the_worker_main() -> None:
    graph = import_graph()
    kinds = [m for m in graph if m.startswith("mediaplane.media.worker.kinds.")]
    assert len(kinds) >= 5
    for kind in kinds:
        assert "mediaplane.media.worker.main" not in graph[kind], kind
        assert "mediaplane.media.worker.kinds" not in graph[kind], kind
