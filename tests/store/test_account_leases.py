"""Broker account leases in the store (SQLite and PostgreSQL): desks sharing an account's rate limits each hold one slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, update

from app.store import account_leases, rate_counters
from app.store.account_leases import (
    DESKS_PER_ACCOUNT,
    AccountFull,
    LeaseKeeper,
    LeaseLost,
    claim,
    holders,
    release,
    renew,
)
from app.store.migrate import open_store
from app.store.models import AccountLeaseRow, BrokerAccountRow

ACCOUNT = "breeze:0123456789abcdef"
TODAY = "2026-11-20"
_LEASES: Any = AccountLeaseRow.__table__
_ACCOUNTS: Any = BrokerAccountRow.__table__


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def expire(store: Engine, desk_id: str) -> None:
    """As if ``desk_id`` crashed long enough ago for its lease to run out."""
    with store.begin() as connection:
        connection.execute(update(_LEASES).where(_LEASES.c.desk_id == desk_id).values(expires_ns=1))


def test_desks_take_distinct_slots_until_the_account_is_full(store: Engine) -> None:
    first = claim(store, ACCOUNT, "breeze", "AAAAAA", 2, TODAY)
    second = claim(store, ACCOUNT, "breeze", "BBBBBB", 2, TODAY)
    assert (first.slot, second.slot) == (0, 1)
    assert first.slots == second.slots == 2
    assert first.resized_from is None
    with pytest.raises(AccountFull) as refused:
        claim(store, ACCOUNT, "breeze", "CCCCCC", 2, TODAY)
    message = str(refused.value)
    assert "\n" not in message
    for named in ("AAAAAA", "BBBBBB", "2 slots", DESKS_PER_ACCOUNT, "UTC"):
        assert named in message
    # The refusal took nothing: the two leases are as they were.
    assert [(h.desk_id, h.slot) for h in holders(store, ACCOUNT)] == [("AAAAAA", 0), ("BBBBBB", 1)]


def test_an_expired_lease_is_taken_over_and_its_desk_learns_it_lost_it(store: Engine) -> None:
    crashed = claim(store, ACCOUNT, "breeze", "AAAAAA", 1, TODAY)
    with pytest.raises(AccountFull):
        claim(store, ACCOUNT, "breeze", "BBBBBB", 1, TODAY)
    expire(store, "AAAAAA")
    taker = claim(store, ACCOUNT, "breeze", "BBBBBB", 1, TODAY)
    assert taker.slot == crashed.slot == 0
    with pytest.raises(LeaseLost):
        renew(store, crashed)
    assert [(h.desk_id, h.slot) for h in holders(store, ACCOUNT)] == [("BBBBBB", 0)]


def test_renewing_extends_the_lease_and_a_released_slot_cools_for_the_minute_window(store: Engine) -> None:
    lease = claim(store, ACCOUNT, "breeze", "AAAAAA", 1, TODAY, ttl_ns=1_000_000_000)
    renewed = renew(store, lease, ttl_ns=account_leases.LEASE_TTL_NS)
    assert renewed.expires_ns > lease.expires_ns
    assert holders(store, ACCOUNT)[0].expires_ns == renewed.expires_ns
    release(store, renewed)
    # The stopped desk's last minute of calls still counts at the broker: nobody else takes the slot yet.
    [cooling] = holders(store, ACCOUNT)
    assert cooling.expires_ns < renewed.expires_ns
    assert cooling.expires_ns <= time.time_ns() + account_leases.RELEASE_COOLDOWN_NS
    with pytest.raises(AccountFull, match="minute window"):
        claim(store, ACCOUNT, "breeze", "BBBBBB", 1, TODAY)
    # The same desk starting again takes it back; once cooled, anyone may.
    again = claim(store, ACCOUNT, "breeze", "AAAAAA", 1, TODAY)
    release(store, again, cooldown_ns=0)
    assert claim(store, ACCOUNT, "breeze", "BBBBBB", 1, TODAY).slot == 0


def test_a_desk_restarting_after_a_crash_takes_its_own_lease_back(store: Engine) -> None:
    claim(store, ACCOUNT, "breeze", "AAAAAA", 1, TODAY)
    again = claim(store, ACCOUNT, "breeze", "AAAAAA", 1, TODAY)
    assert again.slot == 0
    assert [h.desk_id for h in holders(store, ACCOUNT)] == ["AAAAAA"]


def test_the_databases_slots_win_over_a_desks_setting_while_other_desks_hold_the_account(store: Engine) -> None:
    claim(store, ACCOUNT, "breeze", "AAAAAA", 2, TODAY)
    other = claim(store, ACCOUNT, "breeze", "BBBBBB", 3, TODAY)
    assert (other.slots, other.wanted_slots, other.resized_from) == (2, 3, None)
    with pytest.raises(AccountFull, match="this desk's firm.desks_per_account is 3"):
        claim(store, ACCOUNT, "breeze", "CCCCCC", 3, TODAY)
    with store.connect() as connection:
        assert connection.execute(_ACCOUNTS.select()).one().slots == 2


def test_a_desk_alone_on_the_account_sets_its_slots(store: Engine) -> None:
    first = claim(store, ACCOUNT, "breeze", "AAAAAA", 2, TODAY)
    release(store, first, cooldown_ns=0)
    # An expired lease is no running desk either.
    claim(store, ACCOUNT, "breeze", "BBBBBB", 2, TODAY)
    expire(store, "BBBBBB")
    alone = claim(store, ACCOUNT, "breeze", "CCCCCC", 3, TODAY)
    assert (alone.slots, alone.resized_from) == (3, 2)


def test_the_day_charge_is_what_desks_holding_no_slot_spent_today(store: Engine) -> None:
    with store.begin() as connection:
        for day, desk, kind, count in (
            (TODAY, "GONEGN", "calls", 700), (TODAY, "GONEGN", "order_actions", 300), (TODAY, "BBBBBB", "calls", 50),
            (TODAY, "CCCCCC", "calls", 20), ("2026-11-19", "OLDOLD", "calls", 4000),
        ):
            rate_counters.upsert(connection, day, ACCOUNT, desk, kind, count)
        rate_counters.upsert(connection, TODAY, "breeze:another0000000", "GONEGN", "calls", 900)
    claim(store, ACCOUNT, "breeze", "BBBBBB", 2, TODAY)
    # C's own 20 resume from its own row; B's 50 are B's to count while it runs; only the gone desk's are charged.
    assert claim(store, ACCOUNT, "breeze", "CCCCCC", 2, TODAY).absent_calls == 700


def test_a_bad_number_of_desks_is_refused_by_name(store: Engine) -> None:
    for bad in (0, 11):
        with pytest.raises(ValueError, match=DESKS_PER_ACCOUNT):
            claim(store, ACCOUNT, "breeze", "AAAAAA", bad, TODAY)
    assert holders(store, ACCOUNT) == []


def poll_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_keeper_renews_and_releases_and_reports_a_lost_lease(store: Engine) -> None:
    lease = claim(store, ACCOUNT, "breeze", "AAAAAA", 1, TODAY, ttl_ns=1_000_000_000)
    lost: list[str] = []
    keeper = LeaseKeeper(store, lease, lost.append, interval=0.01)
    keeper.start()
    try:
        poll_until(lambda: keeper.lease.expires_ns > lease.expires_ns, "a renewal")
        # Another desk takes the slot: the keeper hears so at its next renewal, once.
        with store.begin() as connection:
            connection.execute(update(_LEASES).where(_LEASES.c.desk_id == "AAAAAA").values(desk_id="BBBBBB"))
        poll_until(lambda: bool(lost), "the loss")
    finally:
        keeper.close()
    assert len(lost) == 1 and "is gone" in lost[0]
    # Closing releases only this desk's own lease: the one B holds stays.
    assert [h.desk_id for h in holders(store, ACCOUNT)] == ["BBBBBB"]
    clean = claim(store, "paper:0123456789abcdef", "paper", "AAAAAA", 1, TODAY)
    keeper = LeaseKeeper(store, clean, lost.append, interval=60)
    keeper.start()
    keeper.close()
    [cooling] = holders(store, "paper:0123456789abcdef")
    assert cooling.expires_ns < clean.expires_ns


def test_the_keeper_gives_up_once_renewals_fail_for_half_the_lease(store: Engine, tmp_path: Path) -> None:
    lease = claim(store, ACCOUNT, "breeze", "AAAAAA", 1, TODAY)
    # A database that cannot be reached: every renewal fails, as with the server down.
    unreachable = create_engine(f"sqlite:///{tmp_path}/no-such-folder/bulwark.db")
    lost: list[str] = []
    keeper = LeaseKeeper(unreachable, lease, lost.append, interval=0.01, ttl_ns=200_000_000)
    keeper.start()
    try:
        poll_until(lambda: bool(lost), "the keeper to give up")
    finally:
        keeper.close()
    assert len(lost) == 1
    assert "could not renew its lease" in lost[0] and "OperationalError" in lost[0]


# One desk per SQLite store: only PostgreSQL has desks claiming at once.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_claims_at_once_get_distinct_slots(store: Engine) -> None:
    desks, slots = 10, 6
    start = threading.Barrier(desks)
    won: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def desk(number: int) -> None:
        start.wait()
        try:
            lease = claim(store, ACCOUNT, "breeze", f"DESK{number:02d}", slots, TODAY)
        except AccountFull as exc:
            with lock:
                refused.append(str(exc))
            return
        with lock:
            won.append(lease.slot)

    threads = [threading.Thread(target=desk, args=(n,)) for n in range(desks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(won) == list(range(slots))
    assert len(refused) == desks - slots
    assert len(holders(store, ACCOUNT)) == slots
