"""Who holds which share of a broker account's rate budget: one lease per running desk.

A broker account (``broker_accounts``, by fingerprint) has ``slots``: how many desks may trade
through it at once, each with ``1/slots`` of its limits (``app.engine.budget``). A desk claims a
free slot at start (``claim``), renews its lease every few seconds while it runs (``renew``) and
gives it back at a clean stop (``release``). A desk that crashed keeps its slot until its lease
expires: ``LEASE_TTL_NS`` is longer than the broker's minute window, so by the time another desk
takes the slot, none of the dead desk's calls still counts there. For the same reason a released
slot cools for ``RELEASE_COOLDOWN_NS`` before another desk may take it.

The database's ``slots`` are the authority every desk uses. The first desk on an account writes its
own ``firm.desks_per_account`` there, and a desk that finds no other desk holding the account may
change it to its own (no running desk then has a share computed from the old number); otherwise a
desk whose setting differs uses the database's and says so. A claim is atomic: on PostgreSQL every
claimer of one account waits for the account row's lock, so two desks never get the same slot.
Expiry is judged by the database server's clock where there is one (PostgreSQL), so workstations
whose clocks differ still agree; SQLite serves one desk, on its own clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .db import StoreError
from .models import AccountLeaseRow, BrokerAccountRow, RateCounterRow

log = logging.getLogger(__name__)

# Longer than the governor's minute window (63 s) with room for a renewal that comes late.
LEASE_TTL_NS = 90 * 1_000_000_000
# A released slot waits out the governor's minute window (63 s) and a little more before another desk takes it.
RELEASE_COOLDOWN_NS = 65 * 1_000_000_000
RENEW_INTERVAL_S = 5.0
MAX_DESKS_PER_ACCOUNT = 10
DESKS_PER_ACCOUNT = "firm.desks_per_account"
_CALLS = "calls"

_ACCOUNTS: Table = BrokerAccountRow.__table__  # type: ignore[assignment]
_LEASES: Table = AccountLeaseRow.__table__  # type: ignore[assignment]
_COUNTERS: Table = RateCounterRow.__table__  # type: ignore[assignment]


class AccountFull(StoreError):
    """Every slot of the broker account is held by a running desk: this desk must not trade through it."""


class LeaseLost(StoreError):
    """The desk's lease is gone (it expired and another desk took the slot, or it was removed)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """A desk holding a slot of an account, and until when (epoch nanoseconds, by the database's clock)."""

    desk_id: str
    slot: int
    expires_ns: int


@dataclass(frozen=True, slots=True)
class Lease:
    """One slot of ``account`` held by ``desk_id`` until ``expires_ns``.

    ``slots`` is the database's number (what the shares are cut by), ``wanted_slots`` the desk's own
    setting, ``resized_from`` the database's number before this claim changed it (``None``: unchanged).
    ``absent_calls`` is what the account spent on the claim's trading day through desks that hold no
    slot now: the desk's day share starts charged with it.
    """

    account: str
    slot: int
    slots: int
    desk_id: str
    expires_ns: int
    wanted_slots: int
    resized_from: int | None = None
    absent_calls: int = 0


def check_slots(slots: int) -> int:
    """``slots`` if it is a number of desks an account may be shared by, else ``ValueError`` naming the setting."""
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= MAX_DESKS_PER_ACCOUNT:
        raise ValueError(f"{DESKS_PER_ACCOUNT} must be a whole number from 1 to {MAX_DESKS_PER_ACCOUNT}, got {slots!r}")
    return slots


def now_ns(connection: Connection) -> int:
    """The time leases are judged by: the PostgreSQL server's clock, else this machine's."""
    if connection.dialect.name == "postgresql":
        return int(connection.execute(text("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint")).scalar_one()) * 1000
    return time.time_ns()


def claim(
    engine: Engine, account: str, broker: str, desk_id: str, wanted_slots: int, trading_day: str,
    *, ttl_ns: int = LEASE_TTL_NS,
) -> Lease:
    """Take a free slot of ``account`` for ``desk_id`` (creating the account with ``wanted_slots``), or raise
    ``AccountFull`` naming the desks that hold them. A lease this desk left behind (it crashed) is taken back."""
    check_slots(wanted_slots)
    with engine.begin() as connection:
        now = now_ns(connection)
        # A write first: on SQLite it takes the write lock before anything is read, so no commit in between
        # can invalidate what this transaction read.
        connection.execute(_insert_ignoring_conflict(connection, account, broker, wanted_slots, now))
        # Every claimer of this account queues here (PostgreSQL), so each sees the slots the one before took.
        slots = connection.execute(
            select(_ACCOUNTS.c.slots).where(_ACCOUNTS.c.account == account).with_for_update()
        ).scalar_one()
        connection.execute(delete(_LEASES).where(_LEASES.c.account == account, _LEASES.c.desk_id == desk_id))
        held = [Holder(row.desk_id, row.slot, row.expires_ns) for row in connection.execute(
            select(_LEASES.c.desk_id, _LEASES.c.slot, _LEASES.c.expires_ns).where(_LEASES.c.account == account)
            .order_by(_LEASES.c.slot)
        )]
        live = [holder for holder in held if holder.expires_ns > now]
        resized_from = None
        if not live and slots != wanted_slots:
            connection.execute(update(_ACCOUNTS).where(_ACCOUNTS.c.account == account).values(slots=wanted_slots))
            resized_from, slots = slots, wanted_slots
        taken = {holder.slot for holder in live}
        free = next((slot for slot in range(slots) if slot not in taken), None)
        if free is None:
            raise AccountFull(_full_message(account, slots, wanted_slots, live))
        expires = now + ttl_ns
        connection.execute(delete(_LEASES).where(_LEASES.c.account == account, _LEASES.c.slot == free))
        connection.execute(insert(_LEASES).values(account=account, slot=free, desk_id=desk_id, expires_ns=expires))
        absent = _calls_of_others(connection, trading_day, account, {desk_id, *(holder.desk_id for holder in live)})
    return Lease(account, free, slots, desk_id, expires, wanted_slots, resized_from, absent)


def _insert_ignoring_conflict(connection: Connection, account: str, broker: str, slots: int, now: int) -> Executable:
    # Two desks creating the account at once: the second waits for the first's row, then uses it.
    values = {"account": account, "broker": broker, "slots": slots, "created_ns": now}
    if connection.dialect.name == "postgresql":
        return postgresql.insert(_ACCOUNTS).values(values).on_conflict_do_nothing(index_elements=[_ACCOUNTS.c.account])
    return sqlite.insert(_ACCOUNTS).values(values).on_conflict_do_nothing(index_elements=[_ACCOUNTS.c.account])


def _calls_of_others(connection: Connection, trading_day: str, account: str, present: Collection[str]) -> int:
    total = connection.execute(
        select(func.coalesce(func.sum(_COUNTERS.c.count), 0)).where(
            _COUNTERS.c.trading_day == trading_day, _COUNTERS.c.account == account, _COUNTERS.c.kind == _CALLS,
            _COUNTERS.c.desk_id.not_in(list(present)),
        )
    ).scalar_one()
    return int(total)


def _full_message(account: str, slots: int, wanted: int, live: list[Holder]) -> str:
    held = ", ".join(f"desk {holder.desk_id} (slot {holder.slot}, lease until {_utc(holder.expires_ns)})" for holder in live)
    setting = f"this desk's {DESKS_PER_ACCOUNT} is {wanted}; " if wanted != slots else ""
    return (
        f"broker account {account} has no free slot for this desk: its {slots} slots are held by {held}; "
        f"{setting}to run more desks on it, stop them, set {DESKS_PER_ACCOUNT} (at most {MAX_DESKS_PER_ACCOUNT}) on every desk "
        f"and start one alone first, or wait for the leases to expire (a desk that stopped holds its slot "
        f"until its last calls leave the broker's minute window)"
    )


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%H:%M:%S UTC")


def renew(engine: Engine, lease: Lease, *, ttl_ns: int = LEASE_TTL_NS) -> Lease:
    """Extend ``lease`` by ``ttl_ns`` from now; ``LeaseLost`` when the slot is no longer this desk's."""
    with engine.begin() as connection:
        expires = now_ns(connection) + ttl_ns
        result = connection.execute(
            update(_LEASES).where(_held(lease)).values(expires_ns=expires)
        )
        if result.rowcount != 1:
            raise LeaseLost(f"this desk's lease on slot {lease.slot} of broker account {lease.account} is gone")
    return Lease(lease.account, lease.slot, lease.slots, lease.desk_id, expires, lease.wanted_slots,
                 lease.resized_from, lease.absent_calls)


def release(engine: Engine, lease: Lease, *, cooldown_ns: int = RELEASE_COOLDOWN_NS) -> None:
    """Give the slot back (a clean stop). Another desk may take it once ``cooldown_ns`` have passed: the
    calls this desk made in its last minute still count in the broker's minute window until then. The
    same desk may take it back at once (its restart)."""
    with engine.begin() as connection:
        expires = now_ns(connection) + cooldown_ns
        connection.execute(update(_LEASES).where(_held(lease), _LEASES.c.expires_ns > expires).values(expires_ns=expires))


def holders(engine: Engine, account: str) -> list[Holder]:
    """Every lease on ``account``, live or expired, by slot."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_LEASES.c.desk_id, _LEASES.c.slot, _LEASES.c.expires_ns).where(_LEASES.c.account == account)
            .order_by(_LEASES.c.slot)
        ).all()
    return [Holder(row.desk_id, row.slot, row.expires_ns) for row in rows]


def _held(lease: Lease) -> ColumnElement[bool]:
    return and_(_LEASES.c.account == lease.account, _LEASES.c.slot == lease.slot, _LEASES.c.desk_id == lease.desk_id)


class LeaseKeeper:
    """Renews a desk's lease every ``interval`` seconds on a small thread of its own, off the event loop.

    ``on_lost(reason)`` is called once, from that thread, when the desk must stop trading through the
    account: the slot went to another desk, or renewals have failed for half the lease's life (the
    database is unreachable), so the slot could soon be taken while this desk still spends it.
    ``close`` stops the thread and gives the slot back.
    """

    def __init__(
        self, engine: Engine, lease: Lease, on_lost: Callable[[str], None], *,
        interval: float | None = None, ttl_ns: int = LEASE_TTL_NS,
    ) -> None:
        self.lease = lease
        self._engine = engine
        self._on_lost = on_lost
        self._interval = interval if interval is not None else RENEW_INTERVAL_S
        self._ttl_ns = ttl_ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="account-lease", daemon=True)
        self._released = False

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        renewed = time.monotonic()
        failing = False
        while not self._stop.wait(self._interval):
            try:
                self.lease = renew(self._engine, self.lease, ttl_ns=self._ttl_ns)
            except LeaseLost as exc:
                self._on_lost(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - the database may be down for a while: keep trying, bounded below
                if not failing:
                    log.warning("renewing this desk's lease on broker account %s failed: %s", self.lease.account, exc)
                failing = True
                if time.monotonic() - renewed > self._ttl_ns / 2e9:
                    self._on_lost(
                        f"this desk could not renew its lease on broker account {self.lease.account} for "
                        f"{self._ttl_ns / 2e9:.0f} s ({type(exc).__name__}): another desk may soon take its share"
                    )
                    return
                continue
            renewed, failing = time.monotonic(), False

    def close(self) -> None:
        """Stop renewing and release the slot (once; a release the database refuses is logged: the lease
        then simply expires)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._released:
            return
        self._released = True
        try:
            release(self._engine, self.lease)
        except Exception as exc:  # noqa: BLE001 - the stop goes on; the lease expires by itself
            log.error("could not release this desk's lease on broker account %s: %s", self.lease.account, exc)
