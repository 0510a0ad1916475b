"""Background tasks a service owns: referenced until done, cancelled when it closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class OwnedTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # Whoever awaits a task sees its exception; one nobody awaits would vanish unseen.
        if not task.cancelled() and (e := task.exception()) is not None:
            log.error("task %r failed: %r", task.get_name(), e, exc_info=e)

    async def cancel(self) -> None:
        """Cancel every task still running and wait until they have ended."""
        tasks = list(self._tasks)
        # Cancel until done: redis-py can swallow a cancel (seen: 5 of 300 tries suspended
        # in an hget, 20 of 300 in a pipeline), which left a control plane's shutdown hung.
        while pending := [t for t in tasks if not t.done()]:
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=0.5)
        await asyncio.gather(*tasks, return_exceptions=True)
