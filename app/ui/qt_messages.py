"""Qt's own messages (a platform plugin's warnings, a style's complaints) go to the desk's log, not to stderr.

A desk started from the desktop menu has no terminal: what Qt says must land in ``bulwark.log`` beside
everything else, at a matching level, under the logger ``qt.<category>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _to_log(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    category = context.category or "default"
    logging.getLogger(f"qt.{category}").log(_LEVELS.get(kind, logging.WARNING), "%s", message)


@contextmanager
def qt_messages_logged() -> Iterator[None]:
    """While inside, Qt's messages are log records; the handler before it is put back after."""
    previous: Callable[[QtMsgType, QMessageLogContext, str], None] | None = qInstallMessageHandler(_to_log)
    try:
        yield
    finally:
        qInstallMessageHandler(previous)
