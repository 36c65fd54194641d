"""Operators on a real store, with a cheap argon2 hasher (the desk's own costs ~165 ms a verify), a
frozen clock and an audit sink that keeps every record."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine

from app.domain.actors import Actor, Role
from app.domain.audit import AuditEventType, AuditSource
from app.security.operators import OperatorDirectory
from app.security.passwords import password_hasher
from app.store.migrate import open_store

# Far below the desk's parameters, so the suite does not spend seconds hashing; the desk's own
# parameters are tested in test_passwords.py.
FAST_HASHER = password_hasher(memory_cost_kib=64, time_cost=1)
START_NS = 1_800_000_000 * 1_000_000_000  # a fixed instant: nothing here reads today's date
ADMIN_PASSWORD = "admin pass phrase 1"
TRADER_PASSWORD = "trader pass phrase 2"


@dataclass
class FrozenClock:
    """A clock that moves only when told to."""

    now_ns: int = START_NS

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1_000_000_000)


@dataclass
class Sink:
    """Every audit record the directory emits, in order."""

    records: list[tuple[AuditEventType, dict[str, Any], str, AuditSource]] = field(default_factory=list)

    def __call__(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        self.records.append((event, dict(payload), actor, source))

    def events(self) -> list[AuditEventType]:
        return [record[0] for record in self.records]

    def last(self, event: AuditEventType) -> tuple[dict[str, Any], str]:
        found = [(payload, actor) for kind, payload, actor, _ in self.records if kind is event]
        assert found, f"no {event} in {self.events()}"
        return found[-1]


@pytest.fixture
def store(tmp_path: Any) -> Iterator[Engine]:
    engine = open_store(f"sqlite:///{tmp_path}/bulwark.db")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def directory(store: Engine, sink: Sink, clock: FrozenClock) -> OperatorDirectory:
    return OperatorDirectory(store, sink, clock_ns=clock, hasher=FAST_HASHER)


@pytest.fixture
def admin(directory: OperatorDirectory) -> Actor:
    """The first administrator, "asha", and a trader, "tom"; returns asha signed in."""
    directory.add("asha", Role.ADMIN, ADMIN_PASSWORD, by=None)
    actor = Actor.with_role("asha", Role.ADMIN)
    directory.add("tom", Role.TRADER, TRADER_PASSWORD, by=actor)
    return actor
