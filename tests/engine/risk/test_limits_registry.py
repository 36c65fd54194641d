"""The registry with a real store: versions, audit before effect, fail closed on a broken file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from app.domain.actors import Actor, Permission
from app.domain.instruments import Instrument
from app.engine.recorder import Recorder
from app.engine.risk import limits_registry
from app.engine.risk.limits import DEFAULT_LIMITS_PATH, LimitsError, RiskLimits
from app.engine.risk.limits_registry import LimitsRegistry, changed_fields
from app.store import limit_versions
from app.store.audit_writer import AuditWriter
from app.store.desk_identity import UNFOLDERED_DESK_ID
from app.store.export import rows
from app.store.migrate import open_store

RISK_OFFICER = Actor("rita", frozenset({Permission.SET_LIMITS}))
TRADER = Actor("carol", frozenset({Permission.TRADE}))

LIMITS = """
[desk]
max_gross_exposure_inr = 2500000
max_net_exposure_inr = 2000000
daily_loss_limit_inr = 25000
max_open_orders = 20
max_orders_per_day = 500
duplicate_window_seconds = 2
reference_max_age_seconds = 15
allowed_order_types = ["LIMIT"]
allowed_products = ["INTRADAY"]

[desk.max_orders_per_second]
default = 2

[defaults]
max_order_lots = 100
max_order_value_inr = 200000
price_collar_pct = 5
max_position_lots = 300
max_position_value_inr = 500000

[underlyings.NIFTY]
max_order_lots = 1
max_position_lots = 2
max_order_value_inr = 2000000
max_position_value_inr = 2000000

[instruments."NSE:RELIANCE"]
"""


# The recorder's desk when it is given none (a desk without a data folder).
DESK = UNFOLDERED_DESK_ID


class Desk:
    """A store, its writer and a recorder, as the engine builds them."""

    def __init__(self, url: str) -> None:
        self.writer = AuditWriter(open_store(url))
        self.writer.start()
        self.failures: list[BaseException] = []
        self.recorder = Recorder(self.writer, self.failures.append)

    def registry(self, instruments: dict[str, Instrument]) -> LimitsRegistry:
        return LimitsRegistry(self.recorder, instruments, clock_ns=lambda: 1_764_000_000_000_000_000)

    def limit_changes(self) -> list[dict[str, Any]]:
        return [
            {**json.loads(str(row["payload"])), "_actor": row["actor"], "_source": row["source"]}
            for row in rows(self.writer.engine)
            if row["event_type"] == "limit.changed"
        ]

    def versions(self) -> list[limit_versions.StoredLimits]:
        return list(reversed(limit_versions.history(self.writer.engine, DESK, 100)))


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    made = Desk(f"sqlite:///{tmp_path}/bulwark.db")
    yield made
    made.writer.close()


@pytest.fixture
def limits_file(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "limits.toml"
    path.parent.mkdir()
    path.write_text(LIMITS, encoding="utf-8")
    return path


def default_file(tmp_path: Path) -> Path:
    path = tmp_path / "default.toml"
    path.write_text(LIMITS, encoding="utf-8")
    return path


# -- load at start -----------------------------------------------------------------------------------


async def test_first_load_copies_the_default_stores_version_one_and_audits_it(
    desk: Desk, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    registry = desk.registry(instruments)
    seen: list[tuple[RiskLimits, int]] = []
    registry.subscribe(lambda limits, version: seen.append((limits, version)))
    path = tmp_path / "home" / "limits.toml"
    load = await registry.load_at_start(path, DEFAULT_LIMITS_PATH)
    assert path.read_text(encoding="utf-8") == DEFAULT_LIMITS_PATH.read_text(encoding="utf-8")
    assert load.changed and load.version == 1 and load.problems == []
    assert registry.version == 1 and registry.current is load.limits
    assert seen == [(load.limits, 1)]
    assert registry.current.for_instrument(instruments["NSE:TCS"]) is not None
    [stored] = desk.versions()
    assert (stored.version, stored.actor, stored.reason, stored.ts_ns) == (1, "system", "first limits", 1_764_000_000_000_000_000)
    assert json.loads(stored.document) == load.limits.document()
    [change] = desk.limit_changes()
    assert change["version"] == 1 and change["previous_version"] is None
    assert change["sha256"] == hashlib.sha256(stored.document.encode("utf-8")).hexdigest()
    assert change["origin"] == str(path) and change["reason"] == "first limits"
    assert "desk.daily_loss_limit_inr" in change["changed"] and 'underlyings.RELIANCE.max_order_value_inr' in change["changed"]
    assert (change["_actor"], change["_source"]) == ("system", "system")


async def test_an_identical_file_creates_no_version_and_puts_the_stored_one_in_force(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    await desk.registry(instruments).load_at_start(limits_file, default_file(tmp_path))
    # the same limits spelled differently: the normalised documents are equal
    limits_file.write_text(LIMITS.replace("daily_loss_limit_inr = 25000", 'daily_loss_limit_inr = "25_000.00"') + "\n# a comment\n", encoding="utf-8")
    again = desk.registry(instruments)
    seen: list[int] = []
    again.subscribe(lambda _limits, version: seen.append(version))
    load = await again.load_at_start(limits_file, default_file(tmp_path))
    assert not load.changed and load.version == 1 and load.problems == []
    assert seen == [1] and again.current.desk.daily_loss_limit == 2_500_000
    assert len(desk.versions()) == 1 and len(desk.limit_changes()) == 1


async def test_a_changed_file_creates_the_next_version_listing_the_changed_fields(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    await desk.registry(instruments).load_at_start(limits_file, default_file(tmp_path))
    limits_file.write_text(
        LIMITS.replace("daily_loss_limit_inr = 25000", "daily_loss_limit_inr = 20000") + '\n[instruments."NSE:TCS"]\n',
        encoding="utf-8",
    )
    registry = desk.registry(instruments)
    load = await registry.load_at_start(limits_file, default_file(tmp_path))
    assert load.changed and load.version == 2 and registry.current.desk.daily_loss_limit == 2_000_000
    assert registry.current.for_instrument(instruments["NSE:TCS"]) is not None
    change = desk.limit_changes()[-1]
    assert change["version"] == 2 and change["previous_version"] == 1
    assert change["changed"] == ["desk.daily_loss_limit_inr", 'instruments."NSE:TCS"']
    assert desk.versions()[-1].reason == f"limits file {limits_file} changed"


async def test_a_broken_file_keeps_the_stored_version_in_force_and_says_why(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    await desk.registry(instruments).load_at_start(limits_file, default_file(tmp_path))
    limits_file.write_text(LIMITS.replace("max_open_orders = 20", "max_open_orders = -1"), encoding="utf-8")
    registry = desk.registry(instruments)
    load = await registry.load_at_start(limits_file, default_file(tmp_path))
    assert not load.changed and load.version == 1 and registry.version == 1
    assert registry.current.desk.max_open_orders == 20
    assert registry.current.for_instrument(instruments["NSE:RELIANCE"]) is not None
    assert load.problems == [
        f"{limits_file}: desk.max_open_orders = -1: out of range; allowed: a whole number from 1 to 1000000000"
    ]
    assert len(desk.versions()) == 1 and len(desk.limit_changes()) == 1


async def test_nothing_stored_and_a_broken_file_denies_everything(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    limits_file.write_text("[desk\n", encoding="utf-8")
    registry = desk.registry(instruments)
    seen: list[int] = []
    registry.subscribe(lambda _limits, version: seen.append(version))
    load = await registry.load_at_start(limits_file, default_file(tmp_path))
    assert load.version is None and registry.version is None and not load.changed and seen == []
    assert all(registry.current.for_instrument(instrument) is None for instrument in instruments.values())
    assert registry.current.desk.allowed_order_types == frozenset()
    assert len(load.problems) == 1 and "not valid TOML" in load.problems[0] and "line 1" in load.problems[0]
    assert desk.versions() == [] and desk.limit_changes() == []


async def test_no_file_and_no_default_denies_everything(desk: Desk, tmp_path: Path, instruments: dict[str, Instrument]) -> None:
    registry = desk.registry(instruments)
    load = await registry.load_at_start(tmp_path / "home" / "limits.toml", tmp_path / "missing-default.toml")
    assert load.version is None and registry.current.for_instrument(instruments["NSE:RELIANCE"]) is None
    assert len(load.problems) == 1 and "missing, and the default" in load.problems[0]
    assert not (tmp_path / "home" / "limits.toml").exists()


async def test_a_stored_version_that_no_longer_parses_gives_way_to_a_valid_file(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    def store(connection: Connection) -> None:
        limit_versions.insert(connection, limit_versions.StoredLimits(1, 1, "old", "from an older release", '{"desk": {"x": 1}}'),
                              DESK)

    await desk.writer.execute(store)
    registry = desk.registry(instruments)
    load = await registry.load_at_start(limits_file, default_file(tmp_path))
    assert load.changed and load.version == 2
    assert load.problems[0].startswith("stored limits version 1: ")
    assert registry.current.for_instrument(instruments["NSE:RELIANCE"]) is not None


async def test_warnings_name_sections_for_unknown_instruments_and_uncovered_instruments(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    limits_file.write_text(LIMITS + '\n[instruments."NSE:NOSUCH"]\n', encoding="utf-8")
    load = await desk.registry(instruments).load_at_start(limits_file, default_file(tmp_path))
    warnings = "\n".join(load.warnings)
    assert 'instruments."NSE:NOSUCH": not in the desk\'s instrument list' in warnings
    assert "3 of 6 instruments have no limits" in warnings and "NSE:TCS" in warnings


# -- apply -------------------------------------------------------------------------------------------


async def loaded(desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]) -> LimitsRegistry:
    registry = desk.registry(instruments)
    await registry.load_at_start(limits_file, default_file(tmp_path))
    return registry


async def test_apply_puts_a_new_version_in_force_and_writes_the_file(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    registry = await loaded(desk, limits_file, tmp_path, instruments)
    seen: list[int] = []
    registry.subscribe(lambda _limits, version: seen.append(version))
    new_text = LIMITS.replace("max_open_orders = 20", "max_open_orders = 10")
    version = await registry.apply(new_text, actor=RISK_OFFICER, reason="  quieter day  ", path=limits_file)
    assert version == 2 and registry.version == 2 and seen == [2]
    assert registry.current.desk.max_open_orders == 10
    assert limits_file.read_text(encoding="utf-8") == new_text
    assert [p.name for p in limits_file.parent.iterdir()] == ["limits.toml"]  # no temporary file left
    change = desk.limit_changes()[-1]
    assert change["changed"] == ["desk.max_open_orders"] and change["reason"] == "quieter day"
    assert (change["_actor"], change["_source"]) == ("rita", "operator")
    assert (desk.versions()[-1].actor, desk.versions()[-1].reason) == ("rita", "quieter day")


async def test_apply_of_the_limits_in_force_creates_no_version(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    registry = await loaded(desk, limits_file, tmp_path, instruments)
    assert await registry.apply(LIMITS + "\n# reviewed\n", actor=RISK_OFFICER, reason="review") == 1
    assert len(desk.versions()) == 1 and len(desk.limit_changes()) == 1


async def test_apply_without_permission_is_refused_and_changes_nothing(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    registry = await loaded(desk, limits_file, tmp_path, instruments)
    before = registry.current
    with pytest.raises(PermissionError, match="carol may not change the risk limits"):
        await registry.apply(LIMITS.replace("= 20\n", "= 10\n"), actor=TRADER, reason="more room", path=limits_file)
    assert registry.current is before and registry.version == 1
    assert limits_file.read_text(encoding="utf-8") == LIMITS and len(desk.versions()) == 1


@pytest.mark.parametrize("reason", ["", "   "])
async def test_apply_without_a_reason_is_refused(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument], reason: str
) -> None:
    registry = await loaded(desk, limits_file, tmp_path, instruments)
    with pytest.raises(ValueError, match="a reason is required"):
        await registry.apply(LIMITS.replace("= 20\n", "= 10\n"), actor=RISK_OFFICER, reason=reason)
    assert registry.version == 1 and len(desk.versions()) == 1


async def test_apply_of_a_bad_document_leaves_the_old_version_in_force(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    registry = await loaded(desk, limits_file, tmp_path, instruments)
    before = registry.current
    bad = LIMITS.replace("max_position_lots = 2\n", "max_position_lots = 0\n")
    with pytest.raises(LimitsError) as caught:
        await registry.apply(bad, actor=RISK_OFFICER, reason="oops", path=limits_file)
    assert caught.value.problems[0].startswith("underlyings.NIFTY.max_position_lots = 0: out of range")
    assert registry.current is before and registry.version == 1
    assert limits_file.read_text(encoding="utf-8") == LIMITS
    assert len(desk.versions()) == 1 and len(desk.limit_changes()) == 1


async def test_the_audit_record_is_durable_before_the_version_row_and_the_row_before_the_change(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = await loaded(desk, limits_file, tmp_path, instruments)
    audited_at_insert: list[int] = []
    real_insert = limit_versions.insert

    def insert(connection: Connection, stored: limit_versions.StoredLimits, desk_id: str | None = None) -> None:
        count = connection.execute(text("SELECT COUNT(*) FROM audit_log WHERE event_type = 'limit.changed'")).scalar_one()
        audited_at_insert.append(count)
        real_insert(connection, stored, desk_id)

    monkeypatch.setattr(limits_registry.limit_versions, "insert", insert)
    stored_at_change: list[int | None] = []
    registry.subscribe(lambda _limits, _version: stored_at_change.append(
        (limit_versions.latest(desk.writer.engine, DESK) or limit_versions.StoredLimits(1, 0, "", "", "")).version
    ))
    await registry.apply(LIMITS.replace("= 20\n", "= 10\n"), actor=RISK_OFFICER, reason="tighter")
    assert audited_at_insert == [2]
    assert stored_at_change == [2]


async def test_a_store_that_fails_leaves_the_limits_and_the_file_unchanged(
    desk: Desk, limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    registry = await loaded(desk, limits_file, tmp_path, instruments)
    before = registry.current
    desk.writer.close()
    with pytest.raises(Exception, match="not running"):
        await registry.apply(LIMITS.replace("= 20\n", "= 10\n"), actor=RISK_OFFICER, reason="tighter", path=limits_file)
    assert registry.current is before and registry.version == 1
    assert limits_file.read_text(encoding="utf-8") == LIMITS
    assert [p.name for p in limits_file.parent.iterdir()] == ["limits.toml"]


async def test_without_a_recorder_versions_are_kept_in_memory(
    limits_file: Path, tmp_path: Path, instruments: dict[str, Instrument]
) -> None:
    registry = LimitsRegistry(None, instruments)
    load = await registry.load_at_start(limits_file, default_file(tmp_path))
    assert load.changed and load.version == 1
    assert (await registry.load_at_start(limits_file, default_file(tmp_path))).changed is False
    assert await registry.apply(LIMITS.replace("= 20\n", "= 10\n"), actor=RISK_OFFICER, reason="tighter") == 2
    assert registry.current.desk.max_open_orders == 10


def test_changed_fields_lists_added_removed_and_changed_leaves() -> None:
    old = {"desk": {"a": 1, "b": [1, 2]}, "instruments": {"NSE:X": {"max_order_lots": 3}}}
    new = {"desk": {"a": 2, "b": [1, 2]}, "instruments": {"NSE:Y": {}}, "breakers": {"c": 0.5}}
    assert changed_fields(old, new) == ["breakers.c", "desk.a", 'instruments."NSE:X".max_order_lots', 'instruments."NSE:Y"']
    assert changed_fields(new, new) == []
