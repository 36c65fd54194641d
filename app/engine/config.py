"""Engine tunables, set by the composition root (the CLI maps user settings onto these)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.trading_state import TradingState

from .governor import GovernorConfig


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Timeouts in seconds; ``market_protection_bps`` prices marketable limits for market orders.

    ``start_book_retry_s`` bounds how long the order-book read at start is retried after a transient
    failure (first wait ``start_book_backoff_s``, doubling) before the desk halts with the reason.
    """

    broker_call_timeout: float = 5.0
    connect_timeout: float = 15.0
    drain_timeout: float = 5.0
    market_protection_bps: int = 200
    client_id_prefix: str = "BW"
    initial_state: TradingState = TradingState.ACTIVE
    loop_lag_interval: float = 0.01
    breaker_interval: float = 0.1
    start_book_retry_s: float = 10.0
    start_book_backoff_s: float = 0.25
    governor: GovernorConfig = field(default_factory=GovernorConfig)

    def __post_init__(self) -> None:
        for name in ("broker_call_timeout", "connect_timeout", "drain_timeout", "loop_lag_interval", "breaker_interval",
                     "start_book_backoff_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EngineConfig.{name} must be positive, got {getattr(self, name)}")
        if self.start_book_retry_s < 0:
            raise ValueError(f"EngineConfig.start_book_retry_s must not be negative, got {self.start_book_retry_s}")
        if not 0 < self.market_protection_bps <= 2000:
            raise ValueError(f"EngineConfig.market_protection_bps must be in (0, 2000], got {self.market_protection_bps}")
