"""Checking that desks sharing a broker account stayed inside its limits, from what the broker saw.

Each paper desk run with ``paper.call_log`` (``BULWARK_PAPER__CALL_LOG=true``) appends one JSON line
per call its "exchange" accepted to ``<home>/paper-calls.jsonl``: ``{"call", "action", "ns"}``, ``ns``
from the machine's wall clock, so the logs of desks on one machine merge into one timeline.
``budget_violations`` checks that timeline against the account's limits over every sliding window,
as the broker counts them: a call exactly one window after another no longer shares its window.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.brokers.base import RateLimits

SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS


@dataclass(frozen=True, slots=True, order=True)
class BrokerCall:
    """One call the broker accepted: when (epoch ns), whether it was an order action, what it was."""

    ns: int
    action: bool
    call: str = ""


def read_call_logs(paths: Iterable[Path]) -> list[BrokerCall]:
    """Every call in the desks' call logs, merged in time order."""
    calls: list[BrokerCall] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                calls.append(BrokerCall(int(entry["ns"]), bool(entry["action"]), str(entry["call"])))
    return sorted(calls)


def busiest(stamps: Sequence[int], width_ns: int) -> tuple[int, int]:
    """The most stamps (sorted) within any window ``width_ns`` wide, and where the first such window starts."""
    most, start, first = 0, 0, 0
    for last, stamp in enumerate(stamps):
        while stamps[first] + width_ns <= stamp:
            first += 1
        if last - first + 1 > most:
            most, start = last - first + 1, stamps[first]
    return most, start


def budget_violations(calls: Sequence[BrokerCall], limits: RateLimits) -> list[str]:
    """How the calls broke the limits (empty: they never did): order actions in any sliding second, calls in
    any sliding minute, calls in all (the logs are expected to cover one IST day)."""
    problems: list[str] = []
    actions = sorted(call.ns for call in calls if call.action)
    everything = sorted(call.ns for call in calls)
    most, start = busiest(actions, SECOND_NS)
    if most > limits.order_actions_per_second:
        problems.append(f"{most} order actions within 1 s from {start} ns (limit {limits.order_actions_per_second})")
    most, start = busiest(everything, MINUTE_NS)
    if most > limits.calls_per_minute:
        problems.append(f"{most} calls within 60 s from {start} ns (limit {limits.calls_per_minute})")
    if len(everything) > limits.calls_per_day:
        problems.append(f"{len(everything)} calls in the logs (day limit {limits.calls_per_day})")
    return problems
