"""An asyncio event loop on virtual time, so timer-driven code is tested by order and causality.

``VirtualTimeLoop.time()`` moves only when the loop has nothing to run: instead of sleeping until
its next timer it jumps straight to it. ``asyncio.sleep(0.2)`` therefore takes no wall time, two
timers always fire in the order of their deadlines, and a timeout fires only once every task that
could have run first has run, however loaded the machine is. Code that reads ``loop.time()`` (or
is given it as its clock) sees exactly the times the schedule asked for.

Work handed to an executor (``asyncio.to_thread``, ``run_in_executor``) takes no virtual time: the
clock stands still until it is back. A thread the loop does not know about is not waited for, so
use this loop only for code whose threads, if any, go through the loop's executor.

Use it with ``@on_virtual_time`` on an ``async def`` test, or ``run(coro)``.
"""

from __future__ import annotations

import asyncio
import functools
import selectors
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, ParamSpec, TypeVar, TypeVarTuple

P = ParamSpec("P")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# How long the loop waits for real I/O when it has no timer at all: long enough for any thread a
# test starts, short enough that a deadlocked test fails instead of hanging the run.
DEADLOCK_AFTER_S = 60.0


class Deadlock(RuntimeError):
    """The loop had nothing scheduled, no executor work out and no I/O arrived: nothing can happen."""


class _VirtualSelector(selectors.DefaultSelector):
    """Polls the real selector without blocking and, when nothing is ready, moves the clock instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout == 0:
            return super().select(0)
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None or self._loop.executor_jobs:
            # Only real I/O can come next: a thread's result arrives through the loop's self-pipe.
            ready = super().select(DEADLOCK_AFTER_S)
            if not ready:
                raise Deadlock(f"nothing ran on the loop and no I/O arrived for {DEADLOCK_AFTER_S:g} s of real time")
            return ready
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock starts at ``start`` and jumps from timer to timer."""

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self.executor_jobs = 0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` (never back)."""
        if seconds < 0:
            raise ValueError(f"virtual time cannot go back ({seconds} s)")
        self._now += seconds

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.executor_jobs += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _future: asyncio.Future[Any]) -> None:
        self.executor_jobs -= 1


def loop_wall_ns(loop: asyncio.AbstractEventLoop) -> Callable[[], int]:
    """Epoch nanoseconds that start at the real time now and move only with ``loop.time()``: the
    wall clock of a desk whose timers run on that loop (virtual or real)."""
    base_ns, base_s = time.time_ns(), loop.time()
    return lambda: base_ns + round((loop.time() - base_s) * 1e9)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh ``VirtualTimeLoop``."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)


def on_virtual_time(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an ``async def`` test on a fresh ``VirtualTimeLoop`` (pytest fixtures still apply)."""

    @functools.wraps(test)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        run(test(*args, **kwargs))

    return wrapper
