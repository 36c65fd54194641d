"""What the engine's order calls answer: ``submit``, ``preview``, ``modify`` and ``cancel``.

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


@dataclass(frozen=True, slots=True)
class Headroom:
    """One limit an order moves: the value after the order and the limit (paise, or units for quantities).

    ``name`` is what the trader reads ("desk gross", "NIFTY net", "position RELIANCE"); ``unit`` is
    ``"paise"`` or ``"units"``.
    """

    name: str
    after: int
    limit: int
    unit: str = "paise"

    @property
    def left(self) -> int:
        return self.limit - abs(self.after)


@dataclass(frozen=True, slots=True)
class OrderPreview:
    """What ``Engine.preview`` says of an order being typed: every refusal, and what it would do.

    ``rejections`` holds every check that would fail now (empty: it would pass the gate). ``price``
    is the price in paise it would go out at (a market order's protected limit), ``None`` when it
    cannot be known (no reference price, or the request did not validate). ``headroom`` lists the
    limits the order moves, with the value after it; empty when the request did not validate.
    """

    rejections: tuple[Rejection, ...]
    checks: int
    price: int | None = None
    order_value: int | None = None
    headroom: tuple[Headroom, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.rejections


@dataclass(frozen=True, slots=True)
class ModifyResult:
    """The answer to ``modify``: sent to the broker, or refused (by the gate, the permission table or the broker)."""

    ok: bool
    client_order_id: str
    message: str
    rejection: Rejection | None = None
