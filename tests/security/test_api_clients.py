"""The API client directory: tokens shown once and stored hashed, scopes, authentication, audited changes."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError

from app.domain.actors import Actor, ApiScope, Permission, Role
from app.domain.audit import AuditEventType, AuditSource
from app.security.api_clients import (
    MAX_TOKEN,
    TOKEN_PREFIX,
    ApiClient,
    ApiClientDirectory,
    ApiClientError,
    AuthRefusal,
)
from app.store.migrate import open_store
from app.store.models import ApiClientRow

from .conftest import START_NS, FrozenClock, Sink

E = AuditEventType
ADMIN = Actor.with_role("asha", Role.ADMIN)


@pytest.fixture
def clients(store: Engine, sink: Sink, clock: FrozenClock) -> ApiClientDirectory:
    return ApiClientDirectory(store, sink, clock_ns=clock)


def db_text(store: Engine) -> str:
    """Every value the api_clients table holds, as one string."""
    with store.connect() as connection:
        rows = connection.exec_driver_sql("SELECT * FROM api_clients").all()
    return json.dumps([[str(v) for v in row] for row in rows])


def damage(store: Engine, key: str, **values: object) -> None:
    with store.begin() as connection:
        connection.execute(update(ApiClientRow).where(ApiClientRow.name_key == key).values(**values))


def test_add_gives_a_token_once_and_stores_only_its_hash(clients: ApiClientDirectory, store: Engine, sink: Sink) -> None:
    client, token = clients.add("Algo-1", ["read", ApiScope.TRADE], by=ADMIN)
    assert token.startswith(TOKEN_PREFIX) and len(token) >= 40
    assert client == ApiClient("Algo-1", frozenset({ApiScope.READ, ApiScope.TRADE}), True, START_NS, "asha", token[-4:])
    assert client.actor == Actor("api:Algo-1", frozenset({Permission.WATCH, Permission.TRADE, Permission.CANCEL_OWN}))
    assert clients.authenticate(token) == client
    # The database holds the SHA-256 and the last four characters, never the token.
    stored = db_text(store)
    assert token not in stored and token[:-4] not in stored and token[4:20] not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    # Audited under the administrator's name, naming the client and its scopes; nothing of the token.
    payload, actor = sink.last(E.API_CLIENT_ADDED)
    assert payload == {"name": "Algo-1", "scopes": ["read", "trade"], "by": "asha", "reason": "added by an administrator"}
    assert actor == "asha" and sink.records[-1][3] is AuditSource.OPERATOR
    # Two clients never share a token.
    _, other = clients.add("algo-2", ["kill"], by=ADMIN)
    assert other != token and clients.authenticate(other).name == "algo-2"


def test_authenticate_refuses_missing_unknown_and_disabled_tokens(clients: ApiClientDirectory) -> None:
    _, token = clients.add("stop-button", ["kill"], by=ADMIN)
    assert clients.authenticate(None) is AuthRefusal.MISSING
    assert clients.authenticate("") is AuthRefusal.MISSING
    assert clients.authenticate(token + "x") is AuthRefusal.UNKNOWN
    assert clients.authenticate(token[:-1]) is AuthRefusal.UNKNOWN
    assert clients.authenticate("bwk_" + "é" * 40) is AuthRefusal.UNKNOWN
    assert clients.authenticate("x" * (MAX_TOKEN + 1)) is AuthRefusal.UNKNOWN
    clients.disable("STOP-BUTTON", by=ADMIN)
    assert clients.authenticate(token) is AuthRefusal.DISABLED
    clients.enable("stop-button", by=ADMIN)
    assert isinstance(clients.authenticate(token), ApiClient)


def test_authenticate_is_in_memory_and_fast(clients: ApiClientDirectory, store: Engine) -> None:
    _, token = clients.add("fast", ["read"], by=ADMIN)
    store.dispose()
    # Even with the store's connections gone, a token is checked from memory.
    started = time.perf_counter()
    for _ in range(2000):
        assert isinstance(clients.authenticate(token), ApiClient)
    assert (time.perf_counter() - started) / 2000 < 0.0005


def test_disable_enable_and_rotate_are_audited_and_take_effect_at_once(clients: ApiClientDirectory, sink: Sink,
                                                                       clock: FrozenClock, store: Engine) -> None:
    _, old = clients.add("algo", ["read", "trade"], by=ADMIN)
    clients.disable("algo", by=ADMIN)
    assert clients.client("ALGO") is not None and not clients.client("algo").enabled  # type: ignore[union-attr]
    with pytest.raises(ApiClientError, match="algo is already disabled"):
        clients.disable("algo", by=ADMIN)
    clients.enable("algo", by=ADMIN)
    with pytest.raises(ApiClientError, match="already enabled"):
        clients.enable("algo", by=ADMIN)
    clock.advance(60)
    new = clients.rotate("algo", by=ADMIN)
    assert new != old and clients.authenticate(old) is AuthRefusal.UNKNOWN
    assert clients.authenticate(new).token_hint == new[-4:]  # type: ignore[union-attr]
    assert clients.list()[0].created_ns == START_NS
    with store.connect() as connection:
        row = connection.execute(ApiClientRow.__table__.select()).one()
    assert (row.changed_ns, row.changed_by) == (START_NS + 60 * 1_000_000_000, "asha")
    assert sink.events() == [E.API_CLIENT_ADDED, E.API_CLIENT_DISABLED, E.API_CLIENT_ENABLED, E.API_CLIENT_ROTATED]
    for _, payload, actor, source in sink.records:
        assert payload["name"] == "algo" and payload["scopes"] == ["read", "trade"] and actor == "asha"
        assert source is AuditSource.OPERATOR
    assert old not in repr(sink.records) and new not in repr(sink.records)
    assert hashlib.sha256(new.encode()).hexdigest() not in repr(sink.records)


def test_only_a_holder_of_manage_api_clients_may_change_anything(clients: ApiClientDirectory, sink: Sink) -> None:
    clients.add("algo", ["read"], by=ADMIN)
    for role in (Role.VIEWER, Role.TRADER, Role.RISK_OFFICER):
        outsider = Actor.with_role("tom", role)
        for change in (clients.disable, clients.enable, clients.rotate):
            with pytest.raises(ApiClientError, match="tom may not manage API clients.*manage_api_clients"):
                change("algo", by=outsider)
        with pytest.raises(ApiClientError, match="tom may not manage API clients"):
            clients.add("eve", ["trade"], by=outsider)
    # An API client itself holds no such permission either.
    with pytest.raises(ApiClientError, match="may not manage"):
        clients.add("eve", ["trade"], by=clients.list()[0].actor)
    assert [c.name for c in clients.list()] == ["algo"] and sink.events() == [E.API_CLIENT_ADDED]
    # The permission, not the role, decides.
    clients.add("eve", ["read"], by=Actor("robot-admin", frozenset({Permission.MANAGE_API_CLIENTS})))


@pytest.mark.parametrize(("name", "problem"), [
    ("", "enter a name"), ("has space", "no spaces"), ("api:x", "only letters"), ("-x", "starts with a letter"),
    ("x" * 65, "at most 64"), ("'; DROP TABLE api_clients;--", "only letters"),
])
def test_bad_names_are_refused_naming_the_field(clients: ApiClientDirectory, name: str, problem: str) -> None:
    with pytest.raises(ApiClientError, match=problem) as raised:
        clients.add(name, ["read"], by=ADMIN)
    assert raised.value.field == "name" and clients.list() == []


def test_names_are_unique_regardless_of_case(clients: ApiClientDirectory, sink: Sink) -> None:
    clients.add("Algo", ["read"], by=ADMIN)
    with pytest.raises(ApiClientError, match="an API client named ALGO exists already") as raised:
        clients.add("ALGO", ["trade"], by=ADMIN)
    assert raised.value.field == "name" and len(clients.list()) == 1 and len(sink.records) == 1


def test_scopes_must_be_known_and_at_least_one(clients: ApiClientDirectory) -> None:
    with pytest.raises(ApiClientError, match="at least one scope") as raised:
        clients.add("algo", [], by=ADMIN)
    assert raised.value.field == "scopes"
    with pytest.raises(ApiClientError, match="unknown scope 'admin': the scopes are read, trade, kill"):
        clients.add("algo", ["read", "admin"], by=ADMIN)
    assert clients.list() == []
    client, _ = clients.add("algo", ["READ", "read", " kill "], by=ADMIN)
    assert client.scopes == frozenset({ApiScope.READ, ApiScope.KILL}) and client.scope_text() == "read, kill"


def test_unknown_clients_are_a_clear_error(clients: ApiClientDirectory) -> None:
    for change in (clients.disable, clients.enable, clients.rotate):
        with pytest.raises(ApiClientError, match="no API client named ghost"):
            change("ghost", by=ADMIN)


def test_the_token_is_in_no_repr_exception_or_log(clients: ApiClientDirectory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, token = clients.add("algo", ["trade"], by=ADMIN)
    rotated = clients.rotate("algo", by=ADMIN)
    texts = [repr(client), repr(clients.list()), repr(clients.authenticate(rotated)), caplog.text]
    with pytest.raises(ApiClientError) as raised:
        clients.add("algo", ["read"], by=ADMIN)
    texts.append(str(raised.value))
    for text in texts:
        for secret in (token, rotated):
            assert secret not in text and secret[4:-4] not in text
            assert hashlib.sha256(secret.encode()).hexdigest() not in text


def test_reload_sees_another_directorys_changes_on_the_same_store(clients: ApiClientDirectory, store: Engine) -> None:
    other = ApiClientDirectory(store, lambda *_: None)
    _, token = other.add("from-cli", ["read"], by=ADMIN)
    assert clients.authenticate(token) is AuthRefusal.UNKNOWN
    clients.reload()
    assert isinstance(clients.authenticate(token), ApiClient)
    other.disable("from-cli", by=ADMIN)
    assert isinstance(clients.authenticate(token), ApiClient)  # not yet re-read
    clients.reload()
    assert clients.authenticate(token) is AuthRefusal.DISABLED
    new = other.rotate("from-cli", by=ADMIN)
    clients.reload()
    assert clients.authenticate(token) is AuthRefusal.UNKNOWN and clients.authenticate(new) is AuthRefusal.DISABLED
    # A directory made now reads the table at once.
    assert [c.name for c in ApiClientDirectory(store, lambda *_: None).list()] == ["from-cli"]


@pytest.mark.parametrize("values", [
    {"scopes": "read,root"}, {"scopes": ","}, {"enabled": 7}, {"token_hash": "Z" * 64}, {"name": "bad name"},
])
def test_a_damaged_row_is_skipped_with_a_warning_and_never_authenticates(
        clients: ApiClientDirectory, store: Engine, values: dict[str, object], caplog: pytest.LogCaptureFixture) -> None:
    _, good = clients.add("good", ["read"], by=ADMIN)
    _, token = clients.add("broken", ["trade"], by=ADMIN)
    if "enabled" in values:
        # Past the CHECK constraint, as a hand edit with the constraints off would be.
        with store.begin() as connection:
            connection.exec_driver_sql("PRAGMA ignore_check_constraints = 1")
            connection.exec_driver_sql("UPDATE api_clients SET enabled = 7 WHERE name_key = 'broken'")
    else:
        damage(store, "broken", **values)
    caplog.set_level(logging.WARNING)
    clients.reload()
    assert clients.authenticate(token) is AuthRefusal.UNKNOWN
    assert isinstance(clients.authenticate(good), ApiClient)
    assert [c.name for c in clients.list()] == ["good"] and len(clients.damaged) == 1
    assert "damaged" in caplog.text and token not in caplog.text
    with pytest.raises(ApiClientError, match="damaged"):
        clients.rotate("broken", by=ADMIN)


def test_the_database_refuses_what_bulwark_never_writes(clients: ApiClientDirectory, store: Engine) -> None:
    clients.add("algo", ["read"], by=ADMIN)
    for values in ({"scopes": ""}, {"token_hash": "abc"}):
        with pytest.raises(IntegrityError):
            damage(store, "algo", **values)


def test_parallel_adds_of_one_name_make_one_client(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bulwark.db"
    open_store(url).dispose()
    results: list[object] = []

    def add() -> None:
        engine = open_store(url)
        try:
            results.append(ApiClientDirectory(engine, lambda *_: None).add("race", ["read"], by=ADMIN)[0])
        except ApiClientError as exc:
            results.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, ApiClient) for r in results) == 1
    assert all("exists already" in str(r) for r in results if isinstance(r, ApiClientError))


def test_clients_on_either_backend(db_url: str) -> None:
    engine = open_store(db_url)
    try:
        sink = Sink()
        clients = ApiClientDirectory(engine, sink)
        _, token = clients.add("algo", ["read", "kill"], by=ADMIN)
        with pytest.raises(ApiClientError, match="exists already"):
            clients.add("ALGO", ["read"], by=ADMIN)
        clients.disable("algo", by=ADMIN)
        other = ApiClientDirectory(engine, sink)
        assert other.authenticate(token) is AuthRefusal.DISABLED
        new = other.rotate("algo", by=ADMIN)
        other.enable("algo", by=ADMIN)
        clients.reload()
        assert clients.authenticate(new).scopes == frozenset({ApiScope.READ, ApiScope.KILL})  # type: ignore[union-attr]
        assert token not in db_text(engine) and new not in db_text(engine)
    finally:
        engine.dispose()
