"""The suite: every check in turn against one target, then the table."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from rich.table import Table

from mediaplane.attack import (
    auth_matrix,
    caps,
    frames,
    grants,
    headers,
    hls,
    names,
    open_join,
    ssrf,
    tokens,
)
from mediaplane.attack.context import Context
from mediaplane.attack.models import AttackReport, CheckResult

log = logging.getLogger(__name__)
Check = Callable[[Context], Awaitable[CheckResult]]
# (name, check); Redis down is not here: it cannot be done from outside.
CHECKS: list[tuple[str, Check]] = [
    (auth_matrix.NAME, auth_matrix.run),
    (open_join.NAME, open_join.run),
    (caps.NAME, caps.run),
    (frames.NAME, frames.run),
    (hls.NAME, hls.run),
    (ssrf.NAME, ssrf.run),
    (names.NAME, names.run),
    (grants.NAME, grants.run),
    (tokens.NAME, tokens.run),
    (headers.NAME, headers.run),
]


async def run_attack(
    ctx: Context,
    only: list[str] | None = None,
    progress: Callable[[str], object] = lambda _name: None,
) -> AttackReport:
    """Each check (or those named in `only`); a check that breaks is a failure."""
    results = []
    try:
        for name, check in CHECKS:
            if only and name not in only:
                continue
            progress(name)
            try:
                results.append(await check(ctx))
            except Exception as e:
                log.warning("attack check %s broke: %r", name, e)
                results.append(CheckResult(name=name, passed=False, detail=f"error: {e!r}"[:300]))
    finally:
        await ctx.cleanup()
    return AttackReport(target=ctx.url, results=results)


def table(report: AttackReport) -> Table:
    t = Table(title=f"attack on {report.target}")
    t.add_column("check")
    t.add_column("result")
    t.add_column("detail", overflow="fold")
    for r in report.results:
        t.add_row(r.name, "[green]held[/green]" if r.passed else "[red]FAILED[/red]", r.detail)
    return t
