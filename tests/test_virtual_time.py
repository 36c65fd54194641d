"""The tests' virtual-time event loop: time jumps from timer to timer, in order, and waits for threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.support.virtual_time import (
    VirtualTimeLoop,
    loop_wall_ns,
    on_virtual_time,
    run,
)


def test_an_hour_of_timers_fires_in_deadline_order_at_their_exact_times() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        fired: list[tuple[str, float]] = []
        loop.call_later(3600, lambda: fired.append(("hour", loop.time() - start)))
        loop.call_later(0.25, lambda: fired.append(("quarter", loop.time() - start)))
        await asyncio.sleep(0.1)
        fired.append(("slept", loop.time() - start))
        await asyncio.sleep(3600)
        return fired

    fired = run(main())
    assert [name for name, _ in fired] == ["slept", "quarter", "hour"]
    assert [at for _, at in fired] == pytest.approx([0.1, 0.25, 3600.0], abs=1e-9)


@on_virtual_time
async def test_ready_work_runs_before_the_clock_moves() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    steps: list[float] = []

    async def busy() -> None:
        for _ in range(100):
            steps.append(loop.time())
            await asyncio.sleep(0)

    await asyncio.gather(busy(), asyncio.sleep(0.5))
    assert steps == [start] * 100 and loop.time() == start + 0.5


@on_virtual_time
async def test_the_clock_stands_still_while_executor_work_is_out() -> None:
    loop = asyncio.get_running_loop()
    release = threading.Event()
    start = loop.time()
    timer_fired = asyncio.Event()
    loop.call_later(0.01, timer_fired.set)
    # The job blocks until another thread releases it, so the loop has nothing to run meanwhile:
    # the timer 10 ms away must still not fire before the job is back.
    opener = threading.Timer(0.1, release.set)
    opener.start()
    assert await asyncio.to_thread(release.wait, 30) is True
    opener.join()
    assert loop.time() == start and not timer_fired.is_set()
    await timer_fired.wait()
    assert loop.time() == pytest.approx(start + 0.01)


@on_virtual_time
async def test_the_wall_clock_moves_with_the_loop() -> None:
    loop = asyncio.get_running_loop()
    wall_ns = loop_wall_ns(loop)
    before = wall_ns()
    await asyncio.sleep(86_400)
    assert wall_ns() - before == 86_400 * 1_000_000_000


def test_the_clock_never_goes_back() -> None:
    loop = VirtualTimeLoop()
    try:
        with pytest.raises(ValueError, match="cannot go back"):
            loop.advance(-1.0)
    finally:
        loop.close()
