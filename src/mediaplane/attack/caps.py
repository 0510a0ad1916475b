"""Resource caps: one participant cannot take the SFU's transports, nor one client
address the control plane's sockets; a normal participant is served meanwhile."""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult
from mediaplane.peer.signaling_client import SignalingReplyError

NAME = "caps"
MAX_TRANSPORTS_TRIED = 64  # the default cap is 4; 1000 exhausted the SFU in the issue
MAX_SOCKETS_TRIED = 600  # the default per-address cap is 50, 2000 in all


async def transports(ctx: Context, room: str) -> tuple[bool, str]:
    sig = await ctx.join(room, "hog")
    try:
        for made in range(MAX_TRANSPORTS_TRIED):
            try:
                await sig.create_webrtc_transport("recv")
            except SignalingReplyError as e:
                ok = e.code == "limit_exceeded"
                return ok, f"transport {made + 1} refused ({e.code})"
        return False, f"{MAX_TRANSPORTS_TRIED} transports made, none refused"
    finally:
        await sig.close()


async def sockets(ctx: Context, room: str) -> tuple[bool, str]:
    """Idle sockets (a valid token, never a join) from this address until the server
    closes one with 4429."""
    tok = await ctx.token("idle", room=room, room_join=True)
    url = f"{ctx.ws_url(room)}?access_token={tok}"
    opened: list[ClientConnection] = []
    try:
        for n in range(MAX_SOCKETS_TRIED):
            try:
                ws = await connect(url, ssl=ctx.ssl, open_timeout=5)
            except (InvalidStatus, OSError) as e:
                return True, f"socket {n + 1} refused at the handshake ({type(e).__name__})"
            opened.append(ws)
            try:
                await asyncio.wait_for(ws.recv(), 0.05)
            except TimeoutError:
                continue  # still open
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd is not None else None
                return code == 4429, f"socket {n + 1} closed {code} with {n} open"
        return False, f"{MAX_SOCKETS_TRIED} idle sockets open, none refused"
    finally:
        for s in opened:
            with contextlib.suppress(Exception):
                await s.close()


async def run(ctx: Context) -> CheckResult:
    room = await ctx.room("caps")
    ok_t, why_t = await transports(ctx, room)
    served_t = await ctx.served(room)
    ok_s, why_s = await sockets(ctx, room)
    await asyncio.sleep(0.5)  # the server counts the closed sockets down
    served_s = await ctx.served(room)
    problems = [p for p in (served_t, served_s) if p]
    passed = ok_t and ok_s and not problems
    detail = f"transports: {why_t}; sockets: {why_s}"
    if problems:
        detail += "; " + "; ".join(problems)
    return CheckResult(name=NAME, passed=passed, detail=detail)
