"""The operator directory: accounts, sign-in, lockout, management, and what every event audits."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError

from app.domain.actors import Actor, Permission, Role
from app.domain.audit import AuditEventType, AuditSource
from app.security.operators import (
    CHANGED_MEANWHILE,
    DAMAGED_HASH,
    LOCKOUT_NS,
    MAX_FAILED_ATTEMPTS,
    UNKNOWN_OPERATOR,
    WRONG_NAME_OR_PASSWORD,
    AuthError,
    OperatorDirectory,
    OperatorInputError,
)
from app.security.passwords import hash_password, password_hasher, verify_password
from app.store.db import StoreError
from app.store.migrate import open_store
from app.store.models import OperatorRow

from .conftest import (
    ADMIN_PASSWORD,
    FAST_HASHER,
    START_NS,
    TRADER_PASSWORD,
    FrozenClock,
    Sink,
)

E = AuditEventType
SQL = "'; DROP TABLE operators;--"


def stored_hash(store: Engine, name: str) -> str:
    with store.connect() as connection:
        return str(connection.exec_driver_sql("SELECT password_hash FROM operators WHERE name_key = ?", (name,)).scalar_one())


def set_hash(store: Engine, name: str, value: str) -> None:
    with store.begin() as connection:
        connection.execute(update(OperatorRow).where(OperatorRow.name_key == name).values(password_hash=value))


# -- the first account ------------------------------------------------------------------------------


def test_a_new_store_has_no_operators_and_the_first_must_be_an_admin(directory: OperatorDirectory, sink: Sink) -> None:
    assert directory.has_operators() is False and directory.operators() == []
    with pytest.raises(OperatorInputError, match="the first operator must be an administrator") as raised:
        directory.add("tom", Role.TRADER, TRADER_PASSWORD, by=None)
    assert raised.value.field == "role"
    added = directory.add("Asha", Role.ADMIN, ADMIN_PASSWORD, by=None)
    assert (added.name, added.role, added.enabled, added.created_ns) == ("Asha", Role.ADMIN, True, START_NS)
    assert directory.has_operators() is True
    payload, actor = sink.last(E.OPERATOR_ADDED)
    assert payload == {"name": "Asha", "role": "admin", "by": "Asha", "reason": "first administrator"} and actor == "Asha"
    # The second account needs an administrator's authority.
    with pytest.raises(PermissionError, match="operators exist already"):
        directory.add("rita", Role.ADMIN, "another pass phrase", by=None)
    assert [o.name for o in directory.operators()] == ["Asha"]


def test_management_needs_the_manage_operators_permission(directory: OperatorDirectory, admin: Actor) -> None:
    for role in (Role.VIEWER, Role.TRADER, Role.RISK_OFFICER):
        outsider = Actor.with_role("tom", role)
        with pytest.raises(PermissionError, match="may not manage operators"):
            directory.add("eve", Role.ADMIN, "eve pass phrase 1", by=outsider)
        with pytest.raises(PermissionError):
            directory.disable("asha", by=outsider)
        with pytest.raises(PermissionError):
            directory.enable("tom", by=outsider)
        with pytest.raises(PermissionError):
            directory.reset_password("asha", "taken over now!", by=outsider)
    assert directory.operator("eve") is None
    assert directory.authenticate("asha", ADMIN_PASSWORD).name == "asha"


def test_names_are_unique_regardless_of_case_and_lookups_ignore_case(directory: OperatorDirectory, admin: Actor) -> None:
    with pytest.raises(OperatorInputError, match="an operator named TOM exists already") as raised:
        directory.add("TOM", Role.VIEWER, "viewer pass phrase", by=admin)
    assert raised.value.field == "name"
    assert directory.operator("TOM") is not None
    actor = directory.authenticate("ToM", TRADER_PASSWORD)
    assert actor == Actor.with_role("tom", Role.TRADER)  # the name as created, the role's permissions


@pytest.mark.parametrize(
    "name, password, field",
    [
        ("", "a fine pass phrase", "name"),
        ("x" * 10_240, "a fine pass phrase", "name"),
        ("bad\x1bname", "a fine pass phrase", "name"),
        ("Jos\u00e9", "a fine pass phrase", "name"),
        (SQL, "a fine pass phrase", "name"),
        ("newbie", "", "password"),
        ("newbie", "short", "password"),
        ("newbie", "x" * 10_240, "password"),
        ("newbie", "ctrl\x00chars in it", "password"),
        ("newbie", "NEWBIE", "password"),
    ],
)
def test_bad_input_to_add_is_refused_by_field_and_adds_nothing(
    directory: OperatorDirectory, admin: Actor, sink: Sink, name: str, password: str, field: str,
) -> None:
    before = len(sink.records)
    with pytest.raises(OperatorInputError) as raised:
        directory.add(name, Role.TRADER, password, by=admin)
    assert raised.value.field == field and raised.value.problems
    assert password not in str(raised.value) or not password
    assert [o.name for o in directory.operators()] == ["asha", "tom"]
    assert len(sink.records) == before


def test_sql_looking_passwords_and_unicode_are_just_text(directory: OperatorDirectory, admin: Actor, store: Engine) -> None:
    directory.add("bobby", Role.VIEWER, SQL, by=admin)
    directory.add("priya", Role.VIEWER, "पासवर्ड सुरक्षित है", by=admin)
    assert directory.authenticate("bobby", SQL).role is Role.VIEWER
    assert directory.authenticate("priya", "पासवर्ड सुरक्षित है").role is Role.VIEWER
    with pytest.raises(AuthError):
        directory.authenticate(SQL, SQL)
    assert len(directory.operators()) == 4


def test_an_unknown_role_is_a_field_problem(directory: OperatorDirectory, admin: Actor) -> None:
    with pytest.raises(OperatorInputError, match="one of viewer, trader, risk_officer, admin") as raised:
        directory.add("newbie", "superuser", "a fine pass phrase", by=admin)  # type: ignore[arg-type]
    assert raised.value.field == "role"


# -- signing in -------------------------------------------------------------------------------------


def test_sign_in_returns_the_roles_actor_and_is_audited(directory: OperatorDirectory, admin: Actor, sink: Sink) -> None:
    actor = directory.authenticate("tom", TRADER_PASSWORD)
    assert actor.name == "tom" and actor.role is Role.TRADER and actor.can(Permission.TRADE)
    assert not actor.can(Permission.REARM)
    payload, who = sink.last(E.LOGIN_OK)
    assert payload == {"name": "tom", "role": "trader", "purpose": "sign_in"} and who == "tom"
    assert sink.records[-1][3] is AuditSource.OPERATOR


def test_an_unknown_name_and_a_wrong_password_get_the_same_message_and_cost(
    directory: OperatorDirectory, admin: Actor, sink: Sink, monkeypatch: pytest.MonkeyPatch,
) -> None:
    verified: list[str] = []
    real = verify_password

    def counting(stored: str, password: str, hasher: Any) -> bool:
        verified.append(stored)
        return real(stored, password, hasher)

    monkeypatch.setattr("app.security.operators.verify_password", counting)
    messages = []
    for name, password in [("tom", "wrong password!"), ("nobody", "wrong password!"), ("x" * 10_000, "whatever"),
                           ("bad\x1bname", "whatever"), ("", "")]:
        with pytest.raises(AuthError) as raised:
            directory.authenticate(name, password)
        messages.append(str(raised.value))
    assert set(messages) == {WRONG_NAME_OR_PASSWORD}
    # Every attempt ran one argon2 verify against a hash with the same parameters.
    assert len(verified) == 5
    assert len({h.rsplit("$", 2)[0] for h in verified}) == 1
    reasons = [payload["reason"] for kind, payload, _, _ in sink.records if kind is E.LOGIN_FAILED]
    assert reasons == ["wrong password"] + ["unknown name"] * 4
    # A known name is recorded as the account spells it; of an unknown one only how long it was.
    failed = [(payload, actor) for kind, payload, actor, _ in sink.records if kind is E.LOGIN_FAILED]
    assert [(p["name"], p.get("typed_length"), actor) for p, actor in failed] == [
        ("tom", None, "tom"), (None, 6, UNKNOWN_OPERATOR), (None, 10_000, UNKNOWN_OPERATOR),
        (None, 8, UNKNOWN_OPERATOR), (None, 0, UNKNOWN_OPERATOR)]
    assert all(p["unknown_name"] is True and p["role"] is None for p, _ in failed[1:])


@pytest.mark.parametrize("typed", [TRADER_PASSWORD, "trader-pass-phrase-2", "x" * 10_000])
def test_a_password_typed_into_the_name_field_is_recorded_nowhere(
    directory: OperatorDirectory, admin: Actor, sink: Sink, caplog: pytest.LogCaptureFixture, typed: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Invalid as a name (a space), valid as a name but no account's, and a 10 kB paste.
    with pytest.raises(AuthError, match=WRONG_NAME_OR_PASSWORD):
        directory.authenticate(typed, TRADER_PASSWORD)
    kind, payload, actor, _ = sink.records[-1]
    assert kind is E.LOGIN_FAILED and actor == UNKNOWN_OPERATOR
    assert payload == {"name": None, "unknown_name": True, "typed_length": len(typed), "role": None,
                       "purpose": "sign_in", "reason": "unknown name"}
    assert typed[:12] not in caplog.text and "trader" not in caplog.text
    assert f"({len(typed)} characters typed)" in caplog.text


def test_the_dummy_hash_is_ready_at_construction_and_an_unknown_name_is_counted_like_a_known_one(
    store: Engine, sink: Sink, clock: FrozenClock, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = OperatorDirectory(store, sink, clock_ns=clock, hasher=FAST_HASHER)
    directory.add("asha", Role.ADMIN, ADMIN_PASSWORD, by=None)
    directory.add("tom", Role.TRADER, TRADER_PASSWORD, by=Actor.with_role("asha", Role.ADMIN))
    fresh = OperatorDirectory(store, sink, clock_ns=clock, hasher=FAST_HASHER)
    hashed: list[str] = []
    verified: list[str] = []
    real_verify = verify_password
    monkeypatch.setattr("app.security.operators.hash_password", lambda password, hasher: hashed.append("hash") or "")
    monkeypatch.setattr("app.security.operators.verify_password",
                        lambda stored, password, hasher: verified.append(stored) or real_verify(stored, password, hasher))

    def wal_frames() -> int:
        return (tmp_path / "bulwark.db-wal").stat().st_size

    # Warm up both paths (the first unknown name inserts the counter's row; later ones update it).
    for name in ("nobody", "tom"):
        with pytest.raises(AuthError):
            fresh.authenticate(name, "not the password")
    grown = {}
    for name in ("nobody", "tom"):
        before = wal_frames()
        with pytest.raises(AuthError, match=WRONG_NAME_OR_PASSWORD):
            fresh.authenticate(name, "not the password")
        grown[name] = wal_frames() - before
    # The first unknown name costs one verify, no hashing: the dummy was built with the directory.
    assert hashed == [] and len(verified) == 4
    assert verified[0].rsplit("$", 2)[0] == stored_hash(store, "tom").rsplit("$", 2)[0]
    # Both paths commit a write (a page to the log, synced): the same cost, and time tells no names apart.
    assert grown["nobody"] > 0 and grown["nobody"] == grown["tom"]
    assert fresh.unknown_name_attempts() == 2
    account = fresh.operator("tom")
    assert account is not None and account.failed_attempts == 2


def test_five_failures_lock_the_account_for_15_minutes_even_against_the_right_password(
    directory: OperatorDirectory, admin: Actor, sink: Sink, clock: FrozenClock, store: Engine,
) -> None:
    for n in range(1, MAX_FAILED_ATTEMPTS + 1):
        with pytest.raises(AuthError, match=WRONG_NAME_OR_PASSWORD):
            directory.authenticate("tom", f"guess number {n}")
        assert sink.last(E.LOGIN_FAILED)[0]["attempts"] == n
    payload, actor = sink.last(E.LOGIN_LOCKED)
    assert payload == {"name": "tom", "role": "trader", "purpose": "sign_in", "reason": "5 failed attempts",
                       "until_ns": START_NS + LOCKOUT_NS} and actor == "tom"
    account = directory.operator("tom")
    assert account is not None and account.locked_until_ns == START_NS + LOCKOUT_NS and account.locked_at(clock())
    clock.advance(15 * 60 - 1)
    with pytest.raises(AuthError, match=r"locked until 2027-01-15 13:45:00 IST after 5 failed attempts") as raised:
        directory.authenticate("tom", TRADER_PASSWORD)
    assert TRADER_PASSWORD not in str(raised.value)
    assert sink.last(E.LOGIN_FAILED)[0]["reason"] == "account locked"
    # The lockout is in the store: a restarted desk (a new directory) still refuses.
    restarted = OperatorDirectory(store, sink, clock_ns=clock, hasher=FAST_HASHER)
    with pytest.raises(AuthError, match="locked until"):
        restarted.authenticate("tom", TRADER_PASSWORD)
    clock.advance(1)
    assert restarted.authenticate("tom", TRADER_PASSWORD).name == "tom"
    account = directory.operator("tom")
    assert account is not None and account.failed_attempts == 0 and account.locked_until_ns is None


def test_a_success_resets_the_count_of_failures(directory: OperatorDirectory, admin: Actor) -> None:
    for _ in range(MAX_FAILED_ATTEMPTS - 1):
        with pytest.raises(AuthError):
            directory.authenticate("tom", "not the password")
    directory.authenticate("tom", TRADER_PASSWORD)
    for _ in range(MAX_FAILED_ATTEMPTS - 1):
        with pytest.raises(AuthError):
            directory.authenticate("tom", "not the password")
    assert directory.authenticate("tom", TRADER_PASSWORD).name == "tom"


@pytest.mark.parametrize("lift", ["reset_password", "enable"])
def test_an_admin_lifts_a_lockout(directory: OperatorDirectory, admin: Actor, sink: Sink, lift: str) -> None:
    for _ in range(MAX_FAILED_ATTEMPTS):
        with pytest.raises(AuthError):
            directory.authenticate("tom", "not the password")
    if lift == "reset_password":
        directory.reset_password("tom", "a brand new phrase", by=admin)
        password = "a brand new phrase"
        assert sink.last(E.PASSWORD_RESET) == ({"name": "tom", "role": "trader", "by": "asha",
                                                "reason": "reset by an administrator"}, "asha")
    else:
        directory.enable("tom", by=admin)
        password = TRADER_PASSWORD
        assert E.OPERATOR_ENABLED not in sink.events()  # it was enabled: only the lockout was lifted
    payload, actor = sink.last(E.LOGIN_UNLOCKED)
    assert payload["name"] == "tom" and payload["by"] == "asha" and actor == "asha"
    assert directory.authenticate("tom", password).name == "tom"


def test_a_disabled_account_cannot_sign_in_and_enabling_it_is_audited(
    directory: OperatorDirectory, admin: Actor, sink: Sink,
) -> None:
    directory.disable("tom", by=admin)
    assert sink.last(E.OPERATOR_DISABLED) == ({"name": "tom", "role": "trader", "by": "asha",
                                               "reason": "disabled by an administrator"}, "asha")
    account = directory.operator("tom")
    assert account is not None and account.enabled is False
    with pytest.raises(AuthError, match="this account is disabled"):
        directory.authenticate("tom", TRADER_PASSWORD)
    assert sink.last(E.LOGIN_FAILED)[0]["reason"] == "account disabled"
    # The wrong password on a disabled account says no more than on any other.
    with pytest.raises(AuthError, match=WRONG_NAME_OR_PASSWORD):
        directory.authenticate("tom", "not the password")
    with pytest.raises(OperatorInputError, match="already disabled"):
        directory.disable("tom", by=admin)
    directory.enable("tom", by=admin)
    assert sink.last(E.OPERATOR_ENABLED)[0]["name"] == "tom"
    assert directory.authenticate("tom", TRADER_PASSWORD).name == "tom"
    with pytest.raises(OperatorInputError, match="already enabled"):
        directory.enable("tom", by=admin)


def test_the_last_enabled_admin_cannot_be_disabled(directory: OperatorDirectory, admin: Actor) -> None:
    with pytest.raises(OperatorInputError, match="asha is the last enabled administrator"):
        directory.disable("asha", by=admin)
    directory.add("rita", Role.ADMIN, "rita pass phrase", by=admin)
    directory.disable("asha", by=Actor.with_role("rita", Role.ADMIN))
    with pytest.raises(OperatorInputError, match="rita is the last enabled administrator"):
        directory.disable("rita", by=Actor.with_role("rita", Role.ADMIN))


def test_unknown_names_in_management_are_field_problems(directory: OperatorDirectory, admin: Actor) -> None:
    with pytest.raises(OperatorInputError, match="no operator named ghost"):
        directory.disable("ghost", by=admin)
    with pytest.raises(OperatorInputError, match="no operator named ghost"):
        directory.enable("ghost", by=admin)
    with pytest.raises(OperatorInputError, match="no operator named ghost"):
        directory.reset_password("ghost", "a fine pass phrase", by=admin)


def test_purposes_are_audited_and_unlock_is_a_screen_unlock(directory: OperatorDirectory, admin: Actor, sink: Sink) -> None:
    directory.authenticate("tom", TRADER_PASSWORD, purpose="unlock")
    assert sink.last(E.SCREEN_UNLOCKED) == ({"name": "tom", "role": "trader", "purpose": "unlock"}, "tom")
    directory.authenticate("asha", ADMIN_PASSWORD, purpose="authorise")
    assert sink.last(E.LOGIN_OK)[0]["purpose"] == "authorise"
    with pytest.raises(ValueError, match="unknown purpose"):
        directory.authenticate("tom", TRADER_PASSWORD, purpose="root")  # type: ignore[arg-type]


def test_lock_and_sign_out_are_audited(directory: OperatorDirectory, admin: Actor, sink: Sink) -> None:
    tom = Actor.with_role("tom", Role.TRADER)
    directory.record_lock(tom, "idle 5 minutes")
    assert sink.last(E.SCREEN_LOCKED) == ({"name": "tom", "role": "trader", "reason": "idle 5 minutes"}, "tom")
    directory.record_sign_out(tom)
    assert sink.last(E.LOGOUT) == ({"name": "tom", "role": "trader"}, "tom")


def test_change_password(directory: OperatorDirectory, admin: Actor, sink: Sink, clock: FrozenClock) -> None:
    with pytest.raises(OperatorInputError) as raised:
        directory.change_password("tom", TRADER_PASSWORD, "short")
    assert raised.value.field == "new password"
    with pytest.raises(OperatorInputError, match="not the same as the current password"):
        directory.change_password("tom", TRADER_PASSWORD, TRADER_PASSWORD)
    with pytest.raises(AuthError, match=WRONG_NAME_OR_PASSWORD):
        directory.change_password("tom", "not the old one", "a brand new phrase")
    clock.advance(60)
    directory.change_password("tom", TRADER_PASSWORD, "a brand new phrase")
    assert sink.last(E.PASSWORD_CHANGED)[0] == {"name": "tom", "role": "trader", "reason": "changed by the operator"}
    account = directory.operator("tom")
    assert account is not None and account.password_changed_ns == START_NS + 60 * 1_000_000_000
    with pytest.raises(AuthError):
        directory.authenticate("tom", TRADER_PASSWORD)
    assert directory.authenticate("tom", "a brand new phrase").name == "tom"


# -- the stored hash --------------------------------------------------------------------------------


@pytest.mark.parametrize("tampered", ["", "plaintext password", SQL, "$argon2i$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
                                      "$argon2id$v=19$m=99999999,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$" + "A" * 43])
def test_a_tampered_hash_is_a_clear_refusal_audited_and_never_a_crash(
    directory: OperatorDirectory, admin: Actor, sink: Sink, store: Engine, caplog: pytest.LogCaptureFixture, tampered: str,
) -> None:
    set_hash(store, "tom", tampered)
    with pytest.raises(AuthError) as raised:
        directory.authenticate("tom", TRADER_PASSWORD)
    assert str(raised.value) == DAMAGED_HASH
    assert sink.last(E.LOGIN_FAILED)[0]["reason"] == "stored password hash invalid"
    # Not the operator's fault: no step toward a lockout.
    account = directory.operator("tom")
    assert account is not None and account.failed_attempts == 0
    assert "operator tom:" in caplog.text
    # An administrator's reset repairs it.
    directory.reset_password("tom", "a repaired phrase", by=admin)
    assert directory.authenticate("tom", "a repaired phrase").name == "tom"


def test_a_hash_with_old_parameters_is_upgraded_at_the_next_sign_in(directory: OperatorDirectory, admin: Actor,
                                                                      store: Engine) -> None:
    set_hash(store, "tom", hash_password(TRADER_PASSWORD, password_hasher(memory_cost_kib=8, time_cost=1)))
    directory.authenticate("tom", TRADER_PASSWORD)
    upgraded = stored_hash(store, "tom")
    assert "m=64,t=1,p=1" in upgraded
    assert directory.authenticate("tom", TRADER_PASSWORD).name == "tom"


# -- nothing secret anywhere ------------------------------------------------------------------------


def test_no_password_or_hash_in_any_audit_payload_log_record_or_repr(
    directory: OperatorDirectory, store: Engine, sink: Sink, clock: FrozenClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [ADMIN_PASSWORD, TRADER_PASSWORD, "wrong guess one", "a brand new phrase", "a changed phrase"]
    directory.add("asha", Role.ADMIN, ADMIN_PASSWORD, by=None)
    admin = directory.authenticate("asha", ADMIN_PASSWORD)
    directory.add("tom", Role.TRADER, TRADER_PASSWORD, by=admin)
    for _ in range(MAX_FAILED_ATTEMPTS):
        with pytest.raises(AuthError):
            directory.authenticate("tom", "wrong guess one")
    with pytest.raises(AuthError):
        directory.authenticate("tom", TRADER_PASSWORD)
    directory.reset_password("tom", "a brand new phrase", by=admin)
    directory.change_password("tom", "a brand new phrase", "a changed phrase")
    tom = directory.authenticate("tom", "a changed phrase", purpose="unlock")
    directory.record_lock(tom, "idle")
    directory.record_sign_out(tom)
    directory.disable("tom", by=admin)
    directory.enable("tom", by=admin)
    with pytest.raises(AuthError):
        directory.authenticate("nobody", "wrong guess one")
    hashes = [stored_hash(store, "asha"), stored_hash(store, "tom")]
    emitted = {kind for kind, *_ in sink.records}
    assert emitted >= {E.OPERATOR_ADDED, E.LOGIN_OK, E.LOGIN_FAILED, E.LOGIN_LOCKED, E.LOGIN_UNLOCKED, E.PASSWORD_RESET,
                       E.PASSWORD_CHANGED, E.SCREEN_UNLOCKED, E.SCREEN_LOCKED, E.LOGOUT, E.OPERATOR_DISABLED,
                       E.OPERATOR_ENABLED}
    recorded = json.dumps([payload for _, payload, _, _ in sink.records]) + caplog.text
    recorded += repr(directory.operators()) + repr(tom)
    for secret in [*secrets, *hashes, *(h.rsplit("$", 1)[1] for h in hashes)]:
        assert secret not in recorded
    assert "$argon2" not in recorded


def test_a_store_that_refuses_the_write_says_so_without_the_hash(
    directory: OperatorDirectory, admin: Actor, store: Engine, caplog: pytest.LogCaptureFixture,
) -> None:
    with store.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER operators_frozen BEFORE UPDATE ON operators BEGIN SELECT RAISE(ABORT, 'frozen'); END")
    with pytest.raises(StoreError, match="the operator accounts could not be written: frozen") as raised:
        directory.reset_password("tom", "a brand new phrase", by=admin)
    # SQLAlchemy's own message would quote the statement's parameters, the new hash among them.
    assert "argon2" not in str(raised.value) and raised.value.__cause__ is None and raised.value.__suppress_context__
    assert "argon2" not in caplog.text and "a brand new phrase" not in caplog.text
    # An attempt that cannot be counted is not checked: the lockout must not depend on a working store.
    with pytest.raises(StoreError, match="frozen"):
        directory.authenticate("tom", TRADER_PASSWORD)
    with store.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER operators_frozen")
    assert directory.authenticate("tom", TRADER_PASSWORD).name == "tom"


def test_the_store_holds_the_hash_only_in_its_column(directory: OperatorDirectory, admin: Actor, store: Engine) -> None:
    with store.connect() as connection:
        row = connection.exec_driver_sql("SELECT * FROM operators WHERE name_key = 'tom'").mappings().one()
    assert [k for k, v in row.items() if isinstance(v, str) and v.startswith("$argon2id$")] == ["password_hash"]
    assert all(TRADER_PASSWORD not in str(v) for v in row.values())


# -- both backends ----------------------------------------------------------------------------------


def test_accounts_and_lockout_on_either_backend(db_url: str) -> None:
    engine = open_store(db_url)
    try:
        clock, sink = FrozenClock(), Sink()
        directory = OperatorDirectory(engine, sink, clock_ns=clock, hasher=FAST_HASHER)
        directory.add("asha", Role.ADMIN, ADMIN_PASSWORD, by=None)
        admin = directory.authenticate("asha", ADMIN_PASSWORD)
        directory.add("tom", Role.TRADER, TRADER_PASSWORD, by=admin)
        with pytest.raises(OperatorInputError, match="exists already"):
            directory.add("Tom", Role.VIEWER, "viewer pass phrase", by=admin)
        for _ in range(MAX_FAILED_ATTEMPTS):
            with pytest.raises(AuthError):
                directory.authenticate("tom", "not the password")
        with pytest.raises(AuthError, match="locked until"):
            directory.authenticate("tom", TRADER_PASSWORD)
        with pytest.raises(OperatorInputError, match="last enabled administrator"):
            directory.disable("asha", by=admin)
        directory.enable("tom", by=admin)
        assert directory.authenticate("tom", TRADER_PASSWORD).role is Role.TRADER
        assert [(o.name, o.role, o.enabled) for o in directory.operators()] == [("asha", Role.ADMIN, True),
                                                                               ("tom", Role.TRADER, True)]
        with pytest.raises(AuthError, match=WRONG_NAME_OR_PASSWORD):
            directory.authenticate("nobody", "not the password")
        assert directory.unknown_name_attempts() == 1
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(update(OperatorRow).where(OperatorRow.name_key == "tom").values(role="superuser"))
    finally:
        engine.dispose()


# -- attempts at the same time ----------------------------------------------------------------------


def test_parallel_attempts_get_at_most_five_verifies_and_the_right_password_cannot_lift_their_lock(
    directory: OperatorDirectory, admin: Actor, sink: Sink, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong, attempts = 10, 11
    gate = threading.Condition()
    arrived: set[int] = set()  # threads now verifying or already answered
    wrong_answered = 0
    verified: list[str] = []
    real = verify_password

    def overlapping(stored: str, password: str, hasher: Any) -> bool:
        with gate:
            verified.append(password)
            arrived.add(threading.get_ident())
            gate.notify_all()
            # Every verify waits until each attempt is verifying or answered, so all of them overlap.
            assert gate.wait_for(lambda: len(arrived) == attempts, timeout=30)
            if password == TRADER_PASSWORD:
                # The right password is checked last, once every wrong one has been answered.
                assert gate.wait_for(lambda: wrong_answered == wrong, timeout=30)
        return real(stored, password, hasher)

    monkeypatch.setattr("app.security.operators.verify_password", overlapping)
    start = threading.Barrier(attempts)
    answers: dict[str, str] = {}

    def attempt(password: str) -> None:
        nonlocal wrong_answered
        start.wait(timeout=30)
        try:
            directory.authenticate("tom", password)
            answers[password] = "signed in"
        except AuthError as exc:
            answers[password] = str(exc)
        finally:
            with gate:
                arrived.add(threading.get_ident())
                wrong_answered += password != TRADER_PASSWORD
                gate.notify_all()

    threads = [threading.Thread(target=attempt, args=(f"wrong guess {n:02d}",)) for n in range(wrong)]
    threads.append(threading.Thread(target=attempt, args=(TRADER_PASSWORD,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    # Five attempts were counted before their verifies; the sixth locked the account; the rest were refused.
    assert len(verified) == MAX_FAILED_ATTEMPTS
    assert answers[TRADER_PASSWORD].startswith("this account is locked until")
    assert E.LOGIN_OK not in sink.events() and sink.events().count(E.LOGIN_LOCKED) == 1
    reasons = [payload["reason"] for kind, payload, _, _ in sink.records if kind is E.LOGIN_FAILED]
    assert reasons.count("wrong password") <= MAX_FAILED_ATTEMPTS and len(reasons) == attempts
    account = directory.operator("tom")
    assert account is not None and account.locked_at(clock())


def test_a_lock_set_while_the_right_password_is_checked_is_not_lifted(
    directory: OperatorDirectory, admin: Actor, sink: Sink, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = verify_password

    def guesses_meanwhile(stored: str, password: str, hasher: Any) -> bool:
        if password == TRADER_PASSWORD:
            # Four guesses land while tom's own attempt is being checked: with his, five counted.
            for n in range(MAX_FAILED_ATTEMPTS - 1):
                with pytest.raises(AuthError, match=WRONG_NAME_OR_PASSWORD):
                    directory.authenticate("tom", f"guess number {n}")
        return real(stored, password, hasher)

    monkeypatch.setattr("app.security.operators.verify_password", guesses_meanwhile)
    with pytest.raises(AuthError, match="this account is locked until"):
        directory.authenticate("tom", TRADER_PASSWORD)
    assert E.LOGIN_OK not in sink.events()
    assert sink.last(E.LOGIN_LOCKED)[0]["reason"] == "5 failed attempts"
    account = directory.operator("tom")
    assert account is not None and account.locked_at(clock())


@pytest.mark.parametrize("meanwhile", ["reset", "disable", "lockout"])
def test_a_password_change_is_refused_when_the_account_changed_after_the_check(
    directory: OperatorDirectory, admin: Actor, sink: Sink, monkeypatch: pytest.MonkeyPatch, meanwhile: str,
) -> None:
    real = hash_password

    def hashing_while_an_admin_acts(password: str, hasher: Any) -> str:
        if password == "a brand new phrase":
            if meanwhile == "reset":
                directory.reset_password("tom", "the admins phrase", by=admin)
            elif meanwhile == "disable":
                directory.disable("tom", by=admin)
            else:
                for _ in range(MAX_FAILED_ATTEMPTS):
                    with pytest.raises(AuthError):
                        directory.authenticate("tom", "somebody guessing")
        return real(password, hasher)

    monkeypatch.setattr("app.security.operators.hash_password", hashing_while_an_admin_acts)
    with pytest.raises(AuthError) as raised:
        directory.change_password("tom", TRADER_PASSWORD, "a brand new phrase")
    assert str(raised.value) == CHANGED_MEANWHILE
    assert E.PASSWORD_CHANGED not in sink.events()
    assert sink.last(E.LOGIN_FAILED)[0]["reason"] == "account changed during the check"
    if meanwhile != "reset":
        directory.enable("tom", by=admin)
    with pytest.raises(AuthError):
        directory.authenticate("tom", "a brand new phrase")
    expected = "the admins phrase" if meanwhile == "reset" else TRADER_PASSWORD
    assert directory.authenticate("tom", expected).name == "tom"


# -- a tampered row ---------------------------------------------------------------------------------


def tamper(store: Engine, name: str, column: str, value: object) -> None:
    """Write what Bulwark never writes, past the table's CHECK constraints (as an edit of the file could)."""
    raw = store.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA ignore_check_constraints = ON")
        cursor.execute(f"UPDATE operators SET {column} = ? WHERE name_key = ?", (value, name))
        raw.commit()
        cursor.execute("PRAGMA ignore_check_constraints = OFF")
    finally:
        raw.close()


def test_the_table_refuses_a_role_or_enabled_bulwark_does_not_know(directory: OperatorDirectory, admin: Actor,
                                                                   store: Engine) -> None:
    for column, value in (("role", "superuser"), ("role", "Admin"), ("enabled", 2)):
        with pytest.raises(IntegrityError, match="CHECK constraint failed"), store.begin() as connection:
            connection.exec_driver_sql(f"UPDATE operators SET {column} = ? WHERE name_key = 'tom'", (value,))
    assert directory.operator("tom") == directory.operators()[1]


@pytest.mark.parametrize("column, value, detail", [
    ("role", "superuser", "unknown role 'superuser'"),
    ("role", "", "unknown role ''"),
    ("enabled", "yes", "enabled 'yes' is not a boolean"),
    ("enabled", 7, "enabled '7' is not a boolean"),
    ("failed_attempts", "many", "failed_attempts 'many' is not a number"),
])
def test_a_tampered_row_is_listed_as_damaged_refuses_sign_in_and_never_crashes(
    directory: OperatorDirectory, admin: Actor, sink: Sink, store: Engine, caplog: pytest.LogCaptureFixture,
    column: str, value: object, detail: str,
) -> None:
    tamper(store, "tom", column, value)
    listed = {account.name: account for account in directory.operators()}
    tom = listed["tom"]
    assert tom.damaged == detail and tom.enabled is False and tom.role is Role.VIEWER
    assert listed["asha"].damaged is None and directory.operator("tom") == tom
    with pytest.raises(AuthError) as raised:
        directory.authenticate("tom", TRADER_PASSWORD)
    assert str(raised.value).startswith(f"this account's entry in the database is damaged ({detail})")
    assert sink.last(E.LOGIN_FAILED) == ({"name": "tom", "role": None, "purpose": "sign_in",
                                          "reason": "stored account invalid"}, "tom")
    assert "operator tom: the stored account is damaged" in caplog.text
    for change in (lambda: directory.disable("tom", by=admin), lambda: directory.enable("tom", by=admin),
                   lambda: directory.reset_password("tom", "a repaired phrase", by=admin)):
        with pytest.raises(OperatorInputError, match="the stored entry of tom is damaged"):
            change()
    # Everyone else is untouched.
    assert directory.authenticate("asha", ADMIN_PASSWORD).name == "asha"
