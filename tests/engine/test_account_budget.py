"""A desk's share of a broker account: the governor of each desk on ``slots`` keeps them all inside the account's limits."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from app.brokers.account import (
    account_of,
    breeze_account,
    paper_account,
    private_account,
)
from app.brokers.base import BREEZE_RATE_LIMITS, RateLimits
from app.brokers.breeze.broker import BreezeBroker, BreezeConfig, BreezeCredentials
from app.brokers.breeze.master import SecurityMaster
from app.brokers.paper import PaperBroker, PaperConfig
from app.domain.india_time import ist_day
from app.domain.instruments import Instrument
from app.engine.budget import AccountShare, share_config, share_limits
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.engine.governor import (
    COUNT_CALLS,
    COUNT_ORDER_ACTIONS,
    CallKind,
    Governor,
    GovernorConfig,
    Schedule,
)
from tests.support.broker_budget import (
    SECOND_NS,
    BrokerCall,
    budget_violations,
    busiest,
)

API_KEY = "Xk29#mQ7-test-api-key-4f8a1c"
# 2026-11-20 10:00 IST, fixed so no test straddles a midnight.
WALL_NS = 1_795_152_600 * 1_000_000_000


def test_each_limit_is_divided_by_the_slots_rounded_down_and_never_to_nothing() -> None:
    assert share_limits(BREEZE_RATE_LIMITS, 1) == BREEZE_RATE_LIMITS
    assert share_limits(BREEZE_RATE_LIMITS, 2) == RateLimits(5, 50, 2500)
    assert share_limits(BREEZE_RATE_LIMITS, 3) == RateLimits(3, 33, 1666)
    assert share_limits(BREEZE_RATE_LIMITS, 4) == RateLimits(2, 25, 1250)
    assert share_limits(BREEZE_RATE_LIMITS, 10) == RateLimits(1, 10, 500)
    assert share_limits(RateLimits(3, 20, 100), 5) == RateLimits(1, 4, 20)


@pytest.mark.parametrize("slots", range(1, 11))
def test_every_share_leaves_places_room_and_keeps_cancels_a_reserve_where_there_is_room(slots: int) -> None:
    config = GovernorConfig()
    limits = share_limits(BREEZE_RATE_LIMITS, slots)
    shared = share_config(config, BREEZE_RATE_LIMITS, slots)
    schedule = Schedule(limits, shared)
    assert schedule.entry_actions >= 1
    if limits.order_actions_per_second >= 2:
        assert shared.action_reserve >= 1
    assert shared.action_reserve <= config.action_reserve
    assert (shared.call_reserve, shared.max_wait, shared.margin) == (config.call_reserve, config.max_wait, config.margin)


def flood(schedules: list[Schedule], seconds: float, step: float = 0.01) -> list[list[BrokerCall]]:
    """Every desk asks for far more than its share, at the same instants: a place every step (100/s), a cancel
    every fifth (20/s) and a read every tenth. Returns what each desk's governor released, in nanoseconds."""
    released: list[list[BrokerCall]] = [[] for _ in schedules]
    for tick in range(int(seconds / step)):
        now = tick * step
        for schedule, out in zip(schedules, released, strict=True):
            schedule.submit(CallKind.PLACE, now)
            if tick % 5 == 0:
                schedule.submit(CallKind.CANCEL, now)
            if tick % 10 == 0:
                schedule.submit(CallKind.READ, now)
            for ticket in schedule.pump(now):
                if ticket.released is not None:
                    out.append(BrokerCall(round(ticket.released * 1e9), ticket.kind.is_action, str(ticket.kind)))
    return released


def test_a_governor_for_one_of_two_slots_releases_at_most_half_the_account() -> None:
    limits = share_limits(BREEZE_RATE_LIMITS, 2)
    [alone] = flood([Schedule(limits, share_config(GovernorConfig(), BREEZE_RATE_LIMITS, 2))], 130)
    assert budget_violations(alone, limits) == []
    # It does use its half: the flood fills its second and its minute.
    assert busiest([c.ns for c in alone if c.action], SECOND_NS)[0] == 5
    assert busiest([c.ns for c in alone], 60 * SECOND_NS)[0] == 50


@pytest.mark.parametrize("slots", [2, 4])
def test_desks_on_every_slot_together_stay_inside_the_account(slots: int) -> None:
    limits = share_limits(BREEZE_RATE_LIMITS, slots)
    config = share_config(GovernorConfig(), BREEZE_RATE_LIMITS, slots)
    desks = flood([Schedule(limits, config) for _ in range(slots)], 130)
    merged = sorted(call for desk in desks for call in desk)
    assert budget_violations(merged, BREEZE_RATE_LIMITS) == []
    # Together they come close to the account's limits, so the shares are not wasted.
    assert busiest([c.ns for c in merged if c.action], SECOND_NS)[0] >= slots * limits.order_actions_per_second
    assert busiest([c.ns for c in merged], 60 * SECOND_NS)[0] >= slots * limits.calls_per_minute


def test_the_budget_checker_sees_one_call_too_many_in_any_sliding_window() -> None:
    limits = RateLimits(2, 3, 10)
    ok = [BrokerCall(0, True), BrokerCall(999_999_999, True), BrokerCall(1_000_000_000, True), BrokerCall(61 * SECOND_NS, False)]
    assert budget_violations(ok, limits) == []
    # 3 actions within 1 s (not at the window's start), and 4 calls within 60 s.
    bad = [BrokerCall(0, False), BrokerCall(500_000_000, True), BrokerCall(900_000_000, True), BrokerCall(1_400_000_000, True)]
    problems = budget_violations(bad, limits)
    assert len(problems) == 2
    assert problems[0].startswith("3 order actions within 1 s from 500000000 ns")
    assert problems[1].startswith("4 calls within 60 s")


def test_the_engine_runs_its_governor_on_its_share_charged_with_the_days_absent_calls(instruments: dict[str, Instrument]) -> None:
    today = ist_day(WALL_NS).isoformat()
    share = AccountShare(paper_account("pool"), slots=4, day=today, charged_calls=300)
    broker = PaperBroker(PaperConfig(tick_interval_ms=None, account="pool"))
    engine = Engine(broker, instruments.values(), EngineConfig(), clock_ns=lambda: WALL_NS, account_share=share)
    schedule = engine.governor.schedule
    assert schedule.limits == RateLimits(2, 25, 1250)
    assert schedule.config.action_reserve == 1
    assert schedule.day_calls == 300
    assert engine.governor.remaining().day_left == 950
    # What the store holds is the desk's own: the charge comes off, on its day only.
    assert share.with_charge(today, {COUNT_CALLS: 20, COUNT_ORDER_ACTIONS: 5}) == {COUNT_CALLS: 320, COUNT_ORDER_ACTIONS: 5}
    assert share.charge(today, COUNT_CALLS) == 300
    assert share.charge(today, COUNT_ORDER_ACTIONS) == 0
    assert share.charge("2026-11-21", COUNT_CALLS) == 0
    assert share.with_charge("2026-11-21", {}) == {}


def test_without_a_share_the_engine_has_the_whole_account_of_its_own(instruments: dict[str, Instrument]) -> None:
    engine = Engine(PaperBroker(PaperConfig(tick_interval_ms=None)), instruments.values(), desk_id="ABCDEF")
    assert engine.account_share == AccountShare(private_account("ABCDEF"))
    assert engine.governor.schedule.limits == BREEZE_RATE_LIMITS
    assert engine.governor.schedule.config == GovernorConfig()


def test_the_breeze_account_is_a_stable_fingerprint_that_never_shows_the_key(tmp_path: Path) -> None:
    account = breeze_account(API_KEY)
    assert account == breeze_account(API_KEY) == breeze_account(f"  {API_KEY}\n")
    assert account.startswith("breeze:") and len(account) == len("breeze:") + 16
    int(account.removeprefix("breeze:"), 16)
    for start in range(len(API_KEY) - 3):
        assert API_KEY[start:start + 4] not in account
    assert breeze_account(API_KEY + "x") != account
    # One digest, pinned: a change of label or length would split every firm's existing account rows.
    pinned = hashlib.sha256(b"bulwark broker account v1: breeze api key\x00" + API_KEY.encode()).hexdigest()[:16]
    assert account == "breeze:" + pinned
    broker = BreezeBroker(BreezeConfig(cache_dir=tmp_path), BreezeCredentials(API_KEY, "secret-value"), SecurityMaster(), [])
    capabilities = broker.capabilities
    assert capabilities.account == account
    assert API_KEY not in repr(capabilities)
    assert account_of(capabilities.account, "ABCDEF") == account


def test_paper_accounts_are_private_unless_named_and_names_are_checked() -> None:
    assert PaperBroker(PaperConfig(tick_interval_ms=None)).capabilities.account is None
    named = PaperBroker(PaperConfig(tick_interval_ms=None, account="pool")).capabilities.account
    assert named == paper_account("pool") != paper_account("pool2")
    assert named is not None and named.startswith("paper:")
    assert account_of(None, "ABCDEF") != account_of(None, "GHIJKL")
    assert account_of(None, "ABCDEF") != breeze_account("ABCDEF")
    for bad in ("", "has space", "x" * 33, "-leading"):
        with pytest.raises(ValueError, match="paper account name"):
            PaperConfig(account=bad)


def test_actions_released_apart_but_going_together_are_spaced_again_before_they_go() -> None:
    schedule = Schedule(share_limits(BREEZE_RATE_LIMITS, 2), GovernorConfig())
    # Two places released a spacing apart whose durable records committed together, at 0.5 s.
    assert schedule.go_at(0.5) == 0.5
    assert schedule.go_at(0.5) == pytest.approx(0.71)
    assert schedule.go_at(0.6) == pytest.approx(0.92)
    # Once they have gone, the next goes when it comes.
    assert schedule.go_at(5.0) == 5.0


async def test_the_governor_holds_an_action_until_its_spacing_after_the_last_that_went() -> None:
    loop = asyncio.get_running_loop()
    governor = Governor(share_limits(BREEZE_RATE_LIMITS, 2))
    spacing = governor.schedule.spacing
    await governor.acquire(CallKind.PLACE)
    await governor.acquire(CallKind.PLACE)
    gone: list[float] = []

    async def go() -> None:
        await governor.going()
        gone.append(loop.time())

    await asyncio.gather(go(), go())
    # asyncio's timers may fire up to the clock's resolution early, never later than asked by design: a bound below.
    assert gone[1] - gone[0] >= spacing - 0.002
    # A cancel goes through the same gate inside acquire.
    await governor.acquire(CallKind.CANCEL)
    assert loop.time() - gone[1] >= spacing - 0.002
