"""Names and ids, defined once: every route, WS message and record validates with these."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

Json = dict[str, Any]
"""A JSON object as it crosses a process before (or instead of) a typed model."""

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""Room names, participant identities, node and input ids."""

JOB_ID_PATTERN = r"^[0-9a-f]{16}$"
"""Recording, egress, injection and transcode ids (16 hex digits)."""

RoomName = Annotated[str, Field(pattern=NAME_PATTERN, description="room name")]
Identity = Annotated[str, Field(pattern=NAME_PATTERN, description="participant identity")]
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, description="job id (16 hex digits)")]
