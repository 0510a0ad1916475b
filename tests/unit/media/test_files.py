"""Outputs under the root (media/files.py): confined, never overwritten, kept however the
worker ended."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaplane.media.errors import BadRequest, Conflict
from mediaplane.media.files import hls_folder, keep_output, output_file
from mediaplane.wire.media import Job


def job(output: Path | None) -> Job:
    return Job(id="0123456789abcdef", kind="record", request={},
               output_path=str(output) if output else None)  # fmt: skip


def test_an_output_file_gets_its_suffix_and_its_folder(tmp_path: Path) -> None:
    path = output_file(tmp_path, "room/day/a", ".ogg")
    assert path == tmp_path.resolve() / "room" / "day" / "a.ogg"
    assert path.parent.is_dir() and not path.exists()
    assert output_file(tmp_path, "b.OGG", ".ogg").name == "b.OGG"  # has it already


@pytest.mark.parametrize("existing", ["a.ogg", "a.ogg.part"])
def test_an_output_file_is_never_overwritten(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_bytes(b"x")
    with pytest.raises(Conflict, match=r"a\.ogg already exists"):
        output_file(tmp_path, "a", ".ogg")


def test_an_output_never_escapes_the_root(tmp_path: Path) -> None:
    for name in ("../a", "/etc/a", "a/../../b"):
        with pytest.raises(BadRequest):
            output_file(tmp_path, name, ".ogg")
    with pytest.raises(BadRequest):
        hls_folder(tmp_path, "../live")


def test_an_hls_folder_is_made_once(tmp_path: Path) -> None:
    folder = hls_folder(tmp_path, "live/one")
    assert folder.is_dir()
    with pytest.raises(Conflict):
        hls_folder(tmp_path, "live/one")


def test_the_part_file_is_renamed_and_counted(tmp_path: Path) -> None:
    j = job(tmp_path / "a.ogg")
    (tmp_path / "a.ogg.part").write_bytes(b"x" * 1234)
    assert keep_output(j) == "file kept at a.ogg"
    assert (tmp_path / "a.ogg").read_bytes() == b"x" * 1234
    assert not (tmp_path / "a.ogg.part").exists() and j.stats.bytes == 1234


def test_what_is_kept_when_there_is_nothing_to_rename(tmp_path: Path) -> None:
    assert keep_output(job(None)) == "no file"
    assert keep_output(job(tmp_path / "never.ogg")) == "no data was written"
    (tmp_path / "live").mkdir()
    assert keep_output(job(tmp_path / "live")) == f"output kept in {tmp_path / 'live'}"
