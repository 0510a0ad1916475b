"""A signaling frame larger than the protocol allows is refused by its header (close
1009) before it is read whole; a normal participant is served afterwards."""

from __future__ import annotations

import asyncio

from websockets.exceptions import ConnectionClosed

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "ws frame size"
FRAME_BYTES = 1 << 20  # 16 x the 64 KiB limit


async def run(ctx: Context) -> CheckResult:
    room = await ctx.room("frames")
    tok = await ctx.token("big-frames", room=room, room_join=True)
    code: int | None = None
    async with ctx.raw_ws(f"{ctx.ws_url(room)}?access_token={tok}", max_size=None) as ws:
        try:
            await ws.send("x" * FRAME_BYTES)
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else None
        except TimeoutError:
            code = None
    served = await ctx.served(room)
    passed = code == 1009 and served is None
    detail = f"a {FRAME_BYTES // 1024} KiB frame: closed {code}" + (f"; {served}" if served else "")
    return CheckResult(name=NAME, passed=passed, detail=detail)
