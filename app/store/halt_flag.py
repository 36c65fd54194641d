"""The persisted trading state, written from outside the desk: HALTED by ``main.py panic``, and
lifted by ``main.py rearm`` when no desk is running.

The desk reads the last ``trading_state`` row when it starts (``Recorder.load``), so a HALTED row
written here makes the next start halted, whatever happens to the running desk meanwhile.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Connection, Table, insert

from app.domain.audit import AuditEventType, AuditSource
from app.domain.trading_state import TradingState

from .audit_writer import AuditWriter
from .chain_key import ChainKeyError
from .db import StoreError
from .models import TradingStateRow

log = logging.getLogger(__name__)

_STATE: Table = TradingStateRow.__table__  # type: ignore[assignment]


def persist_halt(writer: AuditWriter, desk_id: str, reason: str, actor: str, *, timeout: float = 30.0) -> None:
    """Record ``KILL_SWITCH_ENGAGED`` and a HALTED trading-state row; both are committed when this returns.

    One transaction holds both, so the audit trail never claims a halt the next start would not
    see, nor the other way round; the one exception: where the chain's key is missing from this
    machine's keyring, the row is written alone (and that logged). Raises ``StoreError`` if the write failed and ``TimeoutError``
    if it was not confirmed within ``timeout`` seconds.
    """
    ts_ns = time.time_ns()

    def halted_row(connection: Connection) -> None:
        connection.execute(insert(_STATE).values(desk_id=desk_id, ts_ns=ts_ns, state=str(TradingState.HALTED), reason=reason,
                                                 actor=actor))

    try:
        writer.append_blocking(
            AuditEventType.KILL_SWITCH_ENGAGED, {"reason": reason, "via": "panic"},
            actor=actor, source=AuditSource.PANIC, timeout=timeout, rows=halted_row,
        )
    except StoreError:
        if not isinstance(writer.failure, ChainKeyError):
            raise
        # The chain is keyed with a key this machine's keyring lacks: the record cannot be
        # written, but the halt must still be. The running desk audits the halt it then sees.
        writer.execute_blocking(halted_row, timeout=timeout)
        log.error("HALTED flag written without its audit record: %s", writer.failure)


def persist_rearm(
    writer: AuditWriter, desk_id: str, previous: TradingState, to: TradingState, reason: str, actor: str, *,
    timeout: float = 30.0,
) -> None:
    """Record ``REARMED`` and a trading-state row for ``to`` in one transaction, for a re-arm with no desk running.

    The record and the row match what a running desk writes for a re-arm, so the next start picks
    up ``to``. Raises ``StoreError`` if the write failed and ``TimeoutError`` if it was not
    confirmed within ``timeout`` seconds.
    """
    ts_ns = time.time_ns()

    def state_row(connection: Connection) -> None:
        connection.execute(insert(_STATE).values(desk_id=desk_id, ts_ns=ts_ns, state=str(to), reason=f"re-armed: {reason}",
                                                 actor=actor))

    writer.append_blocking(
        AuditEventType.REARMED, {"from": previous, "to": to, "reason": reason, "via": "rearm command, no desk running"},
        actor=actor, source=AuditSource.OPERATOR, timeout=timeout, rows=state_row,
    )


def record_refused_rearm(writer: AuditWriter, to: TradingState, refused: str, reason: str, actor: str, *,
                         timeout: float = 30.0) -> None:
    """Record a ``REARMED`` refusal (``{"refused": why}``, as a running desk records one) for a re-arm with no desk.

    Nothing else changes: the trading state stays as it was. Raises ``StoreError`` if the write
    failed and ``TimeoutError`` if it was not confirmed within ``timeout`` seconds.
    """
    writer.append_blocking(
        AuditEventType.REARMED, {"refused": refused, "to": to, "reason": reason, "via": "rearm command, no desk running"},
        actor=actor, source=AuditSource.OPERATOR, timeout=timeout,
    )
