"""The trading calendar's versions in the store, and the audit of every change.

The desk's calendar is the shipped file merged with the data folder's override. Whenever that
merged document differs from the newest stored version (a new release, an import, an operator's
acceptance of assumed weekdays), a new version is stored together with its CALENDAR_CHANGED audit
record, in one transaction: either both are written or neither is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.domain.audit import AuditEventType, AuditSource
from app.store import calendar_versions
from app.store.audit_writer import AuditWriter
from app.store.canonical import canonical_json
from app.store.document_versions import StoredDocument

from .calendar_data import CalendarSet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CalendarVersion:
    """The stored version now in force, and whether this call created it."""

    version: int
    sha256: str
    changed: bool


def record_version(
    writer: AuditWriter, calendars: CalendarSet, *, actor: str, source: AuditSource, reason: str,
    clock_ns: Callable[[], int] = time.time_ns,
) -> CalendarVersion:
    """Store ``calendars`` as a new audited version unless it equals the newest one (blocking: run off the loop).

    Desks sharing a database take turns here, so two starting together store one version between them."""
    document = canonical_json(calendars.document())
    digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
    with calendar_versions.recording(writer.engine):
        return _record(writer, calendars, document, digest, actor=actor, source=source, reason=reason, clock_ns=clock_ns)


def _record(
    writer: AuditWriter, calendars: CalendarSet, document: str, digest: str, *, actor: str, source: AuditSource,
    reason: str, clock_ns: Callable[[], int],
) -> CalendarVersion:
    previous = calendar_versions.latest(writer.engine)
    if previous is not None and previous.document == document:
        return CalendarVersion(previous.version, digest, changed=False)
    version = (previous.version if previous is not None else 0) + 1
    stored = StoredDocument(version, clock_ns(), actor, reason, document)
    payload = {
        "version": version,
        "previous_version": previous.version if previous is not None else None,
        "sha256": digest,
        "label": calendars.label,
        "reason": reason,
        "changed_years": changed_years(json.loads(previous.document) if previous is not None else {}, calendars.document()),
    }
    writer.append_blocking(
        AuditEventType.CALENDAR_CHANGED, payload, actor=actor, source=source,
        rows=lambda connection: calendar_versions.insert(connection, stored),
    )
    log.info("trading calendar version %d in force (%s, by %s)", version, reason, actor)
    return CalendarVersion(version, digest, changed=True)


def changed_years(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``calendar/year`` (or ``calendar/hours``) for every part that differs between two documents."""
    before, after = old.get("calendars", {}), new.get("calendars", {})
    changed: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name, {}), after.get(name, {})
        if {k: v for k, v in a.items() if k != "years"} != {k: v for k, v in b.items() if k != "years"}:
            changed.append(f"{name}/hours")
        years_a, years_b = a.get("years", {}), b.get("years", {})
        changed += [f"{name}/{year}" for year in sorted(years_a.keys() | years_b.keys()) if years_a.get(year) != years_b.get(year)]
    return changed
