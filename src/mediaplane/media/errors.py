"""Media-manager errors, each with its HTTP status and code.

MediaError
├── BadRequest      400 bad_request (also path confinement)
├── NotFound        404 not_found
├── Conflict        409 conflict (e.g. stopping a job twice)
├── OverBudget      429 over_budget (admission)
└── Unavailable     503 unavailable (a required GStreamer element is missing)
"""

from __future__ import annotations


class MediaError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(MediaError):
    status = 400
    code = "bad_request"


class NotFound(MediaError):
    status = 404
    code = "not_found"


class Conflict(MediaError):
    status = 409
    code = "conflict"


class OverBudget(MediaError):
    status = 429
    code = "over_budget"


class Unavailable(MediaError):
    status = 503
    code = "unavailable"
