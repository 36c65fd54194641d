"""Recompute the audit chain and find any edited, deleted, inserted or reordered record.

Records with a ``key_fp`` are HMAC-SHA256 under that key, looked up in the keyring by
fingerprint; records without one are the plain SHA-256 chain written before the chain was keyed.
Without a record's key its hash cannot be checked: verify then still walks the structure (sequence
numbers, ``prev_hash`` links), says which key it lacks, and does not pass. Whatever the database
says about itself, a truncated or rewritten tail is only visible against something kept outside
it: checkpoints and day digests (``app.store.checkpoints``) are compared against ``hashes_at``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from app.domain.audit import AuditEventType
from app.domain.india_time import IST_OFFSET_S, day_from_number, ist_day_number

from .canonical import GENESIS_HASH, json_string
from .chain_key import ChainKey, ChainKeys, missing_key_message

_DAY_NS = 86_400 * 1_000_000_000
# Small batches stay in the CPU's caches between the driver filling them and the walk reading them.
_FETCH = 2_000
# Unequal to everything but itself: no stored value matches it.
_UNLIKE = object()


@dataclass(frozen=True, slots=True)
class DayDigest:
    """The hash of a trading day's last record: anchor it outside the machine to pin the whole day."""

    day: dt.date
    last_seq: int
    records: int
    hash: str


@dataclass(frozen=True, slots=True)
class OutageWindow:
    """A database outage a desk recorded (``store.outage``): the records after ``seq`` were spooled meanwhile."""

    seq: int
    desk: str | None
    began_ns: int
    ended_ns: int
    records: int
    reason: str

    @property
    def duration_s(self) -> float:
        return (self.ended_ns - self.began_ns) / 1e9

    def describe(self) -> str:
        began = dt.datetime.fromtimestamp(self.began_ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")
        ended = dt.datetime.fromtimestamp(self.ended_ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")
        who = f" desk {self.desk}" if self.desk else ""
        return (f"outage{who} at seq {self.seq}: the database was unreachable from {began} to {ended} "
                f"({self.duration_s:.1f} s, {self.reason}); {self.records} records spooled and appended after it")


@dataclass(slots=True)
class VerifyResult:
    """What ``verify_chain`` found. ``broken_at`` is the first bad sequence number.

    ``missing_keys``: fingerprints of keys the records name and this keyring lacks (those hashes
    were not checked). ``keys``: the fingerprints the chain was checked against. ``integrity``:
    what SQLite's ``quick_check`` reported, when it was not ``ok``. ``hashes_at``: the hash of
    each record asked for in ``hashes_at`` that exists. ``outages``: the database outages desks
    recorded in the verified part of the chain (recorded, so no gap: they do not fail it).
    """

    records: int = 0
    broken_at: int | None = None
    reason: str | None = None
    missing_triggers: list[str] = field(default_factory=list)
    digests: list[DayDigest] = field(default_factory=list)
    last_hash: str = GENESIS_HASH
    last_key: str | None = None
    keys: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)
    hashes_at: dict[int, str] = field(default_factory=dict)
    days_at: dict[int, dt.date] = field(default_factory=dict)
    keyring: str = ""
    outages: list[OutageWindow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken_at is None and not self.missing_triggers and not self.missing_keys and not self.integrity

    @property
    def keyed(self) -> bool:
        return bool(self.keys or self.missing_keys)

    def problems(self) -> list[str]:
        """Every reason the chain does not pass, one line each."""
        found: list[str] = []
        found.extend(f"the database file is damaged (SQLite quick_check): {line}" for line in self.integrity)
        if self.broken_at is not None:
            found.append(f"record {self.broken_at}: {self.reason}")
        found.extend(missing_key_message(fp, self.keyring) + " (its hashes were not checked; the sequence numbers "
                     "and links were)" for fp in self.missing_keys)
        if self.missing_triggers:
            found.append("the database no longer refuses edits (append-only triggers missing: "
                         + ", ".join(self.missing_triggers) + ")")
        return found


class _QuotedStrings(dict[Any, str]):
    """JSON string literals by value: actors, sources and event types repeat endlessly."""

    def __missing__(self, value: Any) -> str:
        quoted = json_string(value) if type(value) is str else json.dumps(value, ensure_ascii=False)
        if type(value) is str:
            self[value] = quoted
        return quoted


def _rows(engine: Engine, with_key: bool) -> Iterator[Sequence[Any]]:
    """Batches of raw rows straight from the driver's cursor: no per-row SQLAlchemy objects."""
    key_column = "key_fp" if with_key else "NULL"
    with engine.connect() as connection:
        # PostgreSQL: a named (server-side) cursor, or psycopg would fetch the whole chain into memory
        # before the first batch. It lives in the connection's open transaction.
        raw = connection.connection
        cursor = raw.cursor(name="bulwark_verify") if engine.dialect.name == "postgresql" else raw.cursor()
        try:
            cursor.execute(
                "SELECT seq, ts_ns, actor, source, event_type, payload, prev_hash, hash, "
                f"{key_column} FROM audit_log ORDER BY seq"
            )
            while batch := cursor.fetchmany(_FETCH):
                yield batch
        finally:
            cursor.close()


def _triggers_missing(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            names = {row[0] for row in connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
            )}
            wanted = {"audit_log_no_update", "audit_log_no_delete"}
        else:
            names = {row[0] for row in connection.exec_driver_sql(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND tgenabled <> 'D' AND NOT tgisinternal"
            )}
            wanted = {"audit_log_no_update_delete", "audit_log_no_truncate"}
    return sorted(wanted - names)


def quick_check(engine: Engine) -> list[str]:
    """SQLite's ``PRAGMA quick_check``: ``[]`` when the file is well formed, else its first complaints."""
    if engine.dialect.name != "sqlite":
        return []
    with engine.connect() as connection:
        lines = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA quick_check(20)")]
    return [] if lines == ["ok"] else lines


def verify_chain(
    engine: Engine, *, keys: ChainKeys | None = None, hashes_at: Collection[int] = (), integrity: bool = True,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Walk the chain in sequence order, recomputing every hash; stop at the first break.

    ``keys`` finds the keys keyed records name (the system keyring by default). ``integrity``
    runs SQLite's ``quick_check`` first: a damaged page the chain walk never reads (an index) is
    damage all the same. ``progress`` hears how many records were walked, once per batch.
    """
    result = VerifyResult()
    if integrity:
        result.integrity = quick_check(engine)
    if not inspect(engine).has_table("audit_log"):
        result.broken_at, result.reason = 0, "there is no audit_log table"
        return result
    with_key = "key_fp" in {column["name"] for column in inspect(engine).get_columns("audit_log")}
    result.missing_triggers = _triggers_missing(engine)
    keyring = keys if keys is not None else ChainKeys()
    # Seq numbers asked for, in the order the walk meets them: one integer comparison per record.
    wanted = sorted({seq for seq in hashes_at if seq >= 1})
    wanted.append(0)
    wanted.reverse()
    next_wanted = wanted.pop()
    expected_seq = 1
    prev = GENESIS_HASH
    day_key, day_lo, day_hi, day_first = -1, 0, -1, 0
    current_fp: str | None = None
    inner_pad: Any = None
    outer_pad: Any = None
    checked = True
    quote = _QuotedStrings()
    # The quoted actor, source and event type between the timestamp and the payload, kept while
    # consecutive records share them (most do).
    last_actor: Any = _UNLIKE
    last_source: Any = _UNLIKE
    last_event: Any = _UNLIKE
    middle = ""
    sha256 = hashlib.sha256
    driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    batches = _rows(engine, with_key)
    while True:
        try:
            batch = next(batches, None)
        except driver_error as exc:
            # The driver's own error: rows come from its cursor, not through SQLAlchemy.
            result.broken_at = expected_seq
            result.reason = f"the database cannot be read from here on: {str(exc).strip().splitlines()[0]}"
            return _finish(result, prev, current_fp, keyring, engine)
        if batch is None:
            break
        if progress is not None:
            # Records walked so far, once per batch: a viewer's progress bar, not a per-record cost.
            progress(expected_seq - 1)
        rest: Iterable[Sequence[Any]] = batch
        if checked and current_fp is not None:
            # The common case, HMAC records of one key within one day, with only the checks they
            # need. At the first record that is anything else (or fails) this loop stops, and the
            # full loop below takes the batch on from that record: it alone decides what is wrong.
            first = expected_seq
            inner_copy, outer_copy = inner_pad.copy, outer_pad.copy
            for seq, ts_ns, actor, source, event_type, payload, prev_hash, digest, key_fp in batch:
                if (seq != expected_seq or prev_hash != prev or key_fp != current_fp or seq == next_wanted
                        or type(seq) is not int or type(ts_ns) is not int or not day_lo <= ts_ns < day_hi):
                    break
                if event_type != last_event or actor != last_actor or source != last_source:
                    if not (type(actor) is str and type(source) is str and type(event_type) is str):
                        break
                    middle = f",{quote[actor]},{quote[source]},{quote[event_type]},"
                    last_actor, last_source, last_event = actor, source, event_type
                # Both numbers are ints (checked above): plain formatting writes them as ``:d`` does.
                inner = inner_copy()
                inner.update(f"{prev}[{seq},{ts_ns}{middle}{payload}]".encode())
                outer = outer_copy()
                outer.update(inner.digest())
                if outer.hexdigest() != digest:
                    break
                prev = digest
                expected_seq += 1
            else:
                continue
            rest = itertools.islice(batch, expected_seq - first, None)
        try:
            for seq, ts_ns, actor, source, event_type, payload, prev_hash, digest, key_fp in rest:
                if seq != expected_seq:
                    result.broken_at = expected_seq
                    result.reason = (
                        f"record {expected_seq} is missing (the next one is {seq})" if seq > expected_seq
                        else f"sequence goes backwards: {seq} after {expected_seq - 1}"
                    )
                    return _finish(result, prev, current_fp, keyring, engine)
                if prev_hash != prev:
                    result.broken_at = seq
                    result.reason = ("its prev_hash is not the previous record's hash "
                                     "(a record was deleted, inserted or reordered)")
                    return _finish(result, prev, current_fp, keyring, engine)
                if key_fp != current_fp:
                    if key_fp is None:
                        result.broken_at = seq
                        result.reason = (f"it is not keyed, but the chain was keyed with key {current_fp} before it "
                                         "(a record appended or recomputed without the key)")
                        return _finish(result, prev, current_fp, keyring, engine)
                    current_fp = key_fp
                    key: ChainKey | None = keyring.get(key_fp)
                    checked = key is not None
                    if key is None:
                        if key_fp not in result.missing_keys:
                            result.missing_keys.append(key_fp)
                    else:
                        inner_pad, outer_pad = key.pads()
                        if key_fp not in result.keys:
                            result.keys.append(key_fp)
                if checked:
                    # canonical.record_bytes after the previous hash, inlined: this is the walk's hot path.
                    if event_type != last_event or actor != last_actor or source != last_source:
                        middle = f",{quote[actor]},{quote[source]},{quote[event_type]},"
                        if type(actor) is str and type(source) is str and type(event_type) is str:
                            last_actor, last_source, last_event = actor, source, event_type
                        else:  # 1 == 1.0 == True, quoted three ways: only strings are reused
                            last_actor = last_source = last_event = _UNLIKE
                    message = f"{prev}[{seq:d},{ts_ns:d}{middle}{payload}]"
                    if current_fp is None:
                        computed = sha256(message.encode()).hexdigest()
                    else:
                        inner = inner_pad.copy()
                        inner.update(message.encode())
                        outer = outer_pad.copy()
                        outer.update(inner.digest())
                        computed = outer.hexdigest()
                    if computed != digest:
                        result.broken_at = seq
                        result.reason = (
                            "its content does not match its hash (the record was edited)" if current_fp is None
                            else f"its content does not match its HMAC under key {current_fp} "
                                 "(the record was edited, or forged without the key)"
                        )
                        return _finish(result, prev, current_fp, keyring, engine)
                if not day_lo <= ts_ns < day_hi:
                    # Day boundaries, not a division per record: records arrive in time order.
                    key_day = ist_day_number(ts_ns)
                    if key_day != day_key:
                        if day_first:
                            result.digests.append(DayDigest(day_from_number(day_key), seq - 1, seq - day_first, prev))
                        day_key, day_first = key_day, seq
                    day_lo = _day_start_ns(key_day)
                    day_hi = day_lo + _DAY_NS
                if seq == next_wanted:
                    result.hashes_at[seq] = digest
                    result.days_at[seq] = day_from_number(day_key)
                    next_wanted = wanted.pop()
                prev = digest
                expected_seq += 1
        except (TypeError, ValueError) as exc:
            # Only a column of the wrong storage type (SQLite keeps what it is given) gets here.
            result.broken_at = expected_seq
            result.reason = f"a field holds a value of the wrong type ({exc})"
            return _finish(result, prev, current_fp, keyring, engine)
    result.records = expected_seq - 1
    if day_first:
        result.digests.append(DayDigest(day_from_number(day_key), expected_seq - 1, expected_seq - day_first, prev))
    return _finish(result, prev, current_fp, keyring, engine)


def _finish(result: VerifyResult, last_hash: str, last_key: str | None, keys: ChainKeys, engine: Engine) -> VerifyResult:
    if result.broken_at is not None:
        # Records counts the ones that verified, up to the break.
        result.records = result.broken_at - 1
    try:
        result.outages = outage_windows(engine, result.records)
    except SQLAlchemyError:
        pass  # the walk already says what could not be read
    result.last_hash = last_hash
    result.last_key = last_key
    if result.missing_keys:
        result.keyring = keys.describe()
    return result


def outage_windows(engine: Engine, up_to_seq: int) -> list[OutageWindow]:
    """The ``store.outage`` records up to ``up_to_seq``, in chain order (a scan apart from the walk's hot loop)."""
    found: list[OutageWindow] = []
    if up_to_seq < 1:
        return found
    with engine.connect() as connection:
        rows = connection.execute(_OUTAGES, {"kind": str(AuditEventType.STORE_OUTAGE), "last": up_to_seq})
        for seq, payload in rows:
            try:
                document = json.loads(payload)
                found.append(OutageWindow(int(seq), document.get("desk"), int(document["began_ns"]), int(document["ended_ns"]),
                                          int(document["records"]), str(document.get("reason", ""))))
            except (ValueError, KeyError, TypeError, AttributeError):
                # Verified, so written by a desk: but not one this reader understands. Said, not skipped.
                found.append(OutageWindow(int(seq), None, 0, 0, 0, "its record cannot be read"))
    return found


_OUTAGES = text("SELECT seq, payload FROM audit_log WHERE event_type = :kind AND seq <= :last ORDER BY seq")


def _day_start_ns(day_number: int) -> int:
    return (day_number * 86_400 - IST_OFFSET_S) * 1_000_000_000
