"""The desk's operators: accounts, sign-in with lockout, and the audited management of both.

``OperatorDirectory`` reads and writes the ``operators`` table on every call (nothing cached), so
an account changed by ``main.py operator`` while a desk runs is seen by that desk at its next
sign-in. Every write is one short transaction that takes the write lock first (SQLite ``BEGIN
IMMEDIATE``, a PostgreSQL table lock): a check and the change it guards (the first account, the
last administrator, the failed-attempt count) cannot interleave with another process's.

Sign-in, in three steps. (1) One write transaction reserves the attempt: it refuses a locked
account, and otherwise counts the attempt as failed before the password is checked; with five
attempts counted since the last success, a sixth locks the account at once. (2) The argon2 verify,
outside any transaction. (3) On a match, one write transaction re-reads the account, refuses if a
lock was set meanwhile, and sets the count back to 0. So attempts made in parallel (threads, the
desk and a command at once) get at most five verifies between two successes, and a right password
checked meanwhile does not lift a lock the others set. Five failures lock the account for 15
minutes, persisted, so a restart does not lift it; an administrator's ``reset_password`` or
``enable`` does. A disabled account never signs in.

An unknown name costs what a known one costs: its attempt is counted too (in ``unknown_sign_ins``,
a write like a known name's), and its password is verified against a hash with the same argon2
parameters, built when the directory is. It gets the same message as a wrong password, and nothing
of what was typed is recorded, not even in the log: a name field sometimes receives a password.
Two answers do tell that a name exists, on purpose: "locked" (the operator must learn that waiting
or an administrator is the way in, not trying again) and "disabled" (given only for the right
password). Five wrong tries are needed to see the first, and they lock the account whatever the
answer says; the second needs the password.

An account whose stored row has been edited into something Bulwark never writes (an unknown role,
an ``enabled`` that is not a boolean, a damaged hash) is listed as damaged and refuses to sign in
with a message saying so; it never crashes a list or a sign-in.

Every authentication event goes to the audit sink with the account's name, role, purpose and
reason; never a password or a hash. Sign-in is BLOCKING for one argon2 verify (~150-300 ms): GUI
code runs it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from argon2 import PasswordHasher
from sqlalchemy import (
    Connection,
    Integer,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy import Engine as SqlEngine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.domain.actors import Actor, Permission, Role
from app.domain.audit import AuditEventType, AuditSource
from app.store.db import StoreError
from app.store.models import OperatorRow, UnknownSignInRow

from .accounts import (
    PURPOSES,
    AuthError,
    Operator,
    OperatorInputError,
    Purpose,
    format_until,
)
from .names import name_key, name_problems, printable_name
from .passwords import (
    DEFAULT_HASHER,
    MAX_LENGTH,
    StoredHashInvalid,
    check_stored_hash,
    hash_password,
    needs_rehash,
    password_problems,
    unmatchable_hash,
    verify_password,
)

log = logging.getLogger(__name__)

AuditSink = Callable[[AuditEventType, dict[str, Any], str, AuditSource], None]
MAX_FAILED_ATTEMPTS = 5
LOCKOUT_NS = 15 * 60 * 1_000_000_000
# One message for an unknown name and a wrong password: the answer must not tell which names exist.
WRONG_NAME_OR_PASSWORD = "wrong name or password"
DAMAGED_HASH = ("this account's stored password cannot be checked (its entry in the database is damaged): "
                "an administrator must reset the password")
DAMAGED_ACCOUNT = ("this account's entry in the database is damaged ({detail}), so it cannot sign in: "
                   "an administrator must restore a backup made before the damage")
CHANGED_MEANWHILE = ("this account was changed while its password was being checked (an administrator reset, "
                     "disabled or unlocked it, or it was locked out): nothing was changed; sign in again")
# The actor of a refused sign-in whose name no account has: never the text typed.
UNKNOWN_OPERATOR = "unknown-operator"
_UNKNOWN_ROW_ID = 1


class _Conflict(StoreError):
    """The database refused a write as conflicting (a duplicate name added by another process meanwhile)."""


class _Reason(enum.StrEnum):
    """Why a sign-in failed, as the audit record says it (never shown to the person signing in)."""

    UNKNOWN_NAME = "unknown name"
    WRONG_PASSWORD = "wrong password"
    LOCKED = "account locked"
    DISABLED = "account disabled"
    DAMAGED_HASH = "stored password hash invalid"
    DAMAGED_ACCOUNT = "stored account invalid"
    CHANGED = "account changed during the check"


def _shown(value: object) -> str:
    """A stored value that is not what it should be, quoted for a message: clipped and escaped."""
    return repr(printable_name(value if isinstance(value, str) else repr(value))[:24])


def _operator(row: Any) -> Operator:
    """The account in ``row``, or, when a column holds what Bulwark never writes, the same account marked damaged."""
    problems: list[str] = []

    def number(column: str, *, optional: bool = False) -> int | None:
        value = getattr(row, column)
        if value is None and optional:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.append(f"{column} {_shown(value)} is not a number")
        return None if optional else 0

    try:
        role = Role(row.role)
    except ValueError:
        role = None
        problems.append(f"unknown role {_shown(row.role)}")
    # Read as the stored integer (see _PUBLIC): SQLAlchemy's own Boolean would take 'no' or 7 as true.
    enabled = row.enabled
    if not (isinstance(enabled, int) and enabled in (0, 1)):
        problems.append(f"enabled {_shown(enabled)} is not a boolean")
        enabled = False
    failed, locked_until = number("failed_attempts"), number("locked_until_ns", optional=True)
    created, changed = number("created_ns"), number("password_changed_ns")
    name = row.name if isinstance(row.name, str) else ""
    if problems or role is None:
        return Operator(printable_name(name), Role.VIEWER, False, failed or 0, locked_until, created or 0, changed or 0,
                        damaged="; ".join(problems))
    return Operator(name, role, bool(enabled), failed or 0, locked_until, created or 0, changed or 0)


_PUBLIC = (OperatorRow.name, OperatorRow.role, type_coerce(OperatorRow.enabled, Integer).label("enabled"),
           OperatorRow.failed_attempts, OperatorRow.locked_until_ns, OperatorRow.created_ns,
           OperatorRow.password_changed_ns)


@dataclass(frozen=True, slots=True)
class _Reserved:
    """An attempt counted before its verify: the account as read then, its hash, and the count it made."""

    account: Operator
    stored: str
    attempts: int


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
        # Ready now, so the first unknown name costs one verify like every other (building a real
        # hash on first use would make it cost two).
        self._dummy_hash = unmatchable_hash(hasher)

    # -- reading -----------------------------------------------------------------------------------

    def has_operators(self) -> bool:
        """Whether any account exists (enabled or not): from then on, authority is a signed-in operator's."""
        with self._store.connect() as connection:
            return connection.execute(select(OperatorRow.name_key).limit(1)).first() is not None

    def operators(self) -> list[Operator]:
        """Every account, by name; damaged ones among them, marked (``Operator.damaged``)."""
        with self._store.connect() as connection:
            rows = connection.execute(select(*_PUBLIC).order_by(OperatorRow.name_key)).all()
        return [_operator(row) for row in rows]

    def operator(self, name: str) -> Operator | None:
        """The account named ``name`` (any case), or ``None``."""
        with self._store.connect() as connection:
            row = connection.execute(select(*_PUBLIC).where(OperatorRow.name_key == name_key(name))).first()
        return None if row is None else _operator(row)

    def unknown_name_attempts(self) -> int:
        """How many sign-in attempts named no account (the names themselves are never kept)."""
        with self._store.connect() as connection:
            count = connection.execute(select(UnknownSignInRow.attempts)
                                       .where(UnknownSignInRow.id == _UNKNOWN_ROW_ID)).scalar()
        return int(count or 0)

    # -- signing in --------------------------------------------------------------------------------

    def authenticate(self, name: str, password: str, *, purpose: Purpose = "sign_in") -> Actor:
        """The operator ``name`` if ``password`` is theirs, as an ``Actor`` with the role's permissions.

        BLOCKING (one argon2 verify). Raises ``AuthError`` with a message safe to show. ``purpose``:
        "sign_in", "unlock" (the lock screen; audited as ``screen.unlocked``), "authorise" (a
        command's authority, e.g. re-arm) or "change_password".
        """
        account, _ = self._authenticate(name, password, purpose)
        return Actor.with_role(account.name, account.role)

    def _authenticate(self, name: str, password: str, purpose: str) -> tuple[Operator, str]:
        """The account signed in, as stored after the sign-in, and its stored hash (for ``change_password``)."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        password = password if isinstance(password, str) else ""
        if not isinstance(name, str) or name_problems(name):
            # A name no account can have: the same cost and answer as any unknown name.
            self._unknown(len(name) if isinstance(name, str) else 0, password, purpose)
        reserved = self._reserve(name_key(name), purpose, self._clock_ns())
        if reserved is None:
            self._unknown(len(name), password, purpose, counted=True)
        account = reserved.account
        try:
            if len(password) > MAX_LENGTH:
                # Longer than any password the policy accepts, so it cannot match: the dummy's cost, not
                # an argon2 pass over megabytes someone pasted.
                matched = self._verify_dummy(password)
            else:
                matched = verify_password(reserved.stored, password, self._hasher)
        except StoredHashInvalid as exc:
            # A hash that looked sound but cannot be computed: not the operator's fault, so not counted.
            self._uncount(account)
            self._refuse_damaged_hash(account, purpose, exc)
        if not matched:
            self._wrong_password(reserved, purpose)
            raise AuthError(WRONG_NAME_OR_PASSWORD)
        return self._signed_in(reserved, password, purpose)

    def _reserve(self, key: str, purpose: str, now: int) -> _Reserved | None:
        """Count the attempt before its verify (one write transaction); ``None`` for a name no account has.

        Raises ``AuthError`` for a locked or damaged account, counting nothing.
        """
        lock_reason: str | None = None
        with _writing(self._store) as connection:
            row = connection.execute(select(*_PUBLIC, OperatorRow.password_hash).where(OperatorRow.name_key == key)).first()
            if row is None:
                _count_unknown(connection, now)
                return None
            account = _operator(row)
            hash_problem = _hash_problem(row.password_hash)
            if account.damaged is None and hash_problem is None and not account.locked_at(now):
                if account.failed_attempts < MAX_FAILED_ATTEMPTS:
                    connection.execute(update(OperatorRow).where(OperatorRow.name_key == key)
                                       .values(failed_attempts=OperatorRow.failed_attempts + 1))
                    return _Reserved(account, row.password_hash, account.failed_attempts + 1)
                # Five attempts counted since the last success, their verifies perhaps still running:
                # a sixth locks now rather than waiting for them.
                until = now + LOCKOUT_NS
                connection.execute(update(OperatorRow).where(OperatorRow.name_key == key)
                                   .values(locked_until_ns=until, failed_attempts=0))
                lock_reason = f"{account.failed_attempts} attempts counted and another came before any succeeded"
                account = replace(account, locked_until_ns=until, failed_attempts=0)
        # Refused, nothing counted. Audited once the transaction is over: a command's audit writer needs
        # the same write lock.
        if account.damaged is not None:
            log.error("operator %s: the stored account is damaged (%s); refusing the sign-in", account.name, account.damaged)
            self._failed(account, purpose, _Reason.DAMAGED_ACCOUNT)
            raise AuthError(DAMAGED_ACCOUNT.format(detail=account.damaged))
        if hash_problem is not None and not account.locked_at(now):
            self._refuse_damaged_hash(account, purpose, hash_problem)
        if lock_reason is not None:
            self._locked_out(account, purpose, lock_reason)
        self._failed(account, purpose, _Reason.LOCKED)
        raise AuthError(_locked_message(account.locked_until_ns or now))

    def _unknown(self, typed_length: int, password: str, purpose: str, *, counted: bool = False) -> NoReturn:
        """Refuse a name no account has, at a known name's cost, recording nothing of what was typed."""
        if not counted:
            with _writing(self._store) as connection:
                _count_unknown(connection, self._clock_ns())
        self._verify_dummy(password)
        log.warning("sign-in refused for a name no account has (%d characters typed) (%s)", typed_length, purpose)
        self._audit(AuditEventType.LOGIN_FAILED,
                    {"name": None, "unknown_name": True, "typed_length": typed_length, "role": None,
                     "purpose": purpose, "reason": str(_Reason.UNKNOWN_NAME)},
                    UNKNOWN_OPERATOR, AuditSource.OPERATOR)
        raise AuthError(WRONG_NAME_OR_PASSWORD)

    def _verify_dummy(self, password: str) -> bool:
        try:
            verify_password(self._dummy_hash, password[:MAX_LENGTH], self._hasher)
        except StoredHashInvalid:
            pass  # our own dummy: only its cost matters
        return False

    def _refuse_damaged_hash(self, account: Operator, purpose: str, exc: object) -> NoReturn:
        log.error("operator %s: %s; refusing the sign-in", account.name, exc)
        self._failed(account, purpose, _Reason.DAMAGED_HASH)
        raise AuthError(DAMAGED_HASH)

    def _uncount(self, account: Operator) -> None:
        with _writing(self._store) as connection:
            connection.execute(update(OperatorRow)
                               .where(OperatorRow.name_key == name_key(account.name), OperatorRow.failed_attempts > 0)
                               .values(failed_attempts=OperatorRow.failed_attempts - 1))

    def _wrong_password(self, reserved: _Reserved, purpose: str) -> None:
        """The attempt stays counted; the one that made the count five locks the account (unless locked meanwhile)."""
        account, attempts = reserved.account, reserved.attempts
        locked: Operator | None = None
        if attempts >= MAX_FAILED_ATTEMPTS:
            key = name_key(account.name)
            now = self._clock_ns()
            with _writing(self._store) as connection:
                row = connection.execute(select(OperatorRow.locked_until_ns).where(OperatorRow.name_key == key)).first()
                if row is not None and not (row.locked_until_ns is not None and now < row.locked_until_ns):
                    # The count starts again once the lockout is over: five more tries before the next one.
                    until = now + LOCKOUT_NS
                    connection.execute(update(OperatorRow).where(OperatorRow.name_key == key)
                                       .values(locked_until_ns=until, failed_attempts=0))
                    locked = replace(account, locked_until_ns=until, failed_attempts=0)
        self._failed(account, purpose, _Reason.WRONG_PASSWORD, attempts=attempts)
        if locked is not None:
            self._locked_out(locked, purpose, f"{attempts} failed attempts")

    def _locked_out(self, account: Operator, purpose: str, reason: str) -> None:
        until = account.locked_until_ns or 0
        log.warning("operator %s locked out until %s: %s", account.name, format_until(until), reason)
        self._audit(AuditEventType.LOGIN_LOCKED,
                    {"name": account.name, "role": str(account.role), "purpose": purpose, "reason": reason,
                     "until_ns": until},
                    account.name, AuditSource.OPERATOR)

    def _failed(self, account: Operator, purpose: str, reason: _Reason, **extra: Any) -> None:
        log.warning("sign-in refused for %s (%s): %s", account.name, purpose, reason)
        role = None if account.damaged is not None else str(account.role)
        payload: dict[str, Any] = {"name": account.name, "role": role, "purpose": purpose, "reason": str(reason), **extra}
        self._audit(AuditEventType.LOGIN_FAILED, payload, account.name, AuditSource.OPERATOR)

    def _signed_in(self, reserved: _Reserved, password: str, purpose: str) -> tuple[Operator, str]:
        """The password matched: in one transaction, refuse if the account was locked or changed meanwhile,
        else set the count back to 0 (and store a stronger hash, when the parameters have grown)."""
        key = name_key(reserved.account.name)
        # Hashed before the transaction, so the write lock is not held through an argon2 pass.
        upgraded = hash_password(password, self._hasher) if needs_rehash(reserved.stored, self._hasher) else None
        refused: _Reason | None = None
        stored = reserved.stored
        with _writing(self._store) as connection:
            row = connection.execute(select(*_PUBLIC, OperatorRow.password_hash).where(OperatorRow.name_key == key)).first()
            now = self._clock_ns()
            account = reserved.account if row is None else _operator(row)
            if row is None or account.damaged is not None or row.password_hash != reserved.stored:
                refused = _Reason.CHANGED  # reset, or edited, since the attempt was counted
            elif account.locked_at(now):
                refused = _Reason.LOCKED  # by attempts running beside this one: the right password does not lift it
            else:
                # Any lock found here has run out: clear it with the count.
                values: dict[str, Any] = {"failed_attempts": 0, "locked_until_ns": None}
                if upgraded is not None and account.enabled:
                    values["password_hash"] = stored = upgraded
                connection.execute(update(OperatorRow).where(OperatorRow.name_key == key).values(**values))
                account = replace(account, failed_attempts=0, locked_until_ns=None)
        if refused is _Reason.LOCKED:
            self._failed(account, purpose, refused)
            raise AuthError(_locked_message(account.locked_until_ns or now))
        if refused is not None:
            self._failed(account, purpose, refused)
            raise AuthError(CHANGED_MEANWHILE)
        if not account.enabled:
            self._failed(account, purpose, _Reason.DISABLED)
            raise AuthError("this account is disabled; an administrator can enable it")
        if stored is upgraded:
            log.info("operator %s: password hash upgraded to the current argon2id parameters", account.name)
        event = AuditEventType.SCREEN_UNLOCKED if purpose == "unlock" else AuditEventType.LOGIN_OK
        log.info("operator %s (%s) authenticated for %s", account.name, account.role, purpose)
        self._audit(event, {"name": account.name, "role": str(account.role), "purpose": purpose},
                    account.name, AuditSource.OPERATOR)
        return account, stored

    def change_password(self, name: str, old: str, new: str) -> None:
        """The operator's own change: ``old`` must sign them in (it counts toward the lockout), ``new`` pass the policy.

        The new hash is written only if the account is as the sign-in found it: an administrator's reset
        or disable, or a lockout, in between refuses the change (``AuthError``) rather than undoing it.
        """
        problems = password_problems(new, name)
        if new == old:
            problems.append("not the same as the current password")
        if problems:
            raise OperatorInputError("new password", problems)
        account, stored = self._authenticate(name, old, "change_password")
        new_hash = hash_password(new, self._hasher)
        with _writing(self._store) as connection:
            now = self._clock_ns()
            written = connection.execute(
                update(OperatorRow)
                .where(OperatorRow.name_key == name_key(account.name),
                       OperatorRow.password_changed_ns == account.password_changed_ns,
                       OperatorRow.password_hash == stored,
                       OperatorRow.enabled.is_(True),
                       or_(OperatorRow.locked_until_ns.is_(None), OperatorRow.locked_until_ns <= now))
                .values(password_hash=new_hash, password_changed_ns=now)
            ).rowcount
        if written != 1:
            log.warning("operator %s: password change refused, the account changed after the current password was checked",
                        account.name)
            self._failed(account, "change_password", _Reason.CHANGED)
            raise AuthError(CHANGED_MEANWHILE)
        self._audit(AuditEventType.PASSWORD_CHANGED,
                    {"name": account.name, "role": str(account.role), "reason": "changed by the operator"},
                    account.name, AuditSource.OPERATOR)

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


def _locked_message(until_ns: int) -> str:
    return (f"this account is locked until {format_until(until_ns)} after {MAX_FAILED_ATTEMPTS} failed attempts; "
            "an administrator can lift the lock sooner")


def _hash_problem(stored: Any) -> StoredHashInvalid | None:
    try:
        check_stored_hash(stored)
    except StoredHashInvalid as exc:
        return exc
    return None


def _count_unknown(connection: Connection, now: int) -> None:
    """One more attempt with a name no account has: a real write, as a known name's count is."""
    counted = connection.execute(update(UnknownSignInRow).where(UnknownSignInRow.id == _UNKNOWN_ROW_ID)
                                 .values(attempts=UnknownSignInRow.attempts + 1, last_ns=now)).rowcount
    if counted == 0:
        connection.execute(insert(UnknownSignInRow).values(id=_UNKNOWN_ROW_ID, attempts=1, last_ns=now))


def _role(actor: Actor) -> str | None:
    return None if actor.role is None else str(actor.role)


def _require_manager(by: Actor) -> None:
    if not by.can(Permission.MANAGE_OPERATORS):
        raise PermissionError(f"{by.name} may not manage operators (needs the {Permission.MANAGE_OPERATORS} permission)")


def _existing(connection: Connection, name: str) -> Operator:
    row = connection.execute(select(*_PUBLIC).where(OperatorRow.name_key == name_key(name))).first()
    if row is None:
        raise OperatorInputError("name", [f"no operator named {printable_name(name)}"])
    account = _operator(row)
    if account.damaged is not None:
        # Changing one column would not make the row trustworthy again (nor tell what the role was).
        raise OperatorInputError("name", [(f"the stored entry of {account.name} is damaged ({account.damaged}): "
                                           "it cannot sign in or be changed here; restore a backup made before the damage")])
    return account


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
