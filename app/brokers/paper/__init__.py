"""The embedded paper broker: a seeded synthetic market and an exchange simulator behind the Broker protocol."""

from .broker import BREEZE_RATE_LIMITS, PaperBroker, PaperConfig
from .market import SyntheticMarket
from .rate_limiter import RateLimiter
from .universe import UniverseEntry, UniverseError, instrument_key, load_universe

__all__ = [
    "BREEZE_RATE_LIMITS",
    "PaperBroker",
    "PaperConfig",
    "RateLimiter",
    "SyntheticMarket",
    "UniverseEntry",
    "UniverseError",
    "instrument_key",
    "load_universe",
]
