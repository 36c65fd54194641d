"""The local API's clients: programs (strategy scripts, stop buttons) that call the desk over HTTP with a token.

An administrator (``Permission.MANAGE_API_CLIENTS``) adds a client with its scopes (read, trade,
kill) and receives its token once; disables, enables and rotates it. Every change is one short
transaction under the table's write lock, then one audit record naming the client, its scopes and
the administrator; never the token, nor its hash.

Tokens are ``"bwk_"`` and 32 random bytes (``secrets.token_urlsafe``), stored as their SHA-256 hex
digest; the hint kept beside it is the token's last four characters. A slow password hash (argon2)
guards low-entropy secrets that can be guessed; a 256-bit random token cannot be, and hashing it
with argon2 on every request would cost more than the API's whole 5 ms latency budget. So one
SHA-256 is enough, and a stolen database yields no usable token.

``authenticate`` is synchronous and in memory: a dict from hash to client, never the database, a
few microseconds. Looking the hash up in a dict leaks nothing of the token through timing: the
token only decides which hash is looked for, and finding the hash tells nothing about a token
that is not the one presented. The cache is filled by ``reload()`` (BLOCKING: run it in a worker
thread) and refreshed by every change this directory makes, so the desk's own dialog takes effect
at once; the API server reloads every few seconds to see changes made by other processes (the
``api-client`` command). A row edited into something Bulwark never writes (an unknown scope, an
``enabled`` that is not a boolean, a hash that is not SHA-256 hex) is skipped with a warning, and
never authenticates.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, insert, select, type_coerce, update
from sqlalchemy import Engine as SqlEngine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.domain.actors import Actor, ApiScope, Permission, api_actor
from app.domain.audit import AuditEventType, AuditSource
from app.store.db import StoreError
from app.store.models import ApiClientRow

from .names import name_key, name_problems, printable_name

log = logging.getLogger(__name__)

AuditSink = Callable[[AuditEventType, dict[str, Any], str, AuditSource], None]
TOKEN_PREFIX = "bwk_"
HINT_LENGTH = 4
# Far above a real token's 47 characters: anything longer is refused without being hashed.
MAX_TOKEN = 256
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AuthRefusal(enum.StrEnum):
    """Why a token was not accepted (what the API audits; the caller learns only 401)."""

    MISSING = "missing"
    UNKNOWN = "unknown"
    DISABLED = "disabled"


class ApiClientError(ValueError):
    """A change refused: bad input (``field`` names it: "name", "scopes"), an unknown client, or no authority."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class ApiClient:
    """One client as the directory knows it. Holds no token: ``token_hint`` is its last four characters."""

    name: str
    scopes: frozenset[ApiScope]
    enabled: bool
    created_ns: int
    created_by: str
    token_hint: str

    @property
    def actor(self) -> Actor:
        """Who this client acts as: ``api:<name>`` with its scopes' permissions."""
        return api_actor(self.name, self.scopes)

    def scope_text(self) -> str:
        """``read, trade``: the scopes in their fixed order, for a list or a message."""
        return ", ".join(scope.value for scope in ApiScope if scope in self.scopes)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is stored and looked up as."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def parse_scopes(scopes: Iterable[ApiScope | str]) -> frozenset[ApiScope]:
    """The scopes named (codes or members), at least one; raises ``ApiClientError`` naming an unknown one."""
    found: set[ApiScope] = set()
    for scope in scopes:
        code = scope.strip().casefold() if isinstance(scope, str) else scope
        try:
            found.add(ApiScope(code))
        except ValueError:
            known = ", ".join(s.value for s in ApiScope)
            raise ApiClientError(f"unknown scope {printable_name(str(scope))[:24]!r}: the scopes are {known}",
                                 field="scopes") from None
    if not found:
        raise ApiClientError("give at least one scope (read, trade or kill)", field="scopes")
    return frozenset(found)


def _stored_scopes(scopes: frozenset[ApiScope]) -> str:
    return ",".join(scope.value for scope in ApiScope if scope in scopes)


@dataclass(frozen=True, slots=True)
class _Cache:
    """What ``authenticate`` and ``list`` read: replaced whole, never changed in place, so readers need no lock."""

    by_hash: dict[str, ApiClient]
    by_key: dict[str, ApiClient]
    damaged: tuple[str, ...] = ()


_PUBLIC = (ApiClientRow.name_key, ApiClientRow.name, ApiClientRow.scopes, ApiClientRow.token_hash,
           ApiClientRow.token_hint, type_coerce(ApiClientRow.enabled, Integer).label("enabled"),
           ApiClientRow.created_ns, ApiClientRow.created_by)


def _client(row: Any) -> tuple[str, ApiClient] | str:
    """``(hash, client)`` for a sound row, or what is wrong with it."""
    if not isinstance(row.scopes, str):
        return "its scopes are not text"
    try:
        scopes = parse_scopes(row.scopes.split(","))
    except ApiClientError as exc:
        return str(exc)
    # Read as the stored integer: SQLAlchemy's own Boolean would take 'no' or 7 as true.
    if not (isinstance(row.enabled, int) and row.enabled in (0, 1)):
        return "its enabled flag is not a boolean"
    if not (isinstance(row.token_hash, str) and _HEX64.fullmatch(row.token_hash)):
        return "its token hash is not a SHA-256 hex digest"
    if not (isinstance(row.name, str) and not name_problems(row.name) and name_key(row.name) == row.name_key):
        return "its name is not a valid client name"
    if not (isinstance(row.created_ns, int) and isinstance(row.created_by, str) and isinstance(row.token_hint, str)):
        return "its creation record is damaged"
    return row.token_hash, ApiClient(row.name, scopes, bool(row.enabled), row.created_ns, row.created_by, row.token_hint)


class ApiClientDirectory:
    """The API clients in the store, their tokens' hashes in memory, and every audited change (see the module).

    Construction reads the table once (BLOCKING, like ``reload``).
    """

    def __init__(self, store: SqlEngine, audit: AuditSink, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self._audit = audit
        self._clock_ns = clock_ns
        # Serialises reloads and changes, so an older read never replaces a newer one's cache.
        self._lock = threading.Lock()
        self._cache = _Cache({}, {})
        self.reload()

    # -- reading -----------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> ApiClient | AuthRefusal:
        """The enabled client holding ``token``, or why not. In memory only (no database), microseconds."""
        if not token:
            return AuthRefusal.MISSING
        if not isinstance(token, str) or len(token) > MAX_TOKEN or not token.isascii():
            return AuthRefusal.UNKNOWN
        client = self._cache.by_hash.get(token_digest(token))
        if client is None:
            return AuthRefusal.UNKNOWN
        return client if client.enabled else AuthRefusal.DISABLED

    def list(self) -> list[ApiClient]:
        """Every sound client as last read, by name (damaged rows are left out: see ``damaged``)."""
        cache = self._cache
        return [cache.by_key[key] for key in sorted(cache.by_key)]

    def client(self, name: str) -> ApiClient | None:
        """The client named ``name`` (any case) as last read, or ``None``."""
        return self._cache.by_key.get(name_key(name)) if isinstance(name, str) else None

    @property
    def damaged(self) -> tuple[str, ...]:
        """The names (made printable) of the rows the last read skipped as damaged."""
        return self._cache.damaged

    def reload(self) -> None:
        """Read the table again (BLOCKING: call it in a worker thread); picks up other processes' changes."""
        with self._lock:
            self._reload_locked()

    def _reload_locked(self) -> None:
        with self._store.connect() as connection:
            rows = connection.execute(select(*_PUBLIC).order_by(ApiClientRow.name_key)).all()
        by_hash: dict[str, ApiClient] = {}
        by_key: dict[str, ApiClient] = {}
        damaged: list[str] = []
        for row in rows:
            read = _client(row)
            shown = printable_name(row.name if isinstance(row.name, str) else repr(row.name))
            if isinstance(read, str):
                log.warning("API client %s: its stored entry is damaged (%s); it cannot authenticate", shown, read)
                damaged.append(shown)
                continue
            digest, client = read
            by_hash[digest] = client
            by_key[row.name_key] = client
        self._cache = _Cache(by_hash, by_key, tuple(damaged))

    # -- changes -----------------------------------------------------------------------------------

    def add(self, name: str, scopes: Iterable[ApiScope | str], *, by: Actor) -> tuple[ApiClient, str]:
        """Create a client; returns it and its token, which is shown once and never stored."""
        _require_manager(by)
        problems = name_problems(name) if isinstance(name, str) else ["a name is text"]
        if problems:
            raise ApiClientError(f"name: {'; '.join(problems)}", field="name")
        chosen = parse_scopes(scopes)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock_ns()
        exists = ApiClientError(f"an API client named {name} exists already (names ignore case)", field="name")
        with self._lock:
            try:
                with _writing(self._store) as connection:
                    if connection.execute(select(ApiClientRow.id).where(ApiClientRow.name_key == name_key(name))).first():
                        raise exists
                    connection.execute(insert(ApiClientRow).values(
                        name_key=name_key(name), name=name, scopes=_stored_scopes(chosen), token_hash=token_digest(token),
                        token_hint=token[-HINT_LENGTH:], enabled=True, created_ns=now, created_by=by.name,
                        changed_ns=now, changed_by=by.name,
                    ))
            except _Conflict:
                # Another process added the same name between the check and the insert.
                raise exists from None
            self._reload_locked()
        self._record(AuditEventType.API_CLIENT_ADDED, name, chosen, by, "added by an administrator")
        log.info("API client %s added with scopes %s by %s", name, _stored_scopes(chosen), by.name)
        return ApiClient(name, chosen, True, now, by.name, token[-HINT_LENGTH:]), token

    def disable(self, name: str, *, by: Actor) -> None:
        """Disable a client: its token is refused from the next request (at once in this process)."""
        self._set_enabled(name, False, by)

    def enable(self, name: str, *, by: Actor) -> None:
        """Enable a disabled client again; its token is the one it had."""
        self._set_enabled(name, True, by)

    def _set_enabled(self, name: str, enabled: bool, by: Actor) -> None:
        _require_manager(by)
        with self._lock:
            with _writing(self._store) as connection:
                client = _existing(connection, name)
                if client.enabled is enabled:
                    raise ApiClientError(f"{client.name} is already {'enabled' if enabled else 'disabled'}", field="name")
                connection.execute(update(ApiClientRow).where(ApiClientRow.name_key == name_key(name))
                                   .values(enabled=enabled, changed_ns=self._clock_ns(), changed_by=by.name))
            self._reload_locked()
        event = AuditEventType.API_CLIENT_ENABLED if enabled else AuditEventType.API_CLIENT_DISABLED
        self._record(event, client.name, client.scopes, by, f"{'enabled' if enabled else 'disabled'} by an administrator")

    def rotate(self, name: str, *, by: Actor) -> str:
        """Give a client a new token (returned, shown once); the old one is refused from now on."""
        _require_manager(by)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            with _writing(self._store) as connection:
                client = _existing(connection, name)
                connection.execute(update(ApiClientRow).where(ApiClientRow.name_key == name_key(name)).values(
                    token_hash=token_digest(token), token_hint=token[-HINT_LENGTH:], changed_ns=self._clock_ns(),
                    changed_by=by.name))
            self._reload_locked()
        self._record(AuditEventType.API_CLIENT_ROTATED, client.name, client.scopes, by, "token rotated by an administrator")
        return token

    def _record(self, event: AuditEventType, name: str, scopes: frozenset[ApiScope], by: Actor, reason: str) -> None:
        payload: dict[str, Any] = {"name": name, "scopes": [s.value for s in ApiScope if s in scopes], "by": by.name,
                                   "reason": reason}
        self._audit(event, payload, by.name, AuditSource.OPERATOR)


class _Conflict(StoreError):
    """The database refused a write as conflicting (a duplicate added by another process meanwhile)."""


def _require_manager(by: Actor) -> None:
    if not isinstance(by, Actor) or not by.can(Permission.MANAGE_API_CLIENTS):
        who = by.name if isinstance(by, Actor) else "nobody"
        raise ApiClientError(f"{who} may not manage API clients (needs the {Permission.MANAGE_API_CLIENTS} permission)")


def _existing(connection: Connection, name: str) -> ApiClient:
    key = name_key(name) if isinstance(name, str) else ""
    row = connection.execute(select(*_PUBLIC).where(ApiClientRow.name_key == key)).first()
    if row is None:
        raise ApiClientError(f"no API client named {printable_name(name if isinstance(name, str) else '')}", field="name")
    read = _client(row)
    if isinstance(read, str):
        raise ApiClientError(f"the stored entry of API client {printable_name(row.name_key)} is damaged ({read}): "
                             "it cannot authenticate or be changed; restore a backup made before the damage", field="name")
    return read[1]


@contextmanager
def _writing(store: SqlEngine) -> Iterator[Connection]:
    """One short write transaction, the write lock taken first. A database error leaves as ``StoreError`` with the
    driver's first line only: SQLAlchemy's own message quotes the statement's parameters, a token's hash among them."""
    try:
        with store.connect() as connection, connection.begin():
            if connection.dialect.name == "sqlite":
                # pysqlite begins only at the first write; begin now, so the check and the change are one step.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            elif connection.dialect.name == "postgresql":
                connection.exec_driver_sql("LOCK TABLE api_clients IN SHARE ROW EXCLUSIVE MODE")
            yield connection
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        lines = str(orig if orig is not None else type(exc).__name__).strip().splitlines()
        kind = _Conflict if isinstance(exc, IntegrityError) else StoreError
        raise kind(f"the API clients could not be written: {lines[0] if lines else 'no detail'}") from None
