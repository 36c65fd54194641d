"""The kill switch: halt now, cancel every working order at the broker's pace, confirm none is left.

``engage`` is synchronous up to the halt: when it returns, the desk is HALTED and no new order can
pass, whatever happens next. The sweep then runs as a supervised task: the intent is made durable
in the audit chain, every working order is cancelled through the governor's priority lane, and
the broker's order book is read again (with retries) until it shows nothing working. Each order's
outcome is reported. It never flattens: that is ``flatten``, a separate confirmed action.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass, field

from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import AlertLevel
from app.domain.orders import OrderStatus

from .ports import CancelPacer, SweepOps

log = logging.getLogger(__name__)


class CancelOutcome(enum.StrEnum):
    """What became of one order the sweep set out to cancel."""

    CANCELLED = "CANCELLED"
    FILLED = "FILLED"
    ENDED = "ENDED"
    STILL_WORKING = "STILL_WORKING"


@dataclass(frozen=True, slots=True)
class KillSwitchEngaged:
    """Published the moment the switch is engaged: the desk shows the bound from this."""

    reason: str
    actor: str
    source: AuditSource
    working: int
    expected_clear_s: float
    ts_ns: int


@dataclass(slots=True)
class KillSwitchReport:
    """How the sweep went, order by order."""

    reason: str
    actor: str
    source: AuditSource
    engaged_at_ns: int
    halted_in_us: float
    working_at_engage: int
    expected_clear_s: float
    dropped_queued: int = 0
    cancels_sent: int = 0
    cancel_failures: list[str] = field(default_factory=list)
    outcomes: dict[str, CancelOutcome] = field(default_factory=dict)
    reconciles: int = 0
    cleared_in_ms: float | None = None
    working_after: int = 0
    done: bool = False

    def summary(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        return {
            "reason": self.reason,
            "actor": self.actor,
            "source": str(self.source),
            "engaged_at_ns": self.engaged_at_ns,
            "halted_in_us": round(self.halted_in_us, 1),
            "working_at_engage": self.working_at_engage,
            "expected_clear_s": round(self.expected_clear_s, 3),
            "dropped_queued": self.dropped_queued,
            "cancels": self.cancels_sent,
            "cancel_failures": len(self.cancel_failures),
            "outcomes": counts,
            "reconciles": self.reconciles,
            "cleared_in_ms": round(self.cleared_in_ms, 1) if self.cleared_in_ms is not None else None,
            "working_after": self.working_after,
        }


class KillSwitch:
    """Engages the halt and runs the cancel sweep; at most one sweep runs at a time.

    It acts on the desk through ``desk`` and paces itself by ``pacer`` (the rate governor).
    """

    def __init__(self, desk: SweepOps, pacer: CancelPacer, *, reconcile_attempts: int = 20, settle_s: float = 0.05) -> None:
        self._desk = desk
        self._pacer = pacer
        self._reconcile_attempts = reconcile_attempts
        self._settle_s = settle_s
        self.last: KillSwitchReport | None = None
        self._sweep: asyncio.Task[KillSwitchReport] | None = None
        self._again = False

    @property
    def sweeping(self) -> bool:
        return self._sweep is not None and not self._sweep.done()

    def engage(self, reason: str, actor: str, source: AuditSource = AuditSource.OPERATOR) -> KillSwitchReport:
        """HALT synchronously, then start (or extend) the cancel sweep. Returns the live report."""
        desk, pacer = self._desk, self._pacer
        # Counted before the halt, which itself drops every queued place: the report says how many
        # never went out whichever of the two dropped them.
        waiting = pacer.entries_waiting()
        started = time.perf_counter_ns()
        desk.halt(f"kill switch: {reason}", actor, restate=True)
        halted_in_us = (time.perf_counter_ns() - started) / 1_000
        pacer.drop_queued(f"kill switch engaged: {reason}")
        dropped = waiting - pacer.entries_waiting()
        working = desk.working_orders()
        expected = pacer.expected_seconds(len(working)) + pacer.round_trip_s()
        now = desk.clock_ns()
        desk.publish(KillSwitchEngaged(reason, actor, source, len(working), expected, now))
        desk.alert(
            AlertLevel.CRITICAL, "kill_switch",
            f"kill switch engaged by {actor}: {reason}; cancelling {len(working)} working orders, expected clear in {expected:.1f} s",
        )
        if self.sweeping and self.last is not None:
            # A second press while sweeping: the running sweep picks up whatever is working now.
            self._again = True
            self.last.dropped_queued += dropped
            desk.record(AuditEventType.KILL_SWITCH_ENGAGED, {"reason": reason, "working": len(working), "repeat": True}, actor, source)
            return self.last
        report = KillSwitchReport(reason, actor, source, now, halted_in_us, len(working), expected, dropped_queued=dropped)
        self.last = report
        engaged = {o.client_order_id for o in working}
        self._sweep = desk.spawn("kill_switch.sweep", self._run(report, started, engaged))
        return report

    async def wait(self) -> KillSwitchReport | None:
        """The report once the current sweep (if any) has finished."""
        if self._sweep is not None:
            await asyncio.wait({self._sweep})
        return self.last

    async def _run(self, report: KillSwitchReport, started_ns: int, engaged: set[str]) -> KillSwitchReport:
        desk = self._desk
        await desk.durable_or_log(
            AuditEventType.KILL_SWITCH_ENGAGED,
            {"reason": report.reason, "working": report.working_at_engage, "expected_clear_s": round(report.expected_clear_s, 3),
             "halted_in_us": round(report.halted_in_us, 1)},
            report.actor, report.source,
        )
        attempted: set[str] = set()
        # Engaged during the start (a panic while it reads the broker's book): the orders it restores
        # and adopts are only known once it is over, and a desk that did not start cancels nothing.
        attempts = self._reconcile_attempts if await desk.wait_started() else 0
        for attempt in range(attempts):
            self._again = False
            targets = [o for o in desk.working_orders() if o.client_order_id not in attempted or not o.cancel_requested]
            if targets:
                attempted.update(o.client_order_id for o in targets)
                results = await asyncio.gather(*(
                    desk.cancel(o.client_order_id, actor=report.actor, source=report.source) for o in targets
                ))
                for result in results:
                    if result.ok:
                        report.cancels_sent += 1
                    else:
                        report.cancel_failures.append(f"{result.client_order_id}: {result.message}")
            await asyncio.sleep(self._settle_s * (1 + attempt))
            try:
                broker_working = await desk.reconcile_working()
                report.reconciles += 1
            except Exception as exc:  # noqa: BLE001 - keep trying: the sweep must not give up on one bad read
                log.error("kill switch: reading the broker's order book failed (%s); retrying", exc)
                continue
            if broker_working == 0 and not desk.working_orders() and not self._again:
                report.cleared_in_ms = (time.perf_counter_ns() - started_ns) / 1e6
                break
        # Every order working at the press gets an outcome, also one that filled or was cancelled
        # before the sweep reached it (it was never attempted).
        for client_id in attempted | engaged:
            order = desk.order(client_id)
            if order is None:
                continue
            report.outcomes[client_id] = _outcome(order.status)
        report.working_after = len(desk.working_orders())
        report.done = True
        if report.working_after:
            desk.alert(
                AlertLevel.CRITICAL, "kill_switch",
                f"kill switch: {report.working_after} orders still working after the sweep; cancel them at the broker",
            )
        desk.record(AuditEventType.CANCEL_SWEEP_DONE, report.summary(), report.actor, report.source)
        desk.publish(report)
        log.warning("kill switch sweep done: %s", report.summary())
        return report


def _outcome(status: OrderStatus) -> CancelOutcome:
    if status is OrderStatus.CANCELLED:
        return CancelOutcome.CANCELLED
    if status is OrderStatus.FILLED:
        return CancelOutcome.FILLED
    if status.is_working:
        return CancelOutcome.STILL_WORKING
    return CancelOutcome.ENDED
