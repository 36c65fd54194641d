"""Desk identity: a stable id per data folder, registered in the shared database, and rows kept per desk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from app.store.db import StoreError, make_engine
from app.store.desk_identity import (
    IDENTITY_FILE_NAME,
    DeskIdentityError,
    load_or_create,
    read_identity,
    register,
    registered_desks,
)
from app.store.desk_lock import DeskLock
from app.store.desk_state import DeskScope, scope_for_home, working_orders
from app.store.migrate import open_store, upgrade


def test_a_data_folder_keeps_one_id_across_starts(tmp_path: Path) -> None:
    assert read_identity(tmp_path) is None
    first = load_or_create(tmp_path, name="front office")
    assert re.fullmatch(r"[A-Z2-7]{6}", first.desk_id) and first.name == "front office"
    assert load_or_create(tmp_path, name="another name") == first
    assert read_identity(tmp_path) == first
    assert load_or_create(tmp_path / "other") != first


@pytest.mark.parametrize("content", ["{not json", '{"desk_id": "short", "name": "x"}', '{"desk_id": "ABCDEF"}', "[]"])
def test_a_damaged_id_file_is_refused_not_replaced(tmp_path: Path, content: str) -> None:
    (tmp_path / IDENTITY_FILE_NAME).write_text(content)
    with pytest.raises(DeskIdentityError, match=IDENTITY_FILE_NAME):
        load_or_create(tmp_path)
    assert (tmp_path / IDENTITY_FILE_NAME).read_text() == content


def test_registration_counts_starts_and_makes_order_ids_unique(db_url: str, tmp_path: Path) -> None:
    engine = open_store(db_url)
    try:
        a, b = load_or_create(tmp_path / "a"), load_or_create(tmp_path / "b")
        stems = set()
        for identity in (a, b, a, a, b):
            registered = register(engine, identity)
            stem = registered.order_id_stem("BW")
            # The broker keeps 20 characters of an order's remark: the stem, "-" and 6 digits fit.
            assert len(f"{stem}-000001") <= 20
            stems.add(stem)
        assert len(stems) == 5
        desks = {desk.desk_id: desk for desk in registered_desks(engine)}
        assert desks[a.desk_id].starts == 3 and desks[b.desk_id].starts == 2
        assert desks[a.desk_id].adopted_legacy and not desks[b.desk_id].adopted_legacy
    finally:
        engine.dispose()


def test_the_first_desk_adopts_the_rows_written_before_desks_had_ids(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0006")
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO orders VALUES ('BW1-000001', 'PB1', 'NSE:RELIANCE', 'BUY', 1, 100, 'LIMIT', 'CNC', 'TICKET', "
                "'alice', 'OPEN', 0, 0, 1, 1, '2026-11-30')"))
            connection.execute(text("INSERT INTO fills VALUES ('PB1:1', 'BW1-000001', 'NSE:RELIANCE', 'BUY', 1, 100, 5)"))
            connection.execute(text("INSERT INTO trading_state (ts_ns, state, reason, actor) VALUES (1, 'HALTED', 'x', 'y')"))
        upgrade(engine)
        home = tmp_path / "old-desk"
        before = scope_for_home(engine, home)
        assert before == DeskScope("legacy", legacy=True)
        assert [order.client_order_id for order in working_orders(engine, before)] == ["BW1-000001"]

        identity = load_or_create(home)
        assert register(engine, identity).adopted_legacy
        mine = scope_for_home(engine, home)
        assert mine == DeskScope(identity.desk_id, legacy=True)
        assert [order.client_order_id for order in working_orders(engine, mine)] == ["BW1-000001"]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM fills WHERE desk_id = 'legacy'")).scalar_one() == 0

        newcomer = load_or_create(tmp_path / "new-desk")
        assert not register(engine, newcomer).adopted_legacy
        theirs = scope_for_home(engine, tmp_path / "new-desk")
        assert working_orders(engine, theirs) == []
        # A folder that never ran a desk, once the legacy rows have an owner, sees nothing.
        assert working_orders(engine, scope_for_home(engine, tmp_path / "never-ran")) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_one_desk_runs_once_on_postgresql_and_others_run_beside_it(db_url: str) -> None:
    open_store(db_url).dispose()
    with DeskLock(db_url, "AAAAAA"), DeskLock(db_url, "BBBBBB"), pytest.raises(StoreError, match="AAAAAA is already running"):
        DeskLock(db_url, "AAAAAA").__enter__()
    # Released with the session: the desk can start again.
    with DeskLock(db_url, "AAAAAA"):
        pass


def test_identity_file_is_valid_json_naming_the_desk(tmp_path: Path) -> None:
    identity = load_or_create(tmp_path, name="x" * 100)
    document = json.loads((tmp_path / IDENTITY_FILE_NAME).read_text())
    assert document["desk_id"] == identity.desk_id and len(identity.name) == 64
