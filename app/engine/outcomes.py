"""How the engine reads a broker call's failure, and the audit payloads of orders and refusals.

Shared by the order paths of ``engine.py`` and the modify path of ``modify.py``.
"""

from __future__ import annotations

from typing import Any

from app.brokers.base import BrokerErrorCode
from app.domain.orders import Order
from app.domain.rejections import Rejection, RejectReason

# A call that failed this way may still have reached the exchange: the order stays working at the
# desk and the broker's book decides (the adapter puts the client order id on the order to match it).
UNKNOWN_OUTCOME = frozenset({BrokerErrorCode.TIMEOUT, BrokerErrorCode.UNAVAILABLE, BrokerErrorCode.MALFORMED})

BROKER_REASONS = {
    BrokerErrorCode.RATE_LIMITED: RejectReason.BROKER_RATE_LIMITED,
    BrokerErrorCode.REJECTED: RejectReason.BROKER_REJECTED,
    BrokerErrorCode.TIMEOUT: RejectReason.BROKER_TIMEOUT,
}


def order_payload(order: Order) -> dict[str, Any]:
    """An order's terms as the audit records name them."""
    return {
        "client_order_id": order.client_order_id,
        "instrument": order.instrument_key,
        "side": order.side,
        "quantity": order.quantity,
        "price_paise": order.price,
        "order_type": order.order_type,
        "product": order.product,
        "validity": order.validity,
    }


def rejection_payload(rejection: Rejection) -> dict[str, Any]:
    """A refusal as the audit records name it: its stable code, message, value and limit."""
    return {"reason": rejection.reason, "message": rejection.message, "value": rejection.value, "limit": rejection.limit}
