"""Which broker the last desk in a data folder traded on, kept in ``<home>/last-desk.json``.

A desk writes it as it starts, before it connects: ``panic`` reads it when no desk answers, to
cancel at the broker that desk actually used, whatever the settings say now (the trader may have
started the desk with ``--broker``, or changed the settings since). It is a file in the data
folder rather than a row in the store because it belongs to the workstation (several may share one
PostgreSQL store, each with its own desk) and because ``panic`` must find it even when the store is
the thing that is broken. Standard library only: ``panic`` reads it on its fast path.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

LAST_DESK_FILE_NAME = "last-desk.json"


class LastDeskError(ValueError):
    """``last-desk.json`` exists but cannot be read or does not say which broker; the message says why."""


@dataclass(frozen=True, slots=True)
class LastDesk:
    """The broker profile the last desk started with, and which process that was and when."""

    broker: str
    pid: int | None
    started_ns: int | None


def last_desk_file(home: Path) -> Path:
    return home / LAST_DESK_FILE_NAME


def record_last_desk(home: Path, broker: str) -> None:
    """Durably note that a desk is starting on ``broker`` (atomic replace, fsynced)."""
    path = last_desk_file(home)
    home.mkdir(parents=True, exist_ok=True)
    document = {"broker": broker, "pid": os.getpid(), "started_ns": time.time_ns()}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(document, sort_keys=True))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_last_desk(home: Path) -> LastDesk | None:
    """The last desk's profile; ``None`` when no desk has started in ``home`` since this was kept.

    Raises ``LastDeskError`` for a file that is there but unreadable or damaged: a caller must not
    take that for "no desk".
    """
    path = last_desk_file(home)
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LastDeskError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:
        raise LastDeskError(f"{path} is not valid JSON (damaged?)") from None
    broker = document.get("broker") if isinstance(document, dict) else None
    if not isinstance(broker, str) or not broker:
        raise LastDeskError(f"{path} does not name a broker")
    pid, started = document.get("pid"), document.get("started_ns")
    return LastDesk(
        broker,
        pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        started if isinstance(started, int) and not isinstance(started, bool) else None,
    )
