"""The orders blotter and the positions table: row-level signals, groups, filters, sorting, cancels, speed, looks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QAbstractItemModel, QItemSelectionModel, Qt
from PySide6.QtWidgets import QWidget

from app.domain.events import OrderRejected, OrderSnapshot
from app.domain.india_time import IST
from app.domain.orders import OrderSource, OrderStatus, OrderType, Product, Side
from app.domain.rejections import REASON_TEXT, Rejection, RejectReason
from app.engine.portfolio import PositionView
from app.ui import theme
from app.ui.orders_table import (
    COL_FILLED,
    COL_INSTRUMENT,
    COL_MESSAGE,
    COL_ORDER,
    COL_PRICE,
    COL_QTY,
    COL_REASON,
    COL_STATUS,
    COL_TIME,
    COL_VALUE_LIMIT,
    COLUMNS,
    OrdersFilter,
    OrdersGroup,
    OrdersModel,
    OrdersView,
)
from app.ui.positions_table import (
    COL_PNL,
    PositionsFilter,
    PositionsModel,
    PositionsView,
)
from app.ui.table_view import SORT_ROLE, Tone, tone_colour

OUTPUT = Path(__file__).resolve().parents[1] / "output"
T0 = int(dt.datetime(2026, 12, 1, 9, 15, 0, tzinfo=IST).timestamp()) * 1_000_000_000
SECOND = 1_000_000_000
LAST_COLUMN = len(COLUMNS) - 1


def snap(
    cid: str,
    status: OrderStatus = OrderStatus.OPEN,
    *,
    instrument: str = "NSE:RELIANCE",
    side: Side = Side.BUY,
    qty: int = 10,
    price: int = 2_456_35,
    filled: int = 0,
    ts: int = T0,
    source: OrderSource = OrderSource.TICKET,
    actor: str = "asha",
    order_type: OrderType = OrderType.LIMIT,
) -> OrderSnapshot:
    return OrderSnapshot(
        client_order_id=cid,
        broker_order_id=f"B{cid}" if status is not OrderStatus.NEW else None,
        instrument_key=instrument,
        side=side,
        quantity=qty,
        price=price,
        order_type=order_type,
        product=Product.INTRADAY,
        source=source,
        actor=actor,
        status=status,
        filled_quantity=filled,
        fill_value=filled * price,
        ts_ns=ts,
    )


def refusal(
    reason: RejectReason = RejectReason.PRICE_COLLAR,
    *,
    cid: str | None = None,
    instrument: str = "NSE:TCS",
    message: str = "price 4,120.00 is 6.1 % from the reference 3,882.50",
    value: str | None = "6.1 %",
    limit: str | None = "5.0 %",
) -> OrderRejected:
    return OrderRejected(instrument, OrderSource.TICKET, "asha", Rejection(reason, message, value, limit), cid)


class Recorder:
    """Every structural and data signal a model emits, as plain tuples."""

    def __init__(self, model: QAbstractItemModel) -> None:
        self.inserted: list[tuple[int, int]] = []
        self.removed: list[tuple[int, int]] = []
        self.changed: list[tuple[int, int, int, int]] = []
        self.resets = 0
        self.layouts = 0
        model.rowsInserted.connect(lambda _p, first, last: self.inserted.append((first, last)))
        model.rowsRemoved.connect(lambda _p, first, last: self.removed.append((first, last)))
        model.dataChanged.connect(
            lambda tl, br, _roles=(): self.changed.append((tl.row(), tl.column(), br.row(), br.column()))
        )
        model.modelReset.connect(self._reset)
        model.layoutChanged.connect(self._layout)

    def _reset(self) -> None:
        self.resets += 1

    def _layout(self) -> None:
        self.layouts += 1

    def clear(self) -> None:
        self.inserted.clear()
        self.removed.clear()
        self.changed.clear()


def cell(model: QAbstractItemModel, row: int, column: int, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
    return model.data(model.index(row, column), role)


def column_values(model: QAbstractItemModel, column: int) -> list[Any]:
    return [cell(model, r, column) for r in range(model.rowCount())]


# --- orders: the model's signals -----------------------------------------------------------------------


def test_new_orders_insert_rows_and_an_update_changes_only_its_own_row(qtbot: Any) -> None:
    model = OrdersModel()
    rec = Recorder(model)
    for i in range(3):
        model.apply(snap(f"BW-{i}", OrderStatus.SENT, ts=T0 + i * SECOND))
    assert rec.inserted == [(0, 0), (1, 1), (2, 2)]
    assert rec.changed == []

    model.apply(snap("BW-1", OrderStatus.PARTIALLY_FILLED, filled=4, ts=T0 + 10 * SECOND))

    assert rec.inserted == [(0, 0), (1, 1), (2, 2)]
    assert rec.changed == [(1, 0, 1, LAST_COLUMN)]
    assert rec.resets == 0
    assert model.rowCount() == 3
    assert cell(model, 1, COL_STATUS) == "PARTIAL"
    assert cell(model, 1, COL_FILLED) == "4"
    assert cell(model, 0, COL_STATUS) == "SENT"
    # Time is when the order was placed, so a row does not jump when it changes; the tooltip has both.
    assert cell(model, 1, COL_TIME) == "09:15:01"
    tip = cell(model, 1, COL_TIME, Qt.ItemDataRole.ToolTipRole)
    assert "09:15:01" in tip and "last change 2026-12-01 09:15:10" in tip


def test_an_update_spans_only_the_columns_it_changed(qtbot: Any) -> None:
    model = OrdersModel()
    model.apply(snap("BW-1", OrderStatus.PARTIALLY_FILLED, filled=2))
    rec = Recorder(model)
    model.apply(snap("BW-1", OrderStatus.PARTIALLY_FILLED, filled=5, ts=T0 + SECOND))  # another fill
    model.apply(snap("BW-1", OrderStatus.PARTIALLY_FILLED, filled=5, ts=T0 + 2 * SECOND))  # nothing visible moved
    model.apply(snap("BW-1", OrderStatus.PARTIALLY_FILLED, filled=5, qty=20))  # a modify
    model.add_rejection(refusal(RejectReason.BROKER_TIMEOUT, cid="BW-1"), T0)
    assert rec.changed == [
        (0, COL_FILLED, 0, COL_FILLED),
        (0, COL_QTY, 0, COL_QTY),
        (0, COL_REASON, 0, LAST_COLUMN),
    ]
    assert model.status(0) is OrderStatus.PARTIALLY_FILLED  # a refusal on a working order does not close it


def test_a_batch_inserts_new_rows_at_once_and_groups_changed_rows_into_ranges(qtbot: Any) -> None:
    model = OrdersModel()
    model.apply_many([snap(f"BW-{i}", ts=T0 + i) for i in range(6)])
    rec = Recorder(model)

    model.apply_many(
        [
            snap("BW-1", OrderStatus.FILLED, filled=10),
            snap("BW-2", OrderStatus.CANCELLED),
            snap("BW-4", OrderStatus.PARTIALLY_FILLED, filled=3),
            snap("BW-6"),
            snap("BW-7"),
            snap("BW-6", OrderStatus.FILLED, filled=10),  # an order both new and changed in one batch
        ],
        [(refusal(), T0 + 50)],
    )

    assert rec.inserted == [(6, 8)]
    assert rec.changed == [(1, 0, 2, LAST_COLUMN), (4, 0, 4, LAST_COLUMN)]
    assert rec.resets == 0
    assert model.counts() == {"working": 5, "done": 3, "rejected": 1}
    assert model.status(model.row_of("BW-6") or -1) is OrderStatus.FILLED


def test_a_gate_rejection_gets_a_row_of_its_own_with_code_value_limit_and_tooltip(qtbot: Any) -> None:
    model = OrdersModel()
    model.apply(snap("BW-1"))
    rec = Recorder(model)

    model.add_rejection(refusal(), T0 + 5 * SECOND)

    assert rec.inserted == [(1, 1)]
    assert model.client_id(1) is None
    assert model.status(1) is OrderStatus.REJECTED
    assert cell(model, 1, COL_ORDER) == ""
    assert cell(model, 1, COL_INSTRUMENT) == "NSE:TCS"
    assert cell(model, 1, COL_QTY) == ""
    assert cell(model, 1, COL_STATUS) == "REJECTED"
    assert cell(model, 1, COL_REASON) == "PRICE_COLLAR"
    assert cell(model, 1, COL_VALUE_LIMIT) == "6.1 % vs 5.0 %"
    assert cell(model, 1, COL_MESSAGE).startswith("price 4,120.00")
    tip = cell(model, 1, COL_REASON, Qt.ItemDataRole.ToolTipRole)
    assert REASON_TEXT[RejectReason.PRICE_COLLAR] in tip
    assert "price 4,120.00 is 6.1 %" in tip
    assert cell(model, 1, COL_STATUS, Qt.ItemDataRole.ForegroundRole) == tone_colour(Tone.BAD, True)
    assert model.counts() == {"working": 1, "done": 0, "rejected": 1}


def test_a_refusal_naming_an_order_sits_on_that_orders_row_whichever_came_first(qtbot: Any) -> None:
    model = OrdersModel()
    rec = Recorder(model)
    # Order first, then its refusal: the refusal lands on the order's row.
    model.apply(snap("BW-1", OrderStatus.NEW))
    model.apply(snap("BW-1", OrderStatus.REJECTED))
    rec.clear()
    model.add_rejection(refusal(RejectReason.MAX_OPEN_ORDERS, cid="BW-1", value="40", limit="40"), T0)
    assert rec.inserted == []
    assert rec.changed == [(0, COL_REASON, 0, LAST_COLUMN)]
    assert cell(model, 0, COL_REASON) == "MAX_OPEN_ORDERS"

    # Refusal first, then the order's snapshots: one row, the code stays on it.
    model.add_rejection(refusal(RejectReason.BROKER_REJECTED, cid="BW-2", instrument="NSE:INFY", value=None), T0)
    assert model.rowCount() == 2
    assert cell(model, 1, COL_ORDER) == "BW-2"
    assert cell(model, 1, COL_VALUE_LIMIT) == "5.0 %"
    rec.clear()
    model.apply(snap("BW-2", OrderStatus.SENT, instrument="NSE:INFY", ts=T0 - SECOND))
    model.apply(snap("BW-2", OrderStatus.REJECTED, instrument="NSE:INFY", ts=T0 + SECOND))
    assert rec.inserted == []
    assert rec.changed == [(1, 0, 1, LAST_COLUMN)] * 2
    assert model.rowCount() == 2
    assert cell(model, 1, COL_REASON) == "BROKER_REJECTED"
    assert cell(model, 1, COL_QTY) == "10"
    assert model.counts() == {"working": 0, "done": 0, "rejected": 2}
    assert rec.resets == 0


def test_counts_move_between_groups_as_orders_change(qtbot: Any) -> None:
    model = OrdersModel()
    model.apply(snap("BW-1", OrderStatus.NEW))
    model.apply(snap("BW-2", OrderStatus.OPEN))
    assert model.counts() == {"working": 2, "done": 0, "rejected": 0}
    model.apply(snap("BW-1", OrderStatus.SENT))
    model.apply(snap("BW-1", OrderStatus.FILLED, filled=10))
    assert model.counts() == {"working": 1, "done": 1, "rejected": 0}
    model.apply(snap("BW-2", OrderStatus.UNKNOWN))
    assert model.counts() == {"working": 1, "done": 1, "rejected": 0}
    assert model.working_ids() == ["BW-2"]
    assert cell(model, 1, COL_STATUS, Qt.ItemDataRole.ForegroundRole) == tone_colour(Tone.WARN, True)
    model.apply(snap("BW-2", OrderStatus.REJECTED))
    assert model.counts() == {"working": 0, "done": 1, "rejected": 1}
    assert model.working_ids() == []


def test_only_working_orders_are_cancellable_and_new_is_not(qtbot: Any) -> None:
    model = OrdersModel()
    model.apply_many([snap("N", OrderStatus.NEW), snap("S", OrderStatus.SENT), snap("U", OrderStatus.UNKNOWN)])
    # NEW is still passing the desk's own checks: shown as working, but the broker has nothing to cancel.
    assert model.counts()["working"] == 3
    assert model.working_ids() == ["S", "U"]
    assert [model.is_working(r) for r in range(3)] == [False, True, True]


def test_the_cap_drops_only_the_oldest_finished_rows_in_one_pass(qtbot: Any) -> None:
    model = OrdersModel(max_rows=10)
    statuses = [OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.OPEN, OrderStatus.CANCELLED]
    statuses += [OrderStatus.FILLED] * 5
    model.apply_many([snap(f"BW-{i}", s, filled=10 if s is OrderStatus.FILLED else 0) for i, s in enumerate(statuses)])
    model.add_rejection(refusal(), T0)  # no id
    assert model.rowCount() == 11 - 2  # 11 rows > 10: trimmed to 9 (90 %)
    rec = Recorder(model)
    model.apply(snap("BW-10"))  # 10 rows: no trim
    assert rec.removed == []
    model.apply(snap("BW-11"))  # 11: two more finished rows go
    assert model.rowCount() == 9
    # Rows removed bottom-up in contiguous runs; working orders BW-0 and BW-3 stay at the top.
    assert rec.removed == [(2, 3)]
    assert rec.resets == 0
    ids = [model.client_id(r) for r in range(model.rowCount())]
    assert ids[:2] == ["BW-0", "BW-3"]
    assert "BW-10" in ids and "BW-11" in ids
    assert set(model.working_ids()) == {"BW-0", "BW-3", "BW-10", "BW-11"}
    counts = model.counts()
    assert sum(counts.values()) == model.rowCount()
    assert counts["working"] == 4
    # The id index was rebuilt: an update after a trim reaches the right row.
    rec.clear()
    model.apply(snap("BW-11", OrderStatus.CANCELLED))
    row = model.row_of("BW-11")
    assert row is not None and model.client_id(row) == "BW-11"
    assert rec.changed == [(row, 0, row, LAST_COLUMN)]
    assert rec.inserted == []


def test_the_cap_never_drops_a_working_order(qtbot: Any) -> None:
    model = OrdersModel(max_rows=4)
    model.apply_many([snap(f"W-{i}") for i in range(6)])
    assert model.rowCount() == 6
    assert len(model.working_ids()) == 6


# --- orders: filter and sorting -------------------------------------------------------------------------


def blotter() -> OrdersModel:
    model = OrdersModel()
    model.apply_many(
        [
            snap("BW-1", OrderStatus.OPEN, instrument="NSE:RELIANCE", qty=9, price=2_456_35, ts=T0 + 3 * SECOND),
            snap("BW-2", OrderStatus.FILLED, instrument="NSE:TCS", qty=10, price=3_882_50, filled=10, ts=T0 + SECOND),
            snap("BW-3", OrderStatus.PARTIALLY_FILLED, instrument="NFO:NIFTY-2026-12-29-FUT", qty=100, price=24_512_00,
                 filled=25, ts=T0 + 2 * SECOND),
            snap("BW-4", OrderStatus.CANCELLED, instrument="NSE:INFY", qty=2, price=1_50, ts=T0),
        ],
        [(refusal(RejectReason.UNDERLYING_GROSS_LIMIT, instrument="NFO:BANKNIFTY-2026-12-29-FUT"), T0 + 4 * SECOND)],
    )
    return model


def test_the_group_filter_shows_one_group(qtbot: Any) -> None:
    proxy = OrdersFilter()
    proxy.setSourceModel(blotter())
    assert proxy.rowCount() == 5
    proxy.set_group(OrdersGroup.WORKING)
    assert sorted(column_values(proxy, COL_ORDER)) == ["BW-1", "BW-3"]
    proxy.set_group(OrdersGroup.DONE)
    assert sorted(column_values(proxy, COL_ORDER)) == ["BW-2", "BW-4"]
    proxy.set_group(OrdersGroup.REJECTED)
    assert column_values(proxy, COL_REASON) == ["UNDERLYING_GROSS_LIMIT"]
    proxy.set_group(OrdersGroup.ALL)
    assert proxy.rowCount() == 5


def test_a_row_moves_between_groups_in_the_filtered_view_when_it_changes(qtbot: Any) -> None:
    model = blotter()
    proxy = OrdersFilter()
    proxy.setSourceModel(model)
    proxy.set_group(OrdersGroup.WORKING)
    model.apply(snap("BW-1", OrderStatus.FILLED, qty=9, filled=9))
    assert column_values(proxy, COL_ORDER) == ["BW-3"]
    proxy.set_group(OrdersGroup.DONE)
    assert sorted(column_values(proxy, COL_ORDER)) == ["BW-1", "BW-2", "BW-4"]


def test_the_text_filter_matches_instrument_id_and_reason_in_any_case(qtbot: Any) -> None:
    proxy = OrdersFilter()
    proxy.setSourceModel(blotter())
    proxy.set_text("nifty")
    assert sorted(column_values(proxy, COL_INSTRUMENT)) == ["NFO:BANKNIFTY-2026-12-29-FUT", "NFO:NIFTY-2026-12-29-FUT"]
    proxy.set_text("bw-4")
    assert column_values(proxy, COL_ORDER) == ["BW-4"]
    proxy.set_text("gross")
    assert column_values(proxy, COL_REASON) == ["UNDERLYING_GROSS_LIMIT"]
    proxy.set_text("BBW-2")  # the broker's id
    assert column_values(proxy, COL_ORDER) == ["BW-2"]
    proxy.set_group(OrdersGroup.WORKING)
    proxy.set_text("nifty")
    assert column_values(proxy, COL_ORDER) == ["BW-3"]
    proxy.set_text("")
    proxy.set_group(OrdersGroup.ALL)
    assert proxy.rowCount() == 5


def test_numeric_columns_sort_as_numbers_not_text(qtbot: Any) -> None:
    proxy = OrdersFilter()
    proxy.setSourceModel(blotter())
    proxy.sort(COL_QTY, Qt.SortOrder.AscendingOrder)
    # The refusal has no quantity: it sorts first; then 2 < 9 < 10 < 100 (as text "10" < "100" < "2" < "9").
    assert column_values(proxy, COL_QTY) == ["", "2", "9", "10", "100"]
    proxy.sort(COL_PRICE, Qt.SortOrder.DescendingOrder)
    assert column_values(proxy, COL_PRICE) == ["24,512.00", "3,882.50", "2,456.35", "1.50", ""]
    proxy.sort(COL_TIME, Qt.SortOrder.AscendingOrder)
    assert column_values(proxy, COL_ORDER) == ["BW-4", "BW-2", "BW-3", "BW-1", ""]
    assert isinstance(cell(proxy, 0, COL_TIME, SORT_ROLE), int)
    assert cell(proxy, 0, COL_QTY, Qt.ItemDataRole.TextAlignmentRole) & Qt.AlignmentFlag.AlignRight


def test_a_sorted_view_keeps_its_order_as_rows_arrive_and_change(qtbot: Any) -> None:
    model = blotter()
    proxy = OrdersFilter()
    proxy.setSourceModel(model)
    proxy.sort(COL_QTY, Qt.SortOrder.AscendingOrder)
    model.apply(snap("BW-5", qty=50))
    model.apply(snap("BW-1", qty=1000))  # a modify: the row moves to its new place
    assert column_values(proxy, COL_QTY) == ["", "2", "10", "50", "100", "1,000"]


# --- orders: the view -----------------------------------------------------------------------------------


def select_all(view: OrdersView) -> None:
    selection = view.table.selectionModel()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for r in range(view.proxy.rowCount()):
        selection.select(view.proxy.index(r, 0), flags)


def test_cancel_selected_carries_only_the_working_ids(qtbot: Any) -> None:
    view = OrdersView(blotter())
    qtbot.addWidget(view)
    select_all(view)
    with qtbot.waitSignal(view.cancel_requested, timeout=1000) as blocker:
        view.cancel_selected_button.click()
    assert sorted(blocker.args[0]) == ["BW-1", "BW-3"]


def test_nothing_is_sent_when_no_selected_row_is_working(qtbot: Any) -> None:
    view = OrdersView(blotter())
    qtbot.addWidget(view)
    view.set_group(OrdersGroup.DONE)
    select_all(view)
    received: list[list[str]] = []
    view.cancel_requested.connect(received.append)
    view.cancel_selected()
    assert received == []


def test_the_delete_key_cancels_the_selection(qtbot: Any) -> None:
    view = OrdersView(blotter())
    qtbot.addWidget(view)
    view.show()
    view.set_group(OrdersGroup.WORKING)
    view.table.selectRow(0)
    expected = view.proxy.index(0, COL_ORDER).data()
    view.table.setFocus()
    with qtbot.waitSignal(view.cancel_requested, timeout=1000) as blocker:
        qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    assert blocker.args == [[expected]]


def test_cancel_all_and_the_group_buttons_follow_the_counts(qtbot: Any) -> None:
    model = blotter()
    view = OrdersView(model)
    qtbot.addWidget(view)
    buttons = view.group_buttons
    assert [buttons[g].text() for g in OrdersGroup] == ["All", "Working (2)", "Done (2)", "Rejected (1)"]
    with qtbot.waitSignal(view.cancel_all_requested, timeout=1000):
        view.cancel_all_button.click()
    model.apply_many([snap("BW-1", OrderStatus.CANCELLED), snap("BW-3", OrderStatus.FILLED, filled=100)])
    assert buttons[OrdersGroup.WORKING].text() == "Working (2)"  # until the frame refreshes them
    view.refresh_counts()
    assert buttons[OrdersGroup.WORKING].text() == "Working (0)"
    assert buttons[OrdersGroup.DONE].text() == "Done (4)"
    assert not view.cancel_all_button.isEnabled()
    buttons[OrdersGroup.DONE].click()
    assert view.proxy.group is OrdersGroup.DONE
    assert view.proxy.rowCount() == 4


def test_a_palette_change_switches_the_status_colours(qtbot: Any) -> None:
    view = OrdersView(blotter())
    qtbot.addWidget(view)
    view.setPalette(theme.palette(False))
    row = view.model.row_of("BW-2")
    assert cell(view.model, row or 0, COL_STATUS, Qt.ItemDataRole.ForegroundRole) == tone_colour(Tone.GOOD, False)
    view.setPalette(theme.palette(True))
    assert cell(view.model, row or 0, COL_STATUS, Qt.ItemDataRole.ForegroundRole) == tone_colour(Tone.GOOD, True)


def lifecycle(orders: int, updates: int) -> list[OrderSnapshot]:
    """`updates` snapshots over `orders` orders of 100: each is acknowledged, fills in steps of 2, then fills."""
    steps = updates // orders
    out = []
    for n in range(updates):
        cid, step = f"BW-{n % orders:06d}", n // orders
        ts = T0 + 1_000 + n
        if step == 0:
            out.append(snap(cid, OrderStatus.OPEN, qty=100, ts=ts))
        elif step < steps - 1:
            out.append(snap(cid, OrderStatus.PARTIALLY_FILLED, qty=100, filled=2 * step, ts=ts))
        else:
            out.append(snap(cid, OrderStatus.FILLED, qty=100, filled=100, ts=ts))
    return out


def test_throughput_twenty_thousand_updates_over_five_hundred_orders(qtbot: Any) -> None:
    view = OrdersView()
    qtbot.addWidget(view)
    view.resize(1200, 500)
    view.show()
    model = view.model
    model.apply_many([snap(f"BW-{i:06d}", OrderStatus.SENT, qty=100, ts=T0 + i) for i in range(500)])
    rec = Recorder(model)
    updates = lifecycle(500, 20_000)
    start = time.perf_counter()
    for update in updates:
        model.apply(update)
    elapsed = time.perf_counter() - start
    print(f"\n20,000 order updates over 500 orders, one apply() each, sorted view attached: {elapsed * 1000:.0f} ms")
    assert elapsed < 2.0
    assert len(rec.changed) == 20_000 and rec.inserted == [] and rec.resets == 0
    assert model.counts() == {"working": 0, "done": 500, "rejected": 0}
    assert view.proxy.rowCount() == 500


def test_throughput_of_per_frame_batches(qtbot: Any) -> None:
    view = OrdersView()
    qtbot.addWidget(view)
    view.show()
    model = view.model
    model.apply_many([snap(f"BW-{i:06d}", OrderStatus.SENT, qty=100, ts=T0 + i) for i in range(500)])
    updates = lifecycle(500, 20_000)
    start = time.perf_counter()
    for first in range(0, len(updates), 1_000):  # 1,000 events per frame
        model.apply_many(updates[first : first + 1_000])
    elapsed = time.perf_counter() - start
    print(f"\n20,000 order updates over 500 orders in 20 apply_many() batches: {elapsed * 1000:.0f} ms")
    assert elapsed < 2.0
    assert model.counts() == {"working": 0, "done": 500, "rejected": 0}


# --- positions ------------------------------------------------------------------------------------------


def position(key: str, qty: int, *, avg: float | None = 2_450_00.0, mark: int | None = 2_460_00, realized: int = 0,
             underlying: str | None = None) -> PositionView:
    value = qty * (mark or 0)
    unrealized = 0 if avg is None or mark is None else round(qty * (mark - avg))
    return PositionView(key, underlying or key.split(":")[1].split("-")[0], qty, avg if qty else None, mark, value,
                        realized, unrealized)


def test_positions_diff_emits_data_changed_only_for_changed_rows(qtbot: Any) -> None:
    model = PositionsModel()
    rec = Recorder(model)
    views = [position("NSE:RELIANCE", 10), position("NSE:TCS", -5), position("NSE:INFY", 0, realized=1_200_00),
             position("NSE:SBIN", 100)]
    model.update(views)
    assert rec.inserted == [(0, 3)]
    rec.clear()

    model.update(views)  # nothing moved
    assert rec.changed == [] and rec.inserted == []

    moved = list(views)
    moved[1] = dataclasses.replace(views[1], mark=3_900_00)
    model.update(moved)
    assert rec.changed == [(1, 0, 1, 8)]
    rec.clear()

    moved[2] = dataclasses.replace(moved[2], realized=900_00)
    moved[3] = dataclasses.replace(moved[3], quantity=50)
    moved.append(position("NFO:NIFTY-2026-12-29-FUT", 75, avg=24_500_00.0, mark=24_512_00))
    model.update(moved)
    assert rec.inserted == [(4, 4)]
    assert rec.changed == [(2, 0, 3, 8)]  # two neighbours: one range
    assert rec.resets == 0

    model.update([dataclasses.replace(moved[0], quantity=20)])  # a partial update leaves the others alone
    assert model.rowCount() == 5
    assert cell(model, 0, 2) == "20"


def test_positions_cells_colours_and_totals(qtbot: Any) -> None:
    model = PositionsModel()
    model.update([
        position("NSE:RELIANCE", 10, avg=2_450_00.0, mark=2_460_00, realized=500_00),
        position("NSE:TCS", -5, avg=3_900_00.0, mark=3_950_00),
        position("NSE:INFY", 0, realized=-1_200_00),
    ])
    assert [cell(model, 0, c) for c in range(9)] == [
        "NSE:RELIANCE", "RELIANCE", "10", "2,450.00", "2,460.00", "₹24,600", "+₹500", "+₹100", "+₹600",
    ]
    assert cell(model, 1, 2) == "-5"
    assert cell(model, 1, 7) == "-₹250"
    assert cell(model, 2, 3) == ""  # flat: no average
    assert cell(model, 0, COL_PNL, Qt.ItemDataRole.ForegroundRole) == tone_colour(Tone.GOOD, True)
    assert cell(model, 1, COL_PNL, Qt.ItemDataRole.ForegroundRole) == tone_colour(Tone.BAD, True)
    assert cell(model, 2, 0, Qt.ItemDataRole.ForegroundRole) == tone_colour(Tone.MUTED, True)  # flat: greyed
    assert cell(model, 2, COL_PNL, Qt.ItemDataRole.ForegroundRole) == tone_colour(Tone.BAD, True)
    assert cell(model, 0, 0, Qt.ItemDataRole.ForegroundRole) is None  # open: the palette's text colour
    totals = model.totals()
    assert (totals.open_count, totals.realised, totals.unrealised, totals.pnl) == (2, -700_00, -150_00, -850_00)


def test_positions_sort_numerically_and_filter_by_text(qtbot: Any) -> None:
    model = PositionsModel()
    model.update([position("NSE:A", 9), position("NSE:B", 10), position("NSE:C", -100), position("NSE:D", 0)])
    proxy = PositionsFilter()
    proxy.setSourceModel(model)
    proxy.sort(2, Qt.SortOrder.AscendingOrder)
    assert column_values(proxy, 2) == ["-100", "0", "9", "10"]
    proxy.set_text("nse:b")
    assert column_values(proxy, 0) == ["NSE:B"]


def test_positions_view_totals_line_follows_updates(qtbot: Any) -> None:
    view = PositionsView()
    qtbot.addWidget(view)
    assert "0 open" in view.totals_label.text()
    view.model.update([position("NSE:RELIANCE", 1_000, avg=2_450_00.0, mark=2_460_00, realized=3_41_000_00)])
    text = view.totals_label.text()
    assert "1 open" in text and "+₹3.41 L" in text and "+₹10,000" in text
    view.filter_edit.setText("tcs")
    assert view.proxy.rowCount() == 0


# --- screenshots ----------------------------------------------------------------------------------------

EQUITIES = [
    ("NSE:RELIANCE", 2_456_35), ("NSE:TCS", 3_882_50), ("NSE:INFY", 1_512_80), ("NSE:HDFCBANK", 1_702_45),
    ("NSE:ICICIBANK", 1_284_10), ("NSE:SBIN", 812_65), ("NSE:ITC", 468_90), ("NSE:LT", 3_640_00),
    ("NSE:AXISBANK", 1_139_55), ("NSE:BHARTIARTL", 1_598_20), ("NSE:TATAMOTORS", 742_30), ("NSE:MARUTI", 12_480_00),
    ("NSE:KOTAKBANK", 1_765_40), ("NSE:HINDUNILVR", 2_390_15), ("NSE:BAJFINANCE", 6_890_00),
    ("NSE:ASIANPAINT", 2_310_60), ("NSE:SUNPHARMA", 1_752_30), ("NSE:TITAN", 3_345_75), ("NSE:ULTRACEMCO", 11_240_00),
    ("NSE:WIPRO", 295_40), ("NSE:NTPC", 338_15), ("NSE:POWERGRID", 302_60), ("NSE:ONGC", 241_85),
    ("NSE:COALINDIA", 378_90), ("NSE:TATASTEEL", 142_35), ("NSE:JSWSTEEL", 968_40), ("NSE:ADANIPORTS", 1_212_05),
    ("NSE:HCLTECH", 1_768_90), ("NSE:TECHM", 1_623_45), ("NSE:NESTLEIND", 2_218_30),
]
DERIVATIVES = [
    ("NFO:NIFTY-2026-12-29-FUT", 24_512_00, 75), ("NFO:BANKNIFTY-2026-12-29-FUT", 52_140_50, 30),
    ("NFO:RELIANCE-2026-12-29-FUT", 2_468_10, 500), ("NFO:NIFTY-2026-12-29-24500-CE", 182_45, 75),
    ("NFO:NIFTY-2026-12-29-24000-PE", 96_10, 75), ("NFO:NIFTY-2026-12-29-25000-CE", 41_20, 75),
    ("NFO:BANKNIFTY-2026-12-29-52000-CE", 611_75, 30), ("NFO:BANKNIFTY-2026-12-29-51000-PE", 288_40, 30),
    ("NFO:NIFTY-2027-01-26-FUT", 24_655_00, 75), ("NFO:BANKNIFTY-2026-12-29-53000-CE", 214_90, 30),
]


def realistic_orders(model: OrdersModel) -> None:
    instruments = [(k, p, 1) for k, p in EQUITIES[:12]] + DERIVATIVES[:7]
    statuses = [OrderStatus.FILLED] * 5 + [OrderStatus.OPEN] * 2 + [
        OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELLED, OrderStatus.SENT, OrderStatus.EXPIRED, OrderStatus.UNKNOWN]
    sources = [OrderSource.TICKET, OrderSource.STRATEGY, OrderSource.API, OrderSource.TICKET, OrderSource.FLATTEN]
    actors = ["asha", "mom-1", "rohit", "asha", "asha"]
    snapshots = []
    for i in range(35):
        key, px, lot = instruments[(i * 7) % len(instruments)]
        status = OrderStatus.REJECTED if i == 8 else statuses[i % len(statuses)]
        qty = lot * (1 + (i * 5) % 9) * (10 if lot == 1 else 1)
        filled = qty if status is OrderStatus.FILLED else qty // 3 if status is OrderStatus.PARTIALLY_FILLED else 0
        snapshots.append(snap(
            f"BW7F3A2C-{i + 1:06d}", status, instrument=key, side=Side.BUY if i % 3 else Side.SELL, qty=qty,
            price=px + (i % 4) * 5, filled=filled, ts=T0 + i * 37 * SECOND + 2 * 3600 * SECOND,
            source=sources[i % len(sources)], actor=actors[i % len(actors)],
            order_type=OrderType.MARKET if i % 6 == 0 else OrderType.LIMIT))
    refusals = [
        (refusal(RejectReason.PRICE_COLLAR, instrument="NSE:TCS"), 3),
        (refusal(RejectReason.UNDERLYING_GROSS_LIMIT, instrument="NFO:BANKNIFTY-2026-12-29-FUT",
                 message="BANKNIFTY gross would be ₹4.62 Cr against its cap of ₹4.00 Cr",
                 value="₹4,62,10,500", limit="₹4,00,00,000"), 9),
        (refusal(RejectReason.NOT_LOT_MULTIPLE, instrument="NFO:NIFTY-2026-12-29-FUT",
                 message="quantity 100 is not a multiple of the lot size 75", value="100", limit="lot 75"), 14),
        (refusal(RejectReason.MARKET_CLOSED, instrument="NSE:SBIN", message="NSE is closed for lunch auction",
                 value=None, limit=None), 21),
        (refusal(RejectReason.BROKER_REJECTED, cid="BW7F3A2C-000009", instrument="NSE:INFY",
                 message="RMS: margin exceeds available funds", value=None, limit=None), 25),
        (refusal(RejectReason.BROKER_TIMEOUT, cid="BW7F3A2C-000012", instrument="NSE:BHARTIARTL",
                 message="no answer from the broker within 5s; state unknown, reconciling with the broker",
                 value=None, limit=None), 11),
        (refusal(RejectReason.DAILY_LOSS_LIMIT, instrument="NSE:RELIANCE",
                 message="today's P&L -₹9,85,000 is at the daily loss limit", value="-₹9,85,000",
                 limit="-₹10,00,000"), 30),
    ]
    model.apply_many(
        snapshots,
        [(event, T0 + at * 37 * SECOND + 2 * 3600 * SECOND + 11 * SECOND) for event, at in refusals],
    )


def realistic_positions() -> list[PositionView]:
    views = []
    for i, (key, px) in enumerate(EQUITIES):
        qty = 0 if i % 7 == 3 else (1 if i % 3 else -1) * (50 + 25 * (i % 11))
        mark = px + (i % 5 - 2) * 35 * (1 + px // 100_000)
        views.append(position(key, qty, avg=float(px), mark=mark, realized=(i % 4 - 1) * 12_345_00 * (1 + i % 3)))
    for i, (key, px, lot) in enumerate(DERIVATIVES):
        qty = lot * (1 + i % 4) * (-1 if i % 3 == 2 else 1)
        views.append(position(key, qty, avg=float(px) - 150 * (i % 3 - 1), mark=px, realized=(i % 3 - 1) * 48_750_00))
    return views


def save(widget: QWidget, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    assert widget.grab().save(str(OUTPUT / name))


@pytest.mark.parametrize("look", ["dark", "light"])
def test_orders_screenshot(qtbot: Any, look: str) -> None:
    view = OrdersView()
    qtbot.addWidget(view)
    view.setPalette(theme.palette(look == "dark"))
    view.setAutoFillBackground(True)
    realistic_orders(view.model)
    view.refresh_counts()
    view.resize(1560, 860)
    view.show()
    view.table.selectRow(2)
    qtbot.waitExposed(view)
    assert view.proxy.rowCount() == 40
    save(view, f"orders_{look}.png")


def test_positions_screenshot(qtbot: Any) -> None:
    view = PositionsView()
    qtbot.addWidget(view)
    view.setPalette(theme.palette(True))
    view.setAutoFillBackground(True)
    view.model.update(realistic_positions())
    view.resize(1200, 860)
    view.show()
    qtbot.waitExposed(view)
    assert view.proxy.rowCount() == 40
    save(view, "positions_dark.png")
