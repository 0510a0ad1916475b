"""Client side of the SFU: the RPC client, its models and errors, and the process runner."""

from mediaplane.sfu.client import SfuClient
from mediaplane.sfu.errors import (
    SfuAuthError,
    SfuConnectionError,
    SfuError,
    SfuRpcError,
    SfuTimeout,
)
from mediaplane.sfu.process import SfuProcess

__all__ = [
    "SfuAuthError",
    "SfuClient",
    "SfuConnectionError",
    "SfuError",
    "SfuProcess",
    "SfuRpcError",
    "SfuTimeout",
]
