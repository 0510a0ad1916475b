"""The per-kind element table covers every element the worker code makes, and
every element in it is installed (./mediaplane up's bootstrap must bring them)."""

import re
from pathlib import Path

import pytest

from mediaplane.media.manager import ELEMENTS_BY_KIND, missing_elements
from mediaplane.media.worker import codecs
from mediaplane.media.worker.kinds import KINDS

WORKER_SRC = Path(codecs.__file__).parent
MAKE = re.compile(r'make\(\s*"([a-z0-9_]+)"')


def made_in(path: Path) -> set[str]:
    return set(MAKE.findall(path.read_text()))


def made_by_worker_code() -> set[str]:
    names: set[str] = set()
    for path in WORKER_SRC.rglob("*.py"):
        names |= made_in(path)
    for table in (codecs.DEPAY, codecs.DECODE, codecs.PARSE):
        names |= set(table.values())
    return names


def test_every_element_made_is_listed_for_some_kind() -> None:
    listed = {name for names in ELEMENTS_BY_KIND.values() for name in names}
    made = made_by_worker_code()
    assert len(made) > 30  # the scan found the worker code
    assert made - listed == set()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_kind_lists_what_its_own_file_makes(kind: str) -> None:
    made = made_in(WORKER_SRC / "kinds" / f"{kind}.py")
    assert made, "the scan found the kind's code"
    assert made - set(KINDS[kind].elements) == set()  # type: ignore[index]


@pytest.mark.parametrize("kind", sorted(ELEMENTS_BY_KIND))
def test_every_listed_element_is_installed(kind: str) -> None:
    assert missing_elements(ELEMENTS_BY_KIND[kind]) == []
