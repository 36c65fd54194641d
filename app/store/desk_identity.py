"""Which desk this is: a stable id per data folder, registered in the database the desks share.

Several workstations may share one PostgreSQL database, each running its own desk from its own
data folder. The id is created at a data folder's first start and kept in ``<home>/desk-id.json``
(it belongs to the workstation, as ``last-desk.json`` does, and ``panic`` must find it even when the
store is what broke); every row a desk writes carries it, and a desk reads back only its own.

``register`` adds the desk to the ``desks`` table (name, host, OS user, when) at every start. The
first desk registered on a database written before desks had ids adopts those rows (``legacy``):
they were the one desk's that ran there.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, insert, select, update

from .db import StoreError
from .models import (
    LEGACY_DESK_ID,
    DeskRow,
    FillRow,
    LimitVersionRow,
    OrderRow,
    PositionSnapshotRow,
    RateCounterRow,
    TradingStateRow,
)

IDENTITY_FILE_NAME = "desk-id.json"
# The id of a desk run without a data folder (tests, throwaway simulations): one such desk per database.
UNFOLDERED_DESK_ID = "unfoldered"
_ID_LENGTH = 6
_ID_PATTERN = re.compile(rf"^[A-Z2-7]{{{_ID_LENGTH}}}$")
# Broker order remarks hold 20 characters (Breeze): prefix 2 + desk 6 + start 3 + "-" + 6 digits.
_STARTS_LIMIT = 36**3
_NAME_LIMIT = 64

_DESKS: Table = DeskRow.__table__  # type: ignore[assignment]
_OWNED: tuple[Table, ...] = tuple(
    row.__table__ for row in (OrderRow, FillRow, PositionSnapshotRow, TradingStateRow, LimitVersionRow, RateCounterRow)  # type: ignore[misc]
)


class DeskIdentityError(StoreError):
    """The data folder's desk id cannot be read or registered; the message says why."""


@dataclass(frozen=True, slots=True)
class DeskIdentity:
    """A desk's stable id and the name it is shown under in the firm view."""

    desk_id: str
    name: str


@dataclass(frozen=True, slots=True)
class RegisteredDesk:
    """One row of the desk registry."""

    desk_id: str
    name: str
    host: str
    os_user: str
    created_ns: int
    started_ns: int
    seen_ns: int | None
    pid: int | None
    starts: int
    adopted_legacy: bool

    def order_id_stem(self, prefix: str) -> str:
        """The stem of this run's client order ids: unique across desks (the id) and across this desk's
        starts (the start number, base 36), so no two orders anywhere on the database share an id."""
        return f"{prefix}{self.desk_id}{_base36(self.starts % _STARTS_LIMIT):0>3}"


def widest_order_id_stem(prefix: str) -> str:
    """A stem as wide as ``RegisteredDesk.order_id_stem`` makes one (for sizing a column to show ids whole)."""
    return f"{prefix}{'W' * _ID_LENGTH}{'W' * len(_base36(_STARTS_LIMIT - 1))}"


def identity_file(home: Path) -> Path:
    return home / IDENTITY_FILE_NAME


def unfoldered() -> DeskIdentity:
    return DeskIdentity(UNFOLDERED_DESK_ID, UNFOLDERED_DESK_ID)


def read_identity(home: Path) -> DeskIdentity | None:
    """The data folder's desk id; ``None`` when no desk has started there yet.

    Raises ``DeskIdentityError`` for a file that is there but damaged: taking that for "no desk" would
    give the folder a second id and orphan the first one's orders.
    """
    path = identity_file(home)
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DeskIdentityError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:
        raise DeskIdentityError(f"{path} is not valid JSON (damaged?); restore it from a backup of the data folder") from None
    desk_id = document.get("desk_id") if isinstance(document, dict) else None
    name = document.get("name") if isinstance(document, dict) else None
    if not isinstance(desk_id, str) or not _ID_PATTERN.fullmatch(desk_id) or not isinstance(name, str) or not name:
        raise DeskIdentityError(f"{path} does not hold a desk id and name; restore it from a backup of the data folder")
    return DeskIdentity(desk_id, name[:_NAME_LIMIT])


def load_or_create(home: Path, name: str | None = None) -> DeskIdentity:
    """The data folder's desk id, created (and durably written) at its first start.

    ``name`` defaults to the host's name and the folder's; it only labels the desk in the firm view.
    """
    found = read_identity(home)
    if found is not None:
        return found
    desk_id = base64.b32encode(secrets.token_bytes(4)).decode()[:_ID_LENGTH]
    identity = DeskIdentity(desk_id, (name or f"{socket.gethostname()}:{home.name}")[:_NAME_LIMIT])
    home.mkdir(parents=True, exist_ok=True)
    path = identity_file(home)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps({"desk_id": identity.desk_id, "name": identity.name, "created_ns": time.time_ns()},
                                    sort_keys=True))
            handle.flush()
            os.fsync(handle.fileno())
        # A link, not a replace: two starts racing in one folder must end with one id, not two.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    settled = read_identity(home)
    if settled is None:
        raise DeskIdentityError(f"{path} vanished as it was written")
    return settled


def register(engine: Engine, identity: DeskIdentity, *, now_ns: int | None = None) -> RegisteredDesk:
    """Add or refresh this desk's row; the first desk on a database adopts the rows from before desks had ids."""
    now = time.time_ns() if now_ns is None else now_ns
    with engine.begin() as connection:
        # One desk at a time adopts: the registry's rows are read and written under its lock.
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("LOCK TABLE desks IN SHARE ROW EXCLUSIVE MODE")
        found = connection.execute(select(_DESKS).where(_DESKS.c.desk_id == identity.desk_id)).first()
        values = {"name": identity.name, "host": socket.gethostname()[:255], "os_user": _os_user(),
                  "started_ns": now, "seen_ns": now, "pid": os.getpid()}
        if found is None:
            adopt = connection.execute(select(_DESKS.c.desk_id).where(_DESKS.c.adopted_legacy.is_(True)).limit(1)).first() is None
            connection.execute(insert(_DESKS).values(desk_id=identity.desk_id, created_ns=now, adopted_legacy=adopt, starts=1,
                                                     **values))
            if adopt:
                _adopt_legacy(connection, identity.desk_id)
        else:
            connection.execute(update(_DESKS).where(_DESKS.c.desk_id == identity.desk_id)
                               .values(starts=_DESKS.c.starts + 1, **values))
        row = connection.execute(select(_DESKS).where(_DESKS.c.desk_id == identity.desk_id)).one()
    return RegisteredDesk(**row._mapping)


def _adopt_legacy(connection: Connection, desk_id: str) -> None:
    for table in _OWNED:
        connection.execute(update(table).where(table.c.desk_id == LEGACY_DESK_ID).values(desk_id=desk_id))


def heartbeat(connection: Connection, desk_id: str, now_ns: int) -> None:
    """Note that the desk is alive (in the caller's transaction).

    Only while the desk runs (``register`` set ``seen_ns``): a beat that lands after ``mark_stopped``
    (its thread outlives the stop by a moment) must not bring a stopped desk back as silent.
    """
    connection.execute(update(_DESKS).where(_DESKS.c.desk_id == desk_id, _DESKS.c.seen_ns.is_not(None)).values(seen_ns=now_ns))


def mark_stopped(connection: Connection, desk_id: str) -> None:
    """Note a clean stop: the firm view then shows the desk as stopped, not as silent."""
    connection.execute(update(_DESKS).where(_DESKS.c.desk_id == desk_id).values(seen_ns=None, pid=None))


def registered_desks(engine: Engine) -> list[RegisteredDesk]:
    """Every desk registered on the database, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(select(_DESKS).order_by(_DESKS.c.created_ns, _DESKS.c.desk_id)).all()
    return [RegisteredDesk(**row._mapping) for row in rows]


def adopted_legacy(engine: Engine, desk_id: str) -> bool:
    """Whether ``desk_id`` owns the records written before desks had ids (audit records without a desk)."""
    with engine.connect() as connection:
        found = connection.execute(select(_DESKS.c.adopted_legacy).where(_DESKS.c.desk_id == desk_id)).scalar()
    return bool(found)


def _os_user() -> str:
    try:
        return getpass.getuser()[:64]
    except (KeyError, OSError):
        return "unknown"


def _base36(number: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if number == 0:
            return text
