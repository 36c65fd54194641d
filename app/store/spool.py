"""The outage spool: what the desk must keep while its database is unreachable, fsynced in the data folder.

One JSON object a line. The first line opens the outage (``began_ns``, ``reason``); then each
batch of the writer is its audit records (``"a"``: ts_ns, actor, source, event type, payload) and
desk rows (``"r"``: kind, ``"v"``: values) in the order they were queued, closed by an end line
(``"end"``: the batch's number) and one fsync. A batch without its end line was never
acknowledged to anyone (its waiters were told only after the fsync): a crash mid-write leaves a
torn tail, which reading drops with a warning. A damaged line before the tail is refused loudly.
The file is removed only once its replay has committed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .db import StoreError
from .desk_rows import RowWrite

log = logging.getLogger(__name__)

SPOOL_FILE = "audit-spool.jsonl"


class SpoolError(StoreError):
    """The spool cannot be read back: a damaged line that is not a torn tail."""


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    """An audit record queued during an outage: its seq and hashes are given when it is replayed."""

    batch: int
    ts_ns: int
    actor: str
    source: str
    event_type: str
    payload: str


@dataclass(frozen=True, slots=True)
class SpooledRow:
    """A desk row write queued during an outage."""

    batch: int
    row: RowWrite


@dataclass(slots=True)
class SpoolContent:
    """What a spool holds: the outage's start and reason, and every acknowledged item in order."""

    began_ns: int
    reason: str
    items: list[SpooledRecord | SpooledRow] = field(default_factory=list)

    @property
    def records(self) -> list[SpooledRecord]:
        return [item for item in self.items if isinstance(item, SpooledRecord)]


def spool_file(home: Path) -> Path:
    """The data folder's outage spool."""
    return home / SPOOL_FILE


class Spool:
    """Appends batches to the spool file (one fsync each) and reads them back; one writer thread uses it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self._batches = 0

    def exists(self) -> bool:
        return self.path.is_file()

    def begin(self, began_ns: int, reason: str) -> None:
        """Open a new outage: the file is created (refused if one is left) and made durable with its folder."""
        handle = self.path.open("x", encoding="utf-8")
        self._handle = handle
        self._batches = 0
        handle.write(json.dumps({"began_ns": began_ns, "reason": reason}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        # The new name itself must survive a crash: fsync the folder that holds it.
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def resume(self, content: SpoolContent) -> None:
        """Go on appending to a spool left by an earlier run (read back as ``content``)."""
        self._batches = max((item.batch for item in content.items), default=-1) + 1
        self._handle = self.path.open("a", encoding="utf-8")

    def write(self, items: list[tuple[str, str, str, str, int] | RowWrite]) -> None:
        """Append one batch (records as (actor, source, event type, payload, ts_ns), rows as ``RowWrite``) and fsync."""
        handle = self._handle
        if handle is None:
            raise StoreError("the outage spool is not open")
        batch = self._batches
        self._batches += 1
        lines = []
        for item in items:
            if isinstance(item, RowWrite):
                lines.append(json.dumps({"b": batch, "r": item.kind, "v": dict(item.values)}, separators=(",", ":")))
            else:
                actor, source, event_type, payload, ts_ns = item
                lines.append(json.dumps({"b": batch, "a": [ts_ns, actor, source, event_type, payload]},
                                        separators=(",", ":")))
        lines.append(json.dumps({"end": batch}))
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())

    def read(self) -> SpoolContent:
        """Every acknowledged item in order; a torn tail (an unfinished batch, a cut last line) is dropped with a warning."""
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")
        # A complete file ends with a newline: the last piece is empty. Anything else is a cut last line.
        if lines[-1]:
            log.warning("the outage spool %s ends in a cut line (a write torn by a crash): it is ignored", self.path)
        lines.pop()
        content: SpoolContent | None = None
        pending: list[SpooledRecord | SpooledRow] = []
        for number, line in enumerate(lines, 1):
            document = _parsed(line)
            if document is None:
                raise SpoolError(f"the outage spool {self.path} is damaged at line {number}: it is kept as it is; "
                                 "nothing in it was written to the database")
            if content is None:
                if "began_ns" not in document:
                    raise SpoolError(f"the outage spool {self.path} does not start with its outage line")
                content = SpoolContent(int(document["began_ns"]), str(document.get("reason", "")))
            elif "end" in document:
                content.items.extend(pending)
                pending = []
            elif "a" in document:
                ts_ns, actor, source, event_type, payload = document["a"]
                pending.append(SpooledRecord(int(document["b"]), int(ts_ns), actor, source, event_type, payload))
            elif "r" in document:
                pending.append(SpooledRow(int(document["b"]), RowWrite(str(document["r"]), document["v"])))
            else:
                raise SpoolError(f"the outage spool {self.path} has an unknown line {number}")
        if pending:
            log.warning("the outage spool %s ends in an unfinished batch of %d items (torn by a crash, never "
                        "acknowledged): it is ignored", self.path, len(pending))
        if content is None:
            # Cut before its first line was durable: nothing in it was ever acknowledged.
            log.warning("the outage spool %s lost its first line to a crash: it holds nothing", self.path)
            return SpoolContent(self.path.stat().st_mtime_ns, "unknown (the spool's first line was torn)")
        return content

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        """Delete the spool once its replay has committed."""
        self.close()
        self.path.unlink(missing_ok=True)


def _parsed(line: str) -> dict[str, Any] | None:
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
