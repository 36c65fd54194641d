"""The ``db_url`` fixture really reaches both backends: a SQLite file and a PostgreSQL server."""

import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.store.db import make_engine
from tests.pg_server import in_ci


def test_version_and_round_trip_through_a_new_engine(db_url: str) -> None:
    backend = make_url(db_url).get_backend_name()

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                version = conn.execute(text("select version()")).scalar_one()
                assert version.startswith("PostgreSQL ")
                db = conn.execute(text("select current_database()")).scalar_one()
                assert db == make_url(db_url).database and db.startswith("test_")
            else:
                assert backend == "sqlite"
                version = conn.execute(text("select sqlite_version()")).scalar_one()
                assert version.count(".") == 2
            conn.execute(text("create table probe (id integer primary key, note varchar(40))"))
            conn.execute(text("insert into probe (id, note) values (1, :n)"), {"n": backend})
            conn.commit()
    finally:
        engine.dispose()

    if backend == "sqlite":  # a real file, not an in-memory database
        assert os.path.getsize(str(make_url(db_url).database)) > 0

    reopened = create_engine(db_url)
    try:
        with reopened.connect() as conn:
            rows = conn.execute(text("select id, note from probe")).all()
    finally:
        reopened.dispose()
    assert [tuple(r) for r in rows] == [(1, backend)]


def test_each_test_gets_an_empty_database(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            if make_url(db_url).get_backend_name() == "postgresql":
                sql = "select count(*) from information_schema.tables where table_schema = 'public'"
            else:
                sql = "select count(*) from sqlite_master where type = 'table'"
            assert conn.execute(text(sql)).scalar_one() == 0
    finally:
        engine.dispose()


@pytest.mark.skipif(not in_ci(), reason="only meaningful in CI (CI set)")
def test_ci_always_has_postgresql(pg_base_url: str | None) -> None:
    assert pg_base_url is not None, "CI must test against PostgreSQL, never skip it"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_postgresql_connection_gives_up_on_a_silent_server_in_seconds(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            parameters = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()
    assert {name: parameters.get(name) for name in ("keepalives", "keepalives_idle", "tcp_user_timeout", "connect_timeout")} == {
        "keepalives": "1", "keepalives_idle": "5", "tcp_user_timeout": "10000", "connect_timeout": "10"}
