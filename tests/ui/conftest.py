"""GUI test set-up: a qasync loop over the test QApplication, and a way to await a coroutine from a test."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tests.security.conftest import clock, directory, sink, store  # noqa: F401 - the operator directory's fixtures, shared

T = TypeVar("T")


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """A qasync loop over the test QApplication; its tasks run while Qt processes events (qtbot.waitUntil).

    Marked running by hand, as ``run_forever`` would, rather than with ``already_running=True``: that
    loop's ``stop()`` calls ``QApplication.exit()``, which emits ``aboutToQuit`` and leaves every later
    ``QEventLoop.exec()`` (``qtbot.wait``, ``waitSignal``) returning at once, breaking the tests after it.
    """
    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    asyncio.events._set_running_loop(loop)
    try:
        yield loop
    finally:
        asyncio.events._set_running_loop(None)
        loop.close()
        asyncio.set_event_loop(None)
        del loop
        # Collected here, on the GUI thread: left to the garbage collector, the loop's timer object (a
        # QObject in a reference cycle) may be destroyed on whichever thread allocates next (the audit
        # writer's), leaving Qt a dangling timer that crashes a later test.
        gc.collect()


@pytest.fixture(autouse=True)
def app_look_restored(qapp: QApplication) -> Iterator[None]:
    """Each test starts with the application's palette and style sheet as the one before found them:
    a test that switches the theme (``theme.apply``) must not decide the colours a later one reads."""
    palette, sheet = qapp.palette(), qapp.styleSheet()
    yield
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)


def await_in_qt(qtbot: QtBot, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    """Run ``coro`` on the qasync loop while Qt processes events; its result (or its exception)."""
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=int(timeout_s * 1000))
    return task.result()
