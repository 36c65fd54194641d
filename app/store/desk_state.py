"""A desk's stored picture, read by commands that run without a desk (``panic``, ``rearm``).

Read only: nothing here writes. A running desk keeps these tables current as it trades; after it
stops or dies they hold its last known picture, which is all a command without a desk can know.
Every reader takes the desk it asks about (``DeskScope``): several desks may share the database,
and one desk's rows and audit records say nothing about another's.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, select

from app.domain.audit import RECONCILED_AT_START, AuditEventType
from app.domain.fills import Fill
from app.domain.orders import WORKING_STATUSES, Side
from app.domain.trading_state import TradingState

from .audit_writer import DESK_KEY
from .desk_identity import adopted_legacy, read_identity
from .models import (
    LEGACY_DESK_ID,
    AuditRecord,
    DeskRow,
    FillRow,
    OrderRow,
    TradingStateRow,
)

_AUDIT: Table = AuditRecord.__table__  # type: ignore[assignment]
_ORDERS: Table = OrderRow.__table__  # type: ignore[assignment]
_FILLS: Table = FillRow.__table__  # type: ignore[assignment]
_STATE: Table = TradingStateRow.__table__  # type: ignore[assignment]
_DESKS: Table = DeskRow.__table__  # type: ignore[assignment]

_SWEEP_STARTED, _SWEEP_DONE = AuditEventType.KILL_SWITCH_ENGAGED, AuditEventType.CANCEL_SWEEP_DONE
_FLATTEN_STARTED, _FLATTEN_DONE = AuditEventType.FLATTEN_REQUESTED, AuditEventType.FLATTEN_DONE


@dataclass(frozen=True, slots=True)
class DeskScope:
    """Which desk's rows and records to read. ``legacy``: this desk adopted what was written before desks
    had ids, so an audit record naming no desk is its own."""

    desk_id: str
    legacy: bool = False

    def owns(self, document: object) -> bool:
        """Whether an audit payload (parsed) was written by this desk."""
        if not isinstance(document, dict):
            return self.legacy
        desk = document.get(DESK_KEY)
        return desk == self.desk_id if desk is not None else self.legacy


def scope_for_home(engine: Engine, home: Path) -> DeskScope:
    """The desk whose data folder is ``home``, as a command run there (``panic``, ``rearm``) reads it.

    A folder no desk has started from since desks had ids reads the rows from before (``legacy``),
    unless a desk has already adopted them. Raises ``DeskIdentityError`` for a damaged id file.
    """
    identity = read_identity(home)
    if identity is None:
        with engine.connect() as connection:
            taken = connection.execute(select(_DESKS.c.desk_id).where(_DESKS.c.adopted_legacy.is_(True)).limit(1)).first()
        return DeskScope(LEGACY_DESK_ID, legacy=taken is None)
    return DeskScope(identity.desk_id, legacy=adopted_legacy(engine, identity.desk_id))


@dataclass(frozen=True, slots=True)
class StoredState:
    """The newest trading-state row: the state the next start resumes in."""

    state: TradingState
    reason: str
    actor: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the desk last recorded it."""

    client_order_id: str
    broker_order_id: str | None
    instrument_key: str
    side: str
    quantity: int
    filled_quantity: int
    price: int
    status: str

    def describe(self) -> str:
        at_broker = self.broker_order_id or "no broker id yet"
        return (f"{self.client_order_id} ({at_broker}): {self.side} {self.quantity} {self.instrument_key} "
                f"@ {self.price / 100:.2f}, {self.filled_quantity} filled, {self.status}")


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A kill-switch sweep or a flatten whose start is recorded and whose end is not."""

    action: str
    seq: int
    ts_ns: int
    actor: str


def last_trading_state(engine: Engine, scope: DeskScope) -> StoredState | None:
    """The desk's newest trading-state row, or ``None`` when the desk never left its initial ACTIVE."""
    with engine.connect() as connection:
        row = connection.execute(
            select(_STATE).where(_STATE.c.desk_id == scope.desk_id).order_by(_STATE.c.id.desc()).limit(1)
        ).first()
    return StoredState(TradingState(row.state), row.reason, row.actor, row.ts_ns) if row is not None else None


def working_orders(engine: Engine, scope: DeskScope) -> list[StoredOrder]:
    """Orders the desk last recorded as working (sent, open or partly filled), oldest first."""
    working = [status.value for status in WORKING_STATUSES]
    with engine.connect() as connection:
        rows = connection.execute(
            select(_ORDERS).where(_ORDERS.c.desk_id == scope.desk_id, _ORDERS.c.status.in_(working))
            .order_by(_ORDERS.c.created_ns, _ORDERS.c.client_order_id)
        ).all()
    return [
        StoredOrder(row.client_order_id, row.broker_order_id, row.instrument_key, row.side, row.quantity,
                    row.filled_quantity, row.price, row.status)
        for row in rows
    ]


def fills(engine: Engine, scope: DeskScope) -> list[Fill]:
    """Every fill the desk stored, in time order (as the desk replays them at start)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_FILLS).where(_FILLS.c.desk_id == scope.desk_id).order_by(_FILLS.c.ts_ns, _FILLS.c.fill_id)
        ).all()
    return [Fill(row.fill_id, row.client_order_id, row.instrument_key, Side(row.side), row.quantity, row.price, row.ts_ns)
            for row in rows]


def interrupted_actions(engine: Engine, scope: DeskScope) -> list[Interrupted]:
    """Sweeps and flattens started and never recorded an end for, since a desk last read the broker's book at start.

    Reads the audit chain backwards to the ``app.start`` of the newest run that recorded reading
    the broker's order book at start (``reconciled`` ``at: start``): that desk knew what was
    working, so what an earlier run left unfinished no longer says anything. Its ``app.start``
    alone says nothing of the kind (it is written before the book is read, and a desk can die or
    fail to read the book after it), so a run without the mark does not end the search, nor does
    the mark hide what its own run started before it. ``panic``'s own record of the flag
    (``"via": "panic"``) and a repeated press of the switch start no sweep, so they do not count.
    """
    kinds = [str(kind) for kind in (_SWEEP_STARTED, _SWEEP_DONE, _FLATTEN_STARTED, _FLATTEN_DONE,
                                    AuditEventType.APP_START, AuditEventType.RECONCILED)]
    decided: dict[str, Interrupted | None] = {}
    book_read = False
    with engine.connect() as connection:
        rows = connection.execute(
            select(_AUDIT.c.seq, _AUDIT.c.ts_ns, _AUDIT.c.actor, _AUDIT.c.event_type, _AUDIT.c.payload)
            .where(_AUDIT.c.event_type.in_(kinds)).order_by(_AUDIT.c.seq.desc())
        )
        for row in rows:
            document = _parsed(row.payload)
            if document is not _UNREADABLE and not scope.owns(document):
                continue
            if (row.event_type == AuditEventType.APP_START and book_read) or len(decided) == 2:
                break
            if row.event_type == AuditEventType.RECONCILED:
                book_read = book_read or _reconciled_at_start(document)
                continue
            if row.event_type == AuditEventType.APP_START:
                continue
            action = "kill-switch sweep" if row.event_type in (_SWEEP_STARTED, _SWEEP_DONE) else "flatten"
            if action in decided or (row.event_type == _SWEEP_STARTED and not _starts_a_sweep(document)):
                continue
            started = row.event_type in (_SWEEP_STARTED, _FLATTEN_STARTED)
            decided[action] = Interrupted(action, row.seq, row.ts_ns, row.actor) if started else None
    return [found for found in decided.values() if found is not None]


def unclean_end(engine: Engine, scope: DeskScope) -> str | None:
    """Why the last desk run on this store did not end with a clean stop, or ``None`` when it did (or none ran).

    Read from the audit chain, which every store has (SQLite or PostgreSQL): the newest ``app.start``
    with no ``app.stop`` after it is a run that was killed, crashed or lost its store before it could
    record its stop; an ``app.stop`` that says its store had failed (``store_failed``) is a run whose
    records after the failure are lost; one that counts ``store_outages`` lost its database for a while
    (its records were spooled and replayed, but nothing read the broker's book meanwhile); one that
    carries an ``unclean_end`` stopped without reading the broker's book after such an end, which is
    still unsettled. Call before the new run writes its own
    ``app.start``.
    """
    kinds = [str(AuditEventType.APP_START), str(AuditEventType.APP_STOP)]
    found: Any = None
    document: Any = _UNREADABLE
    with engine.connect() as connection:
        rows = connection.execute(
            select(_AUDIT.c.seq, _AUDIT.c.ts_ns, _AUDIT.c.event_type, _AUDIT.c.payload)
            .where(_AUDIT.c.event_type.in_(kinds)).order_by(_AUDIT.c.seq.desc())
        )
        for row in rows:
            document = _parsed(row.payload)
            # An unreadable record may be this desk's: it stops the search (and is reported below).
            if document is _UNREADABLE or scope.owns(document):
                found = row
                break
    if found is None:
        return None
    row = found
    started = dt.datetime.fromtimestamp(row.ts_ns / 1e9, dt.UTC).isoformat(timespec="seconds")
    if row.event_type == AuditEventType.APP_START and document is not _UNREADABLE:
        return f"the run started {started} (audit record {row.seq}) recorded no stop: it was killed, crashed or its store failed"
    if not isinstance(document, dict):
        return f"the stop record of the last run (audit record {row.seq}) cannot be read"
    if document.get("store_failed") is True:
        return f"the run that stopped {started} (audit record {row.seq}) had lost its store: records after the failure are missing"
    if isinstance(document.get("store_outages"), int) and document["store_outages"] > 0:
        return (f"the run that stopped {started} (audit record {row.seq}) lost its database for a while "
                f"(outages: {document['store_outages']}; see the store.outage records)")
    carried = document.get("unclean_end")
    if isinstance(carried, str) and carried:
        # That run stopped without reading the broker's book (its start failed): the earlier end is still unsettled.
        return carried
    return None


_UNREADABLE = object()


def _parsed(payload: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return _UNREADABLE


def _reconciled_at_start(document: Any) -> bool:
    # Unreadable: not proof that a desk read the book.
    return isinstance(document, dict) and document.get("at") == RECONCILED_AT_START


def _starts_a_sweep(document: Any) -> bool:
    # Unreadable: assume the worst, that a sweep started.
    return not (isinstance(document, dict) and (document.get("via") == "panic" or document.get("repeat") is True))
