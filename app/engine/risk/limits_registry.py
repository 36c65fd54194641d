"""The limits in force, their versions in the store, and the audit of every change.

A change is made in this order: the LIMIT_CHANGED audit record is durable, then the version row
is written, then the new limits become current and the subscribers (the gate) hear of it. A crash
in between leaves an audited change that never took effect, never one that took effect unaudited.

Fail closed: until a valid document has been loaded the desk runs on ``RiskLimits.deny_all()``,
and a broken limits file at start leaves the last stored version in force.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain.actors import Actor, Permission
from app.domain.audit import AuditEventType, AuditSource
from app.domain.instruments import Instrument
from app.store import limit_versions
from app.store.canonical import canonical_json
from app.store.limit_versions import StoredLimits

from ..recorder import Recorder
from .limits import (
    LimitsError,
    RiskLimits,
    field_path,
    load_limits_file,
    parse_document,
    parse_limits,
)

log = logging.getLogger(__name__)

LimitsCallback = Callable[[RiskLimits, int], None]


@dataclass(frozen=True, slots=True)
class LimitsLoad:
    """What the start-up load found: the limits in force, and what the operator should be told."""

    limits: RiskLimits
    version: int | None
    changed: bool
    problems: list[str]
    warnings: list[str]


class LimitsRegistry:
    """The limits in force, their version, and every change stored and audited."""

    def __init__(
        self, recorder: Recorder | None, instruments: Mapping[str, Instrument], *, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self._recorder = recorder
        self._instruments = dict(instruments)
        self._clock_ns = clock_ns
        self.current = RiskLimits.deny_all()
        self.version: int | None = None
        # The newest stored version, which need not be current (its document may no longer
        # parse); without a recorder this is the only store.
        self._stored: StoredLimits | None = None
        self._subscribers: list[LimitsCallback] = []
        self._lock = asyncio.Lock()

    def subscribe(self, callback: LimitsCallback) -> None:
        """Call ``callback(limits, version)`` synchronously after every change of the limits in force."""
        self._subscribers.append(callback)

    async def load_at_start(self, path: Path, default: Path, *, actor: str = "system") -> LimitsLoad:
        """Put the newest stored version in force, then the limits file if it is valid and different.

        A missing ``path`` is first created as a copy of ``default``. Problems with the file are
        reported in the result, never raised: the stored version (or deny-all) stays in force.
        """
        async with self._lock:
            problems: list[str] = []
            self._stored = await self._latest()
            if self._stored is not None:
                origin = f"stored limits version {self._stored.version}"
                try:
                    self._set(parse_document(json.loads(self._stored.document), origin), self._stored.version)
                except LimitsError as exc:
                    problems += _lines(exc)
                except ValueError as exc:
                    problems.append(f"{origin}: not readable JSON ({exc})")
            try:
                candidate = await asyncio.to_thread(_read_or_install, path, default)
            except LimitsError as exc:
                problems += _lines(exc)
                return self._result(changed=False, problems=problems)
            text = canonical_json(candidate.document())
            if self._stored is not None and text == self._stored.document:
                return self._result(changed=False, problems=problems)
            reason = "first limits" if self._stored is None else f"limits file {path} changed"
            source = AuditSource.SYSTEM if actor == "system" else AuditSource.OPERATOR
            await self._commit(candidate, text, actor=actor, source=source, reason=reason, origin=str(path))
            return self._result(changed=True, problems=problems)

    async def apply(self, text: str, *, actor: Actor, reason: str, path: Path | None = None) -> int:
        """Validate ``text`` and put it in force as a new version; returns the version now in force.

        Raises PermissionError without the set_limits permission, ValueError without a reason and
        LimitsError for an invalid document; in each case nothing changes. With ``path``, the
        text is also written there (atomically), so the next start loads the same limits.
        """
        async with self._lock:
            if not actor.can(Permission.SET_LIMITS):
                log.warning("limits change refused: %s lacks the %s permission", actor.name, Permission.SET_LIMITS)
                raise PermissionError(f"{actor.name} may not change the risk limits (needs the {Permission.SET_LIMITS} permission)")
            if not reason.strip():
                raise ValueError("a reason is required to change the risk limits")
            origin = str(path) if path is not None else f"limits applied by {actor.name}"
            limits = parse_limits(text, origin)
            document = canonical_json(limits.document())
            staged = await asyncio.to_thread(_stage, path, text) if path is not None else None
            try:
                if self._stored is not None and document == self._stored.document:
                    if self.version != self._stored.version:
                        self._set(limits, self._stored.version)
                    version = self._stored.version
                else:
                    version = await self._commit(
                        limits, document, actor=actor.name, source=AuditSource.OPERATOR, reason=reason.strip(), origin=origin
                    )
            except BaseException:
                if staged is not None:
                    staged.unlink(missing_ok=True)
                raise
            if staged is not None and path is not None:
                await asyncio.to_thread(os.replace, staged, path)
            return version

    # -- internals ---------------------------------------------------------------------------------

    async def _latest(self) -> StoredLimits | None:
        if self._recorder is None:
            return self._stored
        return await asyncio.to_thread(limit_versions.latest, self._recorder.engine, self._recorder.desk_id)

    async def _commit(
        self, limits: RiskLimits, document: str, *, actor: str, source: AuditSource, reason: str, origin: str
    ) -> int:
        previous = self._stored
        version = (previous.version if previous is not None else 0) + 1
        stored = StoredLimits(version, self._clock_ns(), actor, reason, document)
        payload = {
            "version": version,
            "previous_version": previous.version if previous is not None else None,
            "sha256": hashlib.sha256(document.encode("utf-8")).hexdigest(),
            "origin": origin,
            "reason": reason,
            "changed": changed_fields(json.loads(previous.document) if previous is not None else {}, limits.document()),
        }
        if self._recorder is not None:
            await self._recorder.durable(AuditEventType.LIMIT_CHANGED, payload, actor=actor, source=source)
            desk = self._recorder.desk_id
            await self._recorder.writer.execute(lambda connection: limit_versions.insert(connection, stored, desk))
        self._stored = stored
        self._set(limits, version)
        log.info("risk limits version %d in force (%s, by %s)", version, reason, actor)
        return version

    def _set(self, limits: RiskLimits, version: int) -> None:
        self.current = limits
        self.version = version
        for callback in self._subscribers:
            callback(limits, version)

    def _result(self, *, changed: bool, problems: list[str]) -> LimitsLoad:
        warnings = list(self.current.review(self._instruments.values()).warnings)
        for problem in problems:
            log.error("risk limits: %s", problem)
        return LimitsLoad(self.current, self.version, changed, problems, warnings)


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The field paths (``desk.daily_loss_limit_inr``) whose value differs between two documents."""
    before, after = _flatten(old), _flatten(new)
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def _flatten(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    leaves: dict[str, Any] = {}
    for key, value in document.items():
        # An empty table is a leaf: an empty [instruments."KEY"] still covers its instrument.
        if isinstance(value, Mapping) and value:
            leaves.update(_flatten(value, (*prefix, key)))
        else:
            leaves[field_path((*prefix, key))] = value
    return leaves


def _lines(exc: LimitsError) -> list[str]:
    return [f"{exc.origin}: {problem}" for problem in exc.problems]


def _read_or_install(path: Path, default: Path) -> RiskLimits:
    if not path.exists():
        try:
            os.replace(_stage(path, default.read_text(encoding="utf-8")), path)
        except OSError as exc:
            raise LimitsError(str(path), [f"missing, and the default {default} cannot be copied there: {exc}"]) from None
        log.info("created %s from the default limits %s", path, default)
    return load_limits_file(path)


def _stage(path: Path, text: str) -> Path:
    """Write ``text`` durably next to ``path``; ``os.replace`` then swaps it in whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with staged.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        staged.unlink(missing_ok=True)
        raise
    return staged
