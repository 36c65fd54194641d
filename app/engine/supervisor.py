"""Supervised background tasks: a task that dies unexpectedly is never silent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Supervisor:
    """Owns the engine's background tasks and reports any that end with an exception.

    ``on_crash`` is called synchronously from the task's done-callback, so the engine can latch
    HALTED before any other coroutine runs.
    """

    def __init__(self, on_crash: Callable[[str, BaseException], None]) -> None:
        self._on_crash = on_crash
        self._tasks: dict[asyncio.Task[Any], str] = {}

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[task] = name
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        name = self._tasks.pop(task, task.get_name())
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.critical("task %s crashed", name, exc_info=exc)
            self._on_crash(name, exc)

    @property
    def running(self) -> list[str]:
        return sorted(self._tasks.values())

    async def shutdown(self, timeout: float) -> list[str]:
        """Cancel every task and wait up to ``timeout`` seconds; return the names that did not finish."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return []
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        return sorted(task.get_name() for task in pending)
