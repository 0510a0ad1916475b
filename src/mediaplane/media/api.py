"""The media manager's REST API (docs/media-manager.md).

Auth: `Authorization: Bearer <MEDIAPLANE_MEDIA_SECRET>` on every route but
the health checks. One error-to-reply point: every error is
`{"error": {"code", "message"}}` with the status of its MediaError class.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from mediaplane.http_errors import error_reply, install_common
from mediaplane.media.errors import MediaError
from mediaplane.media.manager import JobManager
from mediaplane.wire.media import (
    CompositeInput,
    Endpoint,
    Job,
    JobKind,
    JobRequest,
    RecordRequest,
)

bearer = HTTPBearer(auto_error=False)


class Unauthorized(MediaError):
    status = 401
    code = "unauthorized"


def manager(request: Request) -> JobManager:
    m: JobManager = request.app.state.manager
    return m


def authorized(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    secret: str = request.app.state.secret
    given = creds.credentials if creds else ""
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise Unauthorized("missing or wrong media-manager secret")


Manager = Annotated[JobManager, Depends(manager)]
router = APIRouter(dependencies=[Depends(authorized)])


class Recording(Job):
    """The seed's recording resource: a record job with its id as recordingId."""

    recordingId: str


def _recording(job: Job) -> Recording:
    return Recording(**job.model_dump(by_alias=True), recordingId=job.id)


@router.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=Job)
async def create_job(m: Manager, body: Annotated[JobRequest, Body()]) -> Job:
    """Start a job of any kind (record, stream, inject, transcode)."""
    return await m.create(body)


@router.get("/jobs", response_model=list[Job])
async def list_jobs(
    m: Manager,
    kind: Annotated[JobKind | None, Query()] = None,
    state: str | None = Query(default=None, max_length=16),
) -> list[Job]:
    return m.list(kind, state)


@router.get("/jobs/{job_id}", response_model=Job)
async def get_job(m: Manager, job_id: str) -> Job:
    return m.get(job_id)


@router.post("/jobs/{job_id}/stop", response_model=Job)
async def stop_job(m: Manager, job_id: str) -> Job:
    """EOS, a deadline, then SIGTERM, then SIGKILL; answers when the job has ended."""
    return await m.stop(job_id)


@router.post("/jobs/{job_id}/inputs", status_code=status.HTTP_201_CREATED, response_model=Endpoint)
async def add_input(m: Manager, job_id: str, body: CompositeInput) -> Endpoint:
    """A track joins a running composite; answers with the ports to send its RTP to."""
    return await m.add_input(job_id, body)


@router.delete("/jobs/{job_id}/inputs/{input_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_input(m: Manager, job_id: str, input_id: str) -> None:
    """A track leaves a running composite (its tile goes, the grid is laid out again)."""
    await m.remove_input(job_id, input_id)


@router.post("/recordings", status_code=status.HTTP_202_ACCEPTED, response_model=Recording)
async def create_recording(m: Manager, body: RecordRequest) -> Recording:
    """The seed's POST /recordings {filePath, audio?, video?} -> 202 {recordingId, ...}."""
    return _recording(await m.create(body))


@router.get("/recordings", response_model=list[Recording])
async def list_recordings(m: Manager) -> list[Recording]:
    return [_recording(j) for j in m.list("record")]


@router.get("/recordings/{recording_id}", response_model=Recording)
async def get_recording(m: Manager, recording_id: str) -> Recording:
    job = m.get(recording_id)
    if job.kind != "record":
        from mediaplane.media.errors import NotFound

        raise NotFound(f"no recording {recording_id!r}")
    return _recording(job)


@router.post("/recordings/{recording_id}/stop", response_model=Recording)
async def stop_recording(m: Manager, recording_id: str) -> Recording:
    return _recording(await m.stop(recording_id))


health = APIRouter()


class Health(BaseModel):
    status: str
    missing_elements: dict[str, list[str]]  # job kind -> elements not installed
    running_jobs: int
    reconciled: list[str]


@health.get("/healthz", response_model=Health)
async def healthz(m: Manager) -> JSONResponse:
    # Without recording the manager is of no use; other kinds are refused one by one.
    ok = "record" not in m.missing
    status = "ok" if not m.missing else f"missing GStreamer elements for {', '.join(m.missing)}"
    body = Health(
        status=status,
        missing_elements=m.missing,
        running_jobs=sum(1 for j in m.jobs.values() if not j.terminal),
        reconciled=m.reconciled,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


class BodyLimit(BaseHTTPMiddleware):
    def __init__(self, app: object, max_bytes: int) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return error_reply(413, "too_large", f"request body over {self.max_bytes} bytes")
        if length is None and request.method in ("POST", "PUT", "PATCH"):
            body = await request.body()
            if len(body) > self.max_bytes:
                return error_reply(413, "too_large", f"request body over {self.max_bytes} bytes")
        return await call_next(request)


def install(app: FastAPI, max_body_bytes: int) -> None:
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(MediaError)
    async def media_error(_: Request, e: MediaError) -> JSONResponse:
        return error_reply(e.status, e.code, e.message)

    install_common(app)
