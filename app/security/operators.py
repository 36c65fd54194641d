"""The desk's operators: accounts, sign-in with lockout, and the audited management of both.

``OperatorDirectory`` reads and writes the ``operators`` table on every call (nothing cached), so
an account changed by ``main.py operator`` while a desk runs is seen by that desk at its next
sign-in. Every write is one short transaction that takes the write lock first (SQLite ``BEGIN
IMMEDIATE``, a PostgreSQL table lock): a check and the change it guards (the first account, the
last administrator, the failed-attempt count) cannot interleave with another process's.

Sign-in: an unknown name costs the same argon2 time as a known one (it is verified against a
dummy hash) and gets the same message as a wrong password. Five failed attempts in a row lock the
account for 15 minutes, persisted, so a restart does not lift it; an administrator's
``reset_password`` or ``enable`` does. A locked account refuses even the right password and says
until when. A disabled account never signs in.

Every authentication event goes to the audit sink with the name (as typed, clipped and escaped,
for a failed attempt), the role, the purpose and the reason; never a password or a hash. Sign-in
is BLOCKING for one argon2 verify (~150-300 ms): GUI code runs it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from argon2 import PasswordHasher
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy import Engine as SqlEngine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.domain.actors import Actor, Permission, Role
from app.domain.audit import AuditEventType, AuditSource
from app.domain.india_time import IST
from app.store.db import StoreError
from app.store.models import OperatorRow

from .names import name_key, name_problems, printable_name
from .passwords import (
    DEFAULT_HASHER,
    MAX_LENGTH,
    StoredHashInvalid,
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)

log = logging.getLogger(__name__)

AuditSink = Callable[[AuditEventType, dict[str, Any], str, AuditSource], None]
Purpose = Literal["sign_in", "unlock", "authorise", "change_password"]
PURPOSES: frozenset[str] = frozenset({"sign_in", "unlock", "authorise", "change_password"})

MAX_FAILED_ATTEMPTS = 5
LOCKOUT_NS = 15 * 60 * 1_000_000_000
# One message for an unknown name and a wrong password: the answer must not tell which names exist.
WRONG_NAME_OR_PASSWORD = "wrong name or password"
DAMAGED_HASH = ("this account's stored password cannot be checked (its entry in the database is damaged): "
                "an administrator must reset the password")
# The dummy hash an unknown name is verified against, so it costs what a known one costs.
_DUMMY_PASSWORD = "bulwark: no such operator"


class AuthError(Exception):
    """A refused sign-in. The message is safe to show: it never holds the password, and reads the same
    for an unknown name and a wrong password."""


class OperatorInputError(ValueError):
    """A management call refused for its input; ``field`` says which ("name", "role", "password") for the form."""

    def __init__(self, field: str, problems: list[str]) -> None:
        self.field = field
        self.problems = list(problems)
        super().__init__(f"{field}: {'; '.join(problems)}")


class _Conflict(StoreError):
    """The database refused a write as conflicting (a duplicate name added by another process meanwhile)."""


class _Reason(enum.StrEnum):
    """Why a sign-in failed, as the audit record says it (never shown to the person signing in)."""

    UNKNOWN_NAME = "unknown name"
    WRONG_PASSWORD = "wrong password"
    LOCKED = "account locked"
    DISABLED = "account disabled"
    DAMAGED_HASH = "stored password hash invalid"


@dataclass(frozen=True, slots=True)
class Operator:
    """An account as the desk shows it: never the password hash."""

    name: str
    role: Role
    enabled: bool
    failed_attempts: int
    locked_until_ns: int | None
    created_ns: int
    password_changed_ns: int

    def locked_at(self, now_ns: int) -> bool:
        """Whether the account is locked out at ``now_ns``."""
        return self.locked_until_ns is not None and now_ns < self.locked_until_ns


def _operator(row: Any) -> Operator:
    return Operator(row.name, Role(row.role), bool(row.enabled), int(row.failed_attempts),
                    None if row.locked_until_ns is None else int(row.locked_until_ns), int(row.created_ns),
                    int(row.password_changed_ns))


def format_until(ts_ns: int) -> str:
    """A lockout's end as the desk shows times: IST, to the second."""
    return dt.datetime.fromtimestamp(ts_ns / 1e9, IST).strftime("%Y-%m-%d %H:%M:%S IST")


_PUBLIC = (OperatorRow.name, OperatorRow.role, OperatorRow.enabled, OperatorRow.failed_attempts,
           OperatorRow.locked_until_ns, OperatorRow.created_ns, OperatorRow.password_changed_ns)


class OperatorDirectory:
    """The operator accounts in the store, and every audited action on them (see the module docstring).

    ``hasher`` is the desk's argon2id parameters unless a test passes cheaper ones.
    """

    def __init__(self, store: SqlEngine, audit: AuditSink, *, clock_ns: Callable[[], int] = time.time_ns,
                 hasher: PasswordHasher = DEFAULT_HASHER) -> None:
        self._store = store
        self._audit = audit
        self._clock_ns = clock_ns
        self._hasher = hasher
        self._dummy_hash: str | None = None

    # -- reading -----------------------------------------------------------------------------------

    def has_operators(self) -> bool:
        """Whether any account exists (enabled or not): from then on, authority is a signed-in operator's."""
        with self._store.connect() as connection:
            return connection.execute(select(OperatorRow.name_key).limit(1)).first() is not None

    def operators(self) -> list[Operator]:
        """Every account, by name."""
        with self._store.connect() as connection:
            rows = connection.execute(select(*_PUBLIC).order_by(OperatorRow.name_key)).all()
        return [_operator(row) for row in rows]

    def operator(self, name: str) -> Operator | None:
        """The account named ``name`` (any case), or ``None``."""
        with self._store.connect() as connection:
            row = connection.execute(select(*_PUBLIC).where(OperatorRow.name_key == name_key(name))).first()
        return None if row is None else _operator(row)

    # -- signing in --------------------------------------------------------------------------------

    def authenticate(self, name: str, password: str, *, purpose: Purpose = "sign_in") -> Actor:
        """The operator ``name`` if ``password`` is theirs, as an ``Actor`` with the role's permissions.

        BLOCKING (one argon2 verify). Raises ``AuthError`` with a message safe to show. ``purpose``:
        "sign_in", "unlock" (the lock screen; audited as ``screen.unlocked``), "authorise" (a
        command's authority, e.g. re-arm) or "change_password".
        """
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        typed = printable_name(name) if isinstance(name, str) else "?"
        if not isinstance(name, str) or not isinstance(password, str) or name_problems(name):
            # A name no account can have: the same cost and answer as any unknown name.
            self._verify_dummy(password if isinstance(password, str) else "")
            self._failed(typed, None, purpose, _Reason.UNKNOWN_NAME)
            raise AuthError(WRONG_NAME_OR_PASSWORD)
        key = name_key(name)
        with self._store.connect() as connection:
            row = connection.execute(
                select(*_PUBLIC, OperatorRow.password_hash).where(OperatorRow.name_key == key)
            ).first()
        if row is None:
            self._verify_dummy(password)
            self._failed(typed, None, purpose, _Reason.UNKNOWN_NAME)
            raise AuthError(WRONG_NAME_OR_PASSWORD)
        account = _operator(row)
        now = self._clock_ns()
        if account.locked_at(now):
            until = account.locked_until_ns or now
            self._failed(account.name, account.role, purpose, _Reason.LOCKED)
            raise AuthError(f"this account is locked until {format_until(until)} after {MAX_FAILED_ATTEMPTS} "
                            "failed attempts; an administrator can lift the lock sooner")
        stored: str = row.password_hash
        try:
            if len(password) > MAX_LENGTH:
                # Longer than any password the policy accepts, so it cannot match: the dummy's cost, not
                # an argon2 pass over megabytes someone pasted.
                matched = self._verify_dummy(password)
            else:
                matched = verify_password(stored, password, self._hasher)
        except StoredHashInvalid as exc:
            log.error("operator %s: %s; refusing the sign-in", account.name, exc)
            self._failed(account.name, account.role, purpose, _Reason.DAMAGED_HASH)
            raise AuthError(DAMAGED_HASH) from None
        if not matched:
            self._count_failure(account, purpose, now)
            raise AuthError(WRONG_NAME_OR_PASSWORD)
        if not account.enabled:
            self._failed(account.name, account.role, purpose, _Reason.DISABLED)
            raise AuthError("this account is disabled; an administrator can enable it")
        self._signed_in(account, key, stored, password, purpose)
        return Actor.with_role(account.name, account.role)

    def _verify_dummy(self, password: str) -> bool:
        if self._dummy_hash is None:
            self._dummy_hash = hash_password(_DUMMY_PASSWORD, self._hasher)
        try:
            verify_password(self._dummy_hash, password[:MAX_LENGTH], self._hasher)
        except StoredHashInvalid:
            pass  # our own dummy: only its cost matters
        return False

    def _count_failure(self, account: Operator, purpose: str, now: int) -> None:
        key = name_key(account.name)
        with _writing(self._store) as connection:
            # The stored count, not the one read before the verify: another process may have counted too.
            connection.execute(update(OperatorRow).where(OperatorRow.name_key == key)
                               .values(failed_attempts=OperatorRow.failed_attempts + 1))
            row = connection.execute(select(OperatorRow.failed_attempts, OperatorRow.locked_until_ns)
                                     .where(OperatorRow.name_key == key)).one()
            attempts = int(row.failed_attempts)
            locking = attempts >= MAX_FAILED_ATTEMPTS and not (row.locked_until_ns is not None and now < row.locked_until_ns)
            until = now + LOCKOUT_NS
            if locking:
                # The count starts again once the lockout is over: five more tries before the next one.
                connection.execute(update(OperatorRow).where(OperatorRow.name_key == key)
                                   .values(locked_until_ns=until, failed_attempts=0))
        self._failed(account.name, account.role, purpose, _Reason.WRONG_PASSWORD, attempts=attempts)
        if locking:
            log.warning("operator %s locked out until %s after %d failed attempts", account.name, format_until(until), attempts)
            self._audit(AuditEventType.LOGIN_LOCKED,
                        {"name": account.name, "role": str(account.role), "purpose": purpose,
                         "reason": f"{attempts} failed attempts", "until_ns": until},
                        account.name, AuditSource.OPERATOR)

    def _failed(self, name: str, role: Role | None, purpose: str, reason: _Reason, **extra: Any) -> None:
        log.warning("sign-in refused for %s (%s): %s", name, purpose, reason)
        payload: dict[str, Any] = {"name": name, "role": None if role is None else str(role), "purpose": purpose,
                                   "reason": str(reason), **extra}
        self._audit(AuditEventType.LOGIN_FAILED, payload, name, AuditSource.OPERATOR)

    def _signed_in(self, account: Operator, key: str, stored: str, password: str, purpose: str) -> None:
        values: dict[str, Any] = {"failed_attempts": 0, "locked_until_ns": None}
        if needs_rehash(stored, self._hasher):
            # Stronger parameters since this hash was made: replace it now that the password is known.
            values["password_hash"] = hash_password(password, self._hasher)
            log.info("operator %s: password hash upgraded to the current argon2id parameters", account.name)
        if "password_hash" in values or account.failed_attempts or account.locked_until_ns is not None:
            with _writing(self._store) as connection:
                connection.execute(update(OperatorRow).where(OperatorRow.name_key == key).values(**values))
        event = AuditEventType.SCREEN_UNLOCKED if purpose == "unlock" else AuditEventType.LOGIN_OK
        log.info("operator %s (%s) authenticated for %s", account.name, account.role, purpose)
        self._audit(event, {"name": account.name, "role": str(account.role), "purpose": purpose},
                    account.name, AuditSource.OPERATOR)

    def change_password(self, name: str, old: str, new: str) -> None:
        """The operator's own change: ``old`` must sign them in (it counts toward the lockout), ``new`` pass the policy."""
        problems = password_problems(new, name)
        if new == old:
            problems.append("not the same as the current password")
        if problems:
            raise OperatorInputError("new password", problems)
        actor = self.authenticate(name, old, purpose="change_password")
        new_hash = hash_password(new, self._hasher)
        with _writing(self._store) as connection:
            connection.execute(update(OperatorRow).where(OperatorRow.name_key == name_key(name))
                               .values(password_hash=new_hash, password_changed_ns=self._clock_ns()))
        self._audit(AuditEventType.PASSWORD_CHANGED,
                    {"name": actor.name, "role": str(actor.role), "reason": "changed by the operator"},
                    actor.name, AuditSource.OPERATOR)

    def record_lock(self, actor: Actor, reason: str) -> None:
        """The desk's lock screen came up (idle, or asked for) over ``actor``'s session."""
        self._audit(AuditEventType.SCREEN_LOCKED, {"name": actor.name, "role": _role(actor), "reason": reason},
                    actor.name, AuditSource.OPERATOR)

    def record_sign_out(self, actor: Actor) -> None:
        """``actor`` signed out (or was switched away from)."""
        self._audit(AuditEventType.LOGOUT, {"name": actor.name, "role": _role(actor)}, actor.name, AuditSource.OPERATOR)

    # -- management --------------------------------------------------------------------------------

    def add(self, name: str, role: Role, password: str, *, by: Actor | None) -> Operator:
        """Create an account. ``by`` needs MANAGE_OPERATORS; ``None`` only for the very first account, which
        must be an administrator. Raises ``OperatorInputError`` (with the field) or ``PermissionError``."""
        if by is not None:
            _require_manager(by)
        if problems := name_problems(name):
            raise OperatorInputError("name", problems)
        try:
            role = Role(role)
        except ValueError:
            raise OperatorInputError("role", [f"one of {', '.join(r.value for r in Role)}"]) from None
        if by is None and role is not Role.ADMIN:
            raise OperatorInputError("role", ["the first operator must be an administrator (admin)"])
        if problems := password_problems(password, name):
            raise OperatorInputError("password", problems)
        new_hash = hash_password(password, self._hasher)
        now = self._clock_ns()
        try:
            with _writing(self._store) as connection:
                if by is None and connection.execute(select(OperatorRow.name_key).limit(1)).first() is not None:
                    raise PermissionError("operators exist already: only an administrator may add one")
                if connection.execute(select(OperatorRow.name).where(OperatorRow.name_key == name_key(name))).first():
                    raise OperatorInputError("name", [f"an operator named {name} exists already (names ignore case)"])
                connection.execute(insert(OperatorRow).values(
                    name_key=name_key(name), name=name, role=str(role), password_hash=new_hash, enabled=True,
                    failed_attempts=0, locked_until_ns=None, created_ns=now, password_changed_ns=now,
                ))
        except _Conflict:
            # Another process added the same name between the check and the insert.
            raise OperatorInputError("name", [f"an operator named {name} exists already (names ignore case)"]) from None
        actor = name if by is None else by.name
        payload: dict[str, Any] = {"name": name, "role": str(role), "by": actor,
                                   "reason": "first administrator" if by is None else "added by an administrator"}
        self._audit(AuditEventType.OPERATOR_ADDED, payload, actor, AuditSource.OPERATOR)
        log.info("operator %s added as %s by %s", name, role, actor)
        return Operator(name, role, True, 0, None, now, now)

    def disable(self, name: str, *, by: Actor) -> None:
        """Disable an account (it can no longer sign in); never the last enabled administrator."""
        _require_manager(by)
        with _writing(self._store) as connection:
            account = _existing(connection, name)
            if not account.enabled:
                raise OperatorInputError("name", [f"{account.name} is already disabled"])
            if account.role is Role.ADMIN and _enabled_admins(connection) <= 1:
                raise OperatorInputError("name", [(
                    f"{account.name} is the last enabled administrator: add or enable another administrator first, "
                    "or nobody could manage operators or restore a backup")])
            connection.execute(update(OperatorRow).where(OperatorRow.name_key == name_key(name)).values(enabled=False))
        self._audit(AuditEventType.OPERATOR_DISABLED,
                    {"name": account.name, "role": str(account.role), "by": by.name, "reason": "disabled by an administrator"},
                    by.name, AuditSource.OPERATOR)

    def enable(self, name: str, *, by: Actor) -> None:
        """Enable an account again; this also lifts a lockout."""
        _require_manager(by)
        with _writing(self._store) as connection:
            account = _existing(connection, name)
            if account.enabled and not account.locked_at(self._clock_ns()):
                raise OperatorInputError("name", [f"{account.name} is already enabled"])
            connection.execute(update(OperatorRow).where(OperatorRow.name_key == name_key(name))
                               .values(enabled=True, failed_attempts=0, locked_until_ns=None))
        if not account.enabled:
            self._audit(AuditEventType.OPERATOR_ENABLED,
                        {"name": account.name, "role": str(account.role), "by": by.name, "reason": "enabled by an administrator"},
                        by.name, AuditSource.OPERATOR)
        self._unlocked(account, by, "enabled by an administrator")

    def reset_password(self, name: str, password: str, *, by: Actor) -> None:
        """Set another operator's password (forgotten, or a damaged hash); this also lifts a lockout."""
        _require_manager(by)
        with self._store.connect() as connection:
            account = _existing(connection, name)
        if problems := password_problems(password, account.name):
            raise OperatorInputError("password", problems)
        new_hash = hash_password(password, self._hasher)
        with _writing(self._store) as connection:
            account = _existing(connection, name)
            connection.execute(update(OperatorRow).where(OperatorRow.name_key == name_key(name)).values(
                password_hash=new_hash, password_changed_ns=self._clock_ns(), failed_attempts=0, locked_until_ns=None))
        self._audit(AuditEventType.PASSWORD_RESET,
                    {"name": account.name, "role": str(account.role), "by": by.name, "reason": "reset by an administrator"},
                    by.name, AuditSource.OPERATOR)
        self._unlocked(account, by, "password reset by an administrator")

    def _unlocked(self, account: Operator, by: Actor, reason: str) -> None:
        if account.locked_at(self._clock_ns()):
            self._audit(AuditEventType.LOGIN_UNLOCKED,
                        {"name": account.name, "role": str(account.role), "by": by.name, "reason": reason},
                        by.name, AuditSource.OPERATOR)


def _role(actor: Actor) -> str | None:
    return None if actor.role is None else str(actor.role)


def _require_manager(by: Actor) -> None:
    if not by.can(Permission.MANAGE_OPERATORS):
        raise PermissionError(f"{by.name} may not manage operators (needs the {Permission.MANAGE_OPERATORS} permission)")


def _existing(connection: Connection, name: str) -> Operator:
    row = connection.execute(select(*_PUBLIC).where(OperatorRow.name_key == name_key(name))).first()
    if row is None:
        raise OperatorInputError("name", [f"no operator named {printable_name(name)}"])
    return _operator(row)


def _enabled_admins(connection: Connection) -> int:
    count = connection.execute(select(func.count()).select_from(OperatorRow)
                               .where(OperatorRow.role == str(Role.ADMIN), OperatorRow.enabled.is_(True))).scalar_one()
    return int(count)


@contextmanager
def _writing(store: SqlEngine) -> Iterator[Connection]:
    """One short write transaction, the write lock taken first. A database error leaves as ``StoreError``
    with the driver's first line only: SQLAlchemy's own message quotes the statement's parameters,
    a password hash among them, and an error message may end up in a log."""
    try:
        with store.connect() as connection, connection.begin():
            _write_lock(connection)
            yield connection
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        lines = str(orig if orig is not None else type(exc).__name__).strip().splitlines()
        kind = _Conflict if isinstance(exc, IntegrityError) else StoreError
        raise kind(f"the operator accounts could not be written: {lines[0] if lines else 'no detail'}") from None


def _write_lock(connection: Connection) -> None:
    """Take the write lock before the first read of a transaction, so the read and the write are one step."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        # pysqlite begins only at the first write; begin now (it sees the open transaction and commits it).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        connection.exec_driver_sql("LOCK TABLE operators IN SHARE ROW EXCLUSIVE MODE")
