"""Migration 0006: the api_clients table is added to a store at 0005, on either backend, with its keys and checks."""

from __future__ import annotations

from sqlalchemy import inspect

from app.domain.actors import Actor, Role
from app.security.api_clients import ApiClient, ApiClientDirectory
from app.store.db import make_engine
from app.store.migrate import current_revision, head_revision, open_store, upgrade

ADMIN = Actor.with_role("asha", Role.ADMIN)


def test_the_migration_adds_the_table_to_an_older_store(db_url: str) -> None:
    sqlite = db_url.startswith("sqlite")
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0005")
        assert "api_clients" not in inspect(engine).get_table_names()
        engine.dispose()
        engine = open_store(db_url)
        assert current_revision(engine) == head_revision()
        columns = {c["name"] for c in inspect(engine).get_columns("api_clients")}
        assert columns == {"id", "name_key", "name", "scopes", "token_hash", "token_hint", "enabled", "created_ns",
                           "created_by", "changed_ns", "changed_by"}
        uniques = {tuple(u["column_names"]) for u in inspect(engine).get_unique_constraints("api_clients")}
        assert {("name_key",), ("token_hash",)} <= uniques
        checks = {c["name"] for c in inspect(engine).get_check_constraints("api_clients")}
        # PostgreSQL's boolean needs no check; SQLite's integer does.
        expected = {"ck_api_clients_scopes", "ck_api_clients_token_hash"} | ({"ck_api_clients_enabled"} if sqlite else set())
        assert expected <= checks
        clients = ApiClientDirectory(engine, lambda *_: None)
        _, token = clients.add("after-upgrade", ["read"], by=ADMIN)
        assert isinstance(clients.authenticate(token), ApiClient)
    finally:
        engine.dispose()
