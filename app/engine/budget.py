"""A desk's share of a broker account's rate budget, when several desks trade through one account.

The broker counts its limits per account, not per desk. Desks sharing an account do not ask each
other (or the database) before a call: an order must not wait on a remote lock, and the kill
switch's cancels must keep flowing while the database is down. Instead each running desk holds one
of the account's ``slots`` (a lease in the store, see ``app.store.account_leases``) and its
governor runs on the account's limits divided by ``slots``, rounded down: spacing keeps every
desk's 1-second and minute windows at or under its share, so the desks together stay inside the
account's limits whatever their traffic.

The day is different: a desk's calls count until IST midnight, also after it stops. So a desk's
day share starts charged with ``charged_calls``, what the account spent today through desks that
hold no slot now (they ran and stopped, or crashed); the desks that do hold a slot each count only
their own. Each desk stores only its own calls (never the charge), so nothing is counted twice in
the store; a charge may count a stopped desk's calls twice if it starts again (its own row, and
the charge of a desk that started meanwhile): a desk then has less than its share, never more.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from app.brokers.base import RateLimits

from .governor import COUNT_CALLS, GovernorConfig


@dataclass(frozen=True, slots=True)
class AccountShare:
    """Which broker account this desk's calls spend (a fingerprint), how many desks share its limits, and
    the calls desks no longer running spent through it on ``day`` (ISO date), charged to this desk's day."""

    account: str
    slots: int = 1
    day: str = ""
    charged_calls: int = 0

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"an account is shared by at least one desk, got {self.slots} slots")
        if self.charged_calls < 0:
            raise ValueError(f"a charge is never negative, got {self.charged_calls}")

    def charge(self, day: str, kind: str) -> int:
        """What this desk's ``kind`` count on ``day`` holds that other desks spent."""
        return self.charged_calls if kind == COUNT_CALLS and day == self.day else 0

    def with_charge(self, day: str, counts: Mapping[str, int]) -> dict[str, int]:
        """This desk's own stored counts for ``day`` with the charge added: the governor's starting counts."""
        charged = dict(counts)
        if day == self.day and self.charged_calls:
            charged[COUNT_CALLS] = charged.get(COUNT_CALLS, 0) + self.charged_calls
        return charged


def share_limits(limits: RateLimits, slots: int) -> RateLimits:
    """One desk's share of an account's limits: each divided by ``slots``, rounded down, at least 1."""
    return RateLimits(
        order_actions_per_second=max(1, limits.order_actions_per_second // slots),
        calls_per_minute=max(1, limits.calls_per_minute // slots),
        calls_per_day=max(1, limits.calls_per_day // slots),
    )


def share_config(config: GovernorConfig, limits: RateLimits, slots: int) -> GovernorConfig:
    """The governor's knobs for one desk's share of ``limits``.

    The cancels' reserve of order actions is divided like the limits (rounded up, so some reserve
    stays) but always leaves places at least one action a second: 10/s among 4 desks is 2/s each,
    of which 1 is kept for cancels. At 1 action a second (10 desks) nothing can be kept: places and
    cancels share the one action, and the strict priority still sends a waiting cancel first, at
    worst one spacing (about a second) after the place before it. The call reserve is a fraction, so
    it scales by itself.
    """
    if slots == 1:
        return config
    share = share_limits(limits, slots)
    reserve = min(math.ceil(config.action_reserve / slots), share.order_actions_per_second - 1)
    return dataclasses.replace(config, action_reserve=reserve)
