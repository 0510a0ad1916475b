"""No module of the room service, signaling or WHIP reaches into another object's
private names (`obj._x` with obj not self/cls): they talk through public methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[4] / "src" / "mediaplane" / "control"
FILES = sorted(
    [
        *SRC.joinpath("rooms").glob("*.py"),
        *SRC.joinpath("signaling").glob("*.py"),
        *SRC.joinpath("whip").glob("*.py"),
        SRC / "api" / "rooms.py",
    ]
)


def _private_reaches(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        out.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_private_name_of_another_object(path: Path) -> None:
    assert _private_reaches(path) == []
