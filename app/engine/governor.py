"""The rate governor: every broker call waits here for a slot the broker's limits allow.

Breeze allows 10 order actions per second (place, modify and cancel together), 100 calls per
minute and 5,000 per day, and has no bulk cancel. The governor shapes traffic from the broker's
declared ``RateLimits`` so the broker never has to refuse a call, and so a kill switch can spend
almost the whole action rate on cancels:

* **Spacing, not buckets.** Order actions are released at least ``(1 + margin) / cap`` seconds
  apart. Spacing alone keeps every 1-second window, sliding or fixed, at or under the cap, and it
  can never burst. The margin absorbs jitter between our release and the broker's receipt: at
  10/s, 5 % lets the calls of one window arrive 50 ms closer together than we sent them (2 %,
  20 ms, was not enough on a loaded machine even against a local emulator: one cancel of a
  50-order sweep arrived early and was refused).
* **Headroom for cancels.** Places and modifies fill each window only up to a line below the
  limit: ``cap - action_reserve`` actions in the trailing second, ``(1 - call_reserve)`` of the
  calls in the trailing minute and of the IST day. The line counts *every* call in the window,
  not only places, which is the stricter reading of "places may use at most X" and needs no
  per-kind day counter. What lies above the line only cancels (and, for calls, reads) can use,
  so a kill switch always finds room to cancel and then to reconcile with the order book.
* **Strict priority.** Cancels first, then reads, then places and modifies; FIFO within each. A
  place never goes while a cancel or a read waits (its limits include theirs), and a read goes
  while cancels wait only if the minute and day windows still hold every waiting cancel. A
  cancel therefore takes the very next action slot, and a stream of cancels runs at
  ``cap / (1 + margin)``: 95 % of the cap.
* **Excess.** A place or modify that could not be released within ``max_wait`` seconds, or
  finds ``max_queue`` others waiting, raises ``Throttled`` naming the limit and the wait. It is
  refused at once when its wait is already known to be too long, else when its deadline passes.
  Cancels and reads are never refused, only queued (past the day cap: until IST midnight).
* **Going.** A release is not the call: a place or modify then waits for its durable audit record,
  and a busy loop resumes any caller late, so actions released a spacing apart can reach the broker
  together. Each order action therefore passes one more gate just before its call (``going``; cancels
  inside ``acquire``), which spaces the sends themselves; the windows still count releases.
* **Windows.** The minute window is ``60 * (1 + margin)`` seconds long for the same jitter reason;
  the day is the IST calendar day, and its counts come from the store so a restart within the
  day resumes them. The minute window is not persisted: it restarts empty.

``Schedule`` is the pure core (given the history and ``now``: who goes, who is refused, when to
look again), with no asyncio so it can be checked exhaustively. ``Governor`` wraps it for the
event loop with one timer for the next moment anything could change, never a task per waiter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.brokers.base import RateLimits
from app.domain.india_time import IST_OFFSET_S, day_from_number, ist_day_number

COUNT_CALLS = "calls"
COUNT_ORDER_ACTIONS = "order_actions"

_SECOND = 1.0
_MINUTE = 60.0
_SECONDS_PER_DAY = 86_400


class CallKind(enum.StrEnum):
    """What a broker call is, as the limits see it. Place, modify and cancel are order actions."""

    PLACE = "place"
    MODIFY = "modify"
    CANCEL = "cancel"
    READ = "read"

    @property
    def is_action(self) -> bool:
        return self is not CallKind.READ

    @property
    def is_entry(self) -> bool:
        """Place or modify: the calls that may be refused and that stay below the headroom line."""
        return self is CallKind.PLACE or self is CallKind.MODIFY


class Throttled(Exception):
    """A place or modify the governor will not send. ``limit`` names what held it; ``wait`` is the
    wait it would have faced in seconds (``inf`` past the day's share, ``None`` when not known)."""

    def __init__(self, limit: str, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.wait = wait


@dataclass(frozen=True, slots=True)
class GovernorConfig:
    """How the governor divides the broker's limits. See the module docstring for each knob's role."""

    action_reserve: int = 2
    call_reserve: float = 0.2
    max_wait: float = 2.0
    max_queue: int = 1000
    margin: float = 0.05

    def __post_init__(self) -> None:
        if self.action_reserve < 0:
            raise ValueError(f"GovernorConfig.action_reserve must not be negative, got {self.action_reserve}")
        if not 0.0 <= self.call_reserve < 1.0:
            raise ValueError(f"GovernorConfig.call_reserve must be within [0, 1), got {self.call_reserve}")
        if not self.max_wait >= 0.0:
            raise ValueError(f"GovernorConfig.max_wait must not be negative, got {self.max_wait}")
        if self.max_queue < 1:
            raise ValueError(f"GovernorConfig.max_queue must be at least 1, got {self.max_queue}")
        if not 0.0 < self.margin <= 0.5:
            # Without any margin, float rounding or network jitter puts cap + 1 actions into one
            # of the broker's windows, and the broker refuses the last.
            raise ValueError(f"GovernorConfig.margin must be within (0, 0.5], got {self.margin}")


@dataclass(frozen=True, slots=True)
class GovernorStats:
    """What the governor has done so far: releases per kind, refusals, and the longest wait released."""

    released: Mapping[CallKind, int]
    throttled: int
    dropped: int
    max_wait: float


@dataclass(frozen=True, slots=True)
class RateBudget:
    """What is left of each broker limit at an instant, next to the limit: order actions in the
    trailing second, calls in the trailing minute window and calls in the IST day. Never negative."""

    actions_left: int
    actions_per_second: int
    minute_left: int
    calls_per_minute: int
    day_left: int
    calls_per_day: int


@dataclass(eq=False, slots=True)
class Ticket:
    """One call waiting for its slot. Settled when ``released`` (a time) or ``error`` is set."""

    kind: CallKind
    arrived: float
    deadline: float
    calls: int = 1
    released: float | None = None
    error: Throttled | None = None


def _share(fraction: float, limit: int) -> int:
    # The epsilon keeps 0.8 * 100 at 80 whatever the binary rounding of 0.8 does.
    return math.floor(fraction * limit + 1e-9)


def _younger(log: deque[float], width: float, now: float) -> int:
    """How many stamps of ``log`` (oldest first) still count in a window of ``width`` at ``now``."""
    expired = 0
    for stamp in log:
        if stamp + width > now:
            break
        expired += 1
    return len(log) - expired


def _ready(log: deque[float], limit: int, width: float, now: float) -> float:
    """Earliest time from ``now`` at which ``log`` (pruned at ``now``) holds at most ``limit - 1``
    stamps younger than ``width``, so one more call keeps the window at ``limit``."""
    if limit <= 0:
        return math.inf
    excess = len(log) - limit + 1
    return now if excess <= 0 else max(now, log[excess - 1] + width)


class Schedule:
    """The pure scheduling core: what may go at ``now`` given what went before. No clock, no asyncio.

    Callers pass non-decreasing ``now`` values (monotonic seconds). ``submit`` queues a call (or
    refuses a place/modify at once), ``pump`` settles everything that can be settled at ``now``,
    ``next_wakeup`` says when to pump again. Day counts belong to ``day`` (IST day number);
    ``new_day`` starts the next day from zero.
    """

    def __init__(
        self, limits: RateLimits, config: GovernorConfig, *, day: int = 0, day_calls: int = 0, day_actions: int = 0
    ) -> None:
        for name in ("order_actions_per_second", "calls_per_minute", "calls_per_day"):
            if getattr(limits, name) <= 0:
                raise ValueError(f"RateLimits.{name} must be positive, got {getattr(limits, name)}")
        self.limits = limits
        self.config = config
        self.spacing = (1.0 + config.margin) / limits.order_actions_per_second
        self.minute_window = _MINUTE * (1.0 + config.margin)
        self.entry_actions = limits.order_actions_per_second - config.action_reserve
        self.entry_minute = _share(1.0 - config.call_reserve, limits.calls_per_minute)
        self.entry_day = _share(1.0 - config.call_reserve, limits.calls_per_day)
        for name, share in (("order actions per second", self.entry_actions), ("calls per minute", self.entry_minute),
                            ("calls per day", self.entry_day)):
            if share < 1:
                raise ValueError(f"the reserves leave places and modifies no share of {name} ({limits}, {config})")
        self.day = day
        self.day_calls = day_calls
        self.day_actions = day_actions
        self._last_action = -math.inf
        self._last_gone = -math.inf  # when the last order action went to the broker (see go_at)
        self._second: deque[float] = deque()  # order actions of the trailing second
        self._minute: deque[float] = deque()  # calls of the trailing minute window
        self._cancels: deque[Ticket] = deque()
        self._reads: deque[Ticket] = deque()
        self._entries: deque[Ticket] = deque()
        self._released = dict.fromkeys(CallKind, 0)
        self._throttled = 0
        self._dropped = 0
        self._max_wait = 0.0

    # -- state -------------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._cancels) + len(self._reads) + len(self._entries)

    @property
    def entries_waiting(self) -> int:
        """Places and modifies waiting: what a halt drops."""
        return len(self._entries)

    @property
    def stats(self) -> GovernorStats:
        return GovernorStats(dict(self._released), self._throttled, self._dropped, self._max_wait)

    @property
    def cancel_rate(self) -> float:
        """Cancels per second a long run of cancels sustains: the slower of spacing and the minute."""
        return min(1.0 / self.spacing, self.limits.calls_per_minute / self.minute_window)

    def new_day(self, day: int) -> None:
        self.day, self.day_calls, self.day_actions = day, 0, 0

    def remaining(self, now: float) -> RateBudget:
        """What the history leaves of each limit at ``now`` (the cancels' reserve included). Read only:
        a display may ask with a clock a little off the scheduler's without disturbing its windows."""
        limits = self.limits
        return RateBudget(
            max(0, limits.order_actions_per_second - _younger(self._second, _SECOND, now)), limits.order_actions_per_second,
            max(0, limits.calls_per_minute - _younger(self._minute, self.minute_window, now)), limits.calls_per_minute,
            max(0, limits.calls_per_day - self.day_calls), limits.calls_per_day,
        )

    def _prune(self, now: float) -> None:
        # A call made exactly one window ago no longer counts, as at the broker.
        second, minute = self._second, self._minute
        while second and second[0] + _SECOND <= now:
            second.popleft()
        while minute and minute[0] + self.minute_window <= now:
            minute.popleft()

    def earliest(self, kind: CallKind, now: float, ahead: int = 0, calls: int = 1) -> tuple[float, str]:
        """When, from ``now``, history lets a call of ``kind`` go, and the limit that decides it.

        ``ahead`` calls are kept free in the minute and day windows (reads keep room for the
        cancels waiting before them). ``calls`` is what the call really costs at the broker (an SDK
        method that makes two requests costs two). ``inf`` means not today, or not before those
        cancels go.
        """
        self._prune(now)
        limits = self.limits
        if kind.is_entry:
            minute_limit, day_limit = self.entry_minute, self.entry_day
            minute_name = f"the place/modify share of calls per minute ({self.entry_minute} of {limits.calls_per_minute})"
            day_name = f"the place/modify share of calls per day ({self.entry_day} of {limits.calls_per_day})"
        else:
            minute_limit, day_limit = limits.calls_per_minute - ahead, limits.calls_per_day - ahead
            minute_name, day_name = "calls per minute", "calls per day"
        if self.day_calls + calls > day_limit:
            return math.inf, day_name
        when, name = _ready(self._minute, minute_limit - (calls - 1), self.minute_window, now), minute_name
        if kind.is_action:
            spaced = max(now, self._last_action + self.spacing)
            if spaced > when:
                when, name = spaced, "order actions per second"
        if kind.is_entry:
            share = _ready(self._second, self.entry_actions, _SECOND, now)
            if share > when:
                when = share
                name = (f"the place/modify share of order actions per second "
                        f"({self.entry_actions} of {limits.order_actions_per_second})")
        return when, name

    # -- queueing ----------------------------------------------------------------------------------

    def submit(self, kind: CallKind, now: float, calls: int = 1) -> Ticket:
        """Queue a call costing ``calls`` API calls. A place/modify that cannot make it comes back
        settled with ``error`` set."""
        if calls < 1:
            raise ValueError(f"a governed call costs at least one API call, got {calls}")
        if not kind.is_entry:
            ticket = Ticket(kind, now, math.inf, calls)
            (self._cancels if kind is CallKind.CANCEL else self._reads).append(ticket)
            return ticket
        ticket = Ticket(kind, now, now + self.config.max_wait, calls)
        if len(self._entries) >= self.config.max_queue:
            return self._refuse(ticket, Throttled(
                "max_queue",
                f"{kind} throttled: {len(self._entries)} places and modifies already queued (max_queue "
                f"{self.config.max_queue})",
            ))
        when, name = self.earliest(kind, now, calls=calls)
        ahead = len(self._cancels) + len(self._entries)
        # A lower bound for the queue: every action queued before it takes one spaced slot first.
        slots = max(now, self._last_action + self.spacing) + ahead * self.spacing
        if ahead and slots > when:
            when, name = slots, f"order actions per second ({ahead} queued ahead)"
        if when - now > self.config.max_wait:
            return self._refuse(ticket, self._late(kind, name, when - now))
        self._entries.append(ticket)
        return ticket

    def withdraw(self, ticket: Ticket) -> None:
        """Forget a queued call whose caller gave up (it was cancelled); a settled one stays counted."""
        for queue in (self._cancels, self._reads, self._entries):
            if ticket in queue:
                queue.remove(ticket)
                return

    def drop_pending(self, reason: str) -> list[Ticket]:
        """Refuse every queued place and modify now; cancels and reads keep their places."""
        dropped = list(self._entries)
        self._entries.clear()
        for ticket in dropped:
            ticket.error = Throttled("dropped", f"{ticket.kind} dropped before release: {reason}")
        self._dropped += len(dropped)
        return dropped

    def _late(self, kind: CallKind, name: str, wait: float, behind: str = "") -> Throttled:
        if math.isinf(wait):
            message = f"{kind} throttled by {name}: no room left before IST midnight"
        else:
            message = (f"{kind} throttled by {name}: it would wait {wait:.3f} s{behind}, "
                       f"max_wait is {self.config.max_wait} s")
        return Throttled(name, message, wait)

    def _refuse(self, ticket: Ticket, error: Throttled) -> Ticket:
        ticket.error = error
        self._throttled += 1
        return ticket

    # -- releasing ---------------------------------------------------------------------------------

    def pump(self, now: float) -> list[Ticket]:
        """Release everything that may go at ``now``, in priority order, and refuse places and
        modifies past their deadline. Returns the tickets settled, in the order they settled."""
        settled: list[Ticket] = []
        cancels, reads, entries = self._cancels, self._reads, self._entries
        # Places need no "nothing else waits" test: their limits hold every limit of a cancel or
        # a read, and more, so a place is never ready while a cancel or a read is held.
        while True:
            if cancels and self.earliest(CallKind.CANCEL, now, calls=cancels[0].calls)[0] <= now:
                queue = cancels
            elif reads and self.earliest(CallKind.READ, now, len(cancels), reads[0].calls)[0] <= now:
                queue = reads
            elif entries and self.earliest(entries[0].kind, now, calls=entries[0].calls)[0] <= now:
                queue = entries
            else:
                break
            settled.append(self._release(queue.popleft(), now))
        # Deadlines rise along the queue, so only its head can be due; a head refused because of
        # history leaves the next head behind the same limit, so check until one stays.
        while entries:
            head = entries[0]
            when, name = self.earliest(head.kind, now, calls=head.calls)
            if when <= head.deadline and now < head.deadline:
                break
            entries.popleft()
            ahead = f" behind {len(cancels)} cancels and {len(reads)} reads" if cancels or reads else ""
            settled.append(self._refuse(head, self._late(head.kind, name, max(when, now) - head.arrived, ahead)))
        return settled

    def go_at(self, now: float) -> float:
        """Reserve the moment an order action released earlier really goes to the broker: ``now``, or one
        spacing after the action that went before it. Releases are spaced, but a place waits for its
        durable audit record between its release and its call, and a busy loop resumes a caller late:
        two actions released a spacing apart could otherwise reach the broker together."""
        slot = max(now, self._last_gone + self.spacing)
        self._last_gone = slot
        return slot

    def _release(self, ticket: Ticket, now: float) -> Ticket:
        if ticket.kind.is_action:
            self._last_action = now
            self._second.append(now)
            self.day_actions += 1
        self._minute.extend([now] * ticket.calls)
        self.day_calls += ticket.calls
        ticket.released = now
        self._released[ticket.kind] += 1
        self._max_wait = max(self._max_wait, now - ticket.arrived)
        return ticket

    def next_wakeup(self, now: float) -> float:
        """After ``pump(now)``: the next moment a queued call could go or a deadline falls (> now),
        or ``inf`` when nothing waits or what waits must wait for the next IST day."""
        wake = math.inf
        if self._cancels:
            wake = self.earliest(CallKind.CANCEL, now, calls=self._cancels[0].calls)[0]
        if self._reads:
            wake = min(wake, self.earliest(CallKind.READ, now, len(self._cancels), self._reads[0].calls)[0])
        if self._entries:
            head = self._entries[0]
            wake = min(wake, self.earliest(head.kind, now, calls=head.calls)[0], head.deadline)
        return wake

    def expected_seconds(self, cancels: int, now: float) -> float:
        """Seconds from ``now`` until the last of ``cancels`` new cancels (queued behind those
        already waiting) could be released; ``inf`` if the day's calls run out first."""
        if cancels <= 0:
            return 0.0
        self._prune(now)
        total = len(self._cancels) + cancels
        limit = self.limits.calls_per_minute
        if self.day_calls + total > self.limits.calls_per_day:
            return math.inf
        log = deque(self._minute)
        last, when = self._last_action, now
        for _ in range(total):
            when = max(when, last + self.spacing)
            while log and log[0] + self.minute_window <= when:
                log.popleft()
            if len(log) >= limit:
                when = log[len(log) - limit] + self.minute_window
                while log and log[0] + self.minute_window <= when:
                    log.popleft()
            log.append(when)
            last = when
        return when - now


CountCallback = Callable[[str, str, int], None]


def _loop_clock() -> float:
    # The timer is set on the loop's clock, so "now" is read from it too: an event loop whose clock
    # is not time.monotonic (a test's virtual time) then wakes the governor exactly when it asked.
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


@dataclass(slots=True)
class _Timer:
    handle: asyncio.TimerHandle | None = None
    at: float = math.inf


class Governor:
    """The asyncio face of ``Schedule``: ``await acquire(kind)`` before every broker call, and
    ``await going()`` just before a place's or modify's call goes out.

    When a slot is free ``acquire`` returns without yielding. Otherwise the caller waits on a
    future that one shared timer settles at the next moment anything can change. ``clock`` is
    monotonic seconds, by default the running event loop's own clock (the one its timers run on),
    ``wall_ns`` epoch nanoseconds for the IST day. ``initial_counts`` are
    today's counts from the store (keys ``calls``, ``order_actions``); ``on_count(day, kind,
    count)`` hears the new day totals after releases, for the engine to persist. Use it from the
    event loop's thread only, like the rest of the engine.
    """

    def __init__(
        self,
        limits: RateLimits,
        config: GovernorConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        initial_counts: Mapping[str, int] | None = None,
        on_count: CountCallback | None = None,
    ) -> None:
        counts = initial_counts or {}
        self._clock = clock if clock is not None else _loop_clock
        self._wall_ns = wall_ns
        self._on_count = on_count
        self._schedule = Schedule(
            limits, config or GovernorConfig(), day=ist_day_number(wall_ns()),
            day_calls=counts.get(COUNT_CALLS, 0), day_actions=counts.get(COUNT_ORDER_ACTIONS, 0),
        )
        self._waiters: dict[Ticket, asyncio.Future[None]] = {}
        self._timer = _Timer()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def schedule(self) -> Schedule:
        return self._schedule

    @property
    def queued(self) -> int:
        return self._schedule.queued

    @property
    def entries_waiting(self) -> int:
        """Places and modifies waiting for a slot: what a halt drops."""
        return self._schedule.entries_waiting

    @property
    def stats(self) -> GovernorStats:
        return self._schedule.stats

    @property
    def cancel_rate(self) -> float:
        return self._schedule.cancel_rate

    def remaining(self) -> RateBudget:
        """What is left of each broker limit now; past IST midnight the whole day, before any call says so."""
        schedule = self._schedule
        budget = schedule.remaining(self._clock())
        if ist_day_number(self._wall_ns()) != schedule.day:
            return dataclasses.replace(budget, day_left=budget.calls_per_day)
        return budget

    def expected_seconds(self, cancels: int) -> float:
        """Seconds from now until the last of ``cancels`` cancels sent now could go out."""
        return self._schedule.expected_seconds(cancels, self._now())

    async def acquire(self, kind: CallKind, calls: int = 1) -> None:
        """Wait for a slot for one call of ``kind`` that spends ``calls`` API calls at the broker;
        ``Throttled`` for a place/modify that cannot have one."""
        self._loop = asyncio.get_running_loop()
        now = self._now()
        ticket = self._schedule.submit(kind, now, calls)
        if ticket.error is not None:
            raise ticket.error
        self._advance(now)
        if ticket.released is None:
            await self._wait(ticket)
        if kind is CallKind.CANCEL:
            await self.going()

    async def _wait(self, ticket: Ticket) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = future
        try:
            await future
        except asyncio.CancelledError:
            if ticket.released is None and ticket.error is None:
                self._schedule.withdraw(ticket)
                self._advance(self._now())
            raise
        finally:
            del self._waiters[ticket]

    async def going(self) -> None:
        """Call just before an order action released earlier goes to the broker: waits, if need be, until
        it is a spacing after the action that went before it (cancels do so inside ``acquire``)."""
        now = self._clock()
        slot = self._schedule.go_at(now)
        if slot > now:
            await asyncio.sleep(slot - now)

    def drop_pending(self, reason: str) -> int:
        """Refuse every queued place and modify with ``Throttled(reason)``; returns how many."""
        dropped = self._schedule.drop_pending(reason)
        self._settle(dropped)
        self._arm(self._now())
        return len(dropped)

    def _now(self) -> float:
        now = self._clock()
        day = ist_day_number(self._wall_ns())
        if day != self._schedule.day:
            self._schedule.new_day(day)
        return now

    def _advance(self, now: float) -> None:
        settled = self._schedule.pump(now)
        self._settle(settled)
        self._arm(now)
        # Last, so a failing callback leaves the queue and the timer consistent.
        released = [ticket for ticket in settled if ticket.released is not None]
        if released and self._on_count is not None:
            schedule = self._schedule
            day = day_from_number(schedule.day).isoformat()
            self._on_count(day, COUNT_CALLS, schedule.day_calls)
            if any(ticket.kind.is_action for ticket in released):
                self._on_count(day, COUNT_ORDER_ACTIONS, schedule.day_actions)

    def _settle(self, tickets: list[Ticket]) -> None:
        for ticket in tickets:
            future = self._waiters.get(ticket)
            if future is None or future.done():
                continue
            if ticket.error is not None:
                future.set_exception(ticket.error)
            else:
                future.set_result(None)

    def _arm(self, now: float) -> None:
        wake = self._schedule.next_wakeup(now)
        if math.isinf(wake) and self._schedule.queued:
            # Only the day cap makes a queued call wait forever; the next IST day frees it. The
            # millisecond past midnight keeps a wall clock a hair behind from waking us twice.
            midnight_ns = ((self._schedule.day + 1) * _SECONDS_PER_DAY - IST_OFFSET_S) * 1_000_000_000
            wake = now + max(0.0, (midnight_ns - self._wall_ns()) / 1e9) + 0.001
        timer = self._timer
        if wake == timer.at:
            return
        if timer.handle is not None:
            timer.handle.cancel()
            timer.handle = None
        timer.at = wake
        if not math.isinf(wake):
            if self._loop is None:
                # Calls queue only inside acquire, which records the loop: a wake without one is a bug.
                raise RuntimeError("the governor has a call waiting but no event loop to wake it on")
            timer.handle = self._loop.call_later(wake - now, self._on_timer)

    def _on_timer(self) -> None:
        self._timer.handle = None
        self._timer.at = math.inf
        self._advance(self._now())
