"""Transcode a finished recording through the control plane: real SFU, recorder and
GStreamer transcode job; the new file is decoded."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_egress import leave, publish
from tests.support.control import token
from tests.support.mediacheck import (
    decode_audio,
    decode_frames,
    dominant_color,
    dominant_frequency,
    probe_streams,
)
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)


async def wait_for(
    http: httpx.AsyncClient, url: str, pred: Any, timeout: float = 30
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            rec: dict[str, Any] = (await http.get(url)).json()
            if pred(rec):
                return rec
            await asyncio.sleep(0.2)


async def test_recording_transcoded_to_mp4(stack: Stack, tmp_path: Path) -> None:
    room = f"tc-{uuid.uuid4().hex[:6]}"
    pub = await publish(stack, room, "bob")  # 660 Hz + a green picture
    try:
        async with stack.http() as http:
            r = await http.post(f"/api/rooms/{room}/recordings", json={"identity": "bob"})
            assert r.status_code == 202, r.text
            rec_url = f"/api/rooms/{room}/recordings/{r.json()['id']}"
            early = await http.post(f"{rec_url}/transcodes", json={"format": "mp4-h264-aac"})
            assert early.status_code == 409, early.text  # not completed yet
            await wait_for(http, rec_url, lambda x: x["state"] == "running")
            await asyncio.sleep(4)
            rec = (await http.post(f"{rec_url}/stop")).json()
            assert rec["state"] == "completed", rec

            r = await http.post(f"{rec_url}/transcodes", json={"format": "mp4-h264-aac"})
            assert r.status_code == 202, r.text
            t_url = f"{rec_url}/transcodes/{r.json()['id']}"
            t = await wait_for(http, t_url, lambda x: x["state"] != "running")
            assert t["state"] == "completed", t
            listed = (await http.get(f"{rec_url}/transcodes")).json()
            assert [x["id"] for x in listed] == [t["id"]]
            got = await http.get(f"{t_url}/file")
            assert got.status_code == 200, got.text
            assert got.headers["content-type"] == "video/mp4"
            out = tmp_path / "bob.mp4"
            out.write_bytes(got.content)

            bad = await http.post(f"{rec_url}/transcodes", json={"format": "avi"})
            assert bad.status_code == 422
            unknown = "0" * 16  # a well-formed id nobody has
            missing = await http.post(
                f"/api/rooms/{room}/recordings/{unknown}/transcodes", json={"format": "ogg-opus"}
            )
            assert missing.status_code == 404, missing.text
            nobody = await http.get(f"{rec_url}/transcodes/{unknown}")
            assert nobody.status_code == 404, nobody.text
            malformed = await http.get(f"{rec_url}/transcodes/nope")
            assert malformed.status_code == 422, malformed.text
            viewer = token(stack.settings, "viewer", room=room, room_join=True)
            denied = await http.post(
                f"{rec_url}/transcodes",
                json={"format": "ogg-opus"},
                headers={"Authorization": f"Bearer {viewer}"},
            )
            assert denied.status_code == 403
            # Deleting the recording deletes its transcodes, files included.
            transcoded = stack.media.root / t["file"]
            assert transcoded.is_file(), transcoded
            assert (await http.delete(rec_url)).status_code == 204
            assert not transcoded.exists()
            assert (await http.get(t_url)).status_code == 404
    finally:
        await leave(pub)

    streams = {s.codec_type: s for s in probe_streams(out, count_frames=True)}
    assert (streams["video"].codec_name, streams["audio"].codec_name) == ("h264", "aac")
    duration = streams["audio"].duration or 0.0
    assert abs(duration - (rec["duration_s"] or 0)) < 0.5, (duration, rec["duration_s"])
    assert abs(duration - (t["duration_s"] or 0)) < 0.5, (duration, t["duration_s"])
    assert (streams["video"].frames or 0) > 30, streams["video"]
    pictures = decode_frames(out, 5, 160, 120)  # the frames are the green picture sent
    colours = [dominant_color(f, 80, 60, r=30) for f in pictures]
    assert len(colours) >= 15 and colours.count("green") >= 0.95 * len(colours), colours
    freq = dominant_frequency(decode_audio(out)[48000 : 48000 * 3], 48000)
    assert abs(freq - 660.0) < 3, freq
    log.info(
        "measured: transcode webm -> mp4 %.3f s (recording %.3f s), %d frames, %.2f Hz",
        duration, rec["duration_s"], streams["video"].frames, freq,
    )  # fmt: skip
