"""The admin dashboard's egress and injection controls, clicked in a real Chromium against the
real stack: an aiortc publisher in the room, a looping file played into it, a room composite to
an MP4 downloaded through the page and decoded, an RTMP egress to a closed port that fails."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, expect

from mediaplane.state.redis_server import free_tcp_port
from tests.integration.test_egress import PEOPLE, leave, publish
from tests.integration.test_web_call import screenshot_path
from tests.support.control import admin
from tests.support.mediacheck import band_energy_ratio, decode_audio, probe_streams
from tests.support.sources import TONE_HZ, make_av_file
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)


async def sign_in(chromium: Browser, stack: Stack, errors: list[str]) -> Page:
    context = await chromium.new_context(
        viewport={"width": 1200, "height": 1000}, accept_downloads=True
    )
    page = await context.new_page()
    page.on("console", lambda m: errors.append(f"admin: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"admin: {e}"))
    await page.goto(f"{stack.control.http}/admin")
    await page.get_by_label("Admin token").fill(admin(stack.settings))
    await page.get_by_role("button", name="Sign in").click()
    return page


async def fetch_hls(playlist_url: str) -> tuple[int, bytes]:
    """Poll the playlist (no header: the link is signed) until it lists two
    segments; return their count and the segments concatenated."""
    async with httpx.AsyncClient(timeout=30) as player, asyncio.timeout(30):
        while True:
            playlist = await player.get(playlist_url)
            uris = [x for x in playlist.text.splitlines() if x and not x.startswith("#")]
            if playlist.status_code == 200 and len(uris) >= 2:
                break
            await asyncio.sleep(0.5)
        ts = b""
        for uri in uris:
            seg = await player.get(urljoin(playlist_url, uri))
            assert seg.status_code == 200, seg.text
            ts += seg.content
    return len(uris), ts


def row(table: Locator, text: str) -> Locator:
    return table.locator("tbody tr", has_text=text)


async def test_dashboard_egress_and_injection(
    browser: Browser,
    stack: Stack,
    tmp_path: Path,
) -> None:
    room = f"dashm-{uuid.uuid4().hex[:6]}"
    make_av_file(stack.media.root / "inject" / f"{room}.mp4", seconds=6.0)
    errors: list[str] = []
    pub = await publish(stack, room, "alice")
    try:
        page = await sign_in(browser, stack, errors)
        block = page.get_by_role("article", name=f"Room {room}")
        people = block.get_by_role("table", name=f"Participants of {room}")
        await expect(row(people, "alice")).to_have_count(1, timeout=15000)
        # Her tracks with the SFU's live figures (a refresh is one snapshot: /api/rooms?expand).
        await expect(row(people, "alice").locator("li").first).to_contain_text(
            re.compile(r"[1-9][0-9]* kbit/s, lost [0-9]+, score (?:[1-9]|10) "), timeout=10000
        )

        # Play a file into the room (looping): listed running, its participant appears.
        inject = block.get_by_role("form", name=f"Play media into {room}")
        await inject.get_by_label("Media").fill(f"inject/{room}.mp4")
        await inject.get_by_label("Name").fill("Bars <b>&amp;</b>")
        await inject.get_by_label("Loop").check()
        await inject.get_by_label("Name").focus()
        # The page refreshes every 2 s: the form keeps what was typed and the focus.
        await page.wait_for_timeout(2500)
        await expect(inject.get_by_label("Name")).to_be_focused()
        await expect(inject.get_by_label("Media")).to_have_value(f"inject/{room}.mp4")
        t0 = time.monotonic()
        await inject.get_by_role("button", name="Play into room").click()
        injections = block.get_by_role("table", name=f"Injections of {room}")
        await expect(injections.locator("[data-state=running]")).to_have_count(1, timeout=15000)
        t_inject = time.monotonic() - t0
        await expect(row(people, "inject-")).to_have_count(1, timeout=10000)
        # The name is shown as text, never parsed as markup.
        await expect(row(people, "inject-").locator("td").first).to_have_text("Bars <b>&amp;</b>")

        # A room composite to an MP4 file.
        egress = block.get_by_role("form", name=f"Start egress in {room}")
        sources = egress.get_by_label("Source").locator("option")
        await expect(sources).to_have_count(3, timeout=5000)  # the room, alice, the injection
        await expect(sources.filter(has_text="(alice)")).to_have_count(1)
        await egress.get_by_label("Source").select_option(label="Whole room (composite)")
        await egress.get_by_label("Output").select_option(label="File, MP4 (H264 + AAC)")
        await egress.get_by_label("Size").select_option(value="640x360")
        t0 = time.monotonic()
        await egress.get_by_role("button", name="Start egress").click()
        listed = block.get_by_role("table", name=f"Egress of {room}")
        file_row = row(listed, "file mp4")
        await expect(file_row.locator("[data-state=running]")).to_have_count(1, timeout=20000)
        t_active = time.monotonic() - t0

        # RTMP to a closed port: the row ends failed with the reason.
        port = free_tcp_port()
        await egress.get_by_label("Output").select_option(value="rtmp")
        await egress.get_by_label("RTMP URL").fill(f"rtmp://127.0.0.1:{port}/live/key")
        await egress.get_by_role("button", name="Start egress").click()
        rtmp_row = row(listed, f"127.0.0.1:{port}")
        await expect(rtmp_row.locator("[data-state=failed]")).to_have_count(1, timeout=20000)
        await expect(rtmp_row.locator(".error")).to_contain_text(
            re.compile("refused", re.IGNORECASE)
        )
        failed_text = await rtmp_row.locator(".error").inner_text()
        assert "key" not in await rtmp_row.locator("td").nth(2).inner_text()

        # A bad request shows the API's message in the form.
        await egress.get_by_label("RTMP URL").fill("http://127.0.0.1/not-rtmp")
        await egress.get_by_role("button", name="Start egress").click()
        await expect(egress.get_by_role("alert")).not_to_be_empty(timeout=5000)
        bad_text = await egress.get_by_role("alert").inner_text()

        await page.wait_for_timeout(max(0.0, 4.0 - (time.monotonic() - t0 - t_active)) * 1000)
        await page.screenshot(path=screenshot_path("dashboard-egress.png"), full_page=True)
        await file_row.get_by_role("button", name=re.compile(r"^Stop egress")).click()
        await expect(file_row.locator("[data-state=completed]")).to_have_count(1, timeout=20000)
        async with page.expect_download() as info:
            await file_row.get_by_role("button", name=re.compile(r"^Download egress")).click()
        out = tmp_path / "composite.mp4"
        await (await info.value).save_as(out)

        # HLS: the row gets a playlist link with a token that may only read this room.
        await egress.get_by_label("Output").select_option(value="hls")
        await egress.get_by_label(re.compile(r"^Live window")).fill("3")
        await egress.get_by_role("button", name="Start egress").click()
        hls_row = listed.locator("tbody tr").filter(
            has=page.get_by_role("cell", name="HLS", exact=True)
        )
        await expect(hls_row.locator("[data-state=running]")).to_have_count(1, timeout=20000)
        await hls_row.get_by_role("button", name=re.compile(r"^HLS link")).click()
        link = hls_row.get_by_role("link", name=re.compile(r"^HLS playlist"))
        await expect(link).to_have_count(1, timeout=5000)
        href = await link.get_attribute("href")
        # a signed URL for this egress only: no token in the link (docs/security.md, HLS)
        query = parse_qs(urlsplit(href or "").query)
        assert href and set(query) == {"expires", "sig"}, href
        segments, ts = await fetch_hls(href)
        async with stack.http() as http:
            listed_hls = [e for e in (await http.get(f"/api/rooms/{room}/egress")).json()
                          if e["output"] == "hls"]  # fmt: skip
        assert [e["hls_window"] for e in listed_hls] == [3], listed_hls
        async with httpx.AsyncClient(base_url=stack.control.http) as anon:
            # the signature opens this playlist, nothing else
            refused = await anon.get(f"/api/rooms/{room}/egress", params=query)
        assert refused.status_code == 401, refused.text
        await hls_row.get_by_role("button", name=re.compile(r"^Stop egress")).click()
        await expect(hls_row.locator("[data-state=completed]")).to_have_count(1, timeout=20000)

        await injections.get_by_role("button", name=re.compile(r"^Stop injection inject-")).click()
        await expect(injections.locator("[data-state=completed]")).to_have_count(1, timeout=15000)
        await expect(row(people, "inject-")).to_have_count(0, timeout=10000)
    finally:
        await leave(pub)

    hls = tmp_path / "hls.ts"
    hls.write_bytes(ts)
    hls_streams = {s.codec_type: s for s in probe_streams(hls)}
    assert (hls_streams["video"].codec_name, hls_streams["audio"].codec_name) == ("h264", "aac")
    hls_pcm = decode_audio(hls)
    hls_share = band_energy_ratio(hls_pcm, 48000, PEOPLE["alice"][0])
    streams = {s.codec_type: s for s in probe_streams(out, count_frames=True)}
    assert (streams["video"].codec_name, streams["audio"].codec_name) == ("h264", "aac")
    pcm = decode_audio(out)
    seconds = len(pcm) / 48000
    alice_hz = PEOPLE["alice"][0]
    shares = {
        "alice": band_energy_ratio(pcm, 48000, alice_hz),
        "injection": band_energy_ratio(pcm, 48000, TONE_HZ),
    }
    log.info(
        "measured: dashboard: injection active %.2f s after the click, egress active %.2f s "
        "after the click; mp4 %.2f s audio, %s video frames, tone shares %s; closed RTMP port: "
        "%r; bad URL: %r; HLS via the page's link: %d segments, %.2f s, alice tone share %.3f",
        t_inject, t_active, seconds, streams["video"].frames,
        {k: round(v, 3) for k, v in shares.items()}, failed_text[:80], bad_text[:80],
        segments, len(hls_pcm) / 48000, hls_share,
    )  # fmt: skip
    assert seconds > 2.0, seconds
    assert (streams["video"].frames or 0) > 20, streams["video"]
    assert shares["alice"] > 0.05 and shares["injection"] > 0.05, shares
    assert len(hls_pcm) / 48000 > 1.0 and hls_share > 0.05, (len(hls_pcm), hls_share)
    # Chromium logs the deliberate bad request's 422; any other console error is a fault.
    assert [e for e in errors if "status of 422" not in e] == [], errors
    assert len(errors) == 1, errors
