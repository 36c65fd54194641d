"""Logging set-up: a rotating file in the data folder, optionally mirrored to stderr.

One line per event::

    2026-11-23T10:15:01.123+05:30 INFO app.engine.oms: order 42 acknowledged

ISO-8601 timestamp with milliseconds in Indian Standard Time (the trading day's clock, whatever
the machine's time zone) carrying its UTC offset, the level, the logger name (the component),
and the message. Line breaks inside a message are escaped (``\\n``) so an event stays on one
line; a traceback follows on the next lines.

Redacting secrets from log records is ``app.security``'s job; this module only routes and
formats.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from app.domain.india_time import IST

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["IST", "LOG_FILE_NAME", "LineFormatter", "configure_logging", "unconfigure_logging"]

LOG_FILE_NAME = "bulwark.log"

# Marks the handlers this module installs, so configuring again replaces them.
_MARK = "_bulwark_handler"


_SECRETS: set[str] = set()


def redact_in_logs(secrets: list[str]) -> None:
    """Make every log line replace these values with [REDACTED], whatever code wrote them."""
    _SECRETS.update(secret for secret in secrets if len(secret) >= 6)


class LineFormatter(logging.Formatter):
    """``<ISO-8601 ms+offset> <LEVEL> <logger>: <message>`` on one line."""

    def __init__(self, tz: timezone = IST) -> None:
        super().__init__(fmt="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, self.tz).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in _SECRETS:
            if secret in line:
                line = line.replace(secret, "[REDACTED]")
        return line

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        if "\n" in message or "\r" in message:
            record.message = message.replace("\r", "\\r").replace("\n", "\\n")
            try:
                return super().formatMessage(record)
            finally:
                record.message = message
        return super().formatMessage(record)


def configure_logging(settings: Settings, *, console: bool) -> Path:
    """Send log records to ``<home>/logs/bulwark.log`` (rotating) and, if ``console``, stderr.

    Idempotent: handlers installed by an earlier call are closed and replaced, so calling it
    again (e.g. with new settings) never duplicates lines. Returns the log file's path.
    """
    log_dir = Path(settings.home) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / LOG_FILE_NAME

    level = logging.getLevelName(settings.log_level)
    formatter = LineFormatter()

    file_handler = logging.handlers.RotatingFileHandler(
        log_file,
        maxBytes=settings.log_max_bytes,
        backupCount=settings.log_backups,
        encoding="utf-8",
    )
    handlers: list[logging.Handler] = [file_handler]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))

    unconfigure_logging()
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.setLevel(level)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return log_file


def unconfigure_logging() -> None:
    """Remove and close the handlers :func:`configure_logging` installed (others are kept)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()
    logging.captureWarnings(False)
