"""The embedded paper broker: a seeded synthetic market and an exchange simulator behind the Broker protocol."""

from .broker import PaperBroker, PaperConfig
from .market import SyntheticMarket
from .rate_limiter import RateLimiter
from .universe import UniverseEntry, UniverseError, load_universe

__all__ = [
    "PaperBroker",
    "PaperConfig",
    "RateLimiter",
    "SyntheticMarket",
    "UniverseEntry",
    "UniverseError",
    "load_universe",
]
