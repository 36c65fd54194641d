"""Logging set-up: a rotating file in the data folder, optionally mirrored to stderr.

One line per event::

    2026-11-23T10:15:01.123+05:30 INFO app.engine.oms: order 42 acknowledged

ISO-8601 timestamp with milliseconds in Indian Standard Time (the trading day's clock, whatever
the machine's time zone) carrying its UTC offset, the level, the logger name (the component),
and the message. Line breaks inside a message are escaped (``\\n``) so an event stays on one
line; a traceback follows on the next lines.

Redacting secrets from log records is ``app.security``'s job; this module only routes and
formats.

A log file that cannot be written (a full disk, a folder made read-only) never floods the
console: the first failure prints one line to stderr, later ones are only counted, and the count
is written to the log when it works again, or to stderr when the process ends.
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

__all__ = ["IST", "LOG_FILE_NAME", "LineFormatter", "QuietFileHandler", "configure_logging", "unconfigure_logging"]

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


class QuietFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file whose write failures are counted, not each printed with a traceback."""

    def __init__(self, filename: Path, *, max_bytes: int, backups: int) -> None:
        super().__init__(filename, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.lost = 0
        self._first_failure = ""

    def emit(self, record: logging.LogRecord) -> None:
        if self.lost:
            # Writing again? First say, in the log itself, what it is missing.
            lost = self.lost
            super().emit(logging.makeLogRecord({
                "name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
                "msg": "%d log lines were lost while the log file could not be written (%s)",
                "args": (lost, self._first_failure),
            }))
            self.lost = 0 if self.lost == lost else lost
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        failure = sys.exc_info()[1]
        if not isinstance(failure, OSError):
            super().handleError(record)  # a bug in a log call, not the disk: the traceback is wanted
            return
        self.lost += 1
        # Drop what the stream still holds, so a line counted lost is not written later after all;
        # the next record reopens the file.
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        if self.lost == 1:
            self._first_failure = _one_line(failure)
            _to_stderr(f"bulwark: cannot write the log file {self.baseFilename}: {self._first_failure}; "
                       "further lines it loses are counted")

    def close(self) -> None:
        try:
            super().close()
        except OSError:
            self.lost += 1  # the last lines, still buffered, could not be flushed
        if self.lost:
            _to_stderr(f"bulwark: {self.lost} log lines could not be written to {self.baseFilename} "
                       f"({self._first_failure})")
            self.lost = 0


def _one_line(failure: BaseException | None) -> str:
    if failure is None:
        return "unknown error"
    if isinstance(failure, OSError) and failure.strerror:
        return failure.strerror
    text = str(failure).strip()
    return text.splitlines()[0] if text else type(failure).__name__


def _to_stderr(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # no console either: nothing more can be done


def configure_logging(settings: Settings, *, console: bool, to_file: bool = True) -> Path | None:
    """Send log records to ``<home>/logs/bulwark.log`` (rotating) and, if ``console``, stderr.

    Idempotent: handlers installed by an earlier call are closed and replaced, so calling it
    again (e.g. with new settings) never duplicates lines. Returns the log file's path, or
    ``None`` when there is none: not ``to_file`` (a command reading a read-only copy), or the
    file cannot be opened and the console is there to say so.
    """
    level = logging.getLevelName(settings.log_level)
    formatter = LineFormatter()
    handlers: list[logging.Handler] = []
    log_file: Path | None = None
    if to_file:
        log_file = Path(settings.home) / "logs" / LOG_FILE_NAME
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            handlers.append(QuietFileHandler(log_file, max_bytes=settings.log_max_bytes, backups=settings.log_backups))
        except OSError as exc:
            if not console:
                raise
            _to_stderr(f"bulwark: cannot open the log file {log_file}: {_one_line(exc)}; logging to the console only")
            log_file = None
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
