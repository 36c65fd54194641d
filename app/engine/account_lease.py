"""A running desk's slot of its broker account's rate budget: claimed at start, renewed, given back at stop.

The lease itself lives in the store (``app.store.account_leases``); this is the desk's side of it:
the share the engine's governor runs on (``AccountShare``), the thread that renews it, and what
happens when it cannot be kept (the engine halts: its share may be another desk's now).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine as SqlEngine

from app.brokers.account import account_of
from app.brokers.base import BrokerCapabilities
from app.domain.events import AlertLevel
from app.store import account_leases

from .budget import AccountShare

log = logging.getLogger(__name__)


class LeaseHolder(Protocol):
    """What the lease needs of the engine: a way to say something, to halt, and to refuse a re-arm."""

    rearm_checks: list[Callable[[], str | None]]

    def alert(self, level: AlertLevel, component: str, message: str) -> None: ...

    def halt(self, reason: str, actor: str = "system", *, restate: bool = False) -> None: ...


class AccountLease:
    """This desk's slot of a broker account. ``claim`` it (off the loop), hand ``share`` to the engine,
    ``attach`` the engine once it exists, ``close`` after the engine stopped calling the broker."""

    def __init__(self, keeper: account_leases.LeaseKeeper, share: AccountShare) -> None:
        self.share = share
        self._keeper = keeper
        self._engine: LeaseHolder | None = None
        self._lost: str | None = None

    @classmethod
    async def claim(
        cls, store: SqlEngine, capabilities: BrokerCapabilities, desk_id: str, wanted_slots: int, trading_day: str,
    ) -> AccountLease:
        """Take a free slot and start renewing it; ``AccountFull`` (naming who holds the slots) when there is none."""
        account = account_of(capabilities.account, desk_id)
        lease = await asyncio.to_thread(
            account_leases.claim, store, account, capabilities.name, desk_id, wanted_slots, trading_day,
        )
        loop = asyncio.get_running_loop()

        def lost(reason: str) -> None:
            # From the keeper's thread: the engine is the loop's.
            loop.call_soon_threadsafe(held._on_lost, reason)

        held = cls(account_leases.LeaseKeeper(store, lease, lost), AccountShare(account, lease.slots, trading_day, lease.absent_calls))
        held._keeper.start()
        if lease.resized_from is not None:
            log.info("broker account %s: %d desks may share it now (was %d)", account, lease.slots, lease.resized_from)
        log.info("broker account %s: this desk holds slot %d of %d", account, lease.slot + 1, lease.slots)
        return held

    @property
    def lease(self) -> account_leases.Lease:
        return self._keeper.lease

    def attach(self, engine: LeaseHolder) -> None:
        """Warn when this desk's setting is not the database's; halt ``engine`` if the lease is lost, and refuse
        to re-arm it then: only a new start claims a slot again."""
        self._engine = engine
        engine.rearm_checks.append(self._rearm_problem)
        lease = self.lease
        if lease.wanted_slots != lease.slots:
            message = (f"this desk's {account_leases.DESKS_PER_ACCOUNT} is {lease.wanted_slots} but the database says "
                       f"{lease.slots} desks share broker account {lease.account}: the desk takes 1/{lease.slots} of its rate limits")
            log.warning(message)
            engine.alert(AlertLevel.WARNING, "budget", message)
        if self._lost is not None:
            self._on_lost(self._lost)

    def _rearm_problem(self) -> str | None:
        if self._lost is None:
            return None
        return (f"this desk no longer holds a slot of broker account {self.share.account} ({self._lost}): "
                "restart the desk to claim one before trading again")

    def _on_lost(self, reason: str) -> None:
        self._lost = reason
        if self._engine is not None:
            self._engine.halt(f"this desk's share of the broker account's rate limits is not assured: {reason}")

    async def close(self) -> None:
        """Stop renewing and give the slot back."""
        await asyncio.to_thread(self._keeper.close)
