"""Stable reason codes for refused orders; the value and the limit travel with each."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RejectReason(enum.StrEnum):
    """Why an order was refused. Codes are stable: the audit trail and API clients rely on them."""

    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INVALID_SIDE = "INVALID_SIDE"
    INVALID_ORDER_TYPE = "INVALID_ORDER_TYPE"
    INVALID_PRODUCT = "INVALID_PRODUCT"
    INVALID_VALIDITY = "INVALID_VALIDITY"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    NOT_LOT_MULTIPLE = "NOT_LOT_MULTIPLE"
    ABOVE_FREEZE_QUANTITY = "ABOVE_FREEZE_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    PRICE_OFF_TICK = "PRICE_OFF_TICK"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    TRADING_HALTED = "TRADING_HALTED"
    NOT_RISK_REDUCING = "NOT_RISK_REDUCING"
    ENGINE_NOT_RUNNING = "ENGINE_NOT_RUNNING"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    BROKER_REJECTED = "BROKER_REJECTED"
    BROKER_RATE_LIMITED = "BROKER_RATE_LIMITED"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
    BROKER_TIMEOUT = "BROKER_TIMEOUT"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal: the code, a sentence for a person, and the offending value against the limit."""

    reason: RejectReason
    message: str
    value: str | None = None
    limit: str | None = None
