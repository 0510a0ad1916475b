"""A small synchronous client of a running control plane's REST API (for the CLI).

It authenticates with a token given on the command line, or mints a server-side
admin token from the configured API key and secret (the same settings the running
system uses). Every failure becomes an `OperatorError` carrying the server's
message, so the CLI prints one clear line instead of a traceback.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from mediaplane.control.auth import Grants, mint_token
from mediaplane.reachability import client_verify, local_base_url
from mediaplane.settings import Settings


class OperatorError(Exception):
    """A refused or failed call; `exit_code` 1 for an answer, 2 for no answer."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def admin_token(settings: Settings, identity: str = "mediaplane-cli", ttl_s: int = 600) -> str:
    return mint_token(
        api_key=settings.api_key,
        api_secret=settings.secret("api_secret"),
        identity=identity,
        grants=Grants(room_create=True, room_list=True),
        ttl_s=ttl_s,
    )


class RestClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        timeout_s: float = 60.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            verify=verify,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, url: str | None = None, token: str | None = None
    ) -> RestClient:
        """`url` default: the control plane of these settings on this machine (https
        when it runs with TLS: its own certificate is trusted, docs/networking.md)."""
        base = url or local_base_url(settings)
        verify = client_verify(settings, check_hostname=url is not None)
        return cls(base, token or admin_token(settings), verify=verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        ok_404: bool = False,
    ) -> Any:
        try:
            r = self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as e:
            raise OperatorError(
                f"cannot reach the control plane at {self.base_url} ({e.__class__.__name__}: "
                f"{e}); is `mediaplane up` running there?",
                exit_code=2,
            ) from None
        if r.status_code == 404 and ok_404:
            return None
        if r.status_code >= 400:
            raise OperatorError(f"{method} {path}: HTTP {r.status_code}: {_message(r)}")
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    # system ---------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """/readyz answers 503 with a body when something is down: both are answers."""
        try:
            r = self._http.get("/readyz")
        except httpx.TransportError as e:
            raise OperatorError(
                f"cannot reach the control plane at {self.base_url} ({e}); "
                "is `mediaplane up` running there?",
                exit_code=2,
            ) from None
        body: dict[str, Any] = r.json()
        return body

    def system(self) -> dict[str, Any]:
        out: dict[str, Any] = self.call("GET", "/api/system")
        return out

    def sfu_nodes(self) -> dict[str, Any]:
        out: dict[str, Any] = self.call("GET", "/api/sfu/nodes")
        return out

    # rooms ----------------------------------------------------------------------
    def rooms(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.call("GET", "/api/rooms")
        return out

    def create_room(
        self, name: str, max_participants: int, empty_timeout_s: int, metadata: str
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "max_participants": max_participants,
            "empty_timeout_s": empty_timeout_s,
            "metadata": metadata,
        }
        out: dict[str, Any] = self.call("POST", "/api/rooms", json=body)
        return out

    def delete_room(self, name: str) -> None:
        self.call("DELETE", f"/api/rooms/{name}")

    def participants(self, room: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.call("GET", f"/api/rooms/{room}/participants")
        return out

    def remove_participant(self, room: str, identity: str) -> None:
        self.call("DELETE", f"/api/rooms/{room}/participants/{identity}")

    # recordings -----------------------------------------------------------------
    def start_recording(self, room: str, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.call("POST", f"/api/rooms/{room}/recordings", json=body)
        return out

    def stop_recording(self, room: str, rec_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.call("POST", f"/api/rooms/{room}/recordings/{rec_id}/stop")
        return out

    def recordings(self, room: str | None, state: str | None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("room", room), ("state", state)) if v}
        out: list[dict[str, Any]] = self.call("GET", "/api/recordings", params=params)
        return out

    def recording(self, room: str, rec_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.call("GET", f"/api/rooms/{room}/recordings/{rec_id}")
        return out


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300] or r.reason_phrase
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return f"{err.get('code', '')}: {err.get('message', '')}".strip(": ")
    return str(body)[:300]
