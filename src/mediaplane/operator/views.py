"""Rich tables of what the REST API answers (the CLI prints these)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.table import Table


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    s = max(0.0, time.time() - ts)
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def _ok(flag: object) -> str:
    return "[green]ok[/green]" if flag else "[red]down[/red]"


def services(url: str, ready: dict[str, Any], system: dict[str, Any] | None) -> Table:
    t = Table(title=f"mediaplane at {url}")
    t.add_column("service")
    t.add_column("state")
    t.add_column("detail")
    t.add_row(
        "control plane",
        _ok(True),
        f"instance {ready.get('instance', '?')}, {ready.get('rooms', 0)} room(s) open here",
    )
    t.add_row("redis", _ok(ready.get("redis")), "")
    sfu = (system or {}).get("sfu") or {}
    if sfu.get("ok"):
        objects = sfu.get("objects", {})
        t.add_row(
            "sfu",
            _ok(True),
            f"mediasoup {sfu.get('version', '?')}, "
            f"{objects.get('routers', 0)} routers, {objects.get('producers', 0)} producers, "
            f"{objects.get('consumers', 0)} consumers",
        )
        for w in sfu.get("workers", []):
            t.add_row(
                f"  worker {w['pid']}",
                "",
                f"routers {w['routers']}, transports "
                f"{w['transports']}, consumers {w['consumers']}, load {w['load']}",
            )
    else:
        t.add_row("sfu", _ok(ready.get("sfu")), str(sfu.get("error", "")))
    media = (system or {}).get("media") or {}
    if media:
        detail = ", ".join(f"{k} {v}" for k, v in media.items() if k not in ("ok", "error"))
        t.add_row("media manager", _ok(media.get("ok")), str(media.get("error", detail))[:120])
    if system is not None:
        load = system.get("load") or []
        t.add_row(
            "machine", "", f"{system.get('cpus')} CPUs, load " + " ".join(f"{x:.2f}" for x in load)
        )
    return t


def sfu_nodes(listing: dict[str, Any]) -> Table:
    """The SFU nodes registered in Redis (GET /api/sfu/nodes), and those marked down."""
    t = Table(title=f"{len(listing.get('nodes', []))} SFU node(s)")
    for col in ("node", "state", "rooms", "workers", "transports", "producers", "consumers"):
        t.add_column(col)
    for n in listing.get("nodes", []):
        t.add_row(
            str(n["node_id"]), _ok(bool(n.get("connected"))), str(n.get("rooms", 0)),
            str(n.get("workers", 0)), str(n.get("transports", 0)), str(n.get("producers", 0)),
            str(n.get("consumers", 0)),
        )  # fmt: skip
    for node_id in listing.get("down", []):
        t.add_row(str(node_id), "[red]down[/red]", "", "", "", "", "")
    return t


def rooms(items: Sequence[dict[str, Any]]) -> Table:
    t = Table(title=f"{len(items)} room(s)")
    for col in ("room", "participants", "max", "worker", "created", "metadata"):
        t.add_column(col)
    for r in items:
        t.add_row(
            r["name"],
            str(r.get("num_participants") or 0),
            str(r["max_participants"]),
            str(r.get("worker_pid") or "-"),
            _ago(r.get("created_at")),
            (r.get("metadata") or "")[:40],
        )
    return t


def participants(room: str, items: Sequence[dict[str, Any]]) -> Table:
    t = Table(title=f"{len(items)} participant(s) in {room}")
    for col in ("identity", "name", "kind", "joined", "tracks", "instance"):
        t.add_column(col)
    for p in items:
        tracks = ", ".join(
            f"{tr['kind']}/{tr['source']}{' (muted)' if tr['paused'] else ''}"
            for tr in p.get("tracks", [])
        )
        t.add_row(
            p["identity"],
            p.get("name", ""),
            p.get("kind", ""),
            _ago(p.get("joinedAt")),
            tracks or "-",
            p.get("instance", ""),
        )
    return t


def recordings(items: Sequence[dict[str, Any]]) -> Table:
    t = Table(title=f"{len(items)} recording(s)")
    for col in ("id", "room", "identity", "state", "duration", "file", "requested", "reason"):
        t.add_column(col)
    for r in items:
        dur = r.get("duration_s")
        reason = r["history"][-1]["reason"] if r.get("history") else ""
        t.add_row(
            r["id"],
            r["room"],
            r.get("identity") or "-",
            r["state"],
            f"{dur:.1f} s" if dur is not None else "-",
            r.get("file") or "-",
            _ago(r.get("requested_at")),
            reason[:60],
        )
    return t
