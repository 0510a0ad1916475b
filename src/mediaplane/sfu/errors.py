"""Errors of the SFU RPC client.

    SfuError
    ├── SfuConnectionError   cannot connect, or the connection dropped mid-request
    │   └── SfuAuthError     the SFU refused the secret (close code 4001); not retried
    ├── SfuTimeout           no reply within the request's timeout
    └── SfuRpcError          the SFU answered with an error reply (.code, .method)

`SfuRpcError.code` is one of the codes of docs/sfu-rpc.md: BAD_MESSAGE,
UNKNOWN_METHOD, INVALID_PARAMS, NOT_FOUND, INVALID_STATE, INTERNAL.
"""

from __future__ import annotations


class SfuError(Exception):
    """Base of every SFU client error."""


class SfuConnectionError(SfuError):
    """Cannot reach the SFU, or the socket dropped before the reply."""


class SfuAuthError(SfuConnectionError):
    """The SFU refused our secret."""


class SfuTimeout(SfuError):
    """No reply in time."""


class SfuRpcError(SfuError):
    """The SFU answered a request with an error reply."""

    def __init__(self, code: str, message: str, method: str) -> None:
        super().__init__(f"{method}: {code}: {message}")
        self.code = code
        self.message = message
        self.method = method
