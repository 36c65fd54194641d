"""The paper broker with its order-book read failing on demand, for the desk's start-up book read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.brokers.base import BrokerError
from app.brokers.paper import PaperBroker, PaperConfig
from app.brokers.paper.universe import UniverseEntry
from app.domain.broker_messages import BrokerOrder


class BookReadFails(PaperBroker):
    """Every ``order_book`` call raises ``error`` until ``heal()``; everything else is the paper broker.

    ``failed`` is set at the first failure, so a test acts while the desk is known to be retrying
    rather than after some wait; ``failures`` counts them.
    """

    def __init__(self, config: PaperConfig, universe: Sequence[UniverseEntry], error: BrokerError) -> None:
        super().__init__(config, universe)
        self.error: BrokerError | None = error
        self.failures = 0
        self.failed = asyncio.Event()

    def heal(self) -> None:
        self.error = None

    async def order_book(self) -> list[BrokerOrder]:
        if self.error is not None:
            self.failures += 1
            self.failed.set()
            raise self.error
        return await super().order_book()
