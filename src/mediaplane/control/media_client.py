"""The control plane's client of the media manager's REST API."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import httpx

from mediaplane.control.errors import ControlError, Unavailable
from mediaplane.sfu import SfuClient, SfuError


class MediaManagerError(ControlError):
    status = 502
    code = "media_error"


# The media manager's refusals that are the caller's to fix keep their status
# (a path outside the root: 400, a missing file: 400, over the CPU budget: 429,
# no disk: 507); anything else is a failure of the media manager (502).
PASSED_ON = {400: "bad_request", 409: "conflict", 429: "over_budget", 507: "insufficient_storage"}


def consumer_stream(consumer_rtp: dict[str, Any]) -> dict[str, Any]:
    """An SFU consumer's rtpParameters as the media manager's stream description."""
    codec, enc = consumer_rtp["codecs"][0], consumer_rtp["encodings"][0]
    out = {"mimeType": codec["mimeType"], "payloadType": codec["payloadType"],
           "clockRate": codec["clockRate"], "ssrc": enc["ssrc"]}  # fmt: skip
    if codec.get("channels"):
        out["channels"] = codec["channels"]
    return out


class KeyFrameRelay:
    """Key frames for a media job's video inputs after a loss: a worker sends no RTCP to
    the SFU, so its depayloaders' requests are counted in the job (`keyframe_requests`),
    and whoever connected the inputs asks the SFU each time a count moves."""

    def __init__(self) -> None:
        self.relayed: dict[str, int] = {}  # input -> requests seen

    async def relay(
        self, sfu: SfuClient, job: dict[str, Any], consumers: Mapping[str, str | None]
    ) -> list[tuple[str, int]]:
        """Ask for a key frame of each input (its consumer in `consumers`) with new
        requests; returns those inputs and their counts."""
        asked = []
        for name, count in (job.get("keyframe_requests") or {}).items():
            if count <= self.relayed.get(name, 0):
                continue
            self.relayed[name] = count
            consumer = consumers.get(name)
            if consumer is not None:
                with contextlib.suppress(SfuError):
                    await sfu.request_key_frame(consumer)
                asked.append((name, count))
        return asked


class MediaClient:
    def __init__(self, base_url: str, secret: str, *, timeout: float = 60.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=timeout
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            r = await self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise Unavailable(f"the media manager is unreachable: {e}") from None
        body: dict[str, Any] = r.json() if r.content else {}
        if r.status_code >= 400:
            err = body.get("error", {})
            refusal = MediaManagerError(f"media manager: {err.get('message', r.text)}")
            if r.status_code in PASSED_ON:
                refusal.status, refusal.code = r.status_code, PASSED_ON[r.status_code]
            raise refusal
        return body

    async def start_recording(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/recordings", json=body)

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/jobs", json=body)

    async def add_input(self, job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        """A track into a running composite; the answer is where to send its RTP."""
        return await self._call("POST", f"/jobs/{job_id}/inputs", json=spec)

    async def remove_input(self, job_id: str, input_id: str) -> None:
        await self._call("DELETE", f"/jobs/{job_id}/inputs/{input_id}")

    async def get(self, job_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/jobs/{job_id}")

    async def stop(self, job_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/jobs/{job_id}/stop")

    async def jobs(self) -> list[dict[str, Any]]:
        try:
            r = await self._http.get("/jobs")
        except httpx.TransportError as e:
            raise Unavailable(f"the media manager is unreachable: {e}") from None
        data: list[dict[str, Any]] = r.json()
        return data

    async def health(self) -> dict[str, Any]:
        return await self._call("GET", "/healthz")
