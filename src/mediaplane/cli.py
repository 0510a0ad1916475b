"""The `mediaplane` command (README's `./mediaplane ...` runs it after set-up)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import typer
from rich.console import Console
from rich.table import Table

from mediaplane.observability.logs import setup_logging
from mediaplane.settings import Settings
from mediaplane.system import System

app = typer.Typer(help="mediaplane: rooms with audio/video and server-side media work")
console = Console()


@app.command()
def up(log_level: str = typer.Option("INFO", help="Python log level")) -> None:
    """Start the whole system and keep it running until Ctrl-C."""
    settings = Settings()
    # MEDIAPLANE_LOG_FORMAT=json: one JSON object a line (docs/operations.md)
    setup_logging("mediaplane", settings.log_format, log_level)
    asyncio.run(_up(settings))


async def _up(settings: Settings) -> None:
    with console.status("starting mediaplane ..."):
        system = await System.start(settings)
    table = Table(title="mediaplane is up")
    table.add_column("service")
    table.add_column("where")
    for line in system.started:
        name, _, where = line.partition(" ")
        table.add_row(name, where)
    console.print(table)
    console.print(f"Open [bold]{system.url}/[/bold] to join a call (REST API at {system.url}/docs)")
    console.print("Mint a token: [bold]./mediaplane token --identity alice --room demo[/bold]")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(system.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in (waiter, stopper):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with console.status("stopping ..."):
        await system.stop()
    console.print("stopped")


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
) -> None:
    """Mint an access token with the configured API key and secret."""
    from mediaplane.control.auth import Grants, mint_token

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
    typer.echo(
        mint_token(
            api_key=settings.api_key,
            api_secret=settings.secret("api_secret"),
            identity=identity,
            name=name,
            grants=grants,
            ttl_s=ttl,
        )
    )


@app.command()
def status() -> None:
    """Print the settings the system would run with (secrets hidden)."""
    settings = Settings()
    console.print_json(json.dumps(settings.model_dump(mode="json")))


if __name__ == "__main__":
    app()
