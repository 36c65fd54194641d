"""Read the audit chain a page at a time: filters, an order's story, export and verify for the viewer.

Nothing here loads the chain. Pages are keyset reads on ``seq`` (the primary key, SQLite's rowid),
never ``OFFSET``. A filtered page is found by walking ``seq`` windows of a bounded size, newest
first (or oldest first), each one an index range read with the filter applied to it, until the
page is full, the chain is exhausted or the call's time budget is spent: the caller then gets the
rows found so far and a cursor to go on from. A filter that matches one record in a million so
never holds a thread, or the viewer, for a whole table scan in one statement.

The payload is canonical JSON text (sorted keys, no spaces: ``canonical.canonical_json``), so a
field such as the instrument is found by its exact text, ``"instrument":"NSE:RELIANCE"``, with
``instr`` (SQLite) or ``strpos`` (PostgreSQL): a bound parameter, no ``LIKE`` wildcards to escape,
and case-sensitive as the key is.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, Table, func, inspect, literal, select
from sqlalchemy.sql.elements import ColumnElement

from app.domain.audit import AuditEventType, AuditSource
from app.domain.india_time import IST

from .audit_writer import CHAIN_KEYED
from .canonical import json_string
from .chain_key import ChainKeys
from .checkpoints import CheckpointError, check_checkpoints, read_checkpoints
from .export import COLUMNS as EXPORT_COLUMNS
from .models import AuditRecord, OrderRow
from .verify import verify_chain

PAGE_SIZE = 200
# Records one statement of a filtered walk may look at: a few milliseconds of SQLite on a desk PC.
WINDOW = 32_768
# How long one filtered page may keep walking before it hands back what it found.
PAGE_BUDGET_S = 0.08
# The column widths of ``audit_log``: a longer filter can match nothing, so it is refused as an error.
MAX_ACTOR = 128
MAX_INSTRUMENT = 96
MAX_ORDER_ID = 64
# An order's proposal is written just before its gate decision (same actor and source, no await
# between): looked for this many records back from the first record naming the order.
_PROPOSAL_REACH = 64
# The story's starting point is looked up by the order's creation time, this much earlier.
_STORY_SLACK_NS = 3_600 * 1_000_000_000

KNOWN_EVENT_TYPES: frozenset[str] = frozenset({event.value for event in AuditEventType} | {CHAIN_KEYED})
KNOWN_SOURCES: frozenset[str] = frozenset(source.value for source in AuditSource)

_TABLE: Table = AuditRecord.__table__  # type: ignore[assignment]
_ORDERS: Table = OrderRow.__table__  # type: ignore[assignment]


class FilterError(ValueError):
    """A filter that cannot be used: ``problems`` maps each bad field to a message fit to show beside it."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems.items()))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the viewer asks for; every field optional, all given ones must hold. ``until_ns`` is exclusive.

    Build one with ``make_filter`` from what an operator typed: it checks every field.
    """

    event_types: frozenset[str] = frozenset()
    actor: str | None = None
    source: str | None = None
    instrument: str | None = None
    client_order_id: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None

    @property
    def is_empty(self) -> bool:
        return self == AuditFilter()


def _text(problems: dict[str, str], name: str, value: str | None, limit: int) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > limit:
        problems[name] = f"too long ({len(text):,} characters; at most {limit})"
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        problems[name] = "contains control characters"
        return None
    return text


def _ns(moment: dt.datetime) -> int:
    # A wall-clock time without a zone is the desk's: IST.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=IST)
    return int(aware.timestamp()) * 1_000_000_000 + aware.microsecond * 1_000


def make_filter(
    *, event_types: Iterable[str] = (), actor: str | None = None, source: str | None = None,
    instrument: str | None = None, client_order_id: str | None = None,
    since: dt.datetime | None = None, until: dt.datetime | None = None,
) -> AuditFilter:
    """Check what was typed and build the filter; ``FilterError`` names every bad field.

    Blank text means "any"; an event type ending in ``*`` stands for every type it starts. Times without a zone are IST; ``until`` is exclusive and must be after
    ``since``.
    """
    problems: dict[str, str] = {}
    kinds: set[str] = set()
    unknown: list[str] = []
    for typed in sorted({kind.strip() for kind in event_types if kind.strip()}):
        # ``order.*``: every known type the prefix starts.
        found = ({kind for kind in KNOWN_EVENT_TYPES if kind.startswith(typed[:-1])} if typed.endswith("*")
                 else {typed} & KNOWN_EVENT_TYPES)
        kinds |= found
        if not found:
            unknown.append(typed)
    if unknown:
        shown = ", ".join(repr(kind[:40]) for kind in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
        problems["event_types"] = f"unknown event type {shown}"
    chosen_source = _text(problems, "source", source, 32)
    if chosen_source is not None and chosen_source not in KNOWN_SOURCES:
        problems["source"] = f"unknown source {chosen_source[:40]!r} (one of {', '.join(sorted(KNOWN_SOURCES))})"
    built = AuditFilter(
        event_types=frozenset(kinds),
        actor=_text(problems, "actor", actor, MAX_ACTOR),
        source=chosen_source,
        instrument=_text(problems, "instrument", instrument, MAX_INSTRUMENT),
        client_order_id=_text(problems, "client_order_id", client_order_id, MAX_ORDER_ID),
        since_ns=_ns(since) if since is not None else None,
        until_ns=_ns(until) if until is not None else None,
    )
    if built.since_ns is not None and built.until_ns is not None and built.until_ns <= built.since_ns:
        problems["until"] = "the end of the time range is not after its start"
    if problems:
        raise FilterError(problems)
    return built


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One record as stored: the canonical payload text exactly as its hash covers it."""

    seq: int
    ts_ns: int
    actor: str
    source: str
    event_type: str
    payload: str
    prev_hash: str
    hash: str
    key_fp: str | None

    def payload_object(self) -> Any:
        """The payload parsed, or its text when it is not JSON (a damaged record still shows)."""
        try:
            return json.loads(self.payload)
        except ValueError:
            return self.payload

    def ist_text(self) -> str:
        """'2026-11-02 10:00:00.123': the record's time in IST, to the millisecond."""
        moment = dt.datetime.fromtimestamp(self.ts_ns // 1_000 / 1_000_000, IST)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Rows of one read and where the next read in the same direction starts (``None``: nothing left)."""

    rows: list[AuditRow]
    cursor: int | None


def _field_text(name: str, value: str) -> str:
    """The exact canonical text of ``"name":"value"`` inside a payload."""
    return f"{json_string(name)}:{json_string(value)}"


class AuditQuery:
    """Keyset-paged, filtered reads of ``audit_log`` over a SQLAlchemy engine (SQLite or PostgreSQL).

    Thread-safe as the engine is: the viewer calls it from a worker thread, never the GUI thread.
    """

    def __init__(self, engine: Engine, *, window: int = WINDOW) -> None:
        self.engine = engine
        self._window = max(1, window)
        self._contains = func.strpos if engine.dialect.name == "postgresql" else func.instr
        self._columns: list[ColumnElement[Any]] | None = None

    def _selected(self) -> list[ColumnElement[Any]]:
        if self._columns is None:
            c = _TABLE.c
            has_key = "key_fp" in {column["name"] for column in inspect(self.engine).get_columns("audit_log")}
            # A store from before the keyed chain (read as it is, never migrated) has no key column.
            key = c.key_fp if has_key else literal(None).label("key_fp")
            self._columns = [c.seq, c.ts_ns, c.actor, c.source, c.event_type, c.payload, c.prev_hash, c.hash, key]
        return self._columns

    def _where(self, flt: AuditFilter) -> list[ColumnElement[bool]]:
        c = _TABLE.c
        clauses: list[ColumnElement[bool]] = []
        if flt.event_types:
            clauses.append(c.event_type.in_(sorted(flt.event_types)))
        if flt.actor is not None:
            clauses.append(c.actor == flt.actor)
        if flt.source is not None:
            clauses.append(c.source == flt.source)
        if flt.since_ns is not None:
            clauses.append(c.ts_ns >= flt.since_ns)
        if flt.until_ns is not None:
            clauses.append(c.ts_ns < flt.until_ns)
        if flt.instrument is not None:
            clauses.append(self._contains(c.payload, _field_text("instrument", flt.instrument)) > 0)
        if flt.client_order_id is not None:
            clauses.append(self._contains(c.payload, _field_text("client_order_id", flt.client_order_id)) > 0)
        return clauses

    def last_seq(self) -> int:
        """The newest record's sequence number (0 for an empty chain)."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.max(_TABLE.c.seq))).scalar() or 0)

    def _read(self, clauses: Sequence[ColumnElement[bool]], *, descending: bool, limit: int) -> list[AuditRow]:
        seq = _TABLE.c.seq
        query = select(*self._selected()).where(*clauses).order_by(seq.desc() if descending else seq).limit(limit)
        with self.engine.connect() as connection:
            return [AuditRow(*row) for row in connection.execute(query)]

    def newest(self, flt: AuditFilter = AuditFilter(), *, before: int | None = None, limit: int = PAGE_SIZE,
               budget_s: float = PAGE_BUDGET_S) -> AuditPage:
        """Up to ``limit`` matching records below ``before`` (the newest when ``None``), newest first.

        A page may hold fewer rows than ``limit`` with a cursor: the time budget ran out first.
        """
        top = (self.last_seq() if before is None else before - 1)
        if top < 1 or limit < 1:
            return AuditPage([], None)
        seq = _TABLE.c.seq
        where = self._where(flt)
        if not where:
            rows = self._read([seq <= top], descending=True, limit=limit)
            return AuditPage(rows, rows[-1].seq if len(rows) == limit and rows[-1].seq > 1 else None)
        started = time.perf_counter()
        found: list[AuditRow] = []
        high = top
        while True:
            low = max(1, high - self._window + 1)
            found += self._read([seq >= low, seq <= high, *where], descending=True, limit=limit - len(found))
            if len(found) >= limit:
                return AuditPage(found, found[-1].seq if found[-1].seq > 1 else None)
            if low <= 1:
                return AuditPage(found, None)
            high = low - 1
            if time.perf_counter() - started >= budget_s:
                return AuditPage(found, high + 1)

    def oldest(self, flt: AuditFilter = AuditFilter(), *, after: int = 0, upto: int | None = None,
               limit: int = PAGE_SIZE, budget_s: float | None = PAGE_BUDGET_S) -> AuditPage:
        """Up to ``limit`` matching records above ``after`` and at most ``upto``, oldest first.

        ``budget_s`` ``None``: walk until the page is full or the range ends.
        """
        end = self.last_seq() if upto is None else upto
        if after >= end or limit < 1:
            return AuditPage([], None)
        seq = _TABLE.c.seq
        where = self._where(flt)
        if not where:
            rows = self._read([seq > after, seq <= end], descending=False, limit=limit)
            return AuditPage(rows, rows[-1].seq if len(rows) == limit and rows[-1].seq < end else None)
        started = time.perf_counter()
        found: list[AuditRow] = []
        low = after + 1
        while True:
            high = min(end, low + self._window - 1)
            found += self._read([seq >= low, seq <= high, *where], descending=False, limit=limit - len(found))
            if len(found) >= limit:
                return AuditPage(found, found[-1].seq if found[-1].seq < end else None)
            if high >= end:
                return AuditPage(found, None)
            low = high + 1
            if budget_s is not None and time.perf_counter() - started >= budget_s:
                return AuditPage(found, low - 1)

    def iter_rows(self, flt: AuditFilter = AuditFilter(), *, after: int = 0,
                  upto: int | None = None) -> Iterator[AuditRow]:
        """Every matching record in sequence order, read a page at a time up to the chain's end as it is now."""
        end = self.last_seq() if upto is None else upto
        cursor: int | None = after
        while cursor is not None:
            page = self.oldest(flt, after=cursor, upto=end, limit=2_000, budget_s=None)
            yield from page.rows
            cursor = page.cursor

    # -- an order's story --------------------------------------------------------------------------

    def story(self, client_order_id: str) -> list[AuditRow]:
        """Every record naming the order, in sequence order, with the proposal that led to it first.

        The proposal (``order.proposed``) is written before the order has an id: it is the last
        proposal by the same actor and source before the order's first record.
        """
        flt = make_filter(client_order_id=client_order_id)
        start = self._story_start(client_order_id)
        rows = list(self.iter_rows(flt, after=start))
        if start > 0 and not any(row.event_type == AuditEventType.GATE_ACCEPTED for row in rows):
            # The hint missed the order's beginning (clocks disagree): read the whole chain.
            rows = list(self.iter_rows(flt))
        if not rows:
            return []
        first = rows[0]
        c = _TABLE.c
        proposal = self._read(
            [c.seq < first.seq, c.seq >= first.seq - _PROPOSAL_REACH, c.event_type == AuditEventType.ORDER_PROPOSED.value,
             c.actor == first.actor, c.source == first.source],
            descending=True, limit=1,
        )
        return proposal + rows

    def _story_start(self, client_order_id: str) -> int:
        """A sequence number before the order's first record, from the stored order's creation time (0: none)."""
        with self.engine.connect() as connection:
            created = connection.execute(
                select(_ORDERS.c.created_ns).where(_ORDERS.c.client_order_id == client_order_id)
            ).scalar()
            if created is None:
                return 0
            first = connection.execute(
                select(_TABLE.c.seq).where(_TABLE.c.ts_ns >= int(created) - _STORY_SLACK_NS)
                .order_by(_TABLE.c.ts_ns).limit(1)
            ).scalar()
        return max(0, int(first) - _PROPOSAL_REACH) if first is not None else 0

    # -- export ------------------------------------------------------------------------------------

    def export(self, flt: AuditFilter, out: TextIO, fmt: str,
               progress: Callable[[int], None] | None = None) -> int:
        """Write the filtered records to ``out`` as ``csv`` or ``jsonl`` in the format of ``audit export``.

        Streams page by page; returns how many records were written. ``progress`` hears the count
        after each page.
        """
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be csv or jsonl, got {fmt!r}")
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS) if fmt == "csv" else None
        if writer is not None:
            writer.writeheader()
        count = 0
        for row in self.iter_rows(flt):
            record = export_record(row)
            if writer is not None:
                writer.writerow(record)
            else:
                out.write(json.dumps({**record, "payload": row.payload_object()}, ensure_ascii=False) + "\n")
            count += 1
            if progress is not None and count % 2_000 == 0:
                progress(count)
        return count


def export_record(row: AuditRow) -> dict[str, object]:
    """A record as ``app.store.export`` writes it (same columns, same IST stamp)."""
    stamp = dt.datetime.fromtimestamp(row.ts_ns / 1e9, IST).isoformat(timespec="microseconds")
    return {"seq": row.seq, "ts_ns": row.ts_ns, "ts_ist": stamp, "actor": row.actor, "source": row.source,
            "event_type": row.event_type, "payload": row.payload, "prev_hash": row.prev_hash, "hash": row.hash}


# -- verify ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What "Verify chain" found, in words: ``headline`` is one line; ``problems`` empty when ``ok``."""

    ok: bool
    records: int
    headline: str
    broken_at: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The fingerprints of the keys the chain was checked against (none: not keyed), and the checkpoints compared.
    keys: list[str] = field(default_factory=list)
    checkpoints: int = 0


def check_chain(
    engine: Engine, *, keys: ChainKeys | None = None, checkpoint_files: Sequence[Path] = (),
    progress: Callable[[int], None] | None = None,
) -> ChainCheck:
    """Verify the chain as ``main.py audit verify`` does: every hash under its key, and the checkpoints.

    ``progress`` hears how many records were walked, every few thousand. Blocking: run it off the GUI thread.
    """
    chain_keys = keys if keys is not None else ChainKeys()
    try:
        checkpoints = [checkpoint for path in checkpoint_files for checkpoint in read_checkpoints(path)]
    except CheckpointError as exc:
        return ChainCheck(False, 0, f"Cannot check: {exc}", problems=[str(exc)])
    result = verify_chain(engine, keys=chain_keys, hashes_at={checkpoint.seq for checkpoint in checkpoints},
                          progress=progress)
    extra, notes = check_checkpoints(result, checkpoints, chain_keys)
    problems = result.problems() + extra
    if result.broken_at is not None:
        headline = f"BROKEN at record {result.broken_at:,}: {result.reason}"
    elif problems:
        headline = f"NOT VERIFIED: {problems[0]}"
    else:
        keyed = f", keyed with key {', '.join(result.keys)}" if result.keys else ", not keyed (plain SHA-256)"
        headline = f"Chain OK: {result.records:,} records verified{keyed if result.records else ''}"
        if checkpoints:
            headline += f"; {len(checkpoints)} checkpoints agree"
    return ChainCheck(not problems, result.records, headline, result.broken_at, problems, notes, result.keys,
                      len(checkpoints))
