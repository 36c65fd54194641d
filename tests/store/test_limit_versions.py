"""Limit versions on both backends: stored whole, per desk, read back newest first, never two with one number for a desk."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from app.store import limit_versions
from app.store.limit_versions import StoredLimits
from app.store.migrate import open_store


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    store = open_store(db_url)
    yield store
    store.dispose()


def stored(version: int, reason: str = "tighter") -> StoredLimits:
    document = '{"desk":{"daily_loss_limit_inr":"25000.00"},"note":"' + "x" * 100_000 + '"}'
    return StoredLimits(version, 1_764_000_000_000_000_000 + version, "rita", reason, document)


DESK = "AAAAAA"


def add(engine: Engine, *versions: StoredLimits, desk: str = DESK) -> None:
    with engine.begin() as connection:
        for version in versions:
            limit_versions.insert(connection, version, desk)


def test_an_empty_store_has_no_limits(engine: Engine) -> None:
    assert limit_versions.latest(engine, DESK) is None
    assert limit_versions.history(engine, DESK) == []


def test_versions_round_trip_and_come_back_newest_first(engine: Engine) -> None:
    add(engine, stored(1, "first limits"), stored(2, "Diwali: ₹ caps halved"), stored(3))
    assert limit_versions.latest(engine, DESK) == stored(3)
    assert limit_versions.history(engine, DESK) == [stored(3), stored(2, "Diwali: ₹ caps halved"), stored(1, "first limits")]
    assert [v.version for v in limit_versions.history(engine, DESK, limit=2)] == [3, 2]


def test_each_desk_keeps_its_own_line_of_versions(engine: Engine) -> None:
    add(engine, stored(1, "first limits"), stored(2))
    add(engine, stored(1, "the other desk's"), desk="BBBBBB")
    assert limit_versions.latest(engine, DESK) == stored(2)
    assert limit_versions.history(engine, "BBBBBB") == [stored(1, "the other desk's")]
    assert limit_versions.latest(engine, "CCCCCC") is None


def test_a_version_number_is_taken_once(engine: Engine) -> None:
    add(engine, stored(1))
    with pytest.raises(IntegrityError):
        add(engine, stored(1, "again"))
    assert limit_versions.history(engine, DESK) == [stored(1)]


def test_a_failed_transaction_stores_nothing(engine: Engine) -> None:
    with pytest.raises(IntegrityError):
        add(engine, stored(1), stored(1))
    assert limit_versions.latest(engine, DESK) is None


def test_versions_kept_per_desk_need_the_desk(engine: Engine) -> None:
    with pytest.raises(ValueError, match="per desk"):
        limit_versions.latest(engine)


@pytest.mark.parametrize("limit", [0, -1])
def test_history_needs_a_positive_limit(engine: Engine, limit: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        limit_versions.history(engine, DESK, limit)


@pytest.mark.parametrize("version", [0, -3])
def test_versions_start_at_one(version: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        StoredLimits(version, 0, "rita", "r", "{}")
