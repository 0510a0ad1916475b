"""Names and ids, defined once: every route, WS message and record validates with these."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field

Json = dict[str, Any]
"""A JSON object as it crosses a process before (or instead of) a typed model."""

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
"""Room names, participant identities, node and input ids: 1-64 of A-Z a-z 0-9 _ . -, not
starting with `.` or `-` (so never `.`, `..` or an option-looking `-x`: names become path
segments and Redis key parts)."""

JOB_ID_PATTERN = r"^[0-9a-f]{16}$"
"""Recording, egress, injection and transcode ids (16 hex digits)."""

NAME = re.compile(NAME_PATTERN)

RoomName = Annotated[str, Field(pattern=NAME_PATTERN, description="room name")]
Identity = Annotated[str, Field(pattern=NAME_PATTERN, description="participant identity")]
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, description="job id (16 hex digits)")]
