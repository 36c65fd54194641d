"""The desk's trading state: what kind of new orders may pass."""

from __future__ import annotations

import enum


class TradingState(enum.StrEnum):
    """ACTIVE trades normally; REDUCING lets only risk-reducing orders through; HALTED blocks all new orders.

    Cancels pass in every state.
    """

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"
