"""The `mediaplane` command (README's `./mediaplane ...` runs it after set-up): wiring only."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import typer
from rich.console import Console
from rich.markup import escape

from mediaplane.observability.logs import setup_logging
from mediaplane.operator import views
from mediaplane.operator.rest import OperatorError, RestClient
from mediaplane.settings import Settings
from mediaplane.system import System

app = typer.Typer(help="mediaplane: rooms with audio/video and server-side media work")
rooms_app = typer.Typer(help="rooms and their participants on a running system")
record_app = typer.Typer(help="recordings on a running system")
app.add_typer(rooms_app, name="rooms")
app.add_typer(record_app, name="record")
# emoji=False: a fingerprint's ':CD:' is not an emoji code; details print as they are.
console = Console(emoji=False)


def print_step(name: str, detail: str) -> bool:
    """A start-up step that is done ("<service> up") or a warning, printed whole on its
    line (soft_wrap: a path or a fingerprint is copied from it) and as it is (no markup,
    no emoji codes); False for a step in progress."""
    if name.endswith(" up"):
        console.print(f"[green]✓[/green] {name[:-3]:<14} {escape(detail)}", soft_wrap=True)
    elif name == "warning":
        console.print(f"[yellow]warning:[/yellow] {escape(detail)}", soft_wrap=True)
    else:
        return False
    return True


UrlOpt = typer.Option(
    None, "--url", envvar="MEDIAPLANE_URL", help="control plane URL (default from settings)"
)
TokenOpt = typer.Option(
    None,
    "--token",
    envvar="MEDIAPLANE_TOKEN",
    help="access token (default: an admin token minted from the API key and secret)",
)
JsonOpt = typer.Option(False, "--json", help="print the API's JSON instead of a table")


@contextmanager
def _rest(url: str | None, token: str | None) -> Iterator[RestClient]:
    try:
        with RestClient.from_settings(Settings(), url, token) as client:
            yield client
    except OperatorError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(e.exit_code) from None


def _out(as_json: bool, data: Any, table: Callable[[], Any]) -> None:
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(table())


# up -------------------------------------------------------------------------------
@app.command()
def up(log_level: str = typer.Option("WARNING", help="Python log level")) -> None:
    """Start the whole system, show its status, and run until Ctrl-C (recordings are
    finished, not cut, on the way down)."""
    settings = Settings()
    # MEDIAPLANE_LOG_FORMAT=json: one JSON object a line (docs/operations.md)
    setup_logging("mediaplane", settings.log_format, log_level)
    try:
        asyncio.run(_up(settings, log_level.lower()))
    except Exception as e:
        console.print(f"[red]mediaplane could not start:[/red] {e}")
        raise typer.Exit(1) from None


async def _up(settings: Settings, log_level: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            console.print(f"{sig.name} again: already stopping, finishing recordings first")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    with console.status("starting mediaplane ...") as spinner:

        def step(name: str, detail: str) -> None:
            if not print_step(name, detail):
                spinner.update(f"{escape(detail)} ...")

        start = asyncio.ensure_future(System.start(settings, on_step=step, log_level=log_level))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([start, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not start.done():  # Ctrl-C during start-up: let it finish, then stop
            console.print("stopping once start-up has finished ...")
        system = await start
    try:
        if not stop.is_set():
            await _show_status(system)
            await _run_until(system, stop)
    finally:
        await _shut_down(system)


async def _show_status(system: System) -> None:
    def fetch() -> tuple[dict[str, Any], dict[str, Any]]:
        with RestClient.from_settings(system.settings) as client:
            return client.ready(), client.system()

    try:
        ready, info = await asyncio.to_thread(fetch)
        console.print(views.services(system.url, ready, info))
    except OperatorError as e:
        console.print(f"[yellow]status unavailable:[/yellow] {e}")
    console.print(
        f"Open [bold]{system.url}/[/bold] to join a call, [bold]{system.url}/admin"
        f"[/bold] for the dashboard, REST API at {system.url}/docs"
    )
    console.print(
        "Invite someone: [bold]./mediaplane token --identity alice --room demo --link[/bold]"
        " (open join is off: docs/security.md)   Stop: Ctrl-C"
    )


async def _run_until(system: System, stop: asyncio.Event) -> None:
    waiter = asyncio.ensure_future(system.wait())
    stopper = asyncio.ensure_future(stop.wait())
    done, pending = await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if waiter in done:
        console.print("[red]a service exited on its own; stopping the rest[/red]")


async def _shut_down(system: System) -> None:
    with console.status("finishing recordings and egresses ...") as spinner:
        system.on_step = lambda _name, detail: spinner.update(f"stopping: {detail} ...")
        finished = await system.finish_media_work()
        for w in finished:
            colour = "green" if w.state == "completed" else "red"
            console.print(
                f"[{colour}]{w.kind} {w.id}[/{colour}] room {w.room}: {w.state} ({w.detail})"
            )
        await system.stop()
    console.print(f"stopped ({len(finished)} recording(s)/egress(es) finished on the way down)")


# status, config, token ------------------------------------------------------------
@app.command()
def status(url: str | None = UrlOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Health of a running system: control plane, Redis, SFU workers, media manager, rooms."""
    with _rest(url, token) as client:
        ready = client.ready()
        info = client.system()
        nodes = client.sfu_nodes()
        room_list = client.rooms()
    if as_json:
        console.print_json(
            json.dumps({"ready": ready, "system": info, "sfu_nodes": nodes, "rooms": room_list})
        )
        return
    console.print(views.services(client.base_url, ready, info))
    if nodes.get("mode") == "redis":  # several nodes: the table above shows one node's
        console.print(views.sfu_nodes(nodes))
    console.print(views.rooms(room_list))
    if ready.get("status") != "ready":
        raise typer.Exit(1)


@app.command()
def config() -> None:
    """Print the settings the system would run with (secrets hidden)."""
    settings = Settings()
    console.print_json(json.dumps(settings.model_dump(mode="json")))


@app.command()
def token(
    identity: str = typer.Option(..., help="participant identity"),
    room: str | None = typer.Option(None, help="room the token is for"),
    name: str = typer.Option("", help="display name"),
    join: bool = typer.Option(True, help="may join the room"),
    publish: bool = typer.Option(True, help="may publish"),
    subscribe: bool = typer.Option(True, help="may subscribe"),
    room_admin: bool = typer.Option(False, "--room-admin", help="may manage the room"),
    record: bool = typer.Option(False, help="may record"),
    server_admin: bool = typer.Option(False, "--admin", help="create/list/delete any room"),
    ttl: int = typer.Option(6 * 3600, help="lifetime in seconds"),
    link: bool = typer.Option(False, help="print the call page's link with the token"),
) -> None:
    """Mint an access token with the configured API key and secret."""
    from mediaplane.control.auth import Grants, mint_token
    from mediaplane.reachability import public_base_url

    settings = Settings()
    if room is None and not server_admin:
        raise typer.BadParameter("give --room, or --admin for a server-wide token")
    grants = Grants(
        room=room,
        room_join=join and room is not None,
        can_publish=publish,
        can_subscribe=subscribe,
        room_admin=room_admin,
        room_record=record,
        room_create=server_admin,
        room_list=server_admin,
    )
    minted = mint_token(
        api_key=settings.api_key,
        api_secret=settings.secret("api_secret"),
        identity=identity,
        name=name,
        grants=grants,
        ttl_s=ttl,
    )
    if link and room is None:
        raise typer.BadParameter("--link needs --room (the room the link joins)")
    if link:
        query = urlencode({"room": room, "name": name or identity, "token": minted})
        minted = f"{public_base_url(settings)}/?{query}"
    typer.echo(minted)


# rooms ----------------------------------------------------------------------------
@rooms_app.command("list")
def rooms_list(
    url: str | None = UrlOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt
) -> None:
    """Every room with its participant count."""
    with _rest(url, token) as client:
        items = client.rooms()
    _out(as_json, items, lambda: views.rooms(items))


@rooms_app.command("create")
def rooms_create(
    name: str,
    max_participants: int = typer.Option(50, help="participant limit"),
    empty_timeout: int = typer.Option(300, help="seconds an empty room is kept"),
    metadata: str = typer.Option("", help="free text kept with the room"),
    url: str | None = UrlOpt,
    token: str | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create a room."""
    with _rest(url, token) as client:
        room = client.create_room(name, max_participants, empty_timeout, metadata)
    _out(as_json, room, lambda: views.rooms([room]))


@rooms_app.command("delete")
def rooms_delete(name: str, url: str | None = UrlOpt, token: str | None = TokenOpt) -> None:
    """Delete a room; its participants are disconnected."""
    with _rest(url, token) as client:
        client.delete_room(name)
    console.print(f"room {name} deleted")


@rooms_app.command("participants")
def rooms_participants(
    room: str, url: str | None = UrlOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt
) -> None:
    """The participants of a room with their tracks."""
    with _rest(url, token) as client:
        items = client.participants(room)
    _out(as_json, items, lambda: views.participants(room, items))


@rooms_app.command("kick")
def rooms_kick(
    room: str, identity: str, url: str | None = UrlOpt, token: str | None = TokenOpt
) -> None:
    """Disconnect a participant."""
    with _rest(url, token) as client:
        client.remove_participant(room, identity)
    console.print(f"{identity} removed from {room}")


# recordings -----------------------------------------------------------------------
@record_app.command("start")
def record_start(
    room: str,
    identity: str | None = typer.Option(None, help="participant to record"),
    whole_room: bool = typer.Option(False, "--whole-room", help="every participant (room mode)"),
    per_track: bool = typer.Option(False, "--per-track", help="one file per track"),
    audio: bool = typer.Option(True, help="record audio"),
    video: bool = typer.Option(True, help="record video"),
    wait: bool = typer.Option(True, help="wait until the first packet is written"),
    url: str | None = UrlOpt,
    token: str | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Start recording a participant (or the whole room)."""
    body = {
        "identity": identity,
        "audio": audio,
        "video": video,
        "mode": "room" if whole_room else "participant",
        "layout": "per_track" if per_track else "muxed",
    }
    with _rest(url, token) as client:
        rec = client.start_recording(room, body)
        if wait and not rec.get("children") and rec["state"] == "starting":
            rec = _wait_recording(client, room, rec["id"])
    _out(as_json, rec, lambda: views.recordings([rec]))


def _wait_recording(client: RestClient, room: str, rec_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 20
    while True:
        rec = client.recording(room, rec_id)
        if rec["state"] != "starting" or time.monotonic() > deadline:
            return rec
        time.sleep(0.2)


@record_app.command("stop")
def record_stop(
    room: str,
    recording_id: str,
    url: str | None = UrlOpt,
    token: str | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Stop a recording (the file is finalized; answers with the final record)."""
    with _rest(url, token) as client:
        rec = client.stop_recording(room, recording_id)
    _out(as_json, rec, lambda: views.recordings([rec]))


@record_app.command("list")
def record_list(
    room: str | None = typer.Option(None, help="only this room"),
    state: str | None = typer.Option(None, help="starting, recording, completed, failed ..."),
    url: str | None = UrlOpt,
    token: str | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recordings, newest first."""
    with _rest(url, token) as client:
        items = client.recordings(room, state)
    _out(as_json, items, lambda: views.recordings(items))


# loadtest -------------------------------------------------------------------------
@app.command()
def loadtest(
    transport: str = typer.Option("rtp", help="rtp (plain RTP on the SFU) or webrtc (aiortc)"),
    rooms: int = typer.Option(1, help="rooms"),
    publishers: int = typer.Option(1, help="audio publishers per room"),
    subscribers: int = typer.Option(10, help="receive-only participants per room"),
    mesh: bool = typer.Option(False, "--mesh", help="publishers also receive each other"),
    duration: float = typer.Option(10.0, help="seconds measured after everyone joined"),
    late_ms: float = typer.Option(200.0, help="a packet later than this counts as lost"),
    concurrency: int = typer.Option(20, help="joins in flight at once"),
    sfu_url: str | None = typer.Option(None, help="SFU RPC URL (rtp; default from settings)"),
    url: str | None = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """N publishers and M subscribers per room against a running system: join latency,
    packet loss, jitter, CPU. Exit 1 when loss reaches 1 % or a join fails."""
    from pydantic import ValidationError

    from mediaplane.loadtest.models import LoadSpec
    from mediaplane.loadtest.report import table
    from mediaplane.loadtest.run import run_loadtest

    try:
        spec = LoadSpec(
            transport=transport,
            rooms=rooms,
            publishers=publishers,
            subscribers=subscribers,
            publishers_subscribe=mesh,
            duration_s=duration,
            late_after_ms=late_ms,
            join_concurrency=concurrency,
        )
    except ValidationError as e:
        raise typer.BadParameter(str(e)) from None
    with console.status("load test ...") as spinner:
        try:
            report = asyncio.run(
                run_loadtest(spec, Settings(), url=url, sfu_url=sfu_url, progress=spinner.update)
            )
        except OperatorError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(e.exit_code) from None
    if as_json:
        console.print_json(report.model_dump_json())
    else:
        console.print(table(report))
    if not report.passed():
        raise typer.Exit(1)


CheckOpt = typer.Option(None, "--check", help="run only this check (repeatable)")


@app.command()
def attack(
    url: str = typer.Option(..., "--url", help="the control plane of YOUR deployment"),
    token: str | None = TokenOpt,
    owned: bool = typer.Option(
        False, "--own", help="the target is not this machine but is yours: attack it anyway"
    ),
    check: list[str] | None = CheckOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Issue 17's attack suite against your own running system (docs/security.md): auth
    matrix, caps, frame size, HLS access, SSRF, names, grants, tokens, headers. Refuses
    targets that are not this machine without --own. Exit 1 when a check fails."""
    from mediaplane.attack.context import Context
    from mediaplane.attack.run import CHECKS, run_attack, table
    from mediaplane.attack.scope import OutOfScope, check_scope
    from mediaplane.operator.rest import admin_token
    from mediaplane.reachability import client_verify

    unknown = sorted(set(check or []) - {name for name, _ in CHECKS})
    if unknown:
        raise typer.BadParameter(f"unknown check(s) {unknown}; known: {[n for n, _ in CHECKS]}")
    try:
        check_scope(url, owned=owned)
    except OutOfScope as e:
        console.print(f"[red]refused:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    settings = Settings()
    ctx = Context(
        url=url.rstrip("/"), admin_token=token or admin_token(settings),
        verify=client_verify(settings, check_hostname=False),
    )  # fmt: skip
    with console.status("attacking ...") as spinner:
        report = asyncio.run(run_attack(ctx, check or None, lambda n: spinner.update(n)))
    if as_json:
        console.print_json(report.model_dump_json())
    else:
        console.print(table(report))
    if not report.passed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
