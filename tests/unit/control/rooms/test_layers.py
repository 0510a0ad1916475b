"""The layer policy: tile sizes to spatial layers (control/rooms/layers.py)."""

from __future__ import annotations

from mediaplane.control.rooms.layers import layer_heights, spatial_for

SIMULCAST = {"encodings": [
    {"rid": "r0", "scaleResolutionDownBy": 4}, {"rid": "r1", "scaleResolutionDownBy": 2},
    {"rid": "r2", "scaleResolutionDownBy": 1},
]}  # fmt: skip


def test_heights_follow_the_capture_height_and_each_scale() -> None:
    assert layer_heights(SIMULCAST, 720) == [180, 360, 720]
    assert layer_heights(SIMULCAST, 480) == [120, 240, 480]
    assert layer_heights(SIMULCAST, None) == [180, 360, 720]  # the page's 720p assumed


def test_a_single_encoding_has_no_layers_and_bad_scales_are_halvings() -> None:
    assert layer_heights({"encodings": [{"ssrc": 1}]}, 720) == []
    assert layer_heights({}, 720) == []
    assert layer_heights({"encodings": "x"}, 720) == []
    odd = {"encodings": [{"scaleResolutionDownBy": "4"}, {"scaleResolutionDownBy": 0.5}, {}]}
    assert layer_heights(odd, 720) == [180, 360, 720]
    assert layer_heights({"encodings": [{}] * 9}, 720) == [90, 180, 360, 720]  # at most 4


def test_one_svc_encoding_has_its_spatial_layers() -> None:
    assert layer_heights({"encodings": [{"scalabilityMode": "L3T3_KEY"}]}, 720) == [180, 360, 720]
    assert layer_heights({"encodings": [{"scalabilityMode": "L2T3"}]}, 480) == [240, 480]
    assert layer_heights({"encodings": [{"scalabilityMode": "L1T3"}]}, 720) == []
    assert layer_heights({"encodings": [{"scalabilityMode": "L9T3"}]}, 720) == [90, 180, 360, 720]
    assert layer_heights({"encodings": [{"scalabilityMode": "S3T3"}]}, 720) == []  # not SVC
    assert layer_heights({"encodings": [{"scalabilityMode": 3}]}, 720) == []


def test_a_tile_gets_the_smallest_layer_that_covers_it() -> None:
    heights = [180, 360, 720]
    assert spatial_for(heights, 0) == 0
    assert spatial_for(heights, 120) == 0
    assert spatial_for(heights, 198) == 0  # 10 % upscaling allowed
    assert spatial_for(heights, 199) == 1
    assert spatial_for(heights, 360) == 1
    assert spatial_for(heights, 700) == 2
    assert spatial_for(heights, 2160) == 2  # taller than the top: the top
    assert spatial_for([], 500) == 0
