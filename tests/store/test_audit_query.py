"""Paged, filtered reads of the audit chain (``app.store.audit_query``) on SQLite and PostgreSQL: no record
twice, none skipped, across pages and windows; each filter; an order's story from a real engine; verify and
export; bad filter input refused with a message, never run as SQL."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.india_time import IST
from app.domain.orders import Side
from app.domain.requests import OrderRequest
from app.engine.engine import Engine as DeskEngine
from app.store.audit_query import (
    AuditFilter,
    AuditQuery,
    AuditRow,
    FilterError,
    check_chain,
    make_filter,
)
from app.store.audit_writer import AuditWriter
from app.store.canonical import canonical_json
from app.store.export import export
from app.store.migrate import open_store
from app.store.models import AuditRecord
from tests.store.chain_fixtures import file_keys, fill, tamper
from tests.support.limits import wide_limits

# 2026-11-02 10:00 IST: nothing here depends on today's date.
T0_NS = int(dt.datetime(2026, 11, 2, 10, 0, tzinfo=IST).timestamp()) * 1_000_000_000
SECOND = 1_000_000_000
EVENTS = ("order.proposed", "gate.accepted", "order.queued", "order.sent", "broker.ack", "fill", "order.update",
          "login.ok")
ACTORS = ("asha", "ravi", "broker", "system")
SOURCES = ("ticket", "api", "broker", "system")


def record_of(seq: int) -> tuple[int, int, str, str, str, str, str, str, None]:
    """Record ``seq`` of a synthetic chain: every field a plain function of ``seq`` (hashes are not valid)."""
    event = EVENTS[seq % len(EVENTS)]
    actor = "rare" if seq % 97 == 0 else ACTORS[seq % len(ACTORS)]
    # Canonical JSON written out by hand (a million of them in seconds); test_synthetic_payloads_are_canonical.
    if event == "login.ok":
        payload = f'{{"client_order_id":"BW-{seq // 8:06d}"}}'
    else:
        payload = (f'{{"client_order_id":"BW-{seq // 8:06d}","instrument":"NSE:SYM{seq % 13}","price_paise":150005,'
                   f'"quantity":10,"side":"BUY"}}')
    return (seq, T0_NS + seq * SECOND, actor, SOURCES[seq % len(SOURCES)], event, payload, "0" * 64, f"{seq:064x}", None)


def test_synthetic_payloads_are_canonical() -> None:
    for seq in range(1, 20):
        payload = record_of(seq)[5]
        assert canonical_json(json.loads(payload)) == payload


def bulk_store(url: str, count: int) -> Engine:
    """A migrated store holding ``count`` synthetic records, inserted in one transaction."""
    engine = open_store(url)
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            # A generator, not a million-row list: sqlite3 takes any iterable.
            records: Any = (record_of(seq) for seq in range(1, count + 1))
            raw.cursor().executemany(
                "INSERT INTO audit_log (seq, ts_ns, actor, source, event_type, payload, prev_hash, hash, key_fp) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", records)
            raw.commit()
        finally:
            raw.close()
    else:
        names = ("seq", "ts_ns", "actor", "source", "event_type", "payload", "prev_hash", "hash", "key_fp")
        with engine.begin() as connection:
            connection.execute(insert(AuditRecord.__table__),  # type: ignore[arg-type]
                               [dict(zip(names, record_of(seq), strict=True)) for seq in range(1, count + 1)])
    return engine


def expected(count: int, keep: Callable[[AuditRow], bool]) -> list[int]:
    return [seq for seq in range(1, count + 1) if keep(AuditRow(*record_of(seq)))]


def walk_newest(query: AuditQuery, flt: AuditFilter, *, limit: int, budget_s: float = 10.0) -> Iterator[AuditRow]:
    cursor: int | None = None
    first = True
    while first or cursor is not None:
        page = query.newest(flt, before=cursor, limit=limit, budget_s=budget_s)
        assert len(page.rows) <= limit
        yield from page.rows
        cursor, first = page.cursor, False


COUNT = 300


@pytest.fixture
def chain(db_url: str) -> Iterator[AuditQuery]:
    engine = bulk_store(db_url, COUNT)
    try:
        # A small window: every filtered page crosses several windows.
        yield AuditQuery(engine, window=17)
    finally:
        engine.dispose()


FILTERS: dict[str, tuple[dict[str, Any], Callable[[AuditRow], bool]]] = {
    "none": ({}, lambda r: True),
    "one event": ({"event_types": ["fill"]}, lambda r: r.event_type == "fill"),
    "several events": ({"event_types": ["fill", "broker.ack", "login.ok"]},
                       lambda r: r.event_type in ("fill", "broker.ack", "login.ok")),
    "wildcard": ({"event_types": ["order.*"]}, lambda r: r.event_type.startswith("order.")),
    "actor": ({"actor": "rare"}, lambda r: r.actor == "rare"),
    "source": ({"source": "api"}, lambda r: r.source == "api"),
    "instrument": ({"instrument": "NSE:SYM3"}, lambda r: '"instrument":"NSE:SYM3"' in r.payload),
    "order id": ({"client_order_id": "BW-000010"}, lambda r: '"client_order_id":"BW-000010"' in r.payload),
    "time range": ({"since": dt.datetime.fromtimestamp((T0_NS + 50 * SECOND) / 1e9, IST),
                    "until": dt.datetime.fromtimestamp((T0_NS + 120 * SECOND) / 1e9, IST)},
                   lambda r: T0_NS + 50 * SECOND <= r.ts_ns < T0_NS + 120 * SECOND),
    "combined": ({"event_types": ["fill", "order.sent"], "actor": "ravi", "instrument": "NSE:SYM5"},
                 lambda r: r.event_type in ("fill", "order.sent") and r.actor == "ravi"
                 and '"instrument":"NSE:SYM5"' in r.payload),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_newest_first_pages_hold_every_match_once_in_order(chain: AuditQuery, name: str) -> None:
    fields, keep = FILTERS[name]
    flt = make_filter(**fields)
    want = expected(COUNT, keep)
    assert want, "the filter must match something for the test to mean anything"
    for limit in (1, 7, 200):
        got = [row.seq for row in walk_newest(chain, flt, limit=limit)]
        assert got == list(reversed(want)), (name, limit)


@pytest.mark.parametrize("name", ["none", "several events", "instrument", "time range"])
def test_oldest_first_and_iter_rows_agree_with_the_filter(chain: AuditQuery, name: str) -> None:
    fields, keep = FILTERS[name]
    flt = make_filter(**fields)
    want = expected(COUNT, keep)
    got: list[int] = []
    cursor: int | None = 0
    while cursor is not None:
        page = chain.oldest(flt, after=cursor, limit=5, budget_s=None)
        got += [row.seq for row in page.rows]
        cursor = page.cursor
    assert got == want
    assert [row.seq for row in chain.iter_rows(flt)] == want
    # A range of sequence numbers.
    assert [row.seq for row in chain.iter_rows(flt, after=100, upto=200)] == [s for s in want if 100 < s <= 200]


def test_a_spent_time_budget_hands_back_a_partial_page_and_a_cursor_that_loses_nothing(chain: AuditQuery) -> None:
    flt = make_filter(actor="rare")
    page = chain.newest(flt, limit=200, budget_s=0.0)
    assert page.cursor is not None and len(page.rows) < 200, "one window, then the budget stops the walk"
    got = [row.seq for row in walk_newest(chain, flt, limit=2, budget_s=0.0)]
    assert got == list(reversed(expected(COUNT, lambda r: r.actor == "rare")))


def test_the_rows_carry_the_stored_record_exactly(chain: AuditQuery) -> None:
    row = chain.newest(make_filter(), limit=1).rows[0]
    assert (row.seq, row.ts_ns, row.actor, row.source, row.event_type, row.payload, row.prev_hash, row.hash,
            row.key_fp) == record_of(COUNT)
    assert row.ist_text() == dt.datetime.fromtimestamp((T0_NS + COUNT * SECOND) / 1e9, IST).strftime(
        "%Y-%m-%d %H:%M:%S.000")


def test_an_empty_chain_reads_as_nothing_and_no_more(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path}/bulwark.db")
    query = AuditQuery(engine)
    assert query.newest(make_filter()).rows == [] and query.newest(make_filter()).cursor is None
    assert query.newest(make_filter(actor="asha")).cursor is None
    assert list(query.iter_rows()) == []
    engine.dispose()


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"event_types": ["order.proposd"]}, "event_types", "unknown event type 'order.proposd'"),
    ({"event_types": ["nothing.*"]}, "event_types", "unknown event type"),
    ({"source": "telepathy"}, "source", "unknown source"),
    ({"actor": "a" * 10_240}, "actor", "too long (10,240 characters; at most 128)"),
    ({"instrument": "N" * 10_240}, "instrument", "too long"),
    ({"client_order_id": "x" * 10_240}, "client_order_id", "too long"),
    ({"actor": "asha\x00; DROP TABLE audit_log"}, "actor", "control characters"),
    ({"since": dt.datetime(2026, 11, 3, 10, 0, tzinfo=IST), "until": dt.datetime(2026, 11, 2, 10, 0, tzinfo=IST)},
     "until", "not after its start"),
    ({"since": dt.datetime(2026, 11, 3, 10, 0, tzinfo=IST), "until": dt.datetime(2026, 11, 3, 10, 0, tzinfo=IST)},
     "until", "not after its start"),
])
def test_bad_filter_input_is_refused_with_a_message_for_its_field(fields: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(FilterError) as caught:
        make_filter(**fields)
    assert field in caught.value.problems
    assert words in caught.value.problems[field]


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(FilterError) as caught:
        make_filter(event_types=["bogus"], actor="a" * 200, source="nowhere")
    assert set(caught.value.problems) == {"event_types", "actor", "source"}


def test_sql_looking_text_is_only_text(chain: AuditQuery) -> None:
    for text in ("%' OR 1=1 --", "' OR '1'='1", "NSE:SYM3%", "NSE:SYM_", '"); DROP TABLE audit_log; --'):
        flt = make_filter(instrument=text, actor=text, client_order_id=text)
        assert chain.newest(flt).rows == []
        assert list(chain.iter_rows(make_filter(instrument=text))) == []
    # LIKE's wildcards mean nothing either: NSE:SYM1 is not NSE:SYM1x.
    assert {r.payload for r in chain.iter_rows(make_filter(instrument="NSE:SYM1"))} == {
        r.payload for r in chain.iter_rows() if '"instrument":"NSE:SYM1"' in r.payload}
    assert chain.last_seq() == COUNT


def test_blank_fields_mean_any_and_a_naive_time_is_ist() -> None:
    assert make_filter(event_types=[" ", ""], actor="  ", instrument="", client_order_id=None).is_empty
    naive = make_filter(since=dt.datetime(2026, 11, 2, 10, 0))
    assert naive.since_ns == T0_NS


# -- an order's story -----------------------------------------------------------------------------

RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")


async def _trade(tmp_path: Path) -> tuple[AuditWriter, str, str]:
    """Three orders through a real engine and the paper broker: one fills, one is cancelled, one is refused."""
    writer = AuditWriter(open_store(f"sqlite:///{tmp_path / 'desk.db'}"))
    writer.start()
    broker = PaperBroker(PaperConfig(seed=5, tick_interval_ms=None), universe=[RELIANCE])
    engine = DeskEngine(broker, [RELIANCE.instrument], audit=writer, limits=wide_limits([RELIANCE.instrument]))
    await engine.start()
    broker.step()
    await asyncio.sleep(0.01)
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    tick = RELIANCE.instrument.tick_size
    marketable = OrderRequest("NSE:RELIANCE", Side.BUY, 1, str((last + 20 * tick) / 100), actor="asha")
    resting = OrderRequest("NSE:RELIANCE", Side.BUY, 1, str((last - 60 * tick) / 100), actor="ravi")
    refused = OrderRequest("NSE:RELIANCE", Side.BUY, 0, str(last / 100), actor="asha")
    filled, working, _ = await asyncio.gather(engine.submit(marketable), engine.submit(resting), engine.submit(refused))
    assert filled.client_order_id is not None and working.client_order_id is not None
    for _ in range(20):
        broker.step()
        await asyncio.sleep(0.01)
        order = engine.oms.get(filled.client_order_id)
        if order is not None and order.filled_quantity:
            break
    cancel = await engine.cancel(working.client_order_id, actor="ravi")
    assert cancel.ok, cancel.message
    for _ in range(10):
        broker.step()
        await asyncio.sleep(0.01)
    await engine.stop()
    writer.close()
    return writer, filled.client_order_id, working.client_order_id


def _subsequence(wanted: list[str], events: list[str]) -> bool:
    found = iter(events)
    return all(kind in found for kind in wanted)


async def test_the_story_of_a_real_order_runs_from_proposal_to_fill(tmp_path: Path) -> None:
    writer, filled_id, cancelled_id = await _trade(tmp_path)
    query = AuditQuery(writer.engine)

    story = query.story(filled_id)
    events = [row.event_type for row in story]
    assert events[:4] == ["order.proposed", "gate.accepted", "order.queued", "order.sent"], events
    assert _subsequence(["order.proposed", "gate.accepted", "order.queued", "order.sent", "broker.ack", "fill"], events)
    assert [row.seq for row in story] == sorted(row.seq for row in story)
    # The proposal is this order's (asha's), not the interleaved proposals of ravi's order or the refused one.
    proposal = story[0].payload_object()
    assert story[0].actor == "asha" and proposal["quantity"] == "1"
    assert all(filled_id in row.payload for row in story[1:])
    # Every record that names the order is in its story.
    naming = [row.seq for row in query.iter_rows() if f'"client_order_id":"{filled_id}"' in row.payload]
    assert [row.seq for row in story[1:]] == naming

    cancelled = [row.event_type for row in query.story(cancelled_id)]
    assert _subsequence(["order.proposed", "gate.accepted", "order.sent", "broker.ack", "cancel.requested",
                         "order.cancelled"], cancelled), cancelled
    assert query.story(cancelled_id)[0].actor == "ravi"
    assert query.story("BW000000-999999") == []
    writer.engine.dispose()


async def test_the_story_is_found_when_the_orders_clock_disagrees_with_the_chains(tmp_path: Path) -> None:
    writer, filled_id, _ = await _trade(tmp_path)
    with writer.engine.begin() as connection:
        # The order's row says it was created a day later than the chain recorded it.
        connection.exec_driver_sql("UPDATE orders SET created_ns = created_ns + 86400000000000 WHERE client_order_id = ?",
                                   (filled_id,))
    story = AuditQuery(writer.engine).story(filled_id)
    assert [row.event_type for row in story][:2] == ["order.proposed", "gate.accepted"]
    writer.engine.dispose()


# -- export ------------------------------------------------------------------------------------------


def test_export_of_everything_is_byte_for_byte_the_cli_export(chain: AuditQuery) -> None:
    for fmt in ("csv", "jsonl"):
        ours, theirs = io.StringIO(), io.StringIO()
        assert chain.export(AuditFilter(), ours, fmt) == export(chain.engine, theirs, fmt) == COUNT
        assert ours.getvalue() == theirs.getvalue()


def test_export_round_trips_the_filtered_rows(chain: AuditQuery) -> None:
    flt = make_filter(event_types=["fill", "order.sent"], instrument="NSE:SYM5")
    want = list(chain.iter_rows(flt))
    assert want
    out = io.StringIO()
    assert chain.export(flt, out, "csv") == len(want)
    back = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(int(r["seq"]), r["event_type"], r["payload"], r["hash"]) for r in back] == [
        (r.seq, r.event_type, r.payload, r.hash) for r in want]
    out = io.StringIO()
    seen: list[int] = []
    assert chain.export(flt, out, "jsonl", progress=seen.append) == len(want)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["seq"], d["payload"]) for d in lines] == [(r.seq, r.payload_object()) for r in want]
    with pytest.raises(ValueError, match="csv or jsonl"):
        chain.export(flt, io.StringIO(), "xml")


# -- verify ------------------------------------------------------------------------------------------


@pytest.fixture
def keyed_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    home, keyring_file = tmp_path / "home", tmp_path / "keyring.json"
    home.mkdir()
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(keyring_file))
    keys = file_keys(keyring_file)
    fill(f"sqlite:///{home}/bulwark.db", 4_500, keys).engine.dispose()
    return home, keys


def test_verify_passes_a_good_chain_and_reports_progress(keyed_home: tuple[Path, Any]) -> None:
    home, keys = keyed_home
    engine = open_store(f"sqlite:///{home}/bulwark.db")
    walked: list[int] = []
    check = check_chain(engine, keys=keys, progress=walked.append)
    assert check.ok and check.records == 4_501 and check.problems == []
    assert check.headline.startswith("Chain OK: 4,501 records verified, keyed with key ")
    assert walked == sorted(walked) and walked[0] == 0 and walked[-1] >= 4_000
    engine.dispose()


def test_verify_reports_the_first_tampered_record(keyed_home: tuple[Path, Any]) -> None:
    home, keys = keyed_home
    tamper(home, "UPDATE audit_log SET payload = '{\"i\":9999,\"pad\":\"\"}' WHERE seq = 1234")
    engine = open_store(f"sqlite:///{home}/bulwark.db")
    check = check_chain(engine, keys=keys)
    assert not check.ok and check.broken_at == 1_234
    assert check.headline.startswith("BROKEN at record 1,234: its content does not match its HMAC")
    engine.dispose()


def test_verify_without_the_key_does_not_pass_and_says_why(keyed_home: tuple[Path, Any]) -> None:
    from keyring.backends.fail import Keyring

    from app.store.chain_key import ChainKeys

    home, _keys = keyed_home
    engine = open_store(f"sqlite:///{home}/bulwark.db")
    check = check_chain(engine, keys=ChainKeys(Keyring()))  # type: ignore[no-untyped-call]
    assert not check.ok and check.broken_at is None
    assert check.headline.startswith("NOT VERIFIED:") and "key" in check.headline
    engine.dispose()


def test_a_damaged_checkpoint_file_is_a_clear_failure(keyed_home: tuple[Path, Any], tmp_path: Path) -> None:
    home, keys = keyed_home
    bad = tmp_path / "checkpoints.jsonl"
    bad.write_text("not json\n")
    engine = open_store(f"sqlite:///{home}/bulwark.db")
    check = check_chain(engine, keys=keys, checkpoint_files=[bad])
    assert not check.ok and check.headline.startswith("Cannot check:") and "checkpoints.jsonl" in check.headline
    engine.dispose()
