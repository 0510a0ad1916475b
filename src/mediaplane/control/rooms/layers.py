"""Which simulcast layer a subscriber gets, from the size of the tile it shows it in.

Pure functions (tests/unit/control/rooms/test_layers.py). The policy, in
docs/video-quality.md: a producer's spatial layers have the heights its publisher
encodes (the capture height divided by each encoding's scaleResolutionDownBy); a
tile gets the smallest layer at least as tall as the tile (in device pixels, with
10 % of upscaling allowed), the top layer when none is; a hidden tile gets none
(its consumer is paused on the SFU, sessions.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mediaplane.wire.ids import Json


@dataclass(frozen=True)
class Bitrates:
    """Caps set on every WebRTC transport (bits per second, 0: none): what a publisher
    may send (mediasoup tells it through REMB/transport-cc feedback) and what the SFU
    may send one subscriber (its bandwidth estimate stays below it)."""

    max_incoming: int = 0
    max_outgoing: int = 0


NO_CAPS = Bitrates()


DEFAULT_VIDEO_HEIGHT = 720
"""The capture height assumed when a publisher does not say (the page asks for 720p)."""
UPSCALE = 1.1
"""A layer may be shown up to 10 % larger than it is encoded before the next one is taken."""
MAX_SPATIAL_LAYERS = 4


def layer_heights(rtp_parameters: Json, video_height: int | None) -> list[int]:
    """The height of each spatial layer, lowest first ([] for a single layer).

    mediasoup orders simulcast encodings from the lowest to the highest; an encoding
    without a usable scaleResolutionDownBy is taken as half the size of the next. One
    encoding with spatial layers (SVC, e.g. VP9 `L3T3_KEY`) has them at half the size
    of the next, the top one the capture's."""
    encodings = rtp_parameters.get("encodings")
    if not isinstance(encodings, list) or not encodings:
        return []
    top = video_height or DEFAULT_VIDEO_HEIGHT
    if len(encodings) == 1:
        first = encodings[0]
        mode = first.get("scalabilityMode") if isinstance(first, dict) else None
        match = re.fullmatch(r"L(\d)T\d(_KEY)?(_SHIFT)?", mode) if isinstance(mode, str) else None
        spatial = min(int(match.group(1)), MAX_SPATIAL_LAYERS) if match else 1
        if spatial < 2:
            return []
        return [max(1, round(top / 2 ** (spatial - 1 - i))) for i in range(spatial)]
    count = min(len(encodings), MAX_SPATIAL_LAYERS)
    heights = []
    for i, encoding in enumerate(encodings[:count]):
        scale = encoding.get("scaleResolutionDownBy") if isinstance(encoding, dict) else None
        if not isinstance(scale, int | float) or isinstance(scale, bool) or scale < 1:
            scale = 2.0 ** (count - 1 - i)
        heights.append(max(1, round(top / scale)))
    return heights


def spatial_for(heights: list[int], tile_height: int) -> int:
    """The spatial layer for a tile `tile_height` device pixels tall."""
    for layer, height in enumerate(heights):
        if height * UPSCALE >= tile_height:
            return layer
    return max(len(heights) - 1, 0)
