"""Read routes: the desk's status, instruments, quotes, positions, the limits in force and its alerts.

All need a token with the ``read`` scope. Money leaves the engine's integer paise as exact rupee
decimals and times its epoch nanoseconds as aware datetimes in IST (+05:30), the desk's trading day,
whatever the machine's zone (``app.api.convert``).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import heapq
import re
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.auth import Principal, require
from app.api.context import ApiContext, use_context
from app.api.convert import average_price, ist_time, optional_rupees
from app.api.errors import ApiProblem, error_responses
from app.api.models import (
    API_PREFIX,
    AlertOut,
    DeskStatus,
    FieldProblem,
    GovernorBudget,
    InstrumentOut,
    LimitsOut,
    LimitUse,
    PositionOut,
    Quote,
)
from app.domain.actors import ApiScope
from app.domain.instruments import Instrument, Segment
from app.domain.money import paise_to_rupees
from app.engine.engine import Engine
from app.engine.risk.limits import LimitsError, RiskLimits, parse_limits
from app.store.canonical import canonical_json

MAX_QUOTE_KEYS = 100
MAX_INSTRUMENTS = 500
MAX_ALERTS = 1000

router = APIRouter(prefix=API_PREFIX, tags=["market"], responses=error_responses(401, 403, 422, 429))

Reader = Annotated[Principal, Depends(require(ApiScope.READ))]
Context = Annotated[ApiContext, Depends(use_context)]


def _limit_use(used: int, cap: int) -> LimitUse:
    # A cap of zero (deny-all limits) is used up by any exposure at all.
    share = abs(used) / cap if cap > 0 else (0.0 if used == 0 else 1.0)
    return LimitUse(used=paise_to_rupees(used), limit=paise_to_rupees(cap), share=share)


# -- status ------------------------------------------------------------------------------------


@router.get("/status", summary="Trading state, exposure against the limits, P&L and the broker budgets")
async def status(_: Reader, context: Context) -> DeskStatus:
    engine = context.engine
    now = engine.clock_ns()
    desk = engine.gate.limits.desk
    exposure = engine.portfolio.exposure
    budget = engine.governor.remaining()
    since = engine.trading_state_since_ns
    return DeskStatus(
        trading_state=engine.trading_state,
        reason=engine.halt_reason,
        since=ist_time(since) if since is not None else None,
        by=engine.trading_state_actor,
        gross=_limit_use(exposure.gross, desk.max_gross_exposure),
        # Signed, as the desk's chart draws it; the cap holds either side of zero.
        net=_limit_use(exposure.net, desk.max_net_exposure),
        day_pnl=paise_to_rupees(engine.day_pnl.current(now)),
        daily_loss_limit=paise_to_rupees(desk.daily_loss_limit),
        open_orders=engine.risk_book.open_orders,
        governor=GovernorBudget(
            actions_per_second=budget.actions_per_second,
            actions_used_last_second=budget.actions_per_second - budget.actions_left,
            calls_per_minute=budget.calls_per_minute,
            calls_used_last_minute=budget.calls_per_minute - budget.minute_left,
            calls_per_day=budget.calls_per_day,
            calls_used_today=budget.calls_per_day - budget.day_left,
        ),
    )


# -- instruments -------------------------------------------------------------------------------

# Spaces, commas, colons (a desk key) and slashes separate tokens; a hyphen does not (an ISO date).
_SEPARATORS = re.compile(r"[\s,:/]+")
_SEGMENT_ORDER = {Segment.CASH: 0, Segment.FUTURES: 1, Segment.OPTIONS: 2}


def _words(text: str) -> list[str]:
    return [word for word in _SEPARATORS.split(text.upper()) if word]


class InstrumentIndex:
    """Every instrument by the tokens of its key, symbol and underlying; a query token matches the
    instruments holding a token that starts with it, and all of a query's tokens must match.

    Built once per engine: a broker's master holds about 100,000 contracts, and a scan per request
    would hold the desk's loop for tens of milliseconds.
    """

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        # Cash first, then futures, then options; by symbol, expiry and strike inside each.
        self.ordered = sorted(instruments, key=lambda i: (
            _SEGMENT_ORDER[i.segment], i.symbol, i.expiry or dt.date.min, i.strike or 0, i.key,
        ))
        postings: dict[str, set[int]] = {}
        for index, instrument in enumerate(self.ordered):
            for word in {*_words(instrument.key), *_words(instrument.symbol), *_words(instrument.underlying)}:
                postings.setdefault(word, set()).add(index)
        self._tokens = sorted(postings)
        self._postings = postings

    def search(self, query: str, limit: int) -> list[Instrument]:
        """The first ``limit`` instruments (in the index's order) matching every token of ``query``; an
        empty query matches all."""
        matches: set[int] | None = None
        for word in _words(query):
            found = self._prefixed(word)
            matches = found if matches is None else matches & found
            if not matches:
                return []
        if matches is None:
            return self.ordered[:limit]
        return [self.ordered[i] for i in heapq.nsmallest(limit, matches)]

    def _prefixed(self, word: str) -> set[int]:
        tokens = self._tokens
        found: set[int] = set()
        for position in range(bisect.bisect_left(tokens, word), len(tokens)):
            token = tokens[position]
            if not token.startswith(word):
                break
            found |= self._postings[token]
        return found


_INDEXES: weakref.WeakKeyDictionary[Engine, InstrumentIndex] = weakref.WeakKeyDictionary()


def _index(engine: Engine) -> InstrumentIndex:
    index = _INDEXES.get(engine)
    if index is None or len(index.ordered) != len(engine.instruments):
        index = _INDEXES[engine] = InstrumentIndex(engine.instruments.values())
    return index


def instrument_out(instrument: Instrument) -> InstrumentOut:
    """An instrument as the API shows it: strike and tick size in rupees, enums as their codes."""
    return InstrumentOut(
        key=instrument.key,
        symbol=instrument.symbol,
        underlying=instrument.underlying,
        exchange=str(instrument.exchange),
        segment=str(instrument.segment),
        expiry=instrument.expiry,
        strike=optional_rupees(instrument.strike),
        right=str(instrument.right) if instrument.right is not None else None,
        lot_size=instrument.lot_size,
        tick_size=paise_to_rupees(instrument.tick_size),
        freeze_quantity=instrument.freeze_quantity,
    )


@router.get("/instruments", summary="The desk's instruments, searched by key, symbol and underlying")
async def instruments(
    _: Reader,
    context: Context,
    q: Annotated[str, Query(max_length=200, description="tokens in any order, each a prefix: 'nifty 26000 ce'")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_INSTRUMENTS)] = 50,
) -> list[InstrumentOut]:
    return [instrument_out(instrument) for instrument in _index(context.engine).search(q, limit)]


# -- quotes ------------------------------------------------------------------------------------


def _quote_keys(keys: str) -> list[str]:
    wanted = list(dict.fromkeys(key.strip() for key in keys.split(",") if key.strip()))
    if not wanted:
        raise ApiProblem(422, "VALIDATION", "name at least one instrument key",
                         fields=[FieldProblem(field="query.keys", reason="no instrument key given")])
    if len(wanted) > MAX_QUOTE_KEYS:
        raise ApiProblem(422, "VALIDATION", f"at most {MAX_QUOTE_KEYS} keys per request, got {len(wanted)}",
                         fields=[FieldProblem(field="query.keys", reason=f"more than {MAX_QUOTE_KEYS} keys")])
    return wanted


@router.get(
    "/quotes", summary="Last price and its age for up to 100 instruments",
    responses=error_responses(404, notes={404: "a key the desk does not list (each one named)"}),
)
async def quotes(
    _: Reader,
    context: Context,
    keys: Annotated[str, Query(min_length=1, max_length=MAX_QUOTE_KEYS * 65, description="instrument keys, comma-separated")],
) -> list[Quote]:
    engine = context.engine
    wanted = _quote_keys(keys)
    unknown = [key for key in wanted if key not in engine.instruments]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise ApiProblem(404, "NOT_FOUND", f"the desk lists no instrument {shown}")
    now = engine.clock_ns()
    answer = []
    for key in wanted:
        tick = engine.market_data.last(key)
        if tick is None:
            answer.append(Quote(key=key, last=None, at=None, age_s=None))
        else:
            answer.append(Quote(key=key, last=paise_to_rupees(tick.price), at=ist_time(tick.ts_ns), age_s=max(0, now - tick.ts_ns) / 1e9))
    return answer


# -- positions ---------------------------------------------------------------------------------


@router.get("/positions", summary="Every instrument traded this session: quantity, average price, P&L")
async def positions(_: Reader, context: Context) -> list[PositionOut]:
    portfolio = context.engine.portfolio
    costs = {key: cost for key, _quantity, cost, _realized in portfolio.snapshot_rows()}
    answer = []
    for view in portfolio.views():
        answer.append(PositionOut(
            key=view.instrument_key,
            quantity=view.quantity,
            # From the exact cost, not the view's float.
            average_price=average_price(costs[view.instrument_key], view.quantity),
            last=optional_rupees(view.mark),
            realised_pnl=paise_to_rupees(view.realized),
            unrealised_pnl=paise_to_rupees(view.unrealized),
        ))
    return answer


# -- limits ------------------------------------------------------------------------------------


def _file_text_in_force(path: Path, limits: RiskLimits) -> str | None:
    """The limits file's text when it holds the limits in force (its comments kept); else None."""
    try:
        text = path.read_text(encoding="utf-8")
        same = canonical_json(parse_limits(text, str(path)).document()) == canonical_json(limits.document())
    except (OSError, UnicodeDecodeError, LimitsError):
        return None
    return text if same else None


async def limits_in_force(engine: Engine, path: Path | None) -> LimitsOut:
    """The limits the gate enforces: the desk's file ``path`` as written when it holds them, else the
    normalised document as JSON (what the gate enforces; comments do not survive normalising)."""
    in_force = engine.gate.limits
    version = engine.limits.version
    if path is not None:
        text = await asyncio.to_thread(_file_text_in_force, path, in_force)
        if text is not None:
            return LimitsOut(version=version, source=f"file {path}", document=text)
    origin = f"stored version {version}" if version is not None else "limits not stored as a version"
    return LimitsOut(version=version, source=f"{origin} (normalised, JSON)", document=canonical_json(in_force.document()))


@router.get("/limits", summary="The risk limits in force: their version and document")
async def limits(_: Reader, context: Context) -> LimitsOut:
    return await limits_in_force(context.engine, context.desk.options.limits_path if context.desk is not None else None)


# -- alerts ------------------------------------------------------------------------------------


@router.get("/alerts", summary="The desk's alerts numbered after ``after``, oldest first")
async def alerts(
    _: Reader,
    context: Context,
    after: Annotated[int, Query(ge=0, le=2**62, description="the last seq seen; 0 for all the desk still keeps")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_ALERTS)] = 100,
) -> list[AlertOut]:
    return [
        AlertOut(seq=entry.seq, level=entry.alert.level, component=entry.alert.component,
                 message=entry.alert.message, at=ist_time(entry.alert.ts_ns))
        for entry in context.alerts.since(after, limit)
    ]
