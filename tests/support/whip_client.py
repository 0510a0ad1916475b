"""A WHIP/WHEP client on aiortc (RFC 9725 shape): POST the offer, set the answer, DELETE."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urljoin

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender


class WhipError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


class AiortcWhipClient:
    def __init__(self, endpoint: str, token: str, verify: ssl.SSLContext | bool = True) -> None:
        self.endpoint, self.token = endpoint, token
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.resource: str | None = None
        self.etag: str | None = None
        self.answer: str = ""
        self.http = httpx.AsyncClient(timeout=15, verify=verify)

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}"}
        if content_type:
            h["Content-Type"] = content_type
        return h

    async def _negotiate(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        r = await self.http.post(
            self.endpoint,
            content=self.pc.localDescription.sdp,
            headers=self._headers("application/sdp"),
        )
        if r.status_code != 201:
            raise WhipError(r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/sdp")
        self.resource = urljoin(self.endpoint, r.headers["location"])
        self.etag = r.headers.get("etag")
        self.answer = r.text
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))

    async def publish(self, *tracks: MediaStreamTrack, video_codec: str | None = None) -> None:
        """Send `tracks`; `video_codec` (e.g. "video/H264", what OBS offers) limits the offer."""
        for track in tracks:
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            if video_codec and track.kind == "video":
                caps = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences([c for c in caps if c.mimeType == video_codec])
        await self._negotiate()

    async def play(self, *kinds: str) -> dict[str, MediaStreamTrack]:
        """Receive-only transceivers of `kinds`; returns the remote tracks by kind."""
        for kind in kinds:
            self.pc.addTransceiver(kind, direction="recvonly")
        await self._negotiate()
        return {t.receiver.track.kind: t.receiver.track for t in self.pc.getTransceivers()}

    async def wait_connected(self, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while self.pc.connectionState != "connected":
                if self.pc.connectionState in ("failed", "closed"):
                    raise RuntimeError(f"connection {self.pc.connectionState}")
                await asyncio.sleep(0.05)

    async def patch(self, fragment: str, if_match: str | None = None) -> httpx.Response:
        assert self.resource
        headers = self._headers("application/trickle-ice-sdpfrag")
        if if_match:
            headers["If-Match"] = if_match
        return await self.http.patch(self.resource, content=fragment, headers=headers)

    async def delete(self) -> int:
        assert self.resource
        r = await self.http.delete(self.resource, headers=self._headers())
        return r.status_code

    async def close(self) -> None:
        await self.pc.close()
        await self.http.aclose()
