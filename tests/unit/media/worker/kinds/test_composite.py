"""The composite's pure parts: the grid and the active speaker's choice."""

from __future__ import annotations

import pytest

from mediaplane.media.worker.kinds.composite import FRAME_PX, SWITCH_DB, Speaker, tiles


def test_no_video_no_tile() -> None:
    assert tiles([], 1280, 720) == []


def test_one_video_fills_the_picture_inside_the_frame_margin() -> None:
    assert tiles([None], 1280, 720) == [(FRAME_PX, FRAME_PX, 1280 - 12, 720 - 12)]


def test_a_known_aspect_is_kept_and_centred_in_its_cell() -> None:
    ((x, y, w, h),) = tiles([4 / 3], 1280, 720)
    assert h == 720 - 2 * FRAME_PX and w == int(h * 4 / 3)
    assert x == (1280 - w) // 2 and y == FRAME_PX
    ((x, y, w, h),) = tiles([32 / 9], 1280, 720)  # wider than the picture
    assert w == 1280 - 2 * FRAME_PX and y == (720 - h) // 2


@pytest.mark.parametrize(("n", "cols", "rows"), [(2, 2, 1), (3, 2, 2), (4, 2, 2), (5, 3, 2)])
def test_the_grid_grows_by_columns_first(n: int, cols: int, rows: int) -> None:
    rects = tiles([None] * n, 1280, 720)
    cw, ch = 1280 // cols, 720 // rows
    assert len(rects) == n
    assert {r[2] for r in rects} == {cw - 2 * FRAME_PX}
    assert {r[3] for r in rects} == {ch - 2 * FRAME_PX}
    assert len({r[1] for r in rects}) == rows


def test_the_last_row_is_centred() -> None:
    first, second, third = tiles([None] * 3, 1280, 720)
    assert (first[1], second[1]) == (FRAME_PX, FRAME_PX)
    assert third[0] == 1280 // 4 + FRAME_PX  # half a cell in: under the middle
    assert third[1] == 360 + FRAME_PX


def test_the_speaker_is_the_loudest_above_the_threshold() -> None:
    s = Speaker()
    assert s.choose() is None
    s.levels = {"alice": -60.0, "bob": -50.0}
    assert s.choose() is None  # both below -45 dB: nobody speaks
    assert s.levels == {}  # each choice starts a new window
    s.levels = {"alice": -20.0, "bob": -30.0}
    assert s.choose() == "alice"


def test_a_new_speaker_must_be_clearly_louder() -> None:
    s = Speaker(current="alice")
    s.levels = {"alice": -20.0, "bob": -20.0 + SWITCH_DB - 1}
    assert s.choose() == "alice"
    s.levels = {"alice": -20.0, "bob": -20.0 + SWITCH_DB}
    assert s.choose() == "bob"
    s = Speaker(current="alice")
    s.levels = {"alice": -80.0, "bob": -40.0}  # alice went quiet
    assert s.choose() == "bob"
    s = Speaker(current="alice")
    assert s.choose() == "alice"  # no levels this window: no change
