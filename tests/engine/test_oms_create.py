"""The OMS's create path: the NEW event it publishes is the order's own snapshot, field for field."""

from __future__ import annotations

from app.domain.events import OrderEvent
from app.domain.orders import OrderSource, OrderType, Product, Side, Validity
from app.domain.requests import NewOrder
from app.engine.bus import EventBus
from app.engine.oms import OrderManager, snapshot
from tests.engine.conftest import cash


def test_create_publishes_exactly_the_snapshot_of_the_new_order() -> None:
    bus = EventBus()
    events: list[OrderEvent] = []
    bus.subscribe(OrderEvent, events.append)
    oms = OrderManager(bus, lambda: 1_234_567)
    new = NewOrder(cash("RELIANCE"), Side.SELL, 7, None, OrderType.MARKET, Product.DELIVERY, Validity.IOC,
                   OrderSource.TICKET, "trader", "tag")
    order = oms.create(new, 99_995)
    assert events == [OrderEvent(snapshot(order), None)]
    assert (order.price, order.validity, order.created_ns, order.updated_ns) == (99_995, Validity.IOC, 1_234_567, 1_234_567)
    assert oms.get(order.client_order_id) is order
