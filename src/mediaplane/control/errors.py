"""Control-plane errors, each with the code of its reply.

    ControlError(code, message)
    ├── BadRequest      400 / `bad_request`
    ├── NotFound        404 / `not_found`
    ├── Conflict        409 / `conflict`
    ├── InvalidState    409 / `invalid_state`
    ├── RoomFull        403 / `room_full`
    ├── TooManyRequests 429 / `rate_limited`
    ├── LimitExceeded   429 / `limit_exceeded` (a resource cap, limits.py)
    ├── Unavailable     503 / `unavailable` (SFU or Redis unreachable)
    └── ResumeRefused   409 / its own code (`session_expired`, `resume_token_used`, ...)

auth.TokenError and auth.PermissionDenied map to 401 and 403. The REST API
(api/errors.py) and the signaling socket (signaling/session.py) each turn
these into replies in one place.
"""

from __future__ import annotations


class ControlError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ControlError):
    """The request is well-formed but asks for something not allowed (a path, a scheme)."""


class NotFound(ControlError):
    status = 404
    code = "not_found"


class Conflict(ControlError):
    status = 409
    code = "conflict"


class InvalidState(ControlError):
    status = 409
    code = "invalid_state"


class RoomFull(ControlError):
    status = 403
    code = "room_full"


class LimitExceeded(ControlError):
    """A participant, room or client address is at one of its caps (control/limits.py)."""

    status = 429
    code = "limit_exceeded"


class TooManyRequests(ControlError):
    status = 429
    code = "rate_limited"


class Unavailable(ControlError):
    status = 503
    code = "unavailable"


class ResumeRefused(ControlError):
    """A signaling `resume` that cannot be served; `code` says why (docs/signaling.md)."""

    status = 409

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# What a client is told when Redis is unreachable: never where Redis is (its address,
# its password), which is the operator's business (docs/operations.md).
REDIS_UNAVAILABLE = "shared state (Redis) is unavailable; try again shortly"
