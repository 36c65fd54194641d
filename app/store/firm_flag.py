"""The firm-wide halt: one flag in ``firm_state`` that halts every desk on the database, and what each desk confirmed.

``main.py panic --firm`` writes a HALTED row with its ``firm.halted`` record; every running desk
reads the new row within a poll (``app.engine.halt_watch``), engages its kill switch and records in
``firm_acks`` that it halted, then how its sweep ended. ``main.py firm rearm`` writes an ACTIVE row
(``firm.rearmed``): that lifts the firm's hold, and each desk is then re-armed on its own. The newest
``firm_state`` row is the firm state in force; a desk starting while it is HALTED starts halted.

``firm_view`` is what ``main.py firm status`` shows: every registered desk, whether it is alive (by
its heartbeat), its trading state, its confirmation of the firm halt in force and the orders it
still shows working.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, func, insert, select, update

from app.domain.audit import AuditEventType, AuditSource
from app.domain.orders import WORKING_STATUSES
from app.domain.trading_state import TradingState

from .audit_writer import AuditWriter
from .chain_key import ChainKeyError
from .db import StoreError
from .desk_identity import RegisteredDesk, registered_desks
from .desk_state import StoredState
from .models import FirmAckRow, FirmStateRow, OrderRow, TradingStateRow

log = logging.getLogger(__name__)

_FIRM: Table = FirmStateRow.__table__  # type: ignore[assignment]
_ACKS: Table = FirmAckRow.__table__  # type: ignore[assignment]
_ORDERS: Table = OrderRow.__table__  # type: ignore[assignment]
_STATE: Table = TradingStateRow.__table__  # type: ignore[assignment]

# A running desk notes it is alive this often (``desks.seen_ns``, from its halt watch's thread).
HEARTBEAT_S = 1.0
# A desk not heard from in this long is shown silent: dead, hung or cut off from the database.
SILENT_AFTER_S = 5.0
ROWS_PER_READ = 100


@dataclass(frozen=True, slots=True)
class FirmState:
    """One ``firm_state`` row. ``origin_desk``: the data folder's desk the command ran from, if any."""

    id: int
    ts_ns: int
    state: TradingState
    reason: str
    actor: str
    origin_desk: str | None

    @property
    def halted(self) -> bool:
        return self.state is TradingState.HALTED

    def describe(self) -> str:
        return f"firm halt {self.id} by {self.actor}: {self.reason}"


@dataclass(frozen=True, slots=True)
class FirmAck:
    """A desk's confirmation of a firm halt; ``swept_ns`` and ``still_working`` once its sweep ended."""

    firm_id: int
    desk_id: str
    halted_ns: int
    swept_ns: int | None
    still_working: int | None


@dataclass(frozen=True, slots=True)
class DeskStatus:
    """One desk in the firm view.

    ``seen_age_s``: seconds since its last heartbeat, ``None`` once it stopped cleanly.
    ``working``: the orders its rows show working (sent, open, partly filled, unknown).
    """

    desk: RegisteredDesk
    seen_age_s: float | None
    trading: StoredState | None
    ack: FirmAck | None
    working: int

    @property
    def liveness(self) -> str:
        """``alive``, ``stopped`` (cleanly) or ``silent`` (no heartbeat for ``SILENT_AFTER_S``: it died or hangs)."""
        if self.seen_age_s is None:
            return "stopped"
        return "alive" if self.seen_age_s <= SILENT_AFTER_S else "silent"

    @property
    def alive(self) -> bool:
        return self.liveness == "alive"


@dataclass(frozen=True, slots=True)
class FirmView:
    """The firm state in force (``None`` before any was written) and every registered desk, oldest first."""

    state: FirmState | None
    desks: list[DeskStatus]

    @property
    def halted(self) -> bool:
        return self.state is not None and self.state.halted


def _row(found: object) -> FirmState:
    mapping = found._mapping  # type: ignore[attr-defined]
    return FirmState(mapping["id"], mapping["ts_ns"], TradingState(mapping["state"]), mapping["reason"], mapping["actor"],
                     mapping["origin_desk"])


def _insert(connection: Connection, ts_ns: int, state: TradingState, reason: str, actor: str,
            origin_desk: str | None) -> FirmState:
    new_id = connection.execute(insert(_FIRM).values(ts_ns=ts_ns, state=str(state), reason=reason, actor=actor,
                                                     origin_desk=origin_desk).returning(_FIRM.c.id)).scalar_one()
    return FirmState(int(new_id), ts_ns, state, reason, actor, origin_desk)


def persist_firm_halt(writer: AuditWriter, reason: str, actor: str, *, origin_desk: str | None = None,
                      timeout: float = 30.0) -> FirmState:
    """Record ``firm.halted`` and a HALTED ``firm_state`` row in one transaction; both committed when this returns.

    Where the chain's key is missing from this machine's keyring the row is written alone (and that
    logged), as for one desk's HALTED flag: the halt matters more than its record. Raises
    ``StoreError`` if the write failed and ``TimeoutError`` if it was not confirmed within ``timeout``.
    """
    ts_ns = time.time_ns()
    written: list[FirmState] = []

    def halted_row(connection: Connection) -> None:
        written.append(_insert(connection, ts_ns, TradingState.HALTED, reason, actor, origin_desk))

    try:
        writer.append_blocking(AuditEventType.FIRM_HALTED, {"reason": reason, "origin_desk": origin_desk},
                               actor=actor, source=AuditSource.PANIC, timeout=timeout, rows=halted_row)
    except StoreError:
        if not isinstance(writer.failure, ChainKeyError):
            raise
        written.clear()
        writer.execute_blocking(halted_row, timeout=timeout)
        log.error("firm HALTED flag written without its audit record: %s", writer.failure)
    return written[-1]


def persist_firm_rearm(writer: AuditWriter, halt: FirmState, reason: str, actor: str, *, origin_desk: str | None = None,
                       timeout: float = 30.0) -> FirmState:
    """Record ``firm.rearmed`` and an ACTIVE ``firm_state`` row lifting ``halt``, in one transaction.

    The desks stay halted: each is re-armed on its own. Raises ``StoreError`` if the write failed
    and ``TimeoutError`` if it was not confirmed within ``timeout`` seconds.
    """
    ts_ns = time.time_ns()
    written: list[FirmState] = []

    def active_row(connection: Connection) -> None:
        written.append(_insert(connection, ts_ns, TradingState.ACTIVE, f"re-armed: {reason}", actor, origin_desk))

    writer.append_blocking(AuditEventType.FIRM_REARMED, {"lifts": halt.id, "reason": reason, "origin_desk": origin_desk},
                           actor=actor, source=AuditSource.OPERATOR, timeout=timeout, rows=active_row)
    return written[-1]


def record_refused(writer: AuditWriter, event: AuditEventType, refused: str, reason: str, actor: str, *,
                   timeout: float = 30.0) -> None:
    """Record a firm halt or re-arm that was refused (``{"refused": why}``); nothing else changes."""
    writer.append_blocking(event, {"refused": refused, "reason": reason}, actor=actor,
                           source=AuditSource.PANIC if event is AuditEventType.FIRM_HALTED else AuditSource.OPERATOR,
                           timeout=timeout)


def newest_firm_state(connection: Connection) -> FirmState | None:
    """The firm state in force: the newest ``firm_state`` row (``None``: the firm was never halted)."""
    found = connection.execute(select(_FIRM).order_by(_FIRM.c.id.desc()).limit(1)).first()
    return None if found is None else _row(found)


def firm_in_force(engine: Engine) -> FirmState | None:
    """``newest_firm_state`` on a connection of its own."""
    with engine.connect() as connection:
        return newest_firm_state(connection)


def firm_rows_after(connection: Connection, after: int) -> list[FirmState]:
    """The ``firm_state`` rows added after row ``after``, oldest first."""
    found = connection.execute(select(_FIRM).where(_FIRM.c.id > after).order_by(_FIRM.c.id).limit(ROWS_PER_READ)).all()
    return [_row(row) for row in found]


def record_halted(connection: Connection, firm_id: int, desk_id: str, halted_ns: int) -> None:
    """A desk halted for firm halt ``firm_id``. Halting again for it (a restart while the firm is halted)
    starts its confirmation over: the sweep it reports next is the new run's."""
    changed = connection.execute(update(_ACKS).where(_ACKS.c.firm_id == firm_id, _ACKS.c.desk_id == desk_id)
                                 .values(halted_ns=halted_ns, swept_ns=None, still_working=None)).rowcount
    if not changed:
        connection.execute(insert(_ACKS).values(firm_id=firm_id, desk_id=desk_id, halted_ns=halted_ns))


def record_swept(connection: Connection, firm_id: int, desk_id: str, swept_ns: int, still_working: int) -> None:
    """The desk's sweep after firm halt ``firm_id`` ended, leaving ``still_working`` orders working."""
    connection.execute(update(_ACKS).where(_ACKS.c.firm_id == firm_id, _ACKS.c.desk_id == desk_id)
                       .values(swept_ns=swept_ns, still_working=still_working))


def acks(engine: Engine, firm_id: int) -> dict[str, FirmAck]:
    """Every desk's confirmation of firm halt ``firm_id``, by desk id."""
    with engine.connect() as connection:
        return _acks(connection, firm_id)


def _acks(connection: Connection, firm_id: int) -> dict[str, FirmAck]:
    found = connection.execute(select(_ACKS).where(_ACKS.c.firm_id == firm_id)).all()
    return {row.desk_id: FirmAck(row.firm_id, row.desk_id, row.halted_ns, row.swept_ns, row.still_working) for row in found}


def firm_view(engine: Engine, *, now_ns: int | None = None) -> FirmView:
    """The firm state in force and, for every registered desk, whether it is alive, its trading state,
    its confirmation of the firm halt in force (none when the firm is not halted) and its working orders."""
    now = time.time_ns() if now_ns is None else now_ns
    desks = registered_desks(engine)
    working_statuses = [status.value for status in WORKING_STATUSES]
    with engine.connect() as connection:
        state = newest_firm_state(connection)
        confirmed = _acks(connection, state.id) if state is not None and state.halted else {}
        working: dict[str, int] = dict(connection.execute(
            select(_ORDERS.c.desk_id, func.count()).where(_ORDERS.c.status.in_(working_statuses)).group_by(_ORDERS.c.desk_id)
        ).all())
        statuses = []
        for desk in desks:
            latest = connection.execute(select(_STATE).where(_STATE.c.desk_id == desk.desk_id)
                                        .order_by(_STATE.c.id.desc()).limit(1)).first()
            trading = (StoredState(TradingState(latest.state), latest.reason, latest.actor, latest.ts_ns)
                       if latest is not None else None)
            age = None if desk.seen_ns is None else max(now - desk.seen_ns, 0) / 1e9
            statuses.append(DeskStatus(desk, age, trading, confirmed.get(desk.desk_id), int(working.get(desk.desk_id, 0))))
    return FirmView(state, statuses)
