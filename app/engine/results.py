"""What the engine's order calls answer: ``submit`` and ``cancel``.

Beside the engine rather than in it, so the risk components that submit and cancel through their
ports (flatten, the kill switch) read these answers without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.orders import OrderStatus
from app.domain.rejections import Rejection


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The answer to ``submit``: accepted by the broker, or refused with a reason."""

    accepted: bool
    client_order_id: str | None = None
    rejection: Rejection | None = None
    status: OrderStatus | None = None


@dataclass(frozen=True, slots=True)
class CancelResult:
    """The answer to ``cancel``: whether the request went out (or is queued until the ack), and why not."""

    ok: bool
    client_order_id: str
    message: str
