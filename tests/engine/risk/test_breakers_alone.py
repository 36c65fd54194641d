"""The breakers alone: the pure check over one readings snapshot, the warning ladder, and the thin
watchdog that hands a trip to the desk. On the real engine they are test_kill_switch.py's."""

from __future__ import annotations

import dataclasses

import pytest

from app.domain.events import AlertLevel
from app.engine.risk.breakers import (
    Breaker,
    BreakerReadings,
    Breakers,
    BreakerTripped,
    ErrorWindow,
    PriceReading,
    Trip,
    WarningLadder,
    first_trip,
)
from app.engine.risk.limits import BreakerLimits
from tests.engine.risk.fake_desk import NOW_NS, RELIANCE
from tests.support.limits import wide_limits

S = 1_000_000_000
DESK = dataclasses.replace(
    wide_limits([RELIANCE]).desk,
    daily_loss_limit=100_00, trailing_loss_limit=50_00, max_gross_exposure=1_000_00, max_net_exposure=500_00,
    max_orders_per_day=100, max_open_orders=10,
)
NO_TRAILING = dataclasses.replace(DESK, trailing_loss_limit=None)
LIMITS = BreakerLimits(broker_disconnect_seconds=5.0, stale_data_seconds=2.0, error_storm_count=3, error_storm_seconds=10.0,
                       warn_fractions=(0.8, 0.9))
CALM = BreakerReadings(
    now_ns=NOW_NS, desk=DESK, limits=LIMITS, halted=False, pnl=0, peak_pnl=0, broker_down_since_ns=None,
    started_ns=NOW_NS - 60 * S, prices=(PriceReading("NSE:RELIANCE", True, NOW_NS - S),), recent_errors=0,
    gross_exposure=0, net_exposure=0, orders_today=0, open_orders=0,
)


def reading(**changes: object) -> BreakerReadings:
    return dataclasses.replace(CALM, **changes)  # type: ignore[arg-type]


def test_calm_readings_trip_nothing() -> None:
    assert first_trip(CALM) is None


@pytest.mark.parametrize(
    ("changes", "trip"),
    [
        ({"pnl": -100_00}, Trip(Breaker.DAILY_LOSS, "today's loss reached the daily loss limit", "-₹100.00", "-₹100.00")),
        # Up ₹30 at the peak, down ₹20 now: ₹50 from the peak is the trailing limit.
        ({"peak_pnl": 30_00, "pnl": -20_00},
         Trip(Breaker.TRAILING_LOSS, "today's P&L fell from its peak by the trailing loss limit", "-₹50.00", "-₹50.00")),
        ({"broker_down_since_ns": NOW_NS - 5 * S - 1},
         Trip(Breaker.BROKER_DISCONNECTED, "broker disconnected for 5.0 s", "5.0 s", "5 s")),
        ({"prices": (PriceReading("NSE:RELIANCE", True, NOW_NS - 2 * S - 1),)},
         Trip(Breaker.STALE_MARKET_DATA, "no price for NSE:RELIANCE in 2.0 s", "2.0 s", "2 s")),
        ({"recent_errors": 3}, Trip(Breaker.ERROR_STORM, "3 broker errors in 10 s", "3", "3")),
    ],
)
def test_each_breaker_trips_at_its_limit(changes: dict[str, object], trip: Trip) -> None:
    assert first_trip(reading(**changes)) == trip


@pytest.mark.parametrize(
    "changes",
    [
        {"pnl": -100_00 + 1, "desk": NO_TRAILING},
        {"peak_pnl": 30_00, "pnl": -20_00 + 1},
        {"broker_down_since_ns": NOW_NS - 5 * S},
        {"prices": (PriceReading("NSE:RELIANCE", True, NOW_NS - 2 * S),)},
        {"recent_errors": 2},
    ],
)
def test_just_inside_each_limit_nothing_trips(changes: dict[str, object]) -> None:
    assert first_trip(reading(**changes)) is None


def test_no_trailing_limit_no_trailing_trip() -> None:
    assert first_trip(reading(desk=NO_TRAILING, peak_pnl=90_00, pnl=-90_00)) is None


def test_the_loss_is_named_before_the_fault_that_may_have_caused_it() -> None:
    everything = reading(pnl=-200_00, broker_down_since_ns=NOW_NS - 60 * S, recent_errors=50,
                         prices=(PriceReading("NSE:RELIANCE", True, NOW_NS - 60 * S),))
    trip = first_trip(everything)
    assert trip is not None and trip.breaker is Breaker.DAILY_LOSS
    trip = first_trip(dataclasses.replace(everything, pnl=0))
    assert trip is not None and trip.breaker is Breaker.BROKER_DISCONNECTED


def test_silence_outside_the_session_is_not_stale() -> None:
    assert first_trip(reading(prices=(PriceReading("NSE:RELIANCE", False, NOW_NS - 3_600 * S),))) is None


def test_a_price_never_seen_is_stale_once_the_grace_from_start_is_over() -> None:
    never = (PriceReading("NSE:RELIANCE", True, None),)
    assert first_trip(reading(prices=never, started_ns=NOW_NS - 2 * S)) is None
    assert first_trip(reading(prices=never, started_ns=None)) is None
    trip = first_trip(reading(prices=never, started_ns=NOW_NS - 3 * S))
    assert trip == Trip(Breaker.STALE_MARKET_DATA, "no price for NSE:RELIANCE in 3.0 s", "3.0 s", "2 s")


def test_each_warning_is_raised_once_per_level_and_again_the_next_day() -> None:
    ladder = WarningLadder()
    assert ladder.due(reading(open_orders=7)) == []
    assert ladder.due(reading(open_orders=8)) == ["open orders at 80% of its limit (8 of 10)"]
    assert ladder.due(reading(open_orders=8)) == []
    assert ladder.due(reading(open_orders=9, pnl=-85_00)) == [
        "daily loss at 85% of its limit (₹85.00 of ₹100.00)", "open orders at 90% of its limit (9 of 10)",
    ]
    assert ladder.due(reading(open_orders=10, pnl=-85_00)) == []
    assert ladder.due(reading(now_ns=NOW_NS + 86_400 * S, open_orders=9)) == ["open orders at 90% of its limit (9 of 10)"]


def test_a_limit_of_zero_raises_no_warning() -> None:
    desk = dataclasses.replace(DESK, max_open_orders=0)
    assert WarningLadder().due(reading(desk=desk, open_orders=5)) == []


def test_the_error_window_forgets_errors_older_than_asked() -> None:
    window = ErrorWindow()
    for ts in (1, 2, 3, 10):
        window.add(ts)
    assert window.count_since(0) == 4
    assert window.count_since(3) == 2
    assert window.count_since(11) == 0


class FakeBreakerDesk:
    """Implements ``BreakerOps``: hands out the readings it is given and keeps what it is told."""

    def __init__(self, readings: BreakerReadings) -> None:
        self.readings = readings
        self.trips: list[BreakerTripped] = []
        self.alerts: list[tuple[AlertLevel, str, str]] = []

    def clock_ns(self) -> int:
        return NOW_NS + 7

    def breaker_readings(self) -> BreakerReadings:
        return self.readings

    def breaker_tripped(self, event: BreakerTripped) -> None:
        self.trips.append(event)
        self.readings = dataclasses.replace(self.readings, halted=True)

    def alert(self, level: AlertLevel, component: str, message: str) -> None:
        self.alerts.append((level, component, message))


def test_the_watchdog_hands_a_trip_to_the_desk_once_then_only_warns() -> None:
    desk = FakeBreakerDesk(reading(pnl=-100_00))
    breakers = Breakers(desk)
    breakers.check()
    tripped = BreakerTripped(Breaker.DAILY_LOSS, "today's loss reached the daily loss limit", "-₹100.00", "-₹100.00", NOW_NS + 7)
    assert desk.trips == [tripped] and breakers.tripped == [tripped]
    assert desk.alerts == [(AlertLevel.WARNING, "limits", "daily loss at 100% of its limit (₹100.00 of ₹100.00)")]
    # The desk is HALTED now: the loss is still there, but the switch is not engaged again.
    breakers.check()
    assert len(desk.trips) == 1 and len(desk.alerts) == 1


def test_a_trip_from_outside_the_watchdog_reaches_the_desk() -> None:
    desk = FakeBreakerDesk(CALM)
    Breakers(desk).trip(Breaker.TASK_CRASHED, "engine task strategy crashed: RuntimeError: bug", "RuntimeError", "no crash")
    assert desk.trips == [BreakerTripped(Breaker.TASK_CRASHED, "engine task strategy crashed: RuntimeError: bug",
                                         "RuntimeError", "no crash", NOW_NS + 7)]
