"""The desk's row writes as data: an order's upsert, a fill, a trading state, position snapshots, a rate counter.

A ``RowWrite`` is a kind and JSON-able values, so the audit writer can keep it in the outage spool
and apply it once the database is back, exactly as it would have at once. ``apply`` runs one in
the writer's transaction; the statements are built once with bound parameters (compiled once and
reused: a statement rebuilt with literal values per order cost ~1 ms of the writer thread, measured).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from . import rate_counters
from .db import StoreError
from .models import FillRow, OrderRow, PositionSnapshotRow, TradingStateRow

_ORDERS: Table = OrderRow.__table__  # type: ignore[assignment]
_FILLS: Table = FillRow.__table__  # type: ignore[assignment]
_STATE: Table = TradingStateRow.__table__  # type: ignore[assignment]
_SNAPSHOTS: Table = PositionSnapshotRow.__table__  # type: ignore[assignment]

ORDER = "order"
FILL = "fill"
TRADING_STATE = "trading_state"
POSITIONS = "positions"
RATE_COUNTER = "rate_counter"

# What an order's update sets; its insert adds client_order_id, desk_id, created_ns and trading_day.
ORDER_FIELDS = (
    "broker_order_id", "instrument_key", "side", "quantity", "price", "order_type", "product", "source", "actor",
    "status", "filled_quantity", "fill_value", "updated_ns",
)
_UPDATE_ORDER = (
    update(_ORDERS)
    .where(_ORDERS.c.client_order_id == bindparam("key"), _ORDERS.c.desk_id == bindparam("desk"))
    .values({name: bindparam(name) for name in ORDER_FIELDS})
)
_INSERT_ORDER = insert(_ORDERS)
_STORED_FILL = select(_FILLS.c.client_order_id, _FILLS.c.instrument_key, _FILLS.c.side, _FILLS.c.quantity, _FILLS.c.price).where(
    _FILLS.c.desk_id == bindparam("desk"), _FILLS.c.fill_id == bindparam("fill_id"))
_INSERT_FILL = insert(_FILLS)
_INSERT_STATE = insert(_STATE)
_INSERT_SNAPSHOTS = insert(_SNAPSHOTS)


class RowWrite(NamedTuple):
    """One desk row write: ``kind`` (one of this module's kinds) and its column values (JSON-able)."""

    kind: str
    values: Mapping[str, Any]


def _upsert_order(connection: Connection, values: Mapping[str, Any]) -> None:
    fields = {name: values[name] for name in ORDER_FIELDS}
    result = connection.execute(_UPDATE_ORDER, {"key": values["client_order_id"], "desk": values["desk_id"], **fields})
    if result.rowcount == 0:
        connection.execute(_INSERT_ORDER, {
            "client_order_id": values["client_order_id"], "desk_id": values["desk_id"], "created_ns": values["created_ns"],
            "trading_day": values["trading_day"], **fields,
        })


def _insert_fill(connection: Connection, values: Mapping[str, Any]) -> str | None:
    """Store a fill once; a replay (same id, same details) is a no-op, and a different fill under a stored id is
    not stored: the stored one is described instead. Checking first keeps either from failing the whole batch."""
    stored = connection.execute(_STORED_FILL, {"desk": values["desk_id"], "fill_id": values["fill_id"]}).first()
    if stored is None:
        connection.execute(_INSERT_FILL, dict(values))
        return None
    same = (stored.client_order_id, stored.instrument_key, stored.side, stored.quantity, stored.price) == (
        values["client_order_id"], values["instrument_key"], values["side"], values["quantity"], values["price"])
    if same:
        return None
    return (f"order {stored.client_order_id}, {stored.side} {stored.quantity} {stored.instrument_key} "
            f"@ {stored.price / 100:.2f}")


def _insert_state(connection: Connection, values: Mapping[str, Any]) -> None:
    connection.execute(_INSERT_STATE, dict(values))


def _insert_snapshots(connection: Connection, values: Mapping[str, Any]) -> None:
    connection.execute(_INSERT_SNAPSHOTS, [dict(row) for row in values["rows"]])


def _upsert_rate_counter(connection: Connection, values: Mapping[str, Any]) -> None:
    rate_counters.upsert(connection, values["trading_day"], values["account"], values["desk_id"], values["kind"],
                         values["count"])


_APPLY: dict[str, Callable[[Connection, Mapping[str, Any]], Any]] = {
    ORDER: _upsert_order,
    FILL: _insert_fill,
    TRADING_STATE: _insert_state,
    POSITIONS: _insert_snapshots,
    RATE_COUNTER: _upsert_rate_counter,
}


def apply(connection: Connection, row: RowWrite) -> Any:
    """Write ``row`` in the caller's transaction. A fill returns the stored fill it conflicts with, or ``None``."""
    write = _APPLY.get(row.kind)
    if write is None:
        raise StoreError(f"unknown desk row kind {row.kind!r}")
    return write(connection, row.values)
