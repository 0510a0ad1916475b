"""What every check uses: HTTP and signaling clients to the target, and tokens minted
through its own API with the operator's admin token (no secret needed)."""

from __future__ import annotations

import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from mediaplane.peer.signaling_client import SignalingClient

Json = dict[str, Any]


@dataclass
class Context:
    url: str  # the control plane, http(s)://host:port
    admin_token: str
    verify: ssl.SSLContext | bool = True
    rooms: list[str] = field(default_factory=list)  # made by the checks, deleted at the end

    @property
    def ws_base(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def ws_url(self, room: str) -> str:
        return f"{self.ws_base}/ws/rooms/{room}"

    @property
    def ssl(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https"):
            return None
        if isinstance(self.verify, ssl.SSLContext):
            return self.verify
        return ssl.create_default_context()

    def http(self, token: str | None = "admin") -> httpx.AsyncClient:
        """A client with the admin token ("admin"), another token, or none (None)."""
        headers = {}
        if token is not None:
            tok = self.admin_token if token == "admin" else token
            headers["Authorization"] = f"Bearer {tok}"
        return httpx.AsyncClient(base_url=self.url, headers=headers, verify=self.verify, timeout=20)

    async def room(self, prefix: str) -> str:
        """A room of the check's own (deleted when the suite ends)."""
        name = f"attack-{prefix}-{uuid.uuid4().hex[:6]}"
        async with self.http() as http:
            r = await http.post("/api/rooms", json={"name": name})
            if r.status_code not in (200, 201):
                raise RuntimeError(f"cannot create a room: {r.status_code} {r.text[:200]}")
        self.rooms.append(name)
        return name

    async def token(self, identity: str, **grants: Any) -> str:
        """A token minted by the target (POST /api/tokens with the admin token)."""
        body = {"identity": identity, "grants": grants, "ttl_s": 600}
        async with self.http() as http:
            r = await http.post("/api/tokens", json=body)
            if r.status_code != 200:
                raise RuntimeError(f"cannot mint a token: {r.status_code} {r.text[:200]}")
            return str(r.json()["token"])

    async def join(self, room: str, identity: str, **grants: Any) -> SignalingClient:
        tok = await self.token(identity, room=room, room_join=True, **grants)
        sig = await SignalingClient.connect(self.ws_url(room), tok, ssl=self.ssl)
        await sig.request("join", {"displayName": identity})
        return sig

    @contextlib.asynccontextmanager
    async def raw_ws(self, url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
        async with connect(url, ssl=self.ssl, open_timeout=5, **kwargs) as ws:
            yield ws

    async def cleanup(self) -> None:
        async with self.http() as http:
            for name in self.rooms:
                with contextlib.suppress(httpx.HTTPError):
                    await http.delete(f"/api/rooms/{name}")
        self.rooms.clear()

    async def served(self, room: str) -> str | None:
        """None when a normal participant still joins and gets a transport; else why not."""
        try:
            sig = await self.join(room, f"normal-{uuid.uuid4().hex[:4]}")
        except Exception as e:
            return f"a normal participant cannot join: {e}"
        try:
            await sig.create_webrtc_transport("recv")
        except Exception as e:
            return f"a normal participant gets no transport: {e}"
        finally:
            await sig.close()
        return None
