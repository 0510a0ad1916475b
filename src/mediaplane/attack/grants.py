"""Grants: a room's admin cannot give a participant more than it holds (room_create,
room_list) through PUT .../grants; a room-scoped grant change still works."""

from __future__ import annotations

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "grants escalation"


async def run(ctx: Context) -> CheckResult:
    room = await ctx.room("grants")
    sig = await ctx.join(room, "target")
    failures = []
    try:
        room_admin = await ctx.token("room-admin", room=room, room_admin=True)
        url = f"/api/rooms/{room}/participants/target/grants"
        async with ctx.http(room_admin) as http:
            for extra in ({"room_create": True}, {"room_list": True}):
                body = {"room": room, "room_join": True, **extra}
                r = await http.put(url, json={"grants": body})
                if r.status_code != 403:
                    failures.append(f"room admin granting {extra}: {r.status_code}")
            ok = await http.put(url, json={"grants": {"room": room, "room_join": True,
                                                      "can_publish": False}})  # fmt: skip
            if ok.status_code != 204:
                failures.append(f"a room-scoped grant change: {ok.status_code} {ok.text[:80]}")
    finally:
        await sig.close()
    served = await ctx.served(room)
    if served:
        failures.append(served)
    if failures:
        return CheckResult(name=NAME, passed=False, detail="; ".join(failures))
    return CheckResult(
        name=NAME, passed=True,
        detail="room_create and room_list refused to a room admin (403); room grants changed",
    )  # fmt: skip
