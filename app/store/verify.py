"""Recompute the audit chain and find any edited, deleted, inserted or reordered record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine, inspect

from app.domain.india_time import day_from_number, ist_day_number

from .canonical import GENESIS_HASH, chain_hash


@dataclass(frozen=True, slots=True)
class DayDigest:
    """The hash of a trading day's last record: anchor it outside the machine to pin the whole day."""

    day: dt.date
    last_seq: int
    records: int
    hash: str


@dataclass(slots=True)
class VerifyResult:
    """What ``verify_chain`` found. ``broken_at`` is the first bad sequence number."""

    records: int = 0
    broken_at: int | None = None
    reason: str | None = None
    missing_triggers: list[str] = field(default_factory=list)
    digests: list[DayDigest] = field(default_factory=list)
    last_hash: str = GENESIS_HASH

    @property
    def ok(self) -> bool:
        return self.broken_at is None and not self.missing_triggers


def _rows(engine: Engine) -> Iterator[tuple[int, int, str, str, str, str, str, str]]:
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=20_000).exec_driver_sql(
            "SELECT seq, ts_ns, actor, source, event_type, payload, prev_hash, hash FROM audit_log ORDER BY seq"
        )
        for partition in result.partitions():
            yield from partition


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


def verify_chain(engine: Engine) -> VerifyResult:
    """Walk the chain in sequence order, recomputing every hash; stop at the first break."""
    result = VerifyResult()
    if not inspect(engine).has_table("audit_log"):
        result.broken_at, result.reason = 0, "there is no audit_log table"
        return result
    result.missing_triggers = _triggers_missing(engine)
    expected_seq = 1
    prev = GENESIS_HASH
    day_key = -1
    day_count = 0
    day_last: tuple[int, str] | None = None
    for seq, ts_ns, actor, source, event_type, payload, prev_hash, digest in _rows(engine):
        if seq != expected_seq:
            result.broken_at = expected_seq
            result.reason = (
                f"record {expected_seq} is missing (the next one is {seq})" if seq > expected_seq
                else f"sequence goes backwards: {seq} after {expected_seq - 1}"
            )
            return result
        if prev_hash != prev:
            result.broken_at = seq
            result.reason = "its prev_hash is not the previous record's hash (a record was deleted, inserted or reordered)"
            return result
        if chain_hash(prev, seq, ts_ns, actor, source, event_type, payload) != digest:
            result.broken_at = seq
            result.reason = "its content does not match its hash (the record was edited)"
            return result
        key = ist_day_number(ts_ns)
        if key != day_key:
            if day_last is not None:
                result.digests.append(_digest(day_key, day_count, day_last))
            day_key, day_count = key, 0
        day_count += 1
        day_last = (seq, digest)
        prev = digest
        expected_seq += 1
        result.records += 1
    if day_last is not None:
        result.digests.append(_digest(day_key, day_count, day_last))
    result.last_hash = prev
    return result


def _digest(day_number: int, records: int, last: tuple[int, str]) -> DayDigest:
    return DayDigest(day_from_number(day_number), last[0], records, last[1])
