"""A minimal TURN client (RFC 8656 over UDP) for tests that ask coturn directly:
Allocate with the long-term-credential flow (401 with REALM and NONCE first, then the
request again with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY), then CreatePermission.
STUN encoding is aioice's; the flow is ours, so every reply is seen as coturn sent it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from dataclasses import dataclass

from aioice import stun

UDP_TRANSPORT = 0x11000000  # REQUESTED-TRANSPORT: UDP (17) in the first byte


@dataclass
class Reply:
    ok: bool
    code: int | None  # ERROR-CODE of an error reply
    reason: str
    attributes: dict[str, object]


class TurnUdpClient:
    def __init__(self, server: tuple[str, int], username: str, password: str) -> None:
        self.server = server
        self.username, self.password = username, password
        self.realm = ""
        self.nonce = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()

    def _key(self) -> bytes:
        return hashlib.md5(f"{self.username}:{self.realm}:{self.password}".encode()).digest()

    async def _exchange(self, request: stun.Message, timeout: float = 2.0) -> stun.Message:
        loop = asyncio.get_running_loop()
        for _ in range(3):  # UDP: resend on silence
            await loop.sock_sendto(self.sock, bytes(request), self.server)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while True:
                        data = await loop.sock_recv(self.sock, 2048)
                        reply = stun.parse_message(data)
                        if reply.transaction_id == request.transaction_id:
                            return reply
        raise TimeoutError(f"no TURN reply from {self.server}")

    async def request(self, method: stun.Method, attributes: dict[str, object]) -> Reply:
        """One request, authenticated once the server has named its realm and nonce: a
        first 401 (no credentials yet) or a 438 (stale nonce) is answered with them, as a
        real client does; a 401 to an authenticated request is the refusal."""
        code, reason, got = 0, "", {}
        for _ in range(3):
            authenticated = bool(self.nonce)
            msg = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
            msg.attributes.update(attributes)
            if authenticated:
                msg.attributes["USERNAME"] = self.username
                msg.attributes["REALM"] = self.realm
                msg.attributes["NONCE"] = self.nonce
                msg.add_message_integrity(self._key())
            else:
                msg.add_fingerprint()
            reply = await self._exchange(msg)
            got = dict(reply.attributes)
            if reply.message_class == stun.Class.RESPONSE:
                return Reply(True, None, "", got)
            code, reason = reply.attributes.get("ERROR-CODE", (0, ""))
            fresh = reply.attributes.get("NONCE")
            if isinstance(fresh, bytes) and (code == 438 or (code == 401 and not authenticated)):
                self.realm, self.nonce = str(reply.attributes.get("REALM", self.realm)), fresh
                continue
            break
        return Reply(False, code, str(reason), got)

    async def allocate(self, lifetime_s: int = 60) -> Reply:
        return await self.request(
            stun.Method.ALLOCATE, {"REQUESTED-TRANSPORT": UDP_TRANSPORT, "LIFETIME": lifetime_s}
        )

    async def allocate_without_credentials(self) -> Reply:
        """One Allocate with no USERNAME and no MESSAGE-INTEGRITY, not retried."""
        msg = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
        msg.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
        msg.add_fingerprint()
        reply = await self._exchange(msg)
        got = dict(reply.attributes)
        if reply.message_class == stun.Class.RESPONSE:
            return Reply(True, None, "", got)
        code, reason = reply.attributes.get("ERROR-CODE", (0, ""))
        return Reply(False, code, str(reason), got)

    async def refresh(self, lifetime_s: int) -> Reply:
        """Refresh this client's allocation (0: delete it), with its credentials."""
        return await self.request(stun.Method.REFRESH, {"LIFETIME": lifetime_s})

    async def create_permission(self, peer: str, port: int = 9) -> Reply:
        return await self.request(stun.Method.CREATE_PERMISSION, {"XOR-PEER-ADDRESS": (peer, port)})
