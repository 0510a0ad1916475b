"""The control plane's client of the media manager's REST API: typed jobs in, typed jobs out."""

from __future__ import annotations

from typing import Any

import httpx

from mediaplane.control.errors import ControlError, Unavailable
from mediaplane.media.models import Endpoint, Job
from mediaplane.wire.ids import Json


class MediaManagerError(ControlError):
    status = 502
    code = "media_error"


# The media manager's refusals that are the caller's to fix keep their status
# (a path outside the root: 400, a missing file: 400, over the CPU budget: 429,
# no disk: 507), and so does "no such job" (404, as the media pool says it: what a
# restarted control plane needs to tell a forgotten job from a failing manager);
# anything else is a failure of the media manager (502).
PASSED_ON = {
    400: "bad_request", 404: "not_found", 409: "conflict", 429: "over_budget",
    507: "insufficient_storage",
}  # fmt: skip


class PlacedJob(Job):
    """A media manager's job as the control plane sees it: which manager runs it."""

    manager: str | None = None


class MediaClient:
    def __init__(self, base_url: str, secret: str, *, timeout: float = 60.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=timeout
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Json:
        try:
            r = await self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise Unavailable(f"the media manager is unreachable: {e}") from None
        body: Json = r.json() if r.content else {}
        if r.status_code >= 400:
            err = body.get("error", {})
            refusal = MediaManagerError(f"media manager: {err.get('message', r.text)}")
            if r.status_code in PASSED_ON:
                refusal.status, refusal.code = r.status_code, PASSED_ON[r.status_code]
            raise refusal
        return body

    async def start_recording(self, body: Json) -> PlacedJob:
        return PlacedJob.model_validate(await self._call("POST", "/recordings", json=body))

    async def create_job(self, body: Json) -> PlacedJob:
        return PlacedJob.model_validate(await self._call("POST", "/jobs", json=body))

    async def add_input(self, job_id: str, spec: Json) -> Endpoint:
        """A track into a running composite; the answer is where to send its RTP."""
        answer = await self._call("POST", f"/jobs/{job_id}/inputs", json=spec)
        return Endpoint.model_validate(answer)

    async def remove_input(self, job_id: str, input_id: str) -> None:
        await self._call("DELETE", f"/jobs/{job_id}/inputs/{input_id}")

    async def get(self, job_id: str) -> PlacedJob:
        return PlacedJob.model_validate(await self._call("GET", f"/jobs/{job_id}"))

    async def stop(self, job_id: str) -> PlacedJob:
        return PlacedJob.model_validate(await self._call("POST", f"/jobs/{job_id}/stop"))

    async def jobs(self) -> list[PlacedJob]:
        try:
            r = await self._http.get("/jobs")
        except httpx.TransportError as e:
            raise Unavailable(f"the media manager is unreachable: {e}") from None
        return [PlacedJob.model_validate(j) for j in r.json()]

    async def health(self) -> Json:
        return await self._call("GET", "/healthz")
