"""The kill switch alone, against an in-memory desk behind its ports (fake_desk.py).

What the real engine and paper broker do with it is test_kill_switch.py's; here each rule of the
switch is pinned where nothing else can blur it: the order of its first steps, the bound it
announces, its retries, a second press, and what it reports when the broker does not clear.
"""

from __future__ import annotations

from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import AlertLevel
from app.domain.orders import OrderStatus
from app.domain.trading_state import TradingState
from app.engine.risk.kill_switch import (
    CancelOutcome,
    KillSwitch,
    KillSwitchEngaged,
    KillSwitchReport,
)
from tests.engine.risk.fake_desk import NOW_NS, FakeDesk, resting
from tests.support.virtual_time import on_virtual_time


def switch(desk: FakeDesk, attempts: int = 5) -> KillSwitch:
    return KillSwitch(desk, desk, reconcile_attempts=attempts, settle_s=0.01)


@on_virtual_time
async def test_engage_halts_before_anything_else_and_announces_the_bound() -> None:
    desk = FakeDesk([resting("A"), resting("B"), resting("C")])
    desk.queued = 2
    report = switch(desk).engage("too fast", "rita", AuditSource.PANIC)
    # Synchronous up to the halt: nothing was cancelled yet, the sweep is only spawned.
    assert desk.state is TradingState.HALTED
    assert desk.calls == ["halt", "drop_queued", "publish KillSwitchEngaged", "spawn kill_switch.sweep"]
    assert desk.halts == [("kill switch: too fast", "rita", True)]
    assert report.dropped_queued == 2 and report.working_at_engage == 3
    # Three cancels at the pacer's spacing, plus one round trip.
    assert report.expected_clear_s == 3 * 0.1 + 0.02
    assert desk.published == [KillSwitchEngaged("too fast", "rita", AuditSource.PANIC, 3, report.expected_clear_s, NOW_NS)]
    [(level, component, message)] = desk.alerts
    assert level is AlertLevel.CRITICAL and component == "kill_switch"
    assert "cancelling 3 working orders, expected clear in 0.3 s" in message
    assert report.halted_in_us >= 0 and not report.done


@on_virtual_time
async def test_the_sweep_records_its_intent_first_cancels_everything_and_reports_last() -> None:
    desk = FakeDesk([resting("A"), resting("B")])
    kill = switch(desk)
    report = kill.engage("stop", "rita")
    assert await kill.wait() is report and report.done and not kill.sweeping
    sweep = desk.calls[desk.calls.index("spawn kill_switch.sweep") + 1:]
    assert sweep == [
        f"durable {AuditEventType.KILL_SWITCH_ENGAGED}", "cancel A", "cancel B", "read_book",
        f"record {AuditEventType.CANCEL_SWEEP_DONE}", "publish KillSwitchReport",
    ]
    assert report.cancels_sent == 2 and report.reconciles == 1 and report.working_after == 0
    assert report.outcomes == {"A": CancelOutcome.CANCELLED, "B": CancelOutcome.CANCELLED}
    assert report.cleared_in_ms is not None
    assert desk.published[-1] is report
    done = [payload for event, payload, _, _ in desk.records if event is AuditEventType.CANCEL_SWEEP_DONE]
    assert done == [report.summary()]


@on_virtual_time
async def test_a_failed_read_of_the_book_is_retried_not_the_end_of_the_sweep() -> None:
    desk = FakeDesk([resting("A")])
    desk.book_failures = 2
    kill = switch(desk)
    report = kill.engage("stop", "rita")
    await kill.wait()
    assert desk.calls.count("read_book") == 3 and report.reconciles == 1
    # The cancel went out once: the order's cancel was already requested on the later rounds.
    assert desk.calls.count("cancel A") == 1
    assert report.working_after == 0 and report.cleared_in_ms is not None


@on_virtual_time
async def test_what_the_broker_will_not_cancel_is_reported_still_working_and_alerted() -> None:
    desk = FakeDesk([resting("A"), resting("B"), resting("C")])
    desk.never_cancels = {"B"}
    desk.refuses_cancel = {"C": "order is locked"}
    kill = switch(desk, attempts=3)
    report = kill.engage("stop", "rita")
    await kill.wait()
    assert report.reconciles == 3 and report.cleared_in_ms is None
    assert report.outcomes == {"A": CancelOutcome.CANCELLED, "B": CancelOutcome.STILL_WORKING, "C": CancelOutcome.STILL_WORKING}
    assert report.working_after == 2 and report.cancels_sent == 2
    # A refused cancel is tried again each round; one the broker took is not sent twice.
    assert desk.calls.count("cancel B") == 1 and desk.calls.count("cancel C") == 3
    assert report.cancel_failures == ["C: order is locked"] * 3
    assert (AlertLevel.CRITICAL, "kill_switch",
            "kill switch: 2 orders still working after the sweep; cancel them at the broker") in desk.alerts


@on_virtual_time
async def test_an_order_that_ended_before_the_sweep_reached_it_still_has_its_outcome() -> None:
    desk = FakeDesk([resting("A"), resting("B")])
    kill = switch(desk)
    report = kill.engage("stop", "rita")
    desk.orders["A"].status = OrderStatus.FILLED
    desk.orders["B"].status = OrderStatus.REJECTED
    await kill.wait()
    assert "cancel A" not in desk.calls and "cancel B" not in desk.calls
    assert report.outcomes == {"A": CancelOutcome.FILLED, "B": CancelOutcome.ENDED}


@on_virtual_time
async def test_a_second_press_while_sweeping_extends_the_running_sweep() -> None:
    desk = FakeDesk([resting("A")])
    kill = switch(desk)
    first = kill.engage("stop", "rita")
    desk.queued = 4
    # An order that went working after the first press (a restored or adopted one, say).
    desk.orders["B"] = resting("B")
    second = kill.engage("really stop", "ops", AuditSource.PANIC)
    assert second is first and first.dropped_queued == 4
    assert desk.calls.count("spawn kill_switch.sweep") == 1
    assert desk.halts[-1] == ("kill switch: really stop", "ops", True)
    repeat = [p for e, p, _, _ in desk.records if e is AuditEventType.KILL_SWITCH_ENGAGED and p.get("repeat")]
    assert repeat == [{"reason": "really stop", "working": 2, "repeat": True}]
    await kill.wait()
    assert first.outcomes == {"A": CancelOutcome.CANCELLED, "B": CancelOutcome.CANCELLED} and first.working_after == 0


@on_virtual_time
async def test_a_desk_that_did_not_start_cancels_nothing_and_says_so() -> None:
    desk = FakeDesk([resting("A")])
    desk.started = False
    kill = switch(desk)
    report = kill.engage("stop", "rita")
    assert isinstance(await kill.wait(), KillSwitchReport)
    assert "cancel A" not in desk.calls and "read_book" not in desk.calls
    assert report.done and report.outcomes == {"A": CancelOutcome.STILL_WORKING} and report.working_after == 1
    assert any(level is AlertLevel.CRITICAL and "1 orders still working" in message for level, _, message in desk.alerts)


async def test_no_sweep_no_report() -> None:
    kill = switch(FakeDesk())
    assert not kill.sweeping
    assert await kill.wait() is None
