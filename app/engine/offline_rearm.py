"""The re-arm checks that can be made with no desk running, from the store alone (``main.py rearm``).

A running desk re-arms through ``Engine.rearm``, which sees everything. With no desk, only the
store speaks, so this module applies what of ``Engine.rearm``'s checks the store can answer:

* the desk is halted (or REDUCING): the newest trading-state row, which the next start resumes;
* the last desk run stopped cleanly: after one that did not (``desk_state.unclean_end``) the next
  start is HALTED whatever the store says, and only it, reading the broker's book, can tell what
  is working, so the re-arm belongs to that running desk;
* no kill-switch sweep or flatten is still under way: with no desk process none can be running,
  but the audit chain shows one a desk started and never finished (it died during it) with no
  desk start since that read the broker's order book, when orders it was cancelling or sending
  may still be working at the broker and no desk has seen them (``desk_state.interrupted_actions``);
* to ACTIVE, today's loss is not at the daily loss limit: the realised P&L of today's stored
  fills (IST day by the wall clock) against the limits version in force, the newest stored one.

What it cannot check: unrealised P&L (no prices without a desk; a running desk counts it, so a
re-arm it would refuse for an open position's loss can pass here, and the desk's loss breaker
engages again at its first tick), the trailing loss limit (it needs the day's peak, which is not
stored), and fills the broker made after the desk stopped (the desk reconciles them at its next
start). Who re-arms is not this module's question: ``main.py rearm`` checks the operator's password
and re-arm permission against the store first (``app.cli.authority``), or, before the desk has any
operators, names the OS user as the actor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine as SqlEngine

from app.domain.fills import Fill
from app.domain.india_time import ist_day_number
from app.domain.money import format_inr
from app.domain.trading_state import TradingState
from app.store import desk_state, limit_versions
from app.store.desk_state import DeskScope

from .portfolio import Portfolio
from .risk.limits import LimitsError, RiskLimits, load_limits_file, parse_document


class RearmRefused(ValueError):
    """Re-arming now would be unsafe or makes no sense; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class OfflineRearm:
    """What the checks found, for the command to report: the state left, today's realised P&L, the limit."""

    previous: TradingState
    today_realized: int
    daily_loss_limit: int
    limits_origin: str


def today_realized(fills: Iterable[Fill], now_ns: int) -> int:
    """Realised P&L in paise of the fills on the IST day of ``now_ns``, positions carried from earlier fills.

    The same replay as the desk's at start: every fill in time order, the mark taken at the first
    fill of today (fills dated later than today, from a desk run on a session clock, count as today).
    """
    portfolio = Portfolio({})
    day = ist_day_number(now_ns)
    start_of_day: int | None = None
    for fill in fills:
        if start_of_day is None and ist_day_number(fill.ts_ns) >= day:
            start_of_day = portfolio.realized
        portfolio.on_fill(fill)
    return portfolio.realized - (portfolio.realized if start_of_day is None else start_of_day)


def limits_in_force(store: SqlEngine, scope: DeskScope, limits_file: Path) -> tuple[RiskLimits, str]:
    """The newest stored limits version, or ``limits_file`` when none was ever stored; with where they came from.

    Raises ``RearmRefused`` when they cannot be read: a loss limit that cannot be read is not met.
    """
    stored = limit_versions.latest(store, scope.desk_id)
    try:
        if stored is not None:
            origin = f"stored limits version {stored.version}"
            return parse_document(json.loads(stored.document), origin), origin
        return load_limits_file(limits_file), f"{limits_file} (no version stored yet)"
    except (LimitsError, ValueError) as exc:
        raise RearmRefused(f"cannot read the daily loss limit in force: {exc}") from None


def check_offline_rearm(store: SqlEngine, scope: DeskScope, to: TradingState, *, now_ns: int, limits_file: Path) -> OfflineRearm:
    """Apply the checks above in order; ``RearmRefused`` at the first that fails."""
    if to is TradingState.HALTED:
        raise RearmRefused("re-arm goes to ACTIVE or REDUCING; use panic to halt")
    state = desk_state.last_trading_state(store, scope)
    unclean = desk_state.unclean_end(store, scope)
    # After a run that did not stop cleanly the next start is HALTED whatever the store says, and only
    # that start, reading the broker's book, learns what is really working: a re-arm made here cannot.
    after_unclean = (f"the last desk run did not end with a clean stop ({unclean}): the next start is HALTED "
                     "whatever the store says, and reconciles with the broker. Start the desk, then re-arm it while it runs")
    if state is None or state.state is TradingState.ACTIVE:
        if unclean is not None:
            raise RearmRefused(after_unclean)
        raise RearmRefused("the desk is not halted: the store says the next start is ACTIVE; nothing to re-arm")
    if state.state is to:
        raise RearmRefused(f"the desk is already {to} ({state.reason}): nothing to re-arm")
    interrupted = desk_state.interrupted_actions(store, scope)
    if interrupted:
        found = interrupted[0]
        raise RearmRefused(
            f"a desk run started a {found.action} (audit record {found.seq}, by {found.actor}) and stopped before it "
            "finished, and no desk start has read the broker's order book since: orders may still be working at the "
            "broker. Start the desk (it starts halted and reconciles with the broker), then re-arm it while it runs"
        )
    if unclean is not None:
        raise RearmRefused(after_unclean)
    limits, origin = limits_in_force(store, scope, limits_file)
    realized = today_realized(desk_state.fills(store, scope), now_ns)
    limit = limits.desk.daily_loss_limit
    if to is TradingState.ACTIVE and realized <= -limit:
        raise RearmRefused(
            f"today's realised loss {format_inr(-realized)} is at or past the daily loss limit {format_inr(limit)} "
            f"({origin}): re-arm to REDUCING at most (--to REDUCING)"
        )
    return OfflineRearm(state.state, realized, limit, origin)
