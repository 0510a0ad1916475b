"""The per-kind element table covers every element the worker code makes, and
every element in it is installed (./mediaplane up's bootstrap must bring them)."""

import re
from pathlib import Path

import pytest

from mediaplane.media import gst_parts
from mediaplane.media.manager import ELEMENTS_BY_KIND, missing_elements

MEDIA_SRC = Path(gst_parts.__file__).parent


def made_by_worker_code() -> set[str]:
    names: set[str] = set()
    for path in MEDIA_SRC.glob("*.py"):
        names |= set(re.findall(r'make\(\s*"([a-z0-9_]+)"', path.read_text()))
    for table in (gst_parts.DEPAY, gst_parts.DECODE, gst_parts.PARSE):
        names |= set(table.values())
    return names


def test_every_element_made_is_listed_for_some_kind() -> None:
    listed = {name for names in ELEMENTS_BY_KIND.values() for name in names}
    made = made_by_worker_code()
    assert len(made) > 30  # the scan found the worker code
    assert made - listed == set()


@pytest.mark.parametrize("kind", sorted(ELEMENTS_BY_KIND))
def test_every_listed_element_is_installed(kind: str) -> None:
    assert missing_elements(ELEMENTS_BY_KIND[kind]) == []
